"""The HTML/Markdown report: its tables, its local references, its cached GIFs, and a headless browser."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from posecast import cli
from posecast import config as cfgmod
from posecast.analysis import report
from posecast.analysis.plots import load_run


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "poster", "data") and value is not None:
                self.refs.append((tag, value))


def _html_refs(index: Path) -> list[tuple[str, str]]:
    p = _Refs()
    p.feed(index.read_text(encoding="utf-8"))
    return p.refs


def _assert_local_and_existing(base: Path, urls: list[str]) -> None:
    assert urls
    for url in urls:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//|^/", url, re.I), f"not a relative local reference: {url}"
        target = (base / url.split("#")[0]).resolve()
        assert target.is_file(), f"{url} is referenced but {target} does not exist"
        assert base.resolve() in target.parents, f"{url} points outside the report folder"


def _fabricated(tmp_path: Path, make_run):
    cfg = cfgmod.override(cfgmod.preset("tiny"), num_epoch=2, kl_anneal_type="None")
    return make_run("no-ckpt", cfg)


@pytest.mark.slow
def test_report_tables_and_references(analysis_run, make_run, tmp_path):
    other = _fabricated(tmp_path, make_run)
    out = tmp_path / "rep"
    logs = []
    index = report.write_report([analysis_run, other["path"]], out, log=logs.append)
    assert index == out / "index.html"
    text = index.read_text(encoding="utf-8")
    md = (out / "report.md").read_text(encoding="utf-8")

    refs = _html_refs(index)
    imgs = [u for t, u in refs if t == "img"]
    # 6 comparison plots, 2 schedule plots, 1 GIF (the hand-made run has no checkpoint)
    assert len(imgs) == 9
    assert sum(u.endswith(".gif") for u in imgs) == 1
    _assert_local_and_existing(out, [u for _, u in refs])
    md_refs = re.findall(r"\]\(([^)]+)\)", md)
    assert len([r for r in md_refs if r.endswith(".png") or r.endswith(".gif")]) >= 9
    _assert_local_and_existing(out, md_refs)
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    assert "@import" not in text and "url(" not in text

    # the summary table: logged values and the config field that differs
    run = load_run(analysis_run)
    best = run.row(run.best_epoch)
    summary = text[text.index("<h2 id=\"summary\">"):text.index("<h2 id=\"plots\">")]
    assert "schedule.kl_anneal_type" in summary and ">Cyclical<" in summary and ">None<" in summary
    assert f">{best['val_psnr']:.2f}<" in summary and f">{best['val_ssim']:.4f}<" in summary
    assert f">{run.best_epoch + 1}<" in summary and ">2/2<" in summary
    assert ">21.00<" in summary and ">0.7100<" in summary  # the hand-made run: best 21.00 dB at epoch 2
    for heading in ("Validation PSNR per epoch", "PSNR per frame", "Loss curves: total",
                    "Loss curves: reconstruction (MSE)", "Loss curves: KL", "Run tiny-run", "Run no-ckpt"):
        assert heading in text and heading in md
    assert "checkpoints/best.ckpt does not exist" in html.unescape(text)
    assert "| run | schedule.kl_anneal_type | epochs |" in md

    # the GIF: the best checkpoint's validation rollout, cached in the run folder
    meta = json.loads((analysis_run / "report_media" / "media.json").read_text())
    assert meta["info"]["epoch"] == run.best_epoch + 1 and meta["info"]["frames"] == 8
    # same call, seed and settings as the trainer's validation: the logged PSNR again
    assert meta["info"]["mean_psnr"] == pytest.approx(best["val_psnr"], abs=1e-4)
    from PIL import Image
    with Image.open(out / "media" / "tiny-run" / "val.gif") as im:
        assert im.n_frames == 8 and im.size[0] == 3 * 3 * 64  # three panels, upscaled 3x
    assert (out / "media" / "tiny-run" / "val.mp4").stat().st_size > 0


def test_report_media_is_cached_in_the_run(analysis_run):
    run = load_run(analysis_run)
    logs: list[str] = []
    first = report.rollout_media(run, log=logs.append)
    gif = analysis_run / "report_media" / "val.gif"
    assert first.gif == gif and first.mp4 == analysis_run / "report_media" / "val.mp4"
    stamp = gif.stat().st_mtime_ns
    logs.clear()
    again = report.rollout_media(run, log=logs.append)
    assert not logs and again.gif == gif and again.info == first.info  # reused, not recomputed
    assert gif.stat().st_mtime_ns == stamp
    # a new best checkpoint invalidates the cache
    ckpt = analysis_run / "checkpoints" / "best.ckpt"
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    report.rollout_media(run, log=logs.append)
    assert any("rolling out" in line for line in logs)
    # no dataset known: a note instead of a video
    missing = report.rollout_media(run, data=analysis_run / "nowhere", log=logs.append)
    assert missing.gif is None and "is not there" in missing.note


def test_single_run_config_differences_are_against_its_preset(make_run, tmp_path):
    made = make_run("one", cfgmod.override(cfgmod.preset("tiny"), num_epoch=3, lr=0.005))
    keys, diffs = report.config_differences([load_run(made["path"])])
    assert keys == ["optim.num_epoch", "optim.lr"]
    assert diffs["one"] == {"optim.num_epoch": 3, "optim.lr": 0.005}


@pytest.mark.slow
def test_report_command(analysis_run, tmp_path, capsys):
    out = tmp_path / "cli-report"
    assert cli.main(["report", str(analysis_run), "--out", str(out), "--no-media", "--title", "My runs"]) == 0
    assert "report:" in capsys.readouterr().out
    text = (out / "index.html").read_text()
    assert "<title>My runs</title>" in text and "val.gif" not in text
    assert cli.main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2


# -- the browser ---------------------------------------------------------------------------------
_HEAD = ('<script>window.__errors=[];window.addEventListener("error",function(e){var t=e.target;'
         'window.__errors.push(t&&t!==window?"load "+(t.src||t.href):String(e.message));},true);</script>')
_TAIL = ('<script>window.addEventListener("load",function(){var bad=[],im=document.images;'
         'for(var i=0;i<im.length;i++){if(!im[i].complete||im[i].naturalWidth===0)bad.push(im[i].getAttribute("src"));}'
         'var o=document.createElement("pre");o.id="posecast-check";o.textContent="RESULT "+JSON.stringify('
         '{images:im.length,broken:bad,errors:window.__errors});document.body.appendChild(o);});</script>')


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("POSECAST_NO_BROWSER") == "1":
        pytest.skip("no chromium on PATH and POSECAST_NO_BROWSER=1")
    pytest.fail("chromium is not on PATH: install Debian's `chromium` package (see .ci/run), "
                "or set POSECAST_NO_BROWSER=1 to skip the browser check")


def _load_in_browser(browser: str, page: Path, profile: Path) -> dict:
    """Open page in headless Chromium; returns what the injected check found after the load event."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
           "--dump-dom", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    m = re.search(r'<pre id="posecast-check">RESULT (.*?)</pre>', proc.stdout, re.S)
    assert m, f"the page did not finish loading in chromium (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(html.unescape(m.group(1)))


def _instrumented_copy(index: Path, name: str, replace: tuple[str, str] | None = None) -> Path:
    text = index.read_text(encoding="utf-8")
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1])
    text = text.replace("<head>", "<head>" + _HEAD, 1).replace("</body>", _TAIL + "</body>", 1)
    page = index.with_name(name)  # beside index.html: the same relative references
    page.write_text(text, encoding="utf-8")
    return page


@pytest.mark.slow
def test_report_renders_in_headless_chromium(analysis_run, make_run, tmp_path):
    browser = _chromium()
    other = _fabricated(tmp_path, make_run)
    index = report.write_report([analysis_run, other["path"]], tmp_path / "rep", log=lambda s: None)
    n_img = sum(t == "img" for t, _ in _html_refs(index))
    ok = _load_in_browser(browser, _instrumented_copy(index, "_check.html"), tmp_path / "profile1")
    assert ok == {"images": n_img, "broken": [], "errors": []}
    # the check itself catches a missing image (so a pass above means every image decoded)
    bad = _load_in_browser(browser, _instrumented_copy(index, "_check_bad.html", ("plots/losses_kl.png", "plots/gone.png")),
                           tmp_path / "profile2")
    assert bad["broken"] == ["plots/gone.png"] and len(bad["errors"]) == 1
