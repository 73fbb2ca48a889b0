"""`posecast app`: the page logic, the missing extra, and the page in headless Chromium with
every request that would leave 127.0.0.1 logged (server side through a refusing proxy, page
side through DevTools' network events)."""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import posecast
from posecast import cli
from posecast.app import web
from posecast.poses.errors import MissingExtraError
from own_video_testing import DevTools, LoggingProxy


def test_a_missing_extra_names_the_install_command(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    with pytest.raises(MissingExtraError, match="scripts/install_app_extra.sh"):
        web.import_gradio()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert cli.main(["app", "--port", "7999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the web page needs gradio") and "bash scripts/install_app_extra.sh" in err
    assert "\n" not in err


def test_serve_binds_127_0_0_1_only_and_never_shares() -> None:
    seen = {}

    class FakeApp:
        posecast_work = Path("/tmp/work")

        def launch(self, **kwargs):
            seen.update(kwargs)

    web.serve(FakeApp(), 7861, block=False)
    assert seen["server_name"] == "127.0.0.1" and seen["share"] is False and seen["server_port"] == 7861
    assert seen["allowed_paths"] == ["/tmp/work"] and seen["prevent_thread_lock"] is True


def zip_folder(folder: Path, path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"{prefix}{p.name}")
    return path


@pytest.mark.slow
def test_run_page_with_zips_and_its_messages(tiny_checkpoint, synth_root, tmp_path) -> None:
    val = synth_root / "val"
    labels = zip_folder(val / "val_label", tmp_path / "poses.zip", prefix="val_label/")
    truth = zip_folder(val / "val_img", tmp_path / "truth.zip")
    r = web.run_page(tiny_checkpoint, val / "val_img/frame0.png", labels, truth, tmp_path / "work")
    assert r.message.startswith("animated 12 frames") and "PSNR against the truth: mean" in r.message
    with av.open(r.video) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    assert Path(r.gif).is_file() and Path(r.plot).is_file() and Path(r.preview).is_file()
    # named after the first frame and the driving poses, with full paths in the status
    run_dir = Path(r.video).parent
    assert [Path(f).name for f in r.files] == ["frame0_poses.mp4", "frame0_poses.gif", "frame0_poses_preview.png",
                                               "frame0_poses_psnr.png"]
    assert all(Path(f).is_file() and f in r.message for f in r.files) and f"results folder: {run_dir}" in r.message
    assert run_dir.parent == tmp_path / "work" and Path(r.video).is_absolute()
    assert web.run_page(None, None, labels, None, tmp_path).message == "error: give a checkpoint, a first frame"
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    r = web.run_page(tiny_checkpoint, val / "val_img/frame0.png", bad, None, tmp_path / "work")
    assert r.video is None and r.message.startswith("error: bad.zip: not a readable zip file")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.png", b"x")
    r = web.run_page(tiny_checkpoint, val / "val_img/frame0.png", evil, None, tmp_path / "work")
    assert "a member outside its folder" in r.message and not (tmp_path / "work" / "outside.png").exists()
    assert len(list((tmp_path / "work").iterdir())) == 1  # the failed runs' folders are gone


@pytest.mark.slow
def test_run_page_preview_and_no_plot_without_truth(tiny_checkpoint, synth_root, tmp_path) -> None:
    val = synth_root / "val"
    r = web.run_page(tiny_checkpoint, val / "val_img/frame0.png", val / "val_label", None, tmp_path, preview_only=True)
    assert r.video is None and r.plot is None and r.message.startswith(f"preview: {r.preview}")
    assert [p.name for p in Path(r.preview).parent.iterdir()] == ["frame0_val_label_preview.png"]
    r = web.run_page(tiny_checkpoint, val / "val_img/frame0.png", val / "val_label", None, tmp_path)
    assert r.video.endswith("frame0_val_label.mp4") and r.plot is None and "PSNR" not in r.message


@pytest.mark.slow  # importing gradio takes seconds
def test_the_psnr_box_is_shown_only_with_a_plot() -> None:
    gr = pytest.importorskip("gradio", reason="the app extra (bash scripts/install_app_extra.sh)")
    hidden = web.page_outputs(gr, web.PageResult(video="a.mp4", message="animated"))
    shown = web.page_outputs(gr, web.PageResult(video="a.mp4", plot="a_psnr.png", files=("a.mp4",)))
    assert hidden[3]["visible"] is False and hidden[4] is None
    assert shown[3]["visible"] is True and shown[3]["value"] == "a_psnr.png" and shown[4] == ["a.mp4"]
    assert web.output_stem(Path("/x/my photo.png"), Path("/y/their dance.mp4")) == "my-photo_their-dance"
    assert web.output_stem(Path("me.jpg"), Path("/data/poses")) == "me_poses"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on ``port`` (Linux's /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]) if len(address) == 8 else f"ipv6 {address}")
    return found


@pytest.fixture(scope="module")
def app_server(tiny_checkpoint, synth_root, tmp_path_factory):
    """`posecast app` in a subprocess whose outgoing HTTP(S) goes to a refusing, logging proxy;
    bound to 127.0.0.1, stopped after this file's tests (started once: importing gradio is slow)."""
    pytest.importorskip("gradio", reason="the app extra (bash scripts/install_app_extra.sh)")
    tmp_path = tmp_path_factory.mktemp("app")
    proxy, port = LoggingProxy(), free_port()
    val = synth_root / "val"
    src = str(Path(posecast.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src, HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url, http_proxy=proxy.url,
               https_proxy=proxy.url, ALL_PROXY=proxy.url, NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "posecast.cli", "app", "--port", str(port), "--checkpoint", str(tiny_checkpoint),
           "--first-frame", str(val / "val_img/frame0.png"), "--driving", str(val / "val_label"),
           "--truth", str(val / "val_img"), "--workdir", str(tmp_path / "work")]
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: _up(url) or proc.poll() is not None, 120, "the app to serve")
        assert proc.poll() is None, (tmp_path / "app.log").read_text()
        assert listening_addresses(port) == {"127.0.0.1"}  # not 0.0.0.0, not an IPv6 address
        yield url, proxy, tmp_path / "work"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
        proxy.close()


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium with DevTools on a free port; non-local traffic goes to a refusing proxy."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # .ci/run installs it: a missing browser fails the test, as for the report's
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does)")
    proxy, profile = LoggingProxy(), tmp_path / "profile"
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
           f"--user-data-dir={profile}", f"--proxy-server={proxy.url}", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-pings",
           "--disable-domain-reliability", "--disable-client-side-phishing-detection",
           "--disable-features=NetworkTimeServiceQuerying,AutofillServerCommunication,OptimizationHints,"
           "MediaRouter,Translate,SignInProfileCreation,AccountConsistency", "--window-size=1280,2200", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.is_file() and port_file.read_text().count("\n") >= 1, 30, "chromium")
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"], timeout=60)
        yield tools, proxy
        tools.close()
    finally:
        proc.terminate()
        proc.wait(20)
        proxy.close()


CHROMIUM_SERVICES = {"update.googleapis.com", "accounts.google.com", "clients2.google.com",
                     "content-autofill.googleapis.com"}
PLOT_SHOWN = "(() => { const i = document.querySelector('#psnr-plot img'); return i ? i.naturalWidth : 0 })()"
DOWNLOADS = "[...document.querySelectorAll('#downloads a[download]')].map(a => a.getAttribute('download'))"
VIDEO_STATE = """(() => { const v = document.querySelector('#result-video video');
  return v ? {src: v.currentSrc || v.src, ready: v.readyState, w: v.videoWidth, error: v.error && v.error.code} : null })()"""


def _screenshot(tools: DevTools, selector: str) -> np.ndarray:
    rect = tools.evaluate(f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
                          " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height} })()")
    shot = tools.call("Page.captureScreenshot", format="png", clip={**rect, "scale": 1}, captureBeyondViewport=True)
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"))


@pytest.mark.slow
def test_the_page_runs_offline_in_headless_chromium(app_server, browser, tmp_path) -> None:
    url, server_proxy, work = app_server
    tools, browser_proxy = browser
    tools.call("Network.enable")
    tools.call("Page.enable")
    tools.call("Page.navigate", url=url)
    wait_for(lambda: tools.evaluate("!!document.querySelector('#animate-button')"), 60, "the page")
    ckpt = tools.evaluate("document.querySelector('#checkpoint-path textarea, #checkpoint-path input').value")
    assert ckpt.endswith("last.ckpt")
    assert not tools.evaluate(PLOT_SHOWN)  # no PSNR box before there is a plot
    tools.evaluate("document.querySelector('#animate-button').click()")
    state = wait_for(lambda: (lambda s: s if s and s["ready"] >= 2 and s["w"] > 0 else None)(tools.evaluate(VIDEO_STATE)),
                     90, "the result video to play")
    status = tools.evaluate("document.querySelector('#status textarea, #status input').value")
    assert status.startswith("animated 12 frames"), status
    assert f"video: {work}" in status and "results folder: " in status  # full paths
    assert wait_for(lambda: tools.evaluate(PLOT_SHOWN), 30, "the PSNR plot") > 0
    downloads = wait_for(lambda: tools.evaluate(DOWNLOADS), 30, "the downloads")
    assert {"frame0_val_label.mp4", "frame0_val_label.gif", "frame0_val_label_psnr.png"} <= set(downloads), downloads
    assert tools.evaluate("(() => { const i = document.querySelector('#preview img'); return i && i.naturalWidth })()") > 1000
    pixels = _screenshot(tools, "#result-video video")
    assert pixels.shape[0] > 20 and pixels.std() > 10  # the decoded frame, not a blank box
    mp4 = tmp_path / "from_page.mp4"
    mp4.write_bytes(urllib.request.urlopen(state["src"], timeout=30).read())
    with av.open(str(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 2
    page_urls = [e["params"]["request"]["url"] for e in tools.events if e.get("method") == "Network.requestWillBeSent"]
    assert page_urls and all(u.startswith((url.rstrip("/"), "data:", "blob:")) for u in page_urls), page_urls
    assert server_proxy.requests == []  # the app's Python side: no analytics, no Hub, no version check
    # the browser's own services (updates, sign-in, clock) talk to Google from no page; refused all the same
    hosts = {line.split()[1].split("//")[-1].split("/")[0].split(":")[0] for line in browser_proxy.requests}
    assert hosts <= CHROMIUM_SERVICES, hosts


ANIMATE_ORANGE = (249, 115, 22)  # gradio 6's default theme: a primary button is primary_500, #f97316


def chromium_exe() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # .ci/run installs it: a missing browser fails the test, as for the report's
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does)")
    return exe


@pytest.mark.slow
def test_the_animate_button_is_in_view_at_1280x1000(app_server, tmp_path) -> None:
    """Render the page as a 1280x1000 window would show it (headless Chromium with a virtual-time
    budget, so the page's scripts run before the capture: without it the shot is blank) and
    find the Animate button's colour in the picture: wholly inside the first 1000 pixels."""
    url, _, _ = app_server
    proxy = LoggingProxy()
    try:
        base = [chromium_exe(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--proxy-server={proxy.url}", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--window-size=1280,1000", "--virtual-time-budget=20000"]
        dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120).stdout
        assert 'id="animate-button"' in dom and ">Animate<" in dom.replace("\n", "").replace(" ", "")
        shot = tmp_path / "page.png"
        subprocess.run([*base, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}", url],
                       capture_output=True, timeout=120, check=True)
    finally:
        proxy.close()
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert pixels.shape[:2] == (1000, 1280) and pixels.std() > 10  # the page, not a blank window
    regions, count = ndimage.label(np.abs(pixels - ANIMATE_ORANGE).max(axis=-1) < 12)
    assert count > 0, "no Animate button in the first 1000 pixels"
    biggest = np.argmax(np.bincount(regions.ravel())[1:]) + 1
    ys, xs = np.nonzero(regions == biggest)
    assert 30 <= ys.max() - ys.min() + 1 <= 80 and xs.max() - xs.min() + 1 >= 200  # a button, not a speck
    assert ys.max() < 999  # its bottom edge is in view, not cut by the window
