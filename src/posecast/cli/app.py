"""`posecast app [--port N] [--checkpoint CKPT] [--first-frame IMAGE] [--driving PATH] [--truth PATH]`."""
from __future__ import annotations

import argparse
import sys

from .common import number_arg


_port = number_arg(int, low=1, high=65535, what="a TCP port (1-65535)")


DESCRIPTION = """\
Serve a Gradio page on 127.0.0.1 (only): choose a checkpoint, a first frame and a driving video or
pose folder, see the result video, and with ground truth the PSNR per frame. Needs the optional
'app' extra (bash scripts/install_app_extra.sh); driving videos need the 'pose' extra.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``app`` command on an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "app", help="a local web page: animate a photo with driving poses (the 'app' extra)",
        description=DESCRIPTION)
    p.add_argument("--port", type=_port, default=7860, help="port on 127.0.0.1 (default 7860)")
    p.add_argument("--checkpoint", default="", help="fill the checkpoint path box")
    p.add_argument("--first-frame", default="", help="fill the first frame path box")
    p.add_argument("--driving", default="", help="fill the driving path box")
    p.add_argument("--truth", default="", help="fill the ground truth path box")
    p.add_argument("--workdir", help="where results are written (default: a new temporary folder)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 with one ``error: ...`` line when the extra is missing."""
    from ..poses.errors import MissingExtraError
    from ..app.web import HOST, Defaults, build_app, serve

    try:
        app = build_app(Defaults(args.checkpoint, args.first_frame, args.driving, args.truth), args.workdir)
    except MissingExtraError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"posecast app: http://{HOST}:{args.port} (Ctrl-C stops it); results in {app.posecast_work}", flush=True)
    try:
        serve(app, args.port, block=True)
    except KeyboardInterrupt:
        pass
    except OSError as err:  # the port is taken
        print(f"error: cannot serve on {HOST}:{args.port}: {err}", file=sys.stderr)
        return 2
    return 0
