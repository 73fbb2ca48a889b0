"""`posecast demo`: synthesise a dataset, train the small preset briefly, evaluate, plot."""
from __future__ import annotations

from pathlib import Path

from . import config as cfgmod
from .data.synth import write_synthetic_dataset
from .evaluation.evaluate import evaluate
from .evaluation.plots import plot_psnr_per_frame
from .training.trainer import Trainer


def run_demo(out: Path, *, minutes: float = 4.0, seed: int = 0) -> dict:
    """Everything in one run folder: data/, run/ (checkpoints, metrics), eval/ (plot, GIF, MP4)."""
    out = Path(out)
    data = write_synthetic_dataset(out / "data", seed=seed, train_sequences=3, train_len=200,
                                   val_len=120, test_sequences=1, test_len=120)
    print(f"synthetic dancer dataset: {data}")
    cfg = cfgmod.override(cfgmod.preset("small"), seed=seed, max_time=minutes * 60, num_epoch=30,
                          tfr_sde=10, kl_anneal_cycle=3, milestones=[20, 27], per_save=5)
    trainer = Trainer(cfg, data, out / "run")
    print(f"training the small preset for up to {minutes:g} min (or {cfg.train.num_epoch} epochs) ...")
    trainer.fit()
    best = out / "run" / "checkpoints" / "best.ckpt"
    summary = evaluate(best, data, out / "eval", split="val")
    import csv
    with open(out / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows if r["val_psnr"]]
    print()
    print(f"validation rollout ({summary['frames'] - 1} frames, z from the prior): "
          f"mean PSNR {summary['mean_psnr']:.2f} dB, min {summary['min_psnr']:.2f} dB, "
          f"SSIM {summary['mean_ssim']:.3f} (best of {len(epochs)} epochs)")
    print(f"  checkpoints:         {out / 'run' / 'checkpoints'}")
    print(f"  metrics per epoch:   {out / 'run' / 'metrics.csv'}")
    print(f"  PSNR per frame plot: {out / 'eval' / 'psnr_per_frame.png'}")
    print(f"  prediction GIF/MP4:  {out / 'eval' / 'val.gif'}  {out / 'eval' / 'val.mp4'}")
    print(f"  TensorBoard:         tensorboard --logdir {out / 'run' / 'tensorboard'}")
    return summary
