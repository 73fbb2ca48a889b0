"""`posecast evaluate`: per-frame PSNR/SSIM of a split's rollouts as CSV, a plot, a sheet of the
weakest frames, GIF/MP4 and summary.json."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..data.lab import DataError, VideoSequence, load_split, load_test
from ..inference.load import load_model, rollout_weights
from ..io.atomic import atomic_write_bytes
from ..io.video import side_by_side, write_gif, write_mp4
from ..perf import to_float
from ..rollout import SequenceEval, rollout_precision, validation_rollout, write_frame_csv
from .baselines import baseline_psnrs
from .plots import plot_psnr_per_frame
from .weakest import plot_weakest


def _sequences(data: str | Path, split: str, cfg: Config) -> list[VideoSequence]:
    size = (cfg.data.frame_H, cfg.data.frame_W)
    if split == "val":
        return [load_split(data, "val", size)]
    if split == "test":
        seqs = [s for s in load_test(data, size) if s.has_gt]
        if not seqs:
            raise DataError(f"{data}: no test sequence has ground truth (gt/K.npz); use `posecast predict`")
        return seqs
    raise ValueError(f"split must be val or test, got {split!r}")


def evaluate(checkpoint: str | Path, data: str | Path, out_dir: str | Path, *, split: str = "val",
             length: int | None = None, samples: int = 1, z_mode: str | None = None, seed: int = 0,
             device: str = "cpu", video: bool = True, precision: str | None = None,
             mirror: bool | None = None, use_ema: bool | None = None) -> dict[str, Any]:
    """Per-frame PSNR/SSIM of every sequence of a split, as CSV, a plot, GIF/MP4 and summary.json,
    and the weakest frames (prediction, truth, pose, error) as weakest_frames.png.

    ``precision`` (auto | fp32 | bf16) overrides the checkpoint config's ``runtime.precision``,
    ``mirror`` its ``inference.mirror_average``, ``use_ema`` its ``inference.use_ema`` (the moving
    average of the weights, where the checkpoint has one)."""
    model, cfg = load_model(checkpoint, device, use_ema=use_ema)
    precision = rollout_precision(precision, cfg, device)
    seqs = _sequences(data, split, cfg)
    T = min(min(len(s) for s in seqs), length or cfg.data.val_vi_len)
    if T < 2:  # frame 0 is given: nothing would be predicted or scored
        raise DataError(f"{Path(data) / split}: {T} frame(s) to evaluate; at least 2 are needed "
                        "(frame 0 is given, frames 1.. are predicted)")
    ev = validation_rollout(model, seqs, cfg, length=T, samples=samples, seed=seed, z_mode=z_mode,
                            precision=precision, mirror=mirror)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_frame_csv(out / "psnr_per_frame.csv", ev)
    mean_curves = {n: ev.psnr.mean(0)[b].numpy() for b, n in enumerate(ev.names)}
    plot_psnr_per_frame(mean_curves, out / "psnr_per_frame.png",
                        title=f"PSNR per frame ({split}, {samples} sample(s), z: {z_mode or cfg.inference.z_infer})")
    summary = {**_summary(ev, T), "precision": precision,
               "mirror_average": cfg.inference.mirror_average if mirror is None else mirror,
               "weights": rollout_weights(cfg, use_ema),
               "baselines": _baselines(seqs, T),
               "weakest_frames": [asdict(f) for f in plot_weakest(ev, seqs, out / "weakest_frames.png")]}
    if video:
        for b, s in enumerate(seqs):
            panel = side_by_side(ev.pred[0, b], to_float(s.frames[:T]), to_float(s.poses[:T]),
                                 labels=["prediction", "ground truth", "pose"])
            write_gif(out / f"{s.name}.gif", panel)
            write_mp4(out / f"{s.name}.mp4", panel)
    atomic_write_bytes(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))
    return summary


def _summary(ev: SequenceEval, T: int) -> dict[str, Any]:
    best = ev.psnr.mean(-1).argmax(0)  # best-of-N sample per sequence, by mean PSNR
    idx = torch.arange(ev.psnr.shape[1])
    return {"frames": T, "samples": ev.psnr.shape[0], "sequences": ev.names,
            "mean_psnr": ev.mean_psnr, "min_psnr": ev.min_psnr, "mean_ssim": ev.mean_ssim,
            "best_of_n_psnr": float(ev.psnr[best, idx].mean()),
            "best_of_n_ssim": float(ev.ssim[best, idx].mean()),
            "per_sequence_psnr": {n: float(ev.psnr[:, b].mean()) for b, n in enumerate(ev.names)}}


def _baselines(seqs: list[VideoSequence], T: int) -> dict[str, float]:
    """Copy-frame-0 and median-frame PSNR over frames 1..T-1, means over the sequences."""
    per_seq = [baseline_psnrs(to_float(s.frames[:T])) for s in seqs]
    return {k: sum(b[k] for b in per_seq) / len(per_seq) for k in per_seq[0]}

