"""The local web page (`posecast app`): a checkpoint, a first frame and driving poses in, the
animation (and with ground truth the PSNR-per-frame plot) out. Gradio (the optional ``app``
extra), served on 127.0.0.1 only, with its analytics off and Hugging Face Hub offline.

The page logic is plain Python (:func:`run_page`), so it is tested without a browser; the
Gradio layer only maps widgets to its arguments.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..poses.errors import MissingExtraError
from ..poses.estimate import PoseEstimator

HOST = "127.0.0.1"  # never another interface: the page reads local files named in its text boxes
INSTALL_HINT = ("install the optional 'app' extra from the posecast checkout with "
                "`bash scripts/install_app_extra.sh` (it runs `pip install -e '.[app]'`: gradio 6)")
# Set before gradio is imported: gradio reads them at import time.
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def import_gradio() -> Any:
    """The ``gradio`` module with analytics off and the Hub offline, or :class:`MissingExtraError`
    naming the install command."""
    os.environ.update(OFFLINE_ENV)
    try:
        import gradio
    except ImportError as err:
        raise MissingExtraError(f"the web page needs gradio, which is not importable ({err}): {INSTALL_HINT}") from err
    return gradio


@dataclass(frozen=True)
class PageResult:
    """What the page shows: the result video and GIF, the PSNR plot (or None), a status line."""

    video: str | None
    gif: str | None
    plot: str | None
    message: str


def pick(text: str | None, upload: str | None) -> Path | None:
    """An uploaded file wins over a typed path; None when neither is given."""
    if upload:
        return Path(upload)
    text = (text or "").strip().strip('"').strip("'")
    return Path(text).expanduser() if text else None


def unpack_zip(path: Path, dest: Path) -> Path:
    """Extract a .zip of a pose or frame folder under ``dest`` (refusing members that would land
    outside it); returns the folder that holds the files (its single top folder, if any)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(path) as zf:
            root = dest.resolve()
            for member in zf.infolist():
                target = (dest / member.filename).resolve()
                if not target.is_relative_to(root):
                    raise ValueError(f"{path.name}: the zip has a member outside its folder ({member.filename})")
            zf.extractall(dest)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path.name}: not a readable zip file ({err})") from err
    entries = [p for p in dest.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _folder_or_file(path: Path, work: Path, name: str) -> Path:
    return unpack_zip(path, work / name) if path.suffix.lower() == ".zip" else path


def _missing(checkpoint: Path | None, first: Path | None, driving: Path | None) -> str | None:
    names = [n for n, v in (("a checkpoint", checkpoint), ("a first frame", first),
                            ("a driving video or pose folder", driving)) if v is None]
    return f"give {', '.join(names)}" if names else None


def run_page(checkpoint: Path | None, first_frame: Path | None, driving: Path | None,
             truth: Path | None, work: Path, estimator: PoseEstimator | None = None) -> PageResult:
    """One run of the page: animate into a fresh folder under ``work``; every input problem comes
    back as a one-line message (never a traceback on the page)."""
    from ..data.lab import DataError
    from ..inference.animate import animate
    from ..poses.errors import PoseError
    from ..io.checkpoint import CheckpointError

    why = _missing(checkpoint, first_frame, driving)
    if why:
        return PageResult(None, None, None, f"error: {why}")
    Path(work).mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    try:
        driving = _folder_or_file(driving, run_dir, "driving")
        truth = _folder_or_file(truth, run_dir, "truth") if truth is not None else None
        r = animate(checkpoint, first_frame, driving, run_dir / "animation.mp4", truth=truth, estimator=estimator)
    except (PoseError, DataError, CheckpointError, ValueError, OSError) as err:
        shutil.rmtree(run_dir, ignore_errors=True)
        return PageResult(None, None, None, f"error: {' '.join(str(err).split())}")
    return PageResult(str(r.mp4), str(r.gif), str(r.psnr_plot) if r.psnr_plot else None,
                      r.describe().replace(str(run_dir) + os.sep, ""))


@dataclass(frozen=True)
class Defaults:
    """Paths the text boxes start with (from `posecast app --checkpoint ...`)."""

    checkpoint: str = ""
    first_frame: str = ""
    driving: str = ""
    truth: str = ""


INTRO = """# posecast: animate a person
Give a **checkpoint** (`posecast train`), a **first frame** (a photo of the person) and the
**driving poses**: a video, a zip of a pose folder (`posecast poses`: keypoints.npz and labels;
label images alone drive as they are, without retargeting), or their paths on this computer.
Optional **ground truth** frames (a zip or folder of frame&lt;N&gt;.png, or an .npz) add the PSNR
per frame. Served on 127.0.0.1 only."""


def _inputs(gr: Any, d: Defaults) -> list[Any]:
    """The input widgets in :func:`_on_click`'s order (a path box and an upload for each)."""
    with gr.Row():
        ckpt = gr.Textbox(label="checkpoint path", value=d.checkpoint, elem_id="checkpoint-path")
        ckpt_file = gr.File(label="or upload a checkpoint", file_types=[".ckpt", ".pt", ".pth"])
    with gr.Row():
        first = gr.Textbox(label="first frame path", value=d.first_frame, elem_id="first-frame-path")
        first_file = gr.Image(label="or upload the first frame", type="filepath")
    with gr.Row():
        drv = gr.Textbox(label="driving video or pose folder path", value=d.driving, elem_id="driving-path")
        drv_file = gr.File(label="or upload a driving video or a zip of a pose folder",
                           file_types=["video", ".zip"])
    with gr.Row():
        truth = gr.Textbox(label="ground truth (optional): folder or .npz path", value=d.truth, elem_id="truth-path")
        truth_file = gr.File(label="or upload ground truth (zip or .npz)", file_types=[".zip", ".npz"])
    return [ckpt, ckpt_file, first, first_file, drv, drv_file, truth, truth_file]


def build_app(defaults: Defaults | None = None, work: str | Path | None = None,
              estimator: PoseEstimator | None = None) -> Any:
    """The page as a ``gradio.Blocks`` (not launched); results go under ``work``."""
    gr = import_gradio()
    d = defaults or Defaults()
    work = Path(work or tempfile.mkdtemp(prefix="posecast-app-"))
    work.mkdir(parents=True, exist_ok=True)

    def on_click(ckpt: str, ckpt_file: str | None, first: str, first_file: str | None, drv: str,
                 drv_file: str | None, truth: str, truth_file: str | None) -> tuple:
        r = run_page(pick(ckpt, ckpt_file), pick(first, first_file), pick(drv, drv_file),
                     pick(truth, truth_file), work, estimator)
        return r.video, r.gif, r.plot, r.message

    with gr.Blocks(title="posecast animate", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        inputs = _inputs(gr, d)
        button = gr.Button("Animate", variant="primary", elem_id="animate-button")
        status = gr.Textbox(label="status", interactive=False, elem_id="status")
        with gr.Row():
            video = gr.Video(label="driving | retargeted | result (MP4)", elem_id="result-video", autoplay=True)
            gif = gr.Image(label="the same as a GIF", type="filepath", elem_id="result-gif")
        plot = gr.Image(label="PSNR per frame (with ground truth)", type="filepath", elem_id="psnr-plot")
        button.click(on_click, inputs, [video, gif, plot, status], api_name="animate")
    app.posecast_work = work  # where results are written: launch() must allow serving it
    return app


def serve(app: Any, port: int = 7860, block: bool = True) -> Any:
    """Launch ``app`` on 127.0.0.1:``port`` (no share link, no analytics); with ``block`` False,
    return at once (the server runs in a thread; ``app.close()`` stops it)."""
    return app.launch(server_name=HOST, server_port=port, share=False, inbrowser=False, quiet=True,
                      prevent_thread_lock=not block, allowed_paths=[str(app.posecast_work)],
                      show_error=True, footer_links=[])
