"""Helpers shared by the tests (a plain module: conftest.py files cannot be imported reliably
when several exist without __init__.py)."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from posecast import config as cfgmod

# Sizes of the shared synthetic dataset (64x32 frames like the real data).
SYNTH = dict(seed=0, height=32, width=64, train_sequences=1, train_len=24, val_len=12,
             test_sequences=2, test_len=8)


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/NAME.py as a module (the benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"posecast_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The run's TensorBoard scalars as TensorBoard shows them: (step, value) per tag, over every
    event file of the run in order, with what a resumed run purged left out."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tiny_config(**overrides: Any) -> cfgmod.Config:
    """The tiny preset with flat field overrides (``num_epoch=3``)."""
    cfg = cfgmod.preset("tiny")
    return cfgmod.override(cfg, **overrides) if overrides else cfg


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)
    return path


def write_split(root: Path, split: str, n: int, size: tuple[int, int] = (8, 12), *,
                value: Any = None) -> Path:
    """A split in the lab layout whose frame N is filled with ``value(N)`` (default 10*N % 256)
    and whose label N with 255 - that; returns the split folder."""
    H, W = size
    value = value or (lambda k: (10 * k) % 256)
    for k in range(n):
        v = value(k)
        write_png(root / split / f"{split}_img" / f"frame{k}.png", np.full((H, W, 3), v))
        write_png(root / split / f"{split}_label" / f"frame{k}.png", np.full((H, W, 3), 255 - v))
    return root / split


def leftover_temp_files(folder: Path) -> list[str]:
    """Names left behind by an interrupted atomic write (``.NAME.*.tmp``) in ``folder``."""
    return [p.name for p in Path(folder).rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def dance_root() -> Path:
    here = Path(__file__).resolve().parents[2] / "shared" / "data" / "dance"
    candidates = [here] + ([Path(os.environ["POSECAST_DANCE"])] if os.environ.get("POSECAST_DANCE") else [])
    for path in candidates:
        if (path / "train").is_dir() and (path / "val").is_dir():
            return path
    pytest.fail(f"the real dance data is missing: looked in {', '.join(map(str, candidates))} "
                "(set POSECAST_DANCE to the folder holding train/ and val/)", pytrace=False)


# the tiny preset with lr 0.002, tfr_sde 0, z_infer zero and threads 1, as configs and checkpoints
# (format 1) were written before the groups: one train: section, and data.max_val_sequences; no
# longer read (tests check the one-line refusals)
OLD_LAYOUT = {
    "data": {"frame_H": 32, "frame_W": 64, "train_vi_len": 4, "val_vi_len": 12, "clip_stride": None, "anchor": "clip",
             "clip_order": "consecutive", "anchor_range": 0, "partial": 1.0, "fast_train": False,
             "fast_partial": 0.4, "fast_train_epoch": 5, "batch_size": 2, "max_val_sequences": None},
    "model": {"F_dim": 8, "L_dim": 4, "N_dim": 2, "D_dim": 8, "prior": "standard", "first_frame_cond": False,
              "output": "direct", "down": 0, "pose_input": "raw", "ffn_gate": "relu", "arch": "posecast"},
    "train": {"num_epoch": 2, "lr": 0.002, "optim": "Adam", "weight_decay": 0.0, "milestones": [10], "gamma": 0.1,
              "grad_clip": 1.0, "per_save": 1, "seed": 0, "tfr": 1.0, "tfr_sde": 0, "tfr_d_step": 0.1,
              "tfr_mode": "step", "tfr_flip": "epoch", "kl_anneal_type": "Cyclical", "kl_anneal_cycle": 1,
              "kl_anneal_ratio": 1.0, "kl_anneal_per": "epoch", "kl_reduction": "lab", "z_infer": "zero",
              "precision": "fp32", "channels_last": False, "threads": 1, "max_time": None, "skip_nonfinite": False,
              "val_every": 1},
    "preset": "tiny",
}


def train_until_interrupted(cfg: cfgmod.Config, data: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                            epochs: int = 1) -> None:
    """Train ``cfg`` into ``run_dir`` and stop it like a Ctrl-C once ``epochs`` epochs were checkpointed."""
    from posecast.training.trainer import Trainer

    orig, calls = Trainer._epoch, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == epochs + 1:
            raise KeyboardInterrupt
        return orig(self)

    monkeypatch.setattr(Trainer, "_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, data, run_dir, progress=False, log=lambda _: None).fit()
    monkeypatch.undo()
