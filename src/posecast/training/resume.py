"""Where a run folder stands before training goes into it: the one resume policy, shared by
``posecast train --resume`` and by studies (which reuse or resume their variants' runs)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import config as cfgmod
from ..config import Config, ConfigError
from ..io.atomic import remove_stale_temp_files
from ..io.checkpoint import load_checkpoint
from .run import Run, check_resumable, describe_config_diff


@dataclass
class RunState:
    """What :func:`run_state` found in a run folder."""

    status: str  # "new": no checkpoint yet; "incomplete": short of optim.num_epoch; "done"
    config: Config  # the config to train with
    data: str | None  # the dataset the run was trained on (Run.data_path), when recorded


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def run_state(run_dir: str | Path, cfg: Config | None = None, *, overrides: dict[str, Any] | None = None,
              warn: Callable[[str], None] = _warn) -> RunState:
    """The state of ``run_dir`` and the config to continue it with, checked before any data is read.

    Without ``cfg`` (``posecast train --resume RUN``) the run continues with its own config:
    config.yaml, or the checkpoint's copy when a kill left config.yaml empty or unreadable (said
    through ``warn``), with ``overrides`` (flat field names) applied. Its checkpoint must hold the
    model that config describes (training settings may change): CheckpointError otherwise, and
    ConfigError when there is nothing to resume.

    With ``cfg`` (a study's variant) the folder must hold no checkpoint, or one of a run of that
    very config (the preset's name and budget fields such as ``runtime.max_time`` aside):
    ConfigError otherwise, so that a study never passes a run of other settings off as a variant.

    Temporary files that a killed save left in checkpoints/ are removed unless the run is done.
    """
    run = Run(run_dir)
    run_dir, last = run.path, run.last_ckpt
    state = load_checkpoint(last) if last.exists() else None
    if cfg is None:
        cfg = _own_config(run, state, warn)
        cfg = cfgmod.override(cfg, **overrides).validate() if overrides else cfg.validate()
        if state is not None:
            check_resumable(last, state, cfg.to_dict())
    elif state is not None:
        saved = cfgmod.from_dict(state["config"]) if state.get("config") else {}  # fields added since: defaults
        diffs = describe_config_diff(cfgmod.config_diff(saved, cfg, ignore=("preset", *cfgmod.BUDGET_FIELDS)))
        if diffs:
            raise ConfigError(f"{run_dir} holds a run of another config ({'; '.join(diffs[:4])}"
                              f"{' ...' if len(diffs) > 4 else ''}); remove it or choose another --out")
    if state is None:
        status = "new"
    else:
        status = "done" if int(state.get("epoch", 0)) >= cfg.optim.num_epoch else "incomplete"
    if status != "done":
        remove_stale_temp_files(run.ckpt_dir)
    return RunState(status, cfg, run.data_path())


def _own_config(run: Run, state: dict[str, Any] | None, warn: Callable[[str], None]) -> Config:
    """The config of the run: config.yaml, else the copy in its last checkpoint."""
    run_dir, saved = run.path, run.config_path
    if saved.is_file() and saved.stat().st_size:
        try:
            return cfgmod.load(saved)
        except ConfigError:
            if state is None:
                raise
    if state is None:
        raise ConfigError(f"--resume {run_dir}: no config.yaml (or an empty one) and no checkpoint in "
                          f"{run_dir}: nothing to resume, start a new run")
    warn(f"{saved} is missing or unreadable; using the config saved in {run.last_ckpt}")
    return cfgmod.from_dict(state["config"])
