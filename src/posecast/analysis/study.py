"""Studies: the same training with one setting varied (KL annealing, teacher forcing), then a report.

``run_study("kl-annealing", data, out_dir, cfg)`` trains ``out_dir/<variant>`` for every variant
with :class:`~posecast.training.trainer.Trainer`: the same config and seed, only the variant's
fields changed. A run whose ``checkpoints/last.ckpt`` already reached ``num_epoch`` is reused,
an incomplete one is resumed, and a folder holding a run of another config is refused. The
report comparing the runs goes to ``out_dir/report/``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import config as cfgmod
from ..config import Config, ConfigError
from ..training.run import Run

# variant name -> the fields it sets (all of the varied fields, so that only they differ)
STUDIES: dict[str, dict[str, dict[str, Any]]] = {
    "kl-annealing": {
        "monotonic": {"kl_anneal_type": "Monotonic"},
        "cyclical": {"kl_anneal_type": "Cyclical"},
        "none": {"kl_anneal_type": "None"},
    },
    "teacher-forcing": {
        # the lab's decay: -tfr_d_step per epoch from tfr_sde (tfr_sde and tfr_d_step from the config)
        "step-decay": {"tfr": 1.0, "tfr_mode": "step"},
        # the report's: 1 until tfr_sde, then linearly to 0 at the last epoch
        "linear-decay": {"tfr": 1.0, "tfr_mode": "linear"},
        "always": {"tfr": 1.0, "tfr_mode": "step", "tfr_d_step": 0.0},
        "never": {"tfr": 0.0, "tfr_mode": "step"},
    },
}

STUDY_TEXT = {
    "kl-annealing": ("KL annealing study: Monotonic, Cyclical and no annealing (β = 1 throughout)",
                     "The runs differ only in schedule.kl_anneal_type; everything else, the seed included, is equal."),
    "teacher-forcing": ("Teacher-forcing study: step decay (the lab), linear decay (the report), always, never",
                        "The runs differ only in the teacher-forcing fields (schedule.tfr, tfr_mode, tfr_d_step); "
                        "everything else, the seed included, is equal."),
}

@dataclass
class StudyResult:
    """What run_study did: the run folders by variant, which were trained, resumed or reused."""

    kind: str
    runs: dict[str, Path]
    trained: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    report: Path | None = None


def study_configs(kind: str, cfg: Config, variants: list[str] | None = None) -> dict[str, Config]:
    """The config of every variant of a study: ``cfg`` with the variant's fields set, validated."""
    if kind not in STUDIES:
        raise ConfigError(f"unknown study {kind!r} (choose from {', '.join(STUDIES)})")
    table = STUDIES[kind]
    names = variants or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"study {kind}: unknown variant(s) {unknown} (choose from {', '.join(table)})")
    out = {}
    for name in names:
        try:
            out[name] = cfgmod.override(cfg, **table[name]).validate()
        except ConfigError as exc:
            raise ConfigError(f"study {kind}, variant {name}: {exc}") from None
    return out


def _variant_state(run_dir: Path, cfg: Config, data: Path) -> str:
    """'new', 'done' or 'incomplete' for a study's run folder (:func:`posecast.training.resume.run_state`);
    raises ConfigError when it holds a run of another config or dataset."""
    from ..training.resume import run_state

    state = run_state(run_dir, cfg)
    if state.data is not None and Path(state.data) != data:
        raise ConfigError(f"{run_dir} was trained on {state.data}, not {data}; remove it or choose another --out")
    return state.status


def run_study(kind: str, data: str | Path, out_dir: str | Path, cfg: Config, *, variants: list[str] | None = None,
              device: str = "cpu", progress: bool = False, report: bool = True, media: bool = True,
              log: Callable[[str], None] = print) -> StudyResult:
    """Train (or reuse) every variant of study ``kind`` into out_dir/<variant>, then write the
    report comparing them into out_dir/report/ (index.html, report.md)."""
    from ..data.lab import load_split
    from ..training.trainer import Trainer

    configs = study_configs(kind, cfg, variants)
    data = Path(data).resolve()
    out = Path(out_dir)
    result = StudyResult(kind, {name: out / name for name in configs})
    states = {name: _variant_state(out / name, c, data) for name, c in configs.items()}  # refuse before training
    shared: dict[str, Any] = {}
    for i, (name, c) in enumerate(configs.items(), 1):
        run_dir = out / name
        state = states[name]
        if state == "done":
            log(f"[{i}/{len(configs)}] {name}: reused ({run_dir} reached {c.optim.num_epoch} epochs)")
            result.reused.append(name)
            continue
        if not shared:  # decode the dataset once for all runs (every variant has the same data config)
            size = (c.data.frame_H, c.data.frame_W)
            shared = {"train_seq": load_split(data, "train", size), "val_seqs": [load_split(data, "val", size)]}
        log(f"[{i}/{len(configs)}] {name}: {'resuming' if state == 'incomplete' else 'training'} into {run_dir}")
        Run(run_dir).record_data(data)  # the folder too; atomically
        Trainer(c, data, run_dir, device=device, progress=progress, log=log, **shared).fit(resume=state == "incomplete")
        (result.resumed if state == "incomplete" else result.trained).append(name)
    if report:
        from .report import write_report

        title, intro = STUDY_TEXT[kind]
        result.report = write_report(list(result.runs.values()), out / "report", data=data, title=title,
                                     intro=intro, media=media, device=device, log=log)
        log(f"report: {result.report}")
    return result
