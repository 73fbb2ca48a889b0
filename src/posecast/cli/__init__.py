"""`posecast <command>`: one thin module per area over library calls.

``data`` (synth, demo), ``train`` (train, incl. the distributed launch), ``infer`` (evaluate,
predict), ``analysis`` (plot, report, study), and for one's own video ``poses``, ``prepare``,
``animate`` and ``app``: each imports only ``common`` and the library. :func:`main` maps what goes wrong to exit codes: 0 done, 2 bad input or usage (a one-line
``posecast COMMAND: error: ...``; argparse's usage errors too), 130 interrupted, and 1 for an
unexpected error (Python's traceback).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import config as cfgmod
from . import analysis, animate, app, data, infer, poses, prepare, train
from .common import LAB_ALIASES, ArgumentParser

# the subcommands in the order `posecast -h` lists them
COMMANDS = (data.add_synth, train.add_train, infer.add_evaluate, infer.add_predict, data.add_demo,
            analysis.add_plot, analysis.add_report, analysis.add_study, poses.add_parser, prepare.add_parser,
            animate.add_parser, app.add_parser)


def version() -> str:
    """The installed distribution's version, else the package's own (a source checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("posecast")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posecast", description="Pose-conditioned video prediction with a conditional VAE.")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [LAB_ALIASES.get(a, a) for a in argv]
    args = build_parser().parse_args(argv)
    args.raw_argv = argv
    # before any tensor is allocated: keeps glibc from returning activation buffers to the kernel
    # after every step (measured: 1.16 M page faults and 1.8 s system time per lab training step)
    from ..runtime import tune_allocator

    tune_allocator()
    from ..data.lab import DataError
    from ..io.checkpoint import CheckpointError
    from ..training.trainer import NonFiniteLossError

    try:
        rc = args.func(args)
    except (DataError, cfgmod.ConfigError, CheckpointError, NonFiniteLossError) as exc:
        print(f"posecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"posecast {args.command}: error: no permission to write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            print(f"posecast {args.command}: error: disk full writing {exc.filename or ''}; earlier files are "
                  "intact (every file is written to a temporary name and renamed)", file=sys.stderr)
            return 2
        if exc.filename is None:
            raise
        why = {17: "a file is in the way of a folder", 20: "a file is in the way of a folder",
               30: "read-only file system"}.get(exc.errno or 0)
        if why:
            print(f"posecast {args.command}: error: cannot write {exc.filename}: {why}"
                  " (choose another output folder)", file=sys.stderr)
        else:
            print(f"posecast {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"posecast {args.command}: interrupted; resume training with --resume RUN_DIR", file=sys.stderr)
        return 130
    return int(rc or 0)
