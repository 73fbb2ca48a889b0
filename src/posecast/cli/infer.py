"""`posecast evaluate` and `posecast predict`: roll out a checkpoint, scored or into files."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from .common import positive_int_arg

PRECISIONS = ["auto", "fp32", "bf16"]
_PRECISION_HELP = "rollout precision (default: the config's runtime.precision; auto: bf16 where native)"


def add_evaluate(subparsers: Any) -> None:
    e = subparsers.add_parser("evaluate", help="per-frame PSNR/SSIM of validation or test rollouts")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--split", choices=["val", "test"], default="val")
    e.add_argument("--out", help="output folder (default RUN/eval_SPLIT)")
    e.add_argument("--length", type=positive_int_arg, help="frames per sequence (default the config's val_vi_len)")
    e.add_argument("--samples", type=positive_int_arg, default=1, help="rollouts per sequence with different z")
    e.add_argument("--z", choices=["prior", "zero"], help="z at inference (default: the config's z_infer)")
    e.add_argument("--mirror", choices=["on", "off"],
                   help="average each rollout with the mirrored one (default: the config's inference.mirror_average)")
    e.add_argument("--ema", choices=["on", "off"],
                   help="roll out with the moving average of the weights where the checkpoint has one (optim.ema_decay; "
                        "default: the config's inference.use_ema), off: the trained weights")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--precision", choices=PRECISIONS, help=_PRECISION_HELP)
    e.add_argument("--no-video", action="store_true", help="skip GIF/MP4")
    e.set_defaults(func=cmd_evaluate)


def add_predict(subparsers: Any) -> None:
    r = subparsers.add_parser("predict", help="predict frames from a first frame and poses, or the lab's test layout")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--first-frame", help="the first frame (PNG)")
    r.add_argument("--poses", help="folder of pose images frame0.png, frame1.png, ...")
    r.add_argument("--test-data", help="dataset root with test/test_img, test/test_label (writes submission.csv)")
    r.add_argument("--z", choices=["prior", "zero"])
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--precision", choices=PRECISIONS, help=_PRECISION_HELP)
    r.set_defaults(func=cmd_predict)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..analysis.evaluate import evaluate

    out = args.out or str(Path(args.checkpoint).resolve().parent.parent / f"eval_{args.split}")
    s = evaluate(args.checkpoint, args.data, out, split=args.split, length=args.length, samples=args.samples,
                 z_mode=args.z, seed=args.seed, device=args.device, video=not args.no_video,
                 precision=args.precision, mirror=None if args.mirror is None else args.mirror == "on",
                 use_ema=None if args.ema is None else args.ema == "on")
    print(f"{args.split}: mean PSNR {s['mean_psnr']:.2f} dB (min frame {s['min_psnr']:.2f}), "
          f"SSIM {s['mean_ssim']:.4f} over {s['frames'] - 1} predicted frames x {len(s['sequences'])} sequence(s)")
    b = s["baselines"]
    print(f"  beside: copying frame 0 {b['copy_first']:.2f} dB, the median frame {b['median_frame']:.2f} dB")
    weak = ", ".join(f"{w['name']} frame {w['frame']} ({w['psnr']:.2f} dB)" for w in s["weakest_frames"][:3])
    print(f"  weakest: {weak} (weakest_frames.png)")
    if s["samples"] > 1:
        print(f"best of {s['samples']}: PSNR {s['best_of_n_psnr']:.2f} dB, SSIM {s['best_of_n_ssim']:.4f}")
    print(f"written to {out}")


def cmd_predict(args: argparse.Namespace) -> None:
    from ..inference.predict import predict_files

    if not args.test_data and not (args.first_frame and args.poses):  # a usage error, not a traceback
        raise cfgmod.ConfigError("give --first-frame FILE and --poses DIR, or --test-data DIR")
    r = predict_files(args.checkpoint, args.out, first_frame=args.first_frame, poses=args.poses,
                      test_data=args.test_data, z_mode=args.z, seed=args.seed, device=args.device,
                      precision=args.precision)
    print(f"predicted {', '.join(r['sequences'])} into {r['out_dir']}")
    if "submission" in r:
        print(f"submission: {r['submission']}")
