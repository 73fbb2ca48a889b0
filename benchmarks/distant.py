"""The distant dancer: the val sequence as if the dancer walked away from the camera.

    python benchmarks/distant.py --checkpoint RUN/checkpoints/last.ckpt --end-scale 0.65

The held-out sequences that are scored elsewhere have a stretch where the dancer walks away from
the camera (a skeleton 15-17 pixels tall instead of 22-24) and the val sequence has none. This
benchmark makes one from val: frame 0 as filmed, then frame t and its pose zoomed by
``end_scale ** (t / (T - 1))`` about the feet of the sequence's skeletons (``zoom_sequence``), so
that the last frame shows the dancer at ``end_scale`` times the size. The model rolls it out from
the unzoomed frame 0, as it would a dancer who starts near and walks away. PSNR per frame counts
only the pixels the zoom did not fill in (the rest repeat the frame's edge, which no camera saw),
over the whole frame and over the person (within 5 pixels of the frame's skeleton: the zoom also
shrinks the background, which a static camera would not, so the person's figure is the one that
says whether a distant dancer is drawn as a dancer); beside them, copying frame 0 over the same
pixels, the frames whose dancer is at most 0.8x the size, and the checkpoint on val as filmed.

Nothing here trains, and nothing here chose the recipe: it scores a finished checkpoint. Prints one
table and writes it (and JSON, a PSNR plot and a GIF) to --results.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from posecast import perf
from posecast.analysis.plots import plot_psnr_per_frame
from posecast.data.lab import VideoSequence, load_split
from posecast.data.sampling import zoom_sequence
from posecast.inference.load import load_model, rollout_weights
from posecast.io.video import side_by_side, write_gif
from posecast.perf import to_float
from posecast.rollout import validation_rollout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from error_regions import skeleton_regions  # noqa: E402  (benchmarks/error_regions.py: the person's pixels)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dance"
FAR = 0.8  # the frames whose dancer is at most this size are "far" in the table
PERSON_RADIUS = 5  # pixels from the skeleton that count as the person (as error_regions.py)


def walk_away(seq: VideoSequence, T: int, end_scale: float) -> tuple[VideoSequence, torch.Tensor, torch.Tensor]:
    """The first T frames of ``seq`` zoomed by end_scale ** (t / (T - 1)): the sequence, its
    valid pixels [T, H, W] and the scales [T]."""
    scales = end_scale ** (torch.arange(T, dtype=torch.float64) / max(T - 1, 1))
    part = VideoSequence(f"{seq.name}_walk_away", seq.frames[:T], seq.poses[:T], seq.has_gt)
    zoomed, valid = zoom_sequence(part, scales.float())
    return zoomed, valid, scales.float()


def masked_psnr(pred: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """PSNR per frame over the valid pixels: pred, truth [T, 3, H, W] in [0, 1], valid bool [T, H, W];
    NaN for a frame without any (no skeleton: no person to score), which the means leave out."""
    m = valid[:, None].float()
    count = 3 * m.sum(dim=(1, 2, 3))
    mse = ((pred.float() - truth.float()).pow(2) * m).sum(dim=(1, 2, 3)) / count.clamp_min(1)
    out = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return torch.where(count > 0, out, torch.nan)


def _summary(p: torch.Tensor, copy: torch.Tensor, far: torch.Tensor) -> dict:
    """Mean, weakest frame, the far frames' mean and the frames under 22 dB of per-frame PSNR ``p``
    (NaN frames left out), beside copying frame 0's mean."""
    scored = ~p.isnan()
    return {"psnr_mean": round(float(p.nanmean()), 3), "psnr_min": round(float(p[scored].min()), 3),
            "far_psnr_mean": round(float(p[far].nanmean()), 3) if (far & scored).any() else None,
            "frames_under_22db": int((p[scored] < 22).sum()), "copy_first_psnr": round(float(copy.nanmean()), 3),
            "frames_without_pixels": int((~scored).sum())}


def score(checkpoint: str, data: str, end_scale: float, length: int, use_ema: bool | None) -> dict:
    """Roll out the walk-away sequence and the val sequence; the scores and what to draw."""
    model, cfg = load_model(checkpoint, use_ema=use_ema)
    val = load_split(data, "val", (cfg.data.frame_H, cfg.data.frame_W))
    T = min(length, len(val))
    seq, valid, scales = walk_away(val, T, end_scale)
    ev = validation_rollout(model, [seq], cfg, length=T, with_ssim=False)
    plain = validation_rollout(model, [val], cfg, length=T, with_ssim=False)
    truth, poses = to_float(seq.frames[:T]), to_float(seq.poses[:T])
    far = scales[1:] <= FAR
    person = valid[1:] & skeleton_regions(poses[1:], PERSON_RADIUS)[:, 0].bool()
    res = {"checkpoint": checkpoint, "end_scale": end_scale, "frames": T - 1, "far_frames": int(far.sum()),
           "weights": rollout_weights(cfg, use_ema)}
    curves = {}
    for key, mask in (("frame", valid[1:]), ("person", person)):
        p = masked_psnr(ev.pred[0, 0, 1:], truth[1:], mask)
        copy = masked_psnr(truth[:1].expand(T - 1, -1, -1, -1), truth[1:], mask)
        res[key] = _summary(p, copy, far)
        curves[key] = p
    res.update({"val_psnr_mean": round(plain.mean_psnr, 3), "val_psnr_min": round(plain.min_psnr, 3),
                "cpu": perf.cpu_summary(), "precision": perf.resolve_precision(cfg.runtime.precision),
                "_curves": curves, "_video": (ev.pred[0, 0], truth, poses)})
    return res


def strip(panels: np.ndarray, path: Path, count: int = 4) -> Path:
    """``count`` frames of the side-by-side rollout (uint8 [T, H', W', 3]: the first, the last and
    evenly between), stacked and enlarged 2x: the figure of docs/quality_checks.md."""
    idx = np.linspace(0, panels.shape[0] - 1, count).round().astype(int)
    im = Image.fromarray(np.concatenate([panels[i] for i in idx], axis=0))
    im.resize((im.width * 2, im.height * 2), Image.NEAREST).save(path, optimize=True)
    return path


def table(res: dict) -> str:
    lines = [f"| pixels scored ({res['weights']} weights) | walk-away mean PSNR | min | the {res['far_frames']} frames "
             f"at <= {FAR}x | frames under 22 dB | copying frame 0 |", "|---|---|---|---|---|---|"]
    for key, label in (("frame", "the frame"), ("person", f"the person (<= {PERSON_RADIUS} px from the skeleton)")):
        r = res[key]
        far = "-" if r["far_psnr_mean"] is None else f"{r['far_psnr_mean']:.2f}"
        lines.append(f"| {label} | {r['psnr_mean']:.2f} | {r['psnr_min']:.2f} | {far} | {r['frames_under_22db']} | "
                     f"{r['copy_first_psnr']:.2f} |")
    lines.append(f"\nThe val sequence as filmed: {res['val_psnr_mean']:.2f} dB mean, weakest frame {res['val_psnr_min']:.2f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--end-scale", type=float, default=0.65, help="the dancer's size in the last frame (0 < s <= 1)")
    ap.add_argument("--val-len", type=int, default=630, help="frames of the val sequence rolled out")
    ap.add_argument("--ema", choices=["on", "off"], help="the moving average of the weights or the trained ones "
                                                         "(default: the checkpoint's inference.use_ema)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / f"distant_{perf.cpu_kind()}"))
    ap.add_argument("--name", default="distant", help="the stem of the files written")
    args = ap.parse_args(argv)
    if not 0 < args.end_scale <= 1 or args.val_len < 2:
        ap.exit(2, f"{ap.prog}: error: --end-scale must be in (0, 1] and --val-len at least 2\n")
    try:
        res = score(args.checkpoint, args.data, args.end_scale, args.val_len,
                    None if args.ema is None else args.ema == "on")
    except (ValueError, OSError) as exc:  # a bad checkpoint or data folder: one line
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    curves, video = res.pop("_curves"), res.pop("_video")
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    plot_psnr_per_frame({f"the frame ({res['weights']} weights)": curves["frame"].numpy(),
                         "the person": curves["person"].numpy()}, out / f"{args.name}_psnr.png",
                        title=f"Val walking away to {args.end_scale:g}x, {res['frames']} predicted frames")
    panels = side_by_side(*video, labels=["prediction", "ground truth", "pose"])  # uint8 [T, H', W', 3]
    write_gif(out / f"{args.name}.gif", panels)
    strip(panels, out / f"{args.name}_frames.png")
    head = (f"`python benchmarks/distant.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
            f"CPU: {res['cpu']}; {res['precision']}\n")
    text = f"{head}\n{table(res)}\n"
    print(text)
    (out / f"{args.name}.md").write_text(text)
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
