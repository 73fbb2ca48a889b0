"""Checkpoints: state dicts and plain data, written atomically, loaded with weights_only=True."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "posecast"
FORMAT_VERSION = 1

# The lab template's module names -> posecast's
LAB_PREFIXES = {
    "frame_transformation.": "frame_encoder.",
    "label_transformation.": "pose_encoder.",
    "Gaussian_Predictor.": "posterior_net.",
    "Decoder_Fusion.": "fusion.",
    "Generator.": "generator.",
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what differs."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Write with ``write(fileobj)`` to a temporary file beside ``path``, fsync, then rename.

    A crash at any moment leaves either the old file or the new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a checkpoint dict (adds the format tag and version)."""
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a posecast checkpoint, or the lab template's layout (mapped to posecast's names).

    Only tensors and plain data are accepted (weights_only=True): a crafted pickle cannot run code.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"expected a checkpoint file but found a folder: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"cannot load checkpoint {path}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''} "
                              "(truncated or not a checkpoint, or it holds objects other than "
                              "tensors and plain data, which are refused for safety)") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint dict")
    if state.get("format") == FORMAT:
        version = state.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {version}, this posecast "
                                  f"reads version {FORMAT_VERSION}")
        return state
    sd = state.get("state_dict", state)
    if isinstance(sd, dict) and any(k.startswith(tuple(LAB_PREFIXES)) for k in sd):
        return {"format": "lab", "model": sd, "config": None, "epoch": state.get("last_epoch", 0)}
    raise CheckpointError(f"{path}: neither a posecast checkpoint nor the lab's layout "
                          f"(keys: {sorted(state)[:8]})")
