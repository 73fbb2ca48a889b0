"""The errors of posecast.poses: one base class, so a caller can catch them all."""
from __future__ import annotations


class PoseError(Exception):
    """Base class of the errors raised by posecast.poses."""


class MissingExtraError(PoseError, ImportError):
    """An optional dependency (an extra such as ``pose``) is not installed or not usable."""


class PoseInputError(PoseError, ValueError):
    """An input video or image folder that cannot be read as frames."""
