"""Where a checkpoint's val-rollout error is: the share of the squared error near the pose skeleton
(the person), in the first frame's person's region (what the first frame shows and the target
does not) and elsewhere, and the PSNR the rollout would have with the person's region perfect.

    python benchmarks/error_regions.py --checkpoint RUN/checkpoints/last.ckpt

Regions: pixels within ``--radius`` pixels of the pose skeleton (a label pixel whose inverted
value exceeds 0.15 in any channel) of the target frame; the first frame's region is that of pose 1
(label 0 of the val sequence is a copy of label 1), minus the target's. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.nn import functional as F

from posecast.data.lab import load_split
from posecast.inference.load import load_model
from posecast.metrics import psnr
from posecast.perf import to_float
from posecast.rollout import predict

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dance"


def skeleton_regions(poses: torch.Tensor, radius: int) -> torch.Tensor:
    """[T, 1, H, W] masks (0/1) of the pixels within ``radius`` of each pose image's skeleton."""
    lines = ((1 - poses).amax(1, keepdim=True) > 0.15).float()
    return F.max_pool2d(lines, 2 * radius + 1, stride=1, padding=radius)


def error_regions(pred: torch.Tensor, truth: torch.Tensor, poses: torch.Tensor, radius: int = 5) -> dict:
    """pred, truth, poses: [T, 3, H, W] in [0, 1], frame 0 the given first frame (not scored)."""
    err = ((pred - truth) ** 2).mean(1, keepdim=True)[1:]  # [T-1, 1, H, W]
    person = skeleton_regions(poses[1:], radius)
    first = skeleton_regions(poses[1:2], radius).expand_as(person) * (1 - person)
    rest = (1 - person) * (1 - first)
    n = err[0].numel()
    per_frame = {name: (err * m).sum((1, 2, 3)) / n for name, m in (("person", person), ("first", first), ("rest", rest))}
    total = err.mean((1, 2, 3))
    share = {k: round(float(v.sum() / total.sum()), 3) for k, v in per_frame.items()}
    still = (total - per_frame["person"]).clamp_min(1e-10)
    copy0 = ((truth[:1] - truth[1:]) ** 2).mean(1, keepdim=True)
    return {"psnr_mean": round(float(psnr(pred[1:], truth[1:]).mean()), 3), "error_share": share,
            "area": {"person": round(float(person.mean()), 3), "first": round(float(first.mean()), 3)},
            "psnr_if_person_perfect": round(float((-10 * torch.log10(still)).mean()), 2),
            "rest_mse": round(float((err * rest).sum() / rest.sum()), 6),
            "rest_mse_copy_frame0": round(float((copy0 * rest).sum() / rest.sum()), 6)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--radius", type=int, default=5)
    ap.add_argument("--mirror", choices=["on", "off"],
                    help="average the rollout with the mirrored one (default: the config's inference.mirror_average)")
    args = ap.parse_args(argv)
    try:  # a missing or wrong checkpoint or data folder: one line, not a traceback
        model, cfg = load_model(args.checkpoint)
        val = load_split(args.data, "val", (cfg.data.frame_H, cfg.data.frame_W))
    except (ValueError, OSError) as exc:  # CheckpointError, DataError and ConfigError are ValueErrors
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    truth, poses = to_float(val.frames), to_float(val.poses)
    mirror = cfg.inference.mirror_average if args.mirror is None else args.mirror == "on"
    pred = predict(model, truth[:1], poses[None], z_mode=cfg.inference.z_infer, seed=cfg.runtime.seed,
                   precision="fp32", mirror=mirror)[0]
    res = {**error_regions(pred, truth, poses, args.radius), "mirror_average": mirror}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
