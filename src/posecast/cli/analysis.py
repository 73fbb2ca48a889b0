"""`posecast plot`, `posecast report` and `posecast study`: the lab report's analysis from logged runs."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from .common import add_config_overrides, config_from


def _default_plot_dir(run_dirs: list[str]) -> Path:
    """RUN/plots for one run; the runs' common parent folder/plots for several."""
    paths = [Path(p).resolve() for p in run_dirs]
    if len(paths) == 1:
        return paths[0] / "plots"
    return Path(os.path.commonpath([str(p.parent) for p in paths])) / "plots"


def _epoch_arg(text: str) -> str | int:
    if text in ("best", "last"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected best, last or an epoch number (from 1), got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("epochs are numbered from 1")
    return value


PLOT_DESCRIPTION = """\
Plots from what runs logged (metrics.csv, val/epoch_NNN.csv): teacher forcing with the training loss
and the KL weight per run; training and validation losses (total, MSE, KL), validation PSNR per
epoch and PSNR/SSIM per frame with all runs on one figure.
"""


def add_plot(subparsers: Any) -> None:
    p = subparsers.add_parser("plot", help="plots from logged runs: schedules, losses, PSNR per frame and epoch",
                              description=PLOT_DESCRIPTION)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", help="folder for the PNGs (default RUN_DIR/plots, or PARENT/plots for several runs)")
    p.add_argument("--epoch", type=_epoch_arg, default="best",
                   help="which validation rollout the per-frame plots show: best (default), last or N")
    p.set_defaults(func=cmd_plot)


REPORT_DESCRIPTION = """\
A self-contained report (index.html, report.md, plots/, media/) with the plots, a table per run and
each run's validation rollout as GIF.
"""


def add_report(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="an HTML and Markdown report comparing runs",
                              description=REPORT_DESCRIPTION)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--data", help="dataset for the rollout videos (default: the dataset each run recorded)")
    p.add_argument("--title", help="report title")
    p.add_argument("--epoch", type=_epoch_arg, default="best", help="rollout shown per frame: best, last or N")
    p.add_argument("--no-media", action="store_true", help="leave out the rollout GIF/MP4")
    p.add_argument("--device", default="cpu", help="device for the rollouts")
    p.set_defaults(func=cmd_report)


STUDY_DESCRIPTION = """\
Train every variant of a study with the same config and seed (kl-annealing: Monotonic, Cyclical,
None; teacher-forcing: step decay, linear decay, always, never), reusing finished runs and resuming
incomplete ones, then write OUT/report/.
"""


def add_study(subparsers: Any) -> None:
    from ..analysis.study import STUDIES

    p = subparsers.add_parser("study", help="train the KL-annealing or teacher-forcing variants and report",
                              description=STUDY_DESCRIPTION)
    p.add_argument("kind", choices=sorted(STUDIES))
    p.add_argument("--data", required=True, help="dataset root in the lab layout")
    p.add_argument("--config", help="YAML config (default: the small preset)")
    p.add_argument("--preset", choices=sorted(cfgmod.PRESETS), help="start from this preset (default small)")
    p.add_argument("--out", help="study folder (default runs/study-KIND)")
    p.add_argument("--variants", nargs="+", help="only these variants (default all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-media", action="store_true", help="leave the rollout GIF/MP4 out of the report")
    add_config_overrides(p)
    p.set_defaults(func=cmd_study)


def cmd_plot(args: argparse.Namespace) -> None:
    from ..analysis.plots import plot_runs

    out = Path(args.out) if args.out else _default_plot_dir(args.run_dirs)
    made = plot_runs(args.run_dirs, out, epoch=args.epoch)
    for key, path in made.items():
        print(f"{key:>24}: {path}")
    print(f"{len(made)} plot(s) written to {out}")


def cmd_report(args: argparse.Namespace) -> None:
    from ..analysis.report import write_report

    index = write_report(args.run_dirs, args.out, data=args.data, title=args.title, media=not args.no_media,
                         device=args.device, epoch=args.epoch)
    print(f"report: {index}  (and {index.with_name('report.md')})")


def cmd_study(args: argparse.Namespace) -> None:
    from ..analysis.study import run_study

    if not args.config and not args.preset:
        args.preset = "small"
    cfg = config_from(args)
    out = Path(args.out) if args.out else Path("runs") / f"study-{args.kind}"
    res = run_study(args.kind, args.data, out, cfg, variants=args.variants, device=args.device,
                    progress=not args.no_progress, media=not args.no_media)
    print(f"study {args.kind}: trained {res.trained or 'none'}, resumed {res.resumed or 'none'}, "
          f"reused {res.reused or 'none'}")
    print(f"runs in {out}; report: {res.report}")
