"""`posecast demo`: synthesise a dancer, train the demo recipe a few minutes, evaluate, report.

The recipe is the shipped ``demo`` recipe (posecast/recipes/demo.yaml: the quality recipe's ideas
at the demo's scale, its comments say which). It is judged against two baselines that a model
which learnt nothing about the person would score: copying frame 0 forward and the sequence's
median frame.
"""
from __future__ import annotations

import csv
from pathlib import Path

from . import config as cfgmod
from .data.synth import write_synthetic_dataset
from .analysis.evaluate import evaluate
from .training.run import Run
from .training.trainer import Trainer

# the margin the demo must show over each baseline (dB)
MARGIN_DB = 3.0


def demo_config(minutes: float, seed: int = 0) -> cfgmod.Config:
    """The demo recipe with a wall-clock budget and a seed."""
    return cfgmod.override(cfgmod.preset("demo"), seed=seed, max_time=minutes * 60)


def run_demo(out: Path, *, minutes: float = 4.0, seed: int = 0) -> dict:
    """Everything in one folder: data/, run/ (checkpoints, metrics), eval/ (plot, GIF, MP4),
    report/ (index.html). Returns evaluate's summary with the baselines."""
    out = Path(out)
    data = write_synthetic_dataset(out / "data", seed=seed, train_sequences=3, train_len=200,
                                   val_len=120, test_sequences=1, test_len=120)
    print(f"synthetic dancer dataset: {data}")
    cfg = demo_config(minutes, seed)
    trainer = Trainer(cfg, data, out / "run")  # trainer.run: the run folder's files
    print(f"training the demo recipe for up to {minutes:g} min (or {cfg.optim.num_epoch} epochs) ...")
    trainer.fit()
    summary = evaluate(trainer.run.last_ckpt, data, out / "eval", split="val")
    _print_summary(summary, out, trainer.run)
    from .analysis.report import write_report

    index = write_report([out / "run"], out / "report", data=data, title="posecast demo",
                         log=lambda _msg: None)
    print(f"  HTML report:         {index}")
    return summary


def _print_summary(summary: dict, out: Path, run: Run) -> None:
    with open(run.metrics_path) as f:
        epochs = len(list(csv.DictReader(f)))
    b = summary["baselines"]
    print()
    print(f"validation rollout ({summary['frames'] - 1} frames, z = 0, after {epochs} epochs):")
    print(f"  posecast            {summary['mean_psnr']:6.2f} dB  (min frame {summary['min_psnr']:.2f} dB, "
          f"SSIM {summary['mean_ssim']:.3f})")
    print(f"  copying frame 0     {b['copy_first']:6.2f} dB")
    print(f"  the median frame    {b['median_frame']:6.2f} dB")
    margin = summary["mean_psnr"] - max(b.values())
    verdict = "beats both baselines" if margin >= MARGIN_DB else "does NOT beat both baselines"
    print(f"  -> {verdict} by {margin:+.2f} dB (the demo expects {MARGIN_DB:g} dB or more)")
    print(f"  checkpoints:         {run.ckpt_dir}")
    print(f"  metrics per epoch:   {run.metrics_path}")
    print(f"  PSNR per frame plot: {out / 'eval' / 'psnr_per_frame.png'}")
    print(f"  prediction GIF/MP4:  {out / 'eval' / 'val.gif'}  {out / 'eval' / 'val.mp4'}")
    print(f"  TensorBoard:         tensorboard --logdir {out / 'run' / 'tensorboard'}")
