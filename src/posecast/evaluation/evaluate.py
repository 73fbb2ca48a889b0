"""Evaluate and predict from a checkpoint: CSVs, plots, GIF/MP4, PNG folders, submission.csv."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from .. import config as cfgmod
from ..config import Config
from ..data.lab import DataError, VideoSequence, load_frame, load_pose_folder, load_split, load_test
from ..models import PoseCVAE
from ..perf import resolve_precision, use_channels_last
from ..training.checkpoint import (CheckpointError, atomic_write_bytes, describe_state_dict_mismatch,
                                   load_checkpoint)
from .baselines import baseline_psnrs
from .lab_compat import lab_config, map_lab_state_dict
from .plots import plot_psnr_per_frame
from ..perf import to_float
from .rollout import SequenceEval, evaluate_sequences, predict
from .video import side_by_side, write_gif, write_mp4, write_png_folder, write_submission


def load_model(checkpoint: str | Path, device: str = "cpu", cfg: Config | None = None, *,
               layout: bool = True) -> tuple[PoseCVAE, Config]:
    """A PoseCVAE in eval mode and its config, from a posecast or lab-layout checkpoint.

    With ``layout`` (the default) the model is put in the memory layout its config trains with
    (``train.channels_last``), so that rollouts take the fast path too (the ``lab`` rollout in bf16:
    121 frames/s in NHWC against 71 in NCHW, benchmarks/results/speed_options.md)."""
    state = load_checkpoint(checkpoint)
    if state["format"] == "lab":
        cfg = cfg or lab_config(state["model"])  # the lab preset with the checkpoint's sizes
        model = PoseCVAE(cfg.model)
        model.load_state_dict(map_lab_state_dict(state["model"], model))
    else:
        cfg = cfgmod.from_dict(state["config"])
        model = PoseCVAE(cfg.model)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"{checkpoint}: weights do not fit the model its config describes: "
                                  f"{describe_state_dict_mismatch(model.state_dict(), state['model'])}") from None
    model = model.to(device).eval()
    if layout and cfg.train.channels_last:
        use_channels_last(model)
    return model, cfg


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
             device: str = "cpu", video: bool = True, precision: str | None = None) -> dict[str, Any]:
    """Per-frame PSNR/SSIM of every sequence of a split, as CSV, a plot, GIF/MP4 and summary.json.

    ``precision`` (auto | fp32 | bf16) overrides the checkpoint config's ``train.precision``."""
    model, cfg = load_model(checkpoint, device)
    precision = _precision(precision, cfg, device)
    seqs = _sequences(data, split, cfg)
    T = min(min(len(s) for s in seqs), length or cfg.data.val_vi_len)
    if T < 2:  # frame 0 is given: nothing would be predicted or scored
        raise DataError(f"{Path(data) / split}: {T} frame(s) to evaluate; at least 2 are needed "
                        "(frame 0 is given, frames 1.. are predicted)")
    ev = evaluate_sequences(model, seqs, length=T, z_mode=z_mode or cfg.train.z_infer, seed=seed,
                            samples=samples, precision=precision)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_frame_csv(out / "psnr_per_frame.csv", ev)
    mean_curves = {n: ev.psnr.mean(0)[b].numpy() for b, n in enumerate(ev.names)}
    plot_psnr_per_frame(mean_curves, out / "psnr_per_frame.png",
                        title=f"PSNR per frame ({split}, {samples} sample(s), z: {z_mode or cfg.train.z_infer})")
    summary = {**_summary(ev, T), "precision": precision, "baselines": _baselines(seqs, T)}
    if video:
        for b, s in enumerate(seqs):
            panel = side_by_side(ev.pred[0, b], to_float(s.frames[:T]), to_float(s.poses[:T]),
                                 labels=["prediction", "ground truth", "pose"])
            write_gif(out / f"{s.name}.gif", panel)
            write_mp4(out / f"{s.name}.mp4", panel)
    atomic_write_bytes(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))
    return summary


def _precision(precision: str | None, cfg: Config, device: str) -> str:
    """The rollout's precision: the one asked for, else the config's, with ``auto`` resolved."""
    precision = precision or cfg.train.precision
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return resolve_precision(precision, device)


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


def _write_frame_csv(path: Path, ev: SequenceEval) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    K = ev.psnr.shape[0]
    w.writerow(["sequence", "frame", "psnr_mean", "ssim_mean", "psnr_max", "ssim_max"])  # max: over samples, per frame
    for b, name in enumerate(ev.names):
        for j in range(ev.psnr.shape[-1]):
            p, s = ev.psnr[:, b, j], ev.ssim[:, b, j]
            w.writerow([name, j + 1, f"{float(p.mean()):.4f}", f"{float(s.mean()):.5f}",
                        f"{float(p.max()):.4f}", f"{float(s.max()):.5f}"] if K else [])
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue().encode()))


def predict_files(checkpoint: str | Path, out_dir: str | Path, *, first_frame: str | Path | None = None,
                  poses: str | Path | None = None, test_data: str | Path | None = None,
                  z_mode: str | None = None, seed: int = 0, device: str = "cpu",
                  precision: str | None = None) -> dict[str, Any]:
    """Predict from (first frame, pose folder) or from the lab's test layout (plus submission.csv).

    ``precision`` (auto | fp32 | bf16) overrides the checkpoint config's ``train.precision``."""
    model, cfg = load_model(checkpoint, device)
    precision = _precision(precision, cfg, device)
    size = (cfg.data.frame_H, cfg.data.frame_W)
    z = z_mode or cfg.train.z_infer
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if test_data is not None:
        seqs = load_test(test_data, size)
    elif first_frame is not None and poses is not None:
        pose_t = load_pose_folder(poses, size)
        seqs = [VideoSequence("prediction", load_frame(first_frame, size)[None], pose_t, has_gt=False)]
    else:
        raise ValueError("give --first-frame and --poses, or --test-data")
    preds = []
    for s in seqs:  # sequences may differ in length: one rollout each
        pred = predict(model, s.frames[:1], s.poses[None], z_mode=z, seed=seed, precision=precision)[0].cpu()
        preds.append(pred)
        write_png_folder(out / s.name, pred)
        write_gif(out / f"{s.name}.gif", side_by_side(pred, to_float(s.poses), labels=["prediction", "pose"]))
    result: dict[str, Any] = {"sequences": [s.name for s in seqs], "out_dir": str(out)}
    if test_data is not None:
        result["submission"] = str(write_submission(out / "submission.csv", preds))
    return result
