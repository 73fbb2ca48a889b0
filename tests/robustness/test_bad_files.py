"""Input and output files from many hands, through the `posecast` command line: each bad input
gets an `error:` line naming the file (exit code 2) or is handled, and nothing written before is
lost. Datasets are copies of the shared synthetic one, damaged here."""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import posecast.io.checkpoint as ckmod
from posecast.data.lab import load_split
from posecast.io.checkpoint import load_checkpoint
from robustness_support import (assert_log_matches_checkpoint, child_env, metrics_rows, run_cli, snapshot,
                                without_timing)

TRAIN_1_EPOCH = ["--preset", "tiny", "--num_epoch", 1, "--tfr_sde", 0, "--no-progress"]


@pytest.fixture
def data(synth_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synth_root, tmp_path / "data"))


def _train_fails(data: Path, tmp_path: Path, *names: str) -> str:
    """`posecast train` on data: exit code 2, an error line naming every given string, no run folder."""
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", data, "--out", out, *TRAIN_1_EPOCH])
    assert code == 2, err
    assert err.startswith("posecast train: error:") and "Traceback" not in err
    for name in names:
        assert name in err, f"{name!r} not in {err!r}"
    assert not out.exists()  # failed before anything was written
    return err


# -- damaged inputs: a clear error naming the file -------------------------------------------------
def test_corrupt_png(data: Path, tmp_path: Path) -> None:
    bad = data / "train" / "train_img" / "frame3.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    _train_fails(data, tmp_path, "cannot read image", str(bad))


def test_truncated_png(data: Path, tmp_path: Path) -> None:
    bad = data / "train" / "train_label" / "frame2.png"
    bad.write_bytes(bad.read_bytes()[:200])
    _train_fails(data, tmp_path, "cannot read image", str(bad), "truncated")


def test_empty_png(data: Path, tmp_path: Path) -> None:
    bad = data / "val" / "val_img" / "frame5.png"
    bad.write_bytes(b"")
    _train_fails(data, tmp_path, "cannot read image", str(bad))


def test_folder_named_like_a_frame(data: Path, tmp_path: Path) -> None:
    bad = data / "train" / "train_img" / "frame3.png"
    bad.unlink()
    bad.mkdir()
    _train_fails(data, tmp_path, "found a folder", str(bad))


def test_two_files_for_one_frame_number(data: Path, tmp_path: Path) -> None:
    shutil.copy(data / "train" / "train_img" / "frame1.png", data / "train" / "train_img" / "frame01.png")
    _train_fails(data, tmp_path, "two files for frame 1", "frame01.png", "frame1.png")


@pytest.mark.slow
def test_bad_inputs_to_predict_and_evaluate(data: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    poses = Path(shutil.copytree(data / "test" / "test_label" / "0", tmp_path / "poses"))
    (poses / "frame4.png").write_bytes(b"not a png")
    first = data / "test" / "test_img" / "0" / "frame0.png"
    code, _, err = run_cli(["predict", "--checkpoint", tiny_checkpoint, "--first-frame", first, "--poses", poses,
                            "--out", tmp_path / "p"])
    assert code == 2 and "cannot read image" in err and str(poses / "frame4.png") in err
    code, _, err = run_cli(["predict", "--checkpoint", tiny_checkpoint, "--first-frame", tmp_path / "nope.png",
                            "--poses", data / "test" / "test_label" / "0", "--out", tmp_path / "p"])
    assert code == 2 and "image not found" in err
    label = data / "test" / "test_label" / "1" / "frame6.png"
    label.write_bytes(label.read_bytes()[:100])
    code, _, err = run_cli(["predict", "--checkpoint", tiny_checkpoint, "--test-data", data, "--out", tmp_path / "p"])
    assert code == 2 and str(label) in err
    val = data / "val" / "val_label" / "frame0.png"
    val.write_bytes(b"")
    code, _, err = run_cli(["evaluate", "--checkpoint", tiny_checkpoint, "--data", data, "--out", tmp_path / "e"])
    assert code == 2 and str(val) in err


# -- odd but usable inputs: handled -------------------------------------------------------------------
def _rgb(path: Path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def test_label_modes_and_sizes_are_converted(data: Path) -> None:
    """RGBA (transparent -> white), LA, grayscale, 16-bit grayscale, palette with and without a
    transparent index, another size: each label reads as the RGB image it shows."""
    labels = data / "train" / "train_label"
    expected = {n: _rgb(labels / f"frame{n}.png") for n in range(8)}
    white = (expected[1] == 255).all(-1)  # the labels' background is white
    rgba = np.concatenate([expected[1], np.full(white.shape + (1,), 255, np.uint8)], -1)
    rgba[white] = (0, 0, 0, 0)  # transparent black background
    Image.fromarray(rgba, "RGBA").save(labels / "frame1.png")
    grey = np.asarray(Image.fromarray(expected[2]).convert("L"))
    Image.fromarray(grey, "L").save(labels / "frame2.png")
    expected[2] = np.repeat(grey[..., None], 3, -1)
    Image.fromarray(grey.astype(np.uint16) * 257).save(labels / "frame3.png")  # 16-bit grayscale PNG
    assert Image.open(labels / "frame3.png").mode.startswith("I")
    expected[3] = np.repeat(grey[..., None], 3, -1)
    pal = Image.fromarray(expected[4]).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(labels / "frame4.png")
    expected[4] = np.asarray(pal.convert("RGB"))
    pal_t = Image.fromarray(expected[5]).convert("P", palette=Image.ADAPTIVE, colors=16)
    idx = int(np.asarray(pal_t)[white.nonzero()[0][0], white.nonzero()[1][0]]) if white.any() else 0
    pal_t.info["transparency"] = idx
    pal_t.save(labels / "frame5.png", transparency=idx)
    shown = np.asarray(pal_t.convert("RGB")).copy()
    shown[np.asarray(pal_t) == idx] = 255  # the transparent index shows the white background
    expected[5] = shown
    la = np.stack([grey, np.where(white, 0, 255).astype(np.uint8)], -1)
    Image.fromarray(la, "LA").save(labels / "frame6.png")
    expected[6] = np.where(white[..., None], 255, np.repeat(grey[..., None], 3, -1)).astype(np.uint8)
    Image.fromarray(expected[7]).resize((128, 64), Image.NEAREST).save(labels / "frame7.png")  # twice the size
    seq = load_split(data, "train", (32, 64))
    got = seq.poses.permute(0, 2, 3, 1).numpy()
    for n in range(7):
        assert np.array_equal(got[n], expected[n]), f"label {n}"
    assert np.abs(got[7].astype(int) - expected[7].astype(int)).mean() < 3  # resized back


@pytest.mark.slow
def test_gaps_in_frame_numbers_warn_and_keep_numeric_order(data: Path, tmp_path: Path) -> None:
    for sub in ("train_img", "train_label"):
        (data / "train" / sub / "frame5.png").unlink()
        os.rename(data / "train" / sub / "frame23.png", data / "train" / sub / "frame100.png")
    with pytest.warns(UserWarning, match=r"train_img: frame numbers have gaps \(missing \[5, 23, 24"):
        seq = load_split(data, "train", (32, 64))
    assert len(seq) == 23
    assert torch.equal(seq.frames[-1], torch.from_numpy(_rgb(data / "train/train_img/frame100.png")).permute(2, 0, 1))
    assert torch.equal(seq.frames[5], torch.from_numpy(_rgb(data / "train/train_img/frame6.png")).permute(2, 0, 1))
    with pytest.warns(UserWarning, match="gaps"):
        code, _, err = run_cli(["train", "--data", data, "--out", tmp_path / "run", *TRAIN_1_EPOCH])
    assert code == 0, err


@pytest.mark.slow
def test_unicode_and_spaces_in_every_path(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "données d'entrée 数据" / "my data set"
    shutil.copytree(synth_root, root)
    run = tmp_path / "sorties → résultats" / "run 1 ✓"
    code, out, err = run_cli(["train", "--data", root, "--out", run, *TRAIN_1_EPOCH])
    assert code == 0, err
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 1
    assert (run / "data_path.txt").read_text(encoding="utf-8") == str(root.resolve())
    code, _, err = run_cli(["evaluate", "--checkpoint", run / "checkpoints" / "last.ckpt", "--data", root,
                            "--length", 4, "--out", run / "éval ü"])
    assert code == 0, err
    assert {"summary.json", "psnr_per_frame.csv", "psnr_per_frame.png", "val.gif", "val.mp4"} <= \
        {p.name for p in (run / "éval ü").iterdir()}
    code, _, err = run_cli(["predict", "--checkpoint", run / "checkpoints" / "last.ckpt", "--test-data", root,
                            "--out", run / "prédictions 予測"])
    assert code == 0, err
    assert (run / "prédictions 予測" / "submission.csv").exists()
    assert (run / "prédictions 予測" / "test_0" / "frame7.png").exists()
    # the data path comes from the run's data_path.txt
    code, _, err = run_cli(["train", "--resume", run, "--num_epoch", 2, "--no-progress"])
    assert code == 0, err
    assert [r["epoch"] for r in metrics_rows(run)] == ["0", "1"]


# -- outputs that cannot be written: a clear error, earlier results kept -------------------------------
def test_output_path_is_a_file(synth_root: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A file where the output folder should be (the other unwritable outputs: chmod 555 in the
    next test, a patched writer, and a real read-only file system further down)."""
    blocker = tmp_path / "out"
    blocker.write_text("keep me")
    for args in (["train", "--data", synth_root, *TRAIN_1_EPOCH],
                 ["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--no-video"],
                 ["predict", "--checkpoint", tiny_checkpoint, "--test-data", synth_root]):
        code, _, err = run_cli([*args, "--out", blocker / "sub"])
        assert code == 2 and "Traceback" not in err, err
        assert f"cannot write {blocker}" in err and "a file is in the way" in err
    assert blocker.read_text() == "keep me"


READ_ONLY_CHILD = r"""
import contextlib, io, json, sys
from posecast import cli
out = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        out.append([cli.main(args), err.getvalue()])
print("RESULT" + json.dumps(out))
"""


def _without_write_override() -> list[str] | None:
    """A command prefix that runs a child unable to write into read-only folders: none needed for
    a normal user; for root, `setpriv` drops the capabilities that let root ignore permissions."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    probe = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "true"])
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if probe.returncode == 0 else None


@pytest.mark.slow
@pytest.mark.skipif(_without_write_override() is None, reason="root, and no setpriv to drop CAP_DAC_OVERRIDE")
def test_read_only_folders_by_chmod(synth_root: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """chmod 555 on earlier results (as root, in a child without CAP_DAC_OVERRIDE, where chmod
    binds as for anyone): `evaluate` into them and `train --resume` of the run fail clearly, and
    not a byte changes."""
    out = tmp_path / "eval"
    assert run_cli(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--no-video",
                    "--out", out])[0] == 0
    run = Path(shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run"))
    folders = [out, run, *[p for p in run.rglob("*") if p.is_dir()]]
    before = snapshot(tmp_path)
    for folder in folders:
        folder.chmod(0o555)
    try:
        calls = [["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(synth_root), "--no-video",
                  "--out", str(out)],
                 ["train", "--resume", str(run), "--data", str(synth_root), "--num_epoch", "3", "--no-progress"]]
        proc = subprocess.run([*_without_write_override(), sys.executable, "-c", READ_ONLY_CHILD, json.dumps(calls)],
                              env=child_env(), capture_output=True, text=True, timeout=300)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    (code_e, err_e), (code_t, err_t) = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert code_e == 2 and "no permission to write" in err_e and str(out) in err_e, err_e
    assert code_t == 2 and "no permission to write" in err_t and str(run) in err_t, err_t
    assert snapshot(tmp_path) == before


def _fail_writes(monkeypatch, exc_errno: int, name: str, at: int = 1, partial: bool = True) -> None:
    """Make the at-th atomic write of a file called `name` fail with OSError(exc_errno) half-way."""
    orig = ckmod.atomic_write_bytes
    seen = {"n": 0}

    def atomic(path, write):
        if Path(path).name == name:
            seen["n"] += 1
            if seen["n"] == at:
                def failing(f):
                    buf = io.BytesIO()
                    write(buf)
                    if partial:
                        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                    raise OSError(exc_errno, os.strerror(exc_errno))  # as write() raises it: no file name
                return orig(path, failing)
        return orig(path, write)

    import posecast.analysis.evaluate as evmod
    import posecast.analysis.plots as plmod
    import posecast.io.atomic as atmod
    import posecast.io.video as vimod
    import posecast.rollout as romod

    # every module that imported it by name; io.atomic's own name serves atomic_write_text
    for module in (atmod, ckmod, evmod, plmod, romod, vimod):
        monkeypatch.setattr(module, "atomic_write_bytes", atomic)


def _quick_run(data: Path, run: Path, epochs: int = 2) -> list:
    return ["train", "--data", data, "--out", run, "--preset", "tiny", "--num_epoch", epochs,
            "--val_every", epochs, "--no-progress"]


@pytest.mark.slow
def test_disk_full_while_writing_a_checkpoint(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    _fail_writes(monkeypatch, errno.ENOSPC, "last.ckpt", at=2)  # epoch 2's last.ckpt
    code, _, err = run_cli(_quick_run(synth_root, run, 3))
    monkeypatch.undo()
    assert code == 2 and "disk full" in err and str(run / "checkpoints" / "last.ckpt") in err
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 1  # the previous one, whole
    assert_log_matches_checkpoint(run)
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporary file
    code, _, err = run_cli(["train", "--resume", run, "--no-progress"])  # after freeing space
    assert code == 0, err
    ref = tmp_path / "ref"
    assert run_cli(_quick_run(synth_root, ref, 3))[0] == 0
    assert without_timing(metrics_rows(run)) == without_timing(metrics_rows(ref))
    a = load_checkpoint(run / "checkpoints/last.ckpt")["model"]
    b = load_checkpoint(ref / "checkpoints/last.ckpt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_no_permission_while_writing_results(synth_root: Path, tiny_checkpoint: Path, tmp_path: Path,
                                             monkeypatch) -> None:
    out = tmp_path / "eval"
    code, _, err = run_cli(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--no-video",
                            "--out", out])
    assert code == 0, err
    before = snapshot(out)
    _fail_writes(monkeypatch, errno.EACCES, "summary.json")
    code, _, err = run_cli(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--no-video",
                            "--samples", 2, "--out", out])
    assert code == 2 and "no permission" in err and str(out / "summary.json") in err
    after = snapshot(out)
    assert after["summary.json"] == before["summary.json"]  # the earlier summary is intact
    assert json.loads(after["summary.json"])["samples"] == 1


@pytest.mark.slow
def test_disk_full_while_appending_a_metrics_row(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    from posecast.training.run import Run

    orig = Run.append_metrics

    def append(self, row):
        if row["epoch"] == 1:  # epoch 2's row: half of it reaches the disk
            with self.metrics_path.open("a") as f:
                f.write(",".join(str(row[k]) for k in ("epoch", "step", "lr", "tfr")))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.metrics_path))
        return orig(self, row)

    monkeypatch.setattr(Run, "append_metrics", append)
    run = tmp_path / "run"
    code, _, err = run_cli(_quick_run(synth_root, run, 3))
    monkeypatch.undo()
    assert code == 2 and "disk full" in err
    code, _, err = run_cli(["train", "--resume", run, "--no-progress"])
    assert code == 0, err
    rows = metrics_rows(run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert all(r["train_loss"] not in ("", None) for r in rows)


# -- a real full disk and a real read-only file system (a private tmpfs mount) -------------------------
NAMESPACE_CHILD = r"""
import json, os, shutil, subprocess, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from posecast import cli
from posecast.io.checkpoint import load_checkpoint
import contextlib, io

def run(args):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, err.getvalue()

def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}

data, mnt = sys.argv[1], Path(sys.argv[2])
res = {}
# a full disk: room for epoch 1's checkpoints and epoch_002.ckpt, not for epoch 2's last.ckpt
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mnt)], check=True)
quick = ["--preset", "tiny", "--num_epoch", 3, "--val_every", 3, "--no-progress"]
code, err = run(["train", "--data", data, "--out", mnt / "run", *quick])
ck = mnt / "run" / "checkpoints"
res["full"] = dict(code=code, err=err, epoch=load_checkpoint(ck / "last.ckpt")["epoch"],
                   names=sorted(p.name for p in ck.iterdir()),
                   rows=(mnt / "run" / "metrics.csv").read_text().splitlines()[1:])
for p in ck.glob("epoch_*.ckpt"):  # free some space, keep only last.ckpt from now on
    p.unlink()
code, err = run(["train", "--resume", mnt / "run", "--per_save", 100, "--no-progress"])
res["full_resumed"] = dict(code=code, err=err, epoch=load_checkpoint(ck / "last.ckpt")["epoch"],
                           rows=len((mnt / "run" / "metrics.csv").read_text().splitlines()) - 1)
subprocess.run(["umount", str(mnt)], check=True)
# a read-only file system: results written, then the mount turned read-only
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
run(["train", "--data", data, "--out", mnt / "run", "--preset", "tiny", "--num_epoch", 2, "--no-progress"])
ckpt = mnt / "run" / "checkpoints" / "last.ckpt"
run(["evaluate", "--checkpoint", ckpt, "--data", data, "--no-video", "--out", mnt / "run" / "eval"])
before = files(mnt)
subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
res["ro"] = [run(["evaluate", "--checkpoint", ckpt, "--data", data, "--no-video", "--out", mnt / "run" / "eval"]),
             run(["predict", "--checkpoint", ckpt, "--test-data", data, "--out", mnt / "run" / "pred"]),
             run(["train", "--resume", mnt / "run", "--num_epoch", 3, "--no-progress"])]
res["ro_unchanged"] = files(mnt) == before and len(before) > 5
print("RESULT" + json.dumps(res))
"""


def _can_unshare_mount() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=4k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare_mount(), reason="needs `unshare -m` and mount (root in a private mount namespace)")
def test_real_full_disk_and_read_only_file_system(synth_root: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", NAMESPACE_CHILD,
                           str(synth_root), str(mnt)], env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.split("RESULT", 1)[1])
    full = res["full"]
    assert full["code"] == 2 and "disk full" in full["err"] and "Traceback" not in full["err"]
    epochs = [int(r.split(",")[0]) for r in full["rows"]]  # as assert_log_matches_checkpoint
    assert full["epoch"] >= 1 and epochs[:full["epoch"]] == list(range(full["epoch"]))
    assert epochs[full["epoch"]:] in ([], [full["epoch"]])
    assert not [n for n in full["names"] if n.startswith(".")]
    assert res["full_resumed"]["code"] == 0 and res["full_resumed"]["epoch"] == 3 and res["full_resumed"]["rows"] == 3
    for code, err in res["ro"]:
        assert code == 2 and "read-only file system" in err and "Traceback" not in err, err
    assert res["ro_unchanged"]
