"""The checkpoint format: state dicts and plain data, written atomically, loaded with
weights_only=True; the lab template's layout is recognised too (its keys are renamed by
:mod:`posecast.inference.load`)."""
from __future__ import annotations

import io
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write_bytes

FORMAT = "posecast"
# 2: the config as the groups of posecast.config hold it now (no train: section, no fields
# since removed); a checkpoint of format 1 is refused with one line rather than read half-right
FORMAT_VERSION = 2

# The top-level modules of the lab template's VAE_Model: a lab checkpoint's keys start with one of
# them (the keys of posecast.models.lab.LAB_MODULES, which maps them to PoseCVAE's attributes;
# tests/io/test_checkpoint.py keeps the two equal)
LAB_MODULE_NAMES = ("frame_transformation", "label_transformation", "Gaussian_Predictor", "Decoder_Fusion",
                    "Generator")
_LAB_PREFIXES = tuple(f"{name}." for name in LAB_MODULE_NAMES)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what differs."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a checkpoint dict (adds the format tag and version).

    Serialised in memory first: torch.save into a file on a full disk fails with an opaque
    RuntimeError, a plain write fails with OSError(ENOSPC) naming the file.
    """
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, lambda f: f.write(buf.getbuffer()))


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
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"cannot load checkpoint {path}: {_why_unreadable(path, exc)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(state).__name__}, not a dict)")
    if state.get("format") == FORMAT:
        _check_version(path, state.get("format_version"))
        _check_tensors(path, state.get("model"), "model")
        if "ema" in state:  # optim.ema_decay: the moving average of the weights
            _check_tensors(path, state["ema"], "ema")
        if not isinstance(state.get("config"), dict):
            raise CheckpointError(f"{path}: posecast checkpoint without its config")
        return state
    sd = state.get("state_dict", state)
    if isinstance(sd, dict) and sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}  # saved from DataParallel / DDP
    if isinstance(sd, dict) and any(isinstance(k, str) and k.startswith(_LAB_PREFIXES) for k in sd):
        sd = {k: v for k, v in sd.items() if isinstance(k, str) and k.startswith(_LAB_PREFIXES)}
        _check_tensors(path, sd, "state_dict")
        return {"format": "lab", "model": sd, "config": None, "epoch": state.get("last_epoch", 0)}
    raise CheckpointError(f"{path}: neither a posecast checkpoint nor the lab's layout "
                          f"(keys: {sorted(map(str, state))[:8]})")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _why_unreadable(path: Path, exc: BaseException) -> str:
    """A short reason for a failed torch.load (torch's own messages run to a page)."""
    msg = _ANSI.sub("", str(exc))
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        size, head = -1, b""
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
    if unsafe:
        return (f"it holds a Python object ({unsafe.group(1)}) that would run code when loaded. "
                "posecast loads only tensors and plain data (torch.load weights_only=True), so the "
                "file is refused; use checkpoints from sources you trust")
    if size == 0:
        return "the file is empty (an interrupted write or copy?)"
    if head.startswith(b"PK") or isinstance(exc, EOFError) or "zip archive" in msg:
        return "the file is truncated or corrupt (an interrupted write, copy or download?)"
    if isinstance(exc, pickle.UnpicklingError):
        return ("not a PyTorch checkpoint, or one with content that cannot be loaded safely "
                "(only tensors and plain data are accepted)")
    first = msg.strip().splitlines()[0] if msg.strip() else ""
    return f"{type(exc).__name__}: {first}"


def _check_version(path: Path, version: Any) -> None:
    if version == FORMAT_VERSION:
        return
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: posecast checkpoint without a valid format_version ({version!r})")
    if version < FORMAT_VERSION:
        raise CheckpointError(f"{path}: written in an older posecast checkpoint format (version {version}); "
                              f"this posecast reads version {FORMAT_VERSION} (the config layout of its recipes). "
                              "Load it with the posecast release that wrote it, or train again")
    raise CheckpointError(f"{path}: written by a newer posecast (checkpoint format version {version}); "
                          f"this posecast reads version {FORMAT_VERSION}: upgrade posecast")


def _check_tensors(path: Path, sd: Any, what: str) -> None:
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{path}: checkpoint without model weights ({what!r} missing or empty)")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: {what!r} holds entries that are not tensors: {bad[:5]}")


def describe_state_dict_mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor],
                                 limit: int = 5) -> str:
    """What keeps ``got`` from loading into a model whose state dict is ``expected``."""
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in got and tuple(got[k].shape) != tuple(v.shape)]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) of another shape (checkpoint vs model), e.g. "
                     + ", ".join(shapes[:limit]))
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[:limit]}")
    if extra:
        parts.append(f"{len(extra)} unexpected, e.g. {extra[:limit]}")
    return "; ".join(parts) or "no difference in names or shapes"
