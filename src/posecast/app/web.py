"""The local web page (`posecast app`): a checkpoint, a first frame and driving poses in, the
animation (and with ground truth the PSNR-per-frame plot) out. Gradio (the optional ``app``
extra), served on 127.0.0.1 only, with its analytics off and Hugging Face Hub offline.

The page logic is plain Python (:func:`run_page`), so it is tested without a browser; the
Gradio layer only maps widgets to its arguments.
"""
from __future__ import annotations

import os
import re
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
    """What the page shows: the result video and GIF, the PSNR plot (only with ground truth), the
    preview of the skeletons over the first frame, the files to download, and a status line."""

    video: str | None = None
    gif: str | None = None
    plot: str | None = None
    message: str = ""
    preview: str | None = None
    files: tuple[str, ...] = ()


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


def output_stem(first_frame: Path, driving: Path) -> str:
    """The results' name: the first frame's stem and the driving clip's (or folder's), such as
    ``me_their_dance``, in letters, digits, ``-`` and ``_`` (a name for any file system)."""
    stem = f"{first_frame.stem}_{driving.stem if driving.suffix else driving.name}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "animation"


def _page_run(checkpoint: Path, first_frame: Path, driving: Path, truth: Path | None, run_dir: Path,
              estimator: PoseEstimator | None, preview_only: bool) -> PageResult:
    """Animate (or only preview) into ``run_dir``; the status shows the full output paths."""
    from ..inference.animate import animate, preview

    out = run_dir / f"{output_stem(first_frame, driving)}.mp4"
    driving = _folder_or_file(driving, run_dir, "driving")
    if preview_only:
        path, _ = preview(checkpoint, first_frame, driving, out, estimator=estimator)
        return PageResult(preview=str(path), files=(str(path),),
                          message=f"preview: {path}\ncheck that the skeletons lie on the person, then Animate")
    truth = _folder_or_file(truth, run_dir, "truth") if truth is not None else None
    r = animate(checkpoint, first_frame, driving, out, truth=truth, estimator=estimator)
    files = tuple(str(p) for p in (r.mp4, r.gif, r.preview, r.psnr_plot) if p is not None)
    return PageResult(str(r.mp4), str(r.gif), str(r.psnr_plot) if r.psnr_plot else None,
                      f"{r.describe()}\nresults folder: {run_dir}", str(r.preview), files)


def run_page(checkpoint: Path | None, first_frame: Path | None, driving: Path | None,
             truth: Path | None, work: Path, estimator: PoseEstimator | None = None,
             preview_only: bool = False) -> PageResult:
    """One run of the page: animate (or with ``preview_only`` only draw the skeletons over the
    first frame) into a fresh folder under ``work``; every input problem comes back as a
    one-line message (never a traceback on the page), and its folder is removed."""
    from ..data.lab import DataError
    from ..poses.errors import PoseError
    from ..io.checkpoint import CheckpointError

    why = _missing(checkpoint, first_frame, driving)
    if why:
        return PageResult(message=f"error: {why}")
    Path(work).mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    try:
        return _page_run(checkpoint, first_frame, driving, truth, run_dir, estimator, preview_only)
    except (PoseError, DataError, CheckpointError, ValueError, OSError) as err:
        shutil.rmtree(run_dir, ignore_errors=True)
        return PageResult(message=f"error: {' '.join(str(err).split())}")


@dataclass(frozen=True)
class Defaults:
    """Paths the text boxes start with (from `posecast app --checkpoint ...`)."""

    checkpoint: str = ""
    first_frame: str = ""
    driving: str = ""
    truth: str = ""


INTRO = """# posecast: animate a person
A **checkpoint** (`posecast train`), a **first frame** (a photo of the person) and the **driving
poses** (a video, a pose folder of `posecast poses`, or a zip of one; label images alone drive as
they are, without retargeting): paths on this computer, or uploads below. Optional **ground
truth** (a folder or zip of frame&lt;N&gt;.png, or an .npz) adds the PSNR per frame. *Preview* draws
the skeletons the model will get over the first frame. Served on 127.0.0.1 only."""


def _path_boxes(gr: Any, d: Defaults) -> list[Any]:
    """The four path boxes: checkpoint, first frame, driving, ground truth."""
    return [gr.Textbox(label="checkpoint path", value=d.checkpoint, elem_id="checkpoint-path"),
            gr.Textbox(label="first frame path", value=d.first_frame, elem_id="first-frame-path"),
            gr.Textbox(label="driving video or pose folder path", value=d.driving, elem_id="driving-path"),
            gr.Textbox(label="ground truth (optional): folder or .npz path", value=d.truth, elem_id="truth-path")]


def _uploads(gr: Any) -> list[Any]:
    """The four uploads (each wins over its path box), folded away so the button stays in view."""
    with gr.Accordion("or upload the files", open=False, elem_id="uploads"):
        with gr.Row():
            ckpt = gr.File(label="checkpoint", file_types=[".ckpt", ".pt", ".pth"])
            first = gr.Image(label="first frame", type="filepath")
        with gr.Row():
            drv = gr.File(label="driving video or zip of a pose folder", file_types=["video", ".zip"])
            truth = gr.File(label="ground truth (zip or .npz)", file_types=[".zip", ".npz"])
    return [ckpt, first, drv, truth]


def _outputs(gr: Any) -> list[Any]:
    """The result widgets, in the order :func:`page_outputs` fills them."""
    with gr.Row():
        preview = gr.Image(label="skeletons over the first frame", type="filepath", elem_id="preview")
        video = gr.Video(label="driving | retargeted | result (MP4)", elem_id="result-video", autoplay=True)
        gif = gr.Image(label="the same as a GIF", type="filepath", elem_id="result-gif")
    plot = gr.Image(label="PSNR per frame", type="filepath", elem_id="psnr-plot", visible=False)
    files = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="downloads")
    return [preview, video, gif, plot, files]


def page_outputs(gr: Any, r: PageResult) -> tuple:
    """A PageResult as the values of :func:`_outputs` and the status box; the PSNR plot is
    shown only when there is one (only with ground truth)."""
    plot = gr.update(value=r.plot, visible=r.plot is not None)
    return r.preview, r.video, r.gif, plot, list(r.files) or None, r.message


def build_app(defaults: Defaults | None = None, work: str | Path | None = None,
              estimator: PoseEstimator | None = None) -> Any:
    """The page as a ``gradio.Blocks`` (not launched); results go under ``work``."""
    gr = import_gradio()
    d = defaults or Defaults()
    work = Path(work or tempfile.mkdtemp(prefix="posecast-app-"))
    work.mkdir(parents=True, exist_ok=True)

    def handler(preview_only: bool):
        def on_click(ckpt: str, first: str, drv: str, truth: str, ckpt_file: str | None,
                     first_file: str | None, drv_file: str | None, truth_file: str | None) -> tuple:
            r = run_page(pick(ckpt, ckpt_file), pick(first, first_file), pick(drv, drv_file),
                         pick(truth, truth_file), work, estimator, preview_only)
            return page_outputs(gr, r)
        return on_click

    with gr.Blocks(title="posecast animate", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        paths = _path_boxes(gr, d)
        with gr.Row():
            preview_button = gr.Button("Preview", elem_id="preview-button")
            button = gr.Button("Animate", variant="primary", elem_id="animate-button")
        status = gr.Textbox(label="status", interactive=False, elem_id="status", lines=2)
        uploads = _uploads(gr)
        outputs = [*_outputs(gr), status]
        button.click(handler(False), paths + uploads, outputs, api_name="animate")
        preview_button.click(handler(True), paths + uploads, outputs, api_name="preview")
    app.posecast_work = work  # where results are written: launch() must allow serving it
    return app


def serve(app: Any, port: int = 7860, block: bool = True) -> Any:
    """Launch ``app`` on 127.0.0.1:``port`` (no share link, no analytics); with ``block`` False,
    return at once (the server runs in a thread; ``app.close()`` stops it)."""
    return app.launch(server_name=HOST, server_port=port, share=False, inbrowser=False, quiet=True,
                      prevent_thread_lock=not block, allowed_paths=[str(app.posecast_work)],
                      show_error=True, footer_links=[])
