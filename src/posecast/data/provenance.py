"""What `posecast prepare` recorded about a dataset it made (``prepare_report.json`` in the
dataset folder): the frame size it wrote and the clip the frames come from. `posecast train`
reads it, so that a dataset prepared at 128x64 trains at 128x64 (or stops saying why).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .lab import DataError

REPORT_NAME = "prepare_report.json"


@dataclass(frozen=True)
class Provenance:
    """A prepared dataset's origin: its report, the clip `prepare` read and the frames' size."""

    report: Path
    source: str  # the video or frame folder given to `posecast prepare`
    size: tuple[int, int]  # (width, height) of every frame and label written

    def describe(self) -> str:
        """``prepared from CLIP at WxH``, for a log line."""
        return f"prepared from {self.source} at {self.size[0]}x{self.size[1]}"


def read_provenance(root: str | Path) -> Provenance | None:
    """The provenance of the dataset at ``root``; None for a dataset without a report (the lab's,
    a synthetic one). A report that cannot be read fails with a DataError naming it."""
    path = Path(root) / REPORT_NAME
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable prepare report ({' '.join(str(exc).split())})") from None
    size = report.get("frame_size") if isinstance(report, dict) else None
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise DataError(f"{path}: frame_size must be [width, height] in pixels, got {size!r}")
    return Provenance(path, str(report.get("input", "an unnamed clip")), (size[0], size[1]))
