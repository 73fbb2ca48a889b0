"""A self-contained report (HTML and Markdown) comparing logged runs: plots, tables, rollout GIFs.

``write_report(run_dirs, out_dir)`` writes::

    out_dir/index.html      opens from disk with no network (no script, no remote resource)
    out_dir/report.md       the same content as Markdown
    out_dir/plots/*.png     the plots of :mod:`posecast.analysis.plots`
    out_dir/media/<run>/    each run's validation rollout (prediction | ground truth | pose)

The numbers come from what the runs logged (metrics.csv, val/epoch_NNN.csv); the only thing
computed is the rollout of each run's best checkpoint for its GIF, which is cached in
``RUN/report_media/`` and reused while the checkpoint, dataset and settings are unchanged.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from .. import config as cfgmod
from ..data.lab import DataError, load_split
from ..inference.load import load_model
from ..io.atomic import atomic_write_text
from ..io.checkpoint import load_checkpoint
from ..io.video import side_by_side, write_gif, write_mp4
from ..perf import to_float
from ..rollout import validation_rollout
from ..training.run import Run
from .plots import RunLog, describe_tfr, load_runs, plot_runs, safe_name

MEDIA_DIR = "report_media"
MEDIA_VERSION = 1
GIF_NAME, MP4_NAME, MEDIA_JSON = "val.gif", "val.mp4", "media.json"


# -- per-run numbers ---------------------------------------------------------------------------
@dataclass
class RunSummary:
    """The figures of a run's table, all read from its log."""

    name: str
    path: Path
    epochs_done: int
    num_epoch: int
    best_epoch: int | None  # 0-based
    best_psnr: float
    best_ssim: float
    best_psnr_min: float
    final_epoch: int | None
    final_psnr: float
    final_ssim: float
    train_time: float  # seconds, the trainer's cumulative ``elapsed``
    first_frame_psnr: float  # PSNR of the first and last predicted frame at the best epoch
    last_frame_psnr: float
    frames: int  # predicted frames per validation sequence


def summarize(run: RunLog) -> RunSummary:
    nan = math.nan
    best, final = run.best_epoch, run.final_val_epoch
    b = run.row(best) if best is not None else {}
    f = run.row(final) if final is not None else {}
    fm = run.frame_metrics(best)
    first = last = nan
    frames = 0
    if fm is not None:
        _, curve = fm.mean_curve("psnr")
        first, last, frames = float(curve[0]), float(curve[-1]), len(curve)
    return RunSummary(
        name=run.name, path=run.path, epochs_done=int(run.epochs.max()) + 1, num_epoch=run.cfg.optim.num_epoch,
        best_epoch=best, best_psnr=b.get("val_psnr", nan), best_ssim=b.get("val_ssim", nan),
        best_psnr_min=b.get("val_psnr_min", nan), final_epoch=final, final_psnr=f.get("val_psnr", nan),
        final_ssim=f.get("val_ssim", nan), train_time=float(run.column("elapsed")[-1]),
        first_frame_psnr=first, last_frame_psnr=last, frames=frames)


def config_differences(runs: Sequence[RunLog]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The config fields that differ between the runs, and each run's values of them.

    For a single run: the fields that differ from its preset. Budget fields (``max_time``, not a
    setting of the experiment) are left out.
    """
    if not runs:
        return [], {}
    flats = {r.name: cfgmod.flat(r.cfg) for r in runs}
    others = [r.cfg for r in runs[1:]] if len(runs) > 1 else [cfgmod.preset(runs[0].cfg.preset)]
    differ = {k for other in others for k in cfgmod.config_diff(runs[0].cfg, other, ignore=cfgmod.BUDGET_FIELDS)}
    keys = [k for k in flats[runs[0].name] if k in differ]
    return keys, {n: {k: f.get(k) for k in keys} for n, f in flats.items()}


# -- the rollout GIF, cached in the run folder ---------------------------------------------------
@dataclass
class Media:
    """A run's rollout video files (in RUN/report_media) or why there are none."""

    gif: Path | None = None
    mp4: Path | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""


def _data_path(run: RunLog, data: str | Path | None) -> Path | None:
    if data is not None:
        return Path(data).resolve()
    saved = Run(run.path).data_path()
    return Path(saved) if saved else None


def rollout_media(run: RunLog, data: str | Path | None = None, *, device: str = "cpu", mp4: bool = True,
                  log: Callable[[str], None] = print) -> Media:
    """The validation rollout of the run's best checkpoint beside ground truth and pose, as GIF
    (and MP4), computed once and cached in RUN/report_media/ (keyed by the checkpoint's size and
    modification time, the dataset and the rollout settings)."""
    ckpt = Run(run.path).best_ckpt
    if not ckpt.exists():
        return Media(note=f"no rollout video: {ckpt} does not exist (no validated epoch yet)")
    root = _data_path(run, data)
    if root is None:
        return Media(note=f"no rollout video: the run's dataset is unknown (no {Run(run.path).data_file.name}; "
                          "pass --data)")
    if not (root / "val").is_dir():
        return Media(note=f"no rollout video: the validation split {root / 'val'} is not there (pass --data)")
    cfg = run.cfg
    st = ckpt.stat()
    key = {"version": MEDIA_VERSION, "checkpoint": str(ckpt.resolve()), "size": st.st_size,
           "mtime_ns": st.st_mtime_ns, "data": str(root), "z": cfg.inference.z_infer, "seed": cfg.runtime.seed,
           "val_vi_len": cfg.data.val_vi_len, "mp4": mp4}
    folder = run.path / MEDIA_DIR
    meta_path = folder / MEDIA_JSON
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            meta = {}
        files = [folder / GIF_NAME] + ([folder / MP4_NAME] if mp4 else [])
        if meta.get("key") == key and all(p.exists() for p in files):
            return Media(folder / GIF_NAME, folder / MP4_NAME if mp4 else None, meta.get("info", {}))
    log(f"{run.name}: rolling out the best checkpoint on {root / 'val'} for the report's video")
    info = _render_media(ckpt, root, cfg, folder, device=device, mp4=mp4)
    atomic_write_text(meta_path, json.dumps({"key": key, "info": info}, indent=2))
    return Media(folder / GIF_NAME, folder / MP4_NAME if mp4 else None, info)


def _render_media(ckpt: Path, root: Path, cfg: cfgmod.Config, folder: Path, *, device: str, mp4: bool
                  ) -> dict[str, Any]:
    model, mcfg = load_model(ckpt, device)
    seq = load_split(root, "val", (mcfg.data.frame_H, mcfg.data.frame_W))
    T = min(len(seq), mcfg.data.val_vi_len)  # as the trainer's validation
    # the trainer's validation rollout, seed and settings included: this is the logged rollout
    ev = validation_rollout(model, [seq], mcfg, length=T)
    panel = side_by_side(ev.pred[0, 0], to_float(seq.frames[:T]), to_float(seq.poses[:T]),
                         labels=["prediction", "ground truth", "pose"])
    folder.mkdir(parents=True, exist_ok=True)
    write_gif(folder / GIF_NAME, panel)
    if mp4:
        write_mp4(folder / MP4_NAME, panel)
    epoch = int(load_checkpoint(ckpt).get("epoch", 0))
    return {"frames": T, "epoch": epoch, "mean_psnr": ev.mean_psnr, "mean_ssim": ev.mean_ssim,
            "width": int(panel.shape[2]), "height": int(panel.shape[1]), "z": mcfg.inference.z_infer,
            "seed": mcfg.runtime.seed}


# -- formatting --------------------------------------------------------------------------------
def _num(x: float, digits: int = 2, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}{' ' + unit if unit else ''}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _mean(values: Any) -> float:
    finite = [float(v) for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _epoch(e: int | None) -> str:
    return "–" if e is None else str(e + 1)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if v is None:
        return "null"
    return str(v)


# -- the document ------------------------------------------------------------------------------
@dataclass
class _Doc:
    """Report content, rendered to HTML and Markdown by the same walk."""

    title: str
    blocks: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def img(self, src: str, alt: str, caption: str = "", width: int | None = None, css: str = "") -> None:
        self.blocks.append(("img", (src, alt, caption, width, css)))

    def links(self, items: list[tuple[str, str]]) -> None:
        self.blocks.append(("links", items))

    def details(self, summary: str, text: str) -> None:
        self.blocks.append(("details", (summary, text)))

    # -- HTML --
    def html(self) -> str:
        e = html.escape
        out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
               '<meta name="viewport" content="width=device-width, initial-scale=1">',
               f"<title>{e(self.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
               f"<h1>{e(self.title)}</h1>"]
        for kind, x in self.blocks:
            if kind == "h":
                level, text = x
                out.append(f'<h{level} id="{e(safe_name(text).lower())}">{e(text)}</h{level}>')
            elif kind == "p":
                out.append(f"<p>{e(x)}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in x) + "</ul>")
            elif kind == "table":
                header, rows = x
                out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
                out.extend("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
                out.append("</tbody></table>")
            elif kind == "img":
                src, alt, caption, width, css = x
                w = (f' width="{width}"' if width else "") + (f' class="{e(css)}"' if css else "")
                out.append(f'<figure><a href="{e(src)}"><img src="{e(src)}" alt="{e(alt)}"{w}></a>'
                           + (f"<figcaption>{e(caption)}</figcaption>" if caption else "") + "</figure>")
            elif kind == "links":
                out.append("<p>" + " · ".join(f'<a href="{e(href)}">{e(text)}</a>' for text, href in x) + "</p>")
            elif kind == "details":
                summary, text = x
                out.append(f"<details><summary>{e(summary)}</summary><pre>{e(text)}</pre></details>")
        out += ["</body>", "</html>", ""]
        return "\n".join(out)

    # -- Markdown --
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, x in self.blocks:
            if kind == "h":
                out += ["#" * x[0] + " " + x[1], ""]
            elif kind == "p":
                out += [x, ""]
            elif kind == "ul":
                out += [f"- {i}" for i in x] + [""]
            elif kind == "table":
                header, rows = x
                cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
                out.append("| " + " | ".join(cell(h) for h in header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "img":
                src, alt, caption, _, _ = x
                out += [f"![{alt}]({src})", ""] + ([f"*{caption}*", ""] if caption else [])
            elif kind == "links":
                out += [" · ".join(f"[{text}]({href})" for text, href in x), ""]
            elif kind == "details":
                out += [f"<details><summary>{html.escape(x[0])}</summary>", "", "```yaml", x[1].rstrip(), "```",
                        "", "</details>", ""]
        return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}
img.rollout{image-rendering:pixelated}
"""


# -- writing it -------------------------------------------------------------------------------
def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, data: str | Path | None = None,
                 title: str | None = None, intro: str | None = None, media: bool = True,
                 device: str = "cpu", epoch: str | int = "best",
                 log: Callable[[str], None] = print) -> Path:
    """Write index.html and report.md comparing the runs into out_dir; returns index.html's path.

    data: the dataset for the rollout videos (default: the dataset each run recorded,
    :meth:`Run.data_path`). media=False leaves the videos out. epoch: which validation rollout the
    per-frame plots show.
    """
    runs = load_runs(run_dirs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for r in runs:
        if out.resolve() == r.path:
            raise DataError(f"--out {out} is a run folder; choose another folder for the report")
    plots = plot_runs(runs, out / "plots", epoch=epoch)
    summaries = {r.name: summarize(r) for r in runs}
    keys, diffs = config_differences(runs)
    medias: dict[str, Media] = {}
    for r in runs:
        medias[r.name] = rollout_media(r, data, device=device, log=log) if media else Media(note="")
        _copy_media(medias[r.name], out / "media" / safe_name(r.name))

    doc = _Doc(title or ("Run report: " + ", ".join(r.name for r in runs)))
    doc.p(f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by posecast from the logs of "
          f"{len(runs)} run(s). Epochs are numbered from 1. PSNR and SSIM are means over the predicted "
          "frames of the validation rollout (z from the prior), as logged during training.")
    if intro:
        doc.p(intro)
    _summary_section(doc, runs, summaries, keys, diffs)
    _plots_section(doc, runs, plots, out)
    for r in runs:
        _run_section(doc, r, summaries[r.name], diffs[r.name], medias[r.name], out, single=len(runs) == 1)
    (out / "index.html").write_text(doc.html(), encoding="utf-8")
    (out / "report.md").write_text(doc.markdown(), encoding="utf-8")
    return out / "index.html"


def _copy_media(m: Media, dest: Path) -> None:
    for attr in ("gif", "mp4"):
        src = getattr(m, attr)
        if src is not None:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / src.name)
            setattr(m, attr, dest / src.name)


def _rel(path: Path, base: Path) -> str:
    return path.resolve().relative_to(base.resolve()).as_posix()


def _summary_section(doc: _Doc, runs: Sequence[RunLog], s: dict[str, RunSummary], keys: list[str],
                     diffs: dict[str, dict[str, Any]]) -> None:
    doc.h(2, "Summary")
    diff_cols = keys if len(runs) > 1 else []
    header = (["run"] + diff_cols + ["epochs", "best epoch", "best PSNR (dB)", "best SSIM", "final PSNR (dB)",
                                     "final SSIM", "training time"])
    rows = []
    for r in runs:
        x = s[r.name]
        rows.append([r.name] + [_value(diffs[r.name][k]) for k in diff_cols]
                    + [f"{x.epochs_done}/{x.num_epoch}", _epoch(x.best_epoch), _num(x.best_psnr), _num(x.best_ssim, 4),
                       _num(x.final_psnr), _num(x.final_ssim, 4), _duration(x.train_time)])
    doc.table(header, rows)
    if len(runs) > 1:
        doc.p("Columns before 'epochs': the config fields in which the runs differ "
              + ("(none: the runs share one config)." if not keys else "(everything else is equal)."))
    findings = _findings(runs, s)
    if findings:
        doc.h(3, "Findings (from the logs)")
        doc.ul(findings)


def _findings(runs: Sequence[RunLog], s: dict[str, RunSummary]) -> list[str]:
    out = []
    ranked = sorted((x for x in s.values() if math.isfinite(x.best_psnr)), key=lambda x: -x.best_psnr)
    if len(ranked) > 1:
        lead, second = ranked[0], ranked[1]
        out.append(f"Highest validation PSNR: {lead.name}, {lead.best_psnr:.2f} dB at epoch {lead.best_epoch + 1} "
                   f"({lead.best_psnr - second.best_psnr:+.2f} dB over {second.name}). Ranking: "
                   + ", ".join(f"{x.name} {x.best_psnr:.2f} dB" for x in ranked) + ".")
    for x in s.values():
        if math.isfinite(x.first_frame_psnr):
            out.append(f"{x.name}: at its best epoch the rollout's PSNR goes from {x.first_frame_psnr:.2f} dB on "
                       f"frame 1 to {x.last_frame_psnr:.2f} dB on frame {x.frames} "
                       f"({x.last_frame_psnr - x.first_frame_psnr:+.2f} dB over the rollout).")
        if x.epochs_done < x.num_epoch:
            out.append(f"{x.name} is incomplete: {x.epochs_done} of {x.num_epoch} epochs logged.")
    return out


_PLOT_TEXT = {
    "val_psnr": ("Validation PSNR per epoch", "Mean PSNR of the validation rollout after each epoch; the star marks "
                 "the best epoch (the one in checkpoints/best.ckpt)."),
    "psnr_per_frame": ("PSNR per frame", "PSNR of every predicted frame of the validation rollout at each run's best "
                       "epoch; dashed lines: the mean over frames."),
    "ssim_per_frame": ("SSIM per frame", "The same rollout scored with SSIM."),
    "loss": ("Loss curves: total", "Training (solid) and validation (dashed) loss: reconstruction + β · KL."),
    "mse": ("Loss curves: reconstruction (MSE)", "The reconstruction part alone."),
    "kl": ("Loss curves: KL", "The KL part alone, before weighting by β."),
}


def _plots_section(doc: _Doc, runs: Sequence[RunLog], plots: dict[str, Path], out: Path) -> None:
    doc.h(2, "Plots")
    for key, (title, caption) in _PLOT_TEXT.items():
        if key in plots:
            doc.h(3, title)
            doc.img(_rel(plots[key], out), title, caption)
    doc.h(3, "Teacher forcing and KL annealing")
    doc.p("Per run: training loss with the teacher-forcing ratio (right axis) and whether the epoch was "
          "teacher-forced; below, the KL weight β per epoch (per optimiser step when annealed per step, "
          "evaluated from the run's schedule).")
    for r in runs:
        p = plots.get(f"schedules/{r.name}")
        if p is not None:
            doc.img(_rel(p, out), f"schedules of {r.name}", r.name)


def _run_section(doc: _Doc, run: RunLog, x: RunSummary, diff: dict[str, Any], m: Media, out: Path,
                 single: bool) -> None:
    doc.h(2, f"Run {run.name}")
    t = run.cfg.schedule
    what = (f"config: differs from preset {run.cfg.preset!r} in" if single
            else "config: differs from the other runs in")
    diff_text = ", ".join(f"{k} = {_value(v)}" for k, v in diff.items()) or "none"
    per_epoch = run.column("epoch_time")
    rows = [
        ["folder", str(run.path)],
        ["preset", run.cfg.preset],
        [what, diff_text],
        ["KL annealing", f"{t.kl_anneal_type}"
         + (f", {t.kl_anneal_cycle} cycle(s)" if t.kl_anneal_type == "Cyclical" else "")
         + (f", per {t.kl_anneal_per}" if t.kl_anneal_type != "None" else "")],
        ["teacher forcing", describe_tfr(run.cfg) + f" (coin per {t.tfr_flip})"],
        ["seed", str(run.cfg.runtime.seed)],
        ["epochs", f"{x.epochs_done} of {x.num_epoch}"],
        ["best epoch", _epoch(x.best_epoch)],
        ["best PSNR / SSIM", f"{_num(x.best_psnr, unit='dB')} / {_num(x.best_ssim, 4)} "
                             f"(worst frame {_num(x.best_psnr_min, unit='dB')})"],
        ["final PSNR / SSIM", f"{_num(x.final_psnr, unit='dB')} / {_num(x.final_ssim, 4)} "
                              f"(epoch {_epoch(x.final_epoch)})"],
        ["training time", f"{_duration(x.train_time)} ({_duration(_mean(per_epoch))} per epoch)"],
    ]
    doc.table(["", run.name], rows)
    if m.gif is not None:
        info = m.info
        cap = (f"Validation rollout of the best checkpoint (epoch {info.get('epoch', '?')}, {info.get('frames', '?')} "
               f"frames, z: {info.get('z', '?')}, seed {info.get('seed', '?')}; mean PSNR "
               f"{_num(info.get('mean_psnr', math.nan), unit='dB')}): prediction | ground truth | pose.")
        doc.img(_rel(m.gif, out), f"rollout of {run.name}", cap, width=info.get("width"), css="rollout")
        if m.mp4 is not None:
            doc.links([("the same as MP4", _rel(m.mp4, out))])
    elif m.note:
        doc.p(m.note)
    doc.details("full config", yaml.safe_dump(run.cfg.to_dict(), sort_keys=False))

