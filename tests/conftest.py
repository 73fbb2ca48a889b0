"""Shared fixtures: a tiny synthetic dataset and a tiny trained run (helpers: posecast_testing.py).

Everything heavy is session-scoped and must be treated as read-only by the tests; a test that
changes a dataset or a run folder copies it first (``copy_tree``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from posecast.data.synth import write_synthetic_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # posecast_testing
from posecast_testing import SYNTH, tiny_config  # noqa: E402

# One intra-op thread: the CI machines have 2 cores, often shared with another job, and two
# oversubscribed threads run the small convolutions of these models many times slower.
torch.set_num_threads(int(os.environ.get("POSECAST_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset in the lab layout (read-only: copy it to change it)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "data", **SYNTH)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, synth_root: Path):
    """The tiny preset trained for its 2 epochs on ``synth_root``: (trainer, run_dir, log lines)."""
    from posecast.training.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    lines: list[str] = []
    trainer = Trainer(tiny_config(), synth_root, run_dir, progress=False, log=lines.append)
    trainer.fit()
    return trainer, run_dir, lines


@pytest.fixture(scope="session")
def tiny_checkpoint(trained_run) -> Path:
    return trained_run[1] / "checkpoints" / "last.ckpt"
