"""extract_poses and `posecast poses` with an injected estimator (no mediapipe needed)."""
from __future__ import annotations

import argparse

import av
import numpy as np
import pytest
from PIL import Image

from posecast import cli
from posecast.cli import poses as poses_cli
from posecast.poses.options import OptionError
from posecast.poses import extract as extract_mod
from posecast.poses.draw import draw_label
from posecast.poses.errors import PoseInputError
from posecast.poses.extract import extract_poses
from posecast.poses.framing import crop_box, keypoints_into
from posecast.poses.keypoints import load_keypoints
from test_poses_draw import skeleton

NO_PERSON = {1, 3}  # frames where the fake estimator finds nobody


def fake_estimator(image: np.ndarray) -> np.ndarray | None:
    """Frame i of the test folder is a flat image of red level i: the pose moves 4 px a frame."""
    i = int(image[0, 0, 0])
    if i in NO_PERSON:
        return None
    kp = skeleton()
    kp[:, 0] += 4 * i
    return kp


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "video"
    root.mkdir()
    for i in range(6):
        Image.new("RGB", (640, 320), (i, 0, 0)).save(root / f"img{i}.png")
    return root


def test_frames_without_a_person_are_listed_and_left_out(folder, tmp_path) -> None:
    out = tmp_path / "labels"
    summary = extract_poses(folder, out, size=(64, 32), estimator=fake_estimator, smooth=False, progress=False)
    assert (summary.frames, summary.kept, summary.missing) == (6, 4, [1, 3])
    assert sorted(p.name for p in out.glob("frame*.png")) == [f"frame{k}.png" for k in range(4)]
    seq = load_keypoints(summary.keypoints_path)
    assert seq.frame_indices.tolist() == [0, 2, 4, 5] and seq.missing == [1, 3]
    assert seq.frame_names == ["img0.png", "img2.png", "img4.png", "img5.png"]
    assert seq.image_size == (640, 320)
    assert np.array_equal(seq.keypoints[2], fake_estimator(np.full((2, 2, 3), 4, np.uint8)))
    label = np.array(Image.open(out / "frame2.png"))  # drawn in the crop around the person
    assert summary.crop == crop_box(seq.keypoints, (640, 320), 2.0, margin=0.15)
    assert np.array_equal(label, draw_label(keypoints_into(seq.keypoints[2], summary.crop, (64, 32)), (64, 32), (64, 32)))
    assert "frames with no person (left out): 2 [1, 3]" in summary.describe()


def test_smoothing_keeps_steady_motion_and_the_label_size(folder, tmp_path) -> None:
    summary = extract_poses(folder, tmp_path / "o", size=(128, 64), estimator=fake_estimator, progress=False)
    seq = load_keypoints(summary.keypoints_path)
    # the missing frames count as confidence 0 while smoothing: x = skeleton + 4 * frame exactly
    assert np.allclose(seq.keypoints[:, :, 0] - skeleton()[:, 0], 4 * seq.frame_indices[:, None], atol=1e-3)
    assert Image.open(tmp_path / "o" / "frame0.png").size == (128, 64)


def test_a_16_9_video_is_cropped_to_the_label_aspect_not_squashed(tmp_path) -> None:
    root = tmp_path / "wide"
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (1280, 720), (i, 0, 0)).save(root / f"img{i}.png")
    pose = skeleton()  # in a 640x320 layout: 235 px from the eyes to the ankles
    pose[:, :2] += (300, 200)
    summary = extract_poses(root, tmp_path / "o", size=(64, 32), estimator=lambda image: pose.copy(),
                            smooth=False, progress=False)
    box = summary.crop
    assert box.width / box.height == pytest.approx(2.0) and box.width < 1280  # a crop, not the frame
    label = np.array(Image.open(tmp_path / "o" / "frame0.png"))
    ys, xs = np.nonzero(255 - label.min(-1) >= 20)
    # the skeleton's width:height in the label is the body's own (no 1280/720 vs 2:1 squash)
    body = pose[:, :2].max(0) - pose[:, :2].min(0)
    drawn = np.array([xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], float)
    assert drawn[0] / drawn[1] == pytest.approx(body[0] / body[1], rel=0.12)
    scale = 32 / box.height  # the same scale in x and y
    assert drawn == pytest.approx(body * scale, abs=1.5)


def test_previews_are_written_beside_the_labels(folder, tmp_path) -> None:
    out = tmp_path / "o"
    extract_poses(folder, out, estimator=fake_estimator, progress=False)
    sheet = Image.open(out / "preview" / "contact_sheet.png")
    assert sheet.size[0] == 4 * 320 and sheet.mode == "RGB"
    with av.open(str(out / "preview" / "overlay.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (256, 512, 3)
    # a thick skeleton over the (black) frame: coloured pixels several pixels wide
    assert (frames[0].max(-1) > 120).sum() > 400
    assert not any(p.name.startswith(".o.partial") for p in tmp_path.iterdir())


def test_a_failure_midway_leaves_no_folder(folder, tmp_path, monkeypatch) -> None:
    out = tmp_path / "new" / "poses"

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(extract_mod, "draw_label", broken)  # fails while writing the labels
    with pytest.raises(OSError, match="disk full"):
        extract_poses(folder, out, estimator=fake_estimator, progress=False)
    assert not (tmp_path / "new").exists()


def test_overwrite_keeps_the_old_labels_until_the_new_ones_are_complete(folder, tmp_path, monkeypatch) -> None:
    out = tmp_path / "o"
    out.mkdir()
    for k in range(9):
        Image.new("RGB", (64, 32), "white").save(out / f"frame{k}.png")
    monkeypatch.setattr(extract_mod, "save_keypoints", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        extract_poses(folder, out, estimator=fake_estimator, progress=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "video"] and len(list(out.iterdir())) == 9


@pytest.mark.parametrize("argv, flag", [(["--size", "1x1"], "--size"), (["--margin", "-0.5"], "--margin"),
                                        (["--smooth", "3"], "--smooth"), (["--size", "60x30"], "--size")])
def test_bad_options_end_in_one_line_naming_the_flag(folder, tmp_path, capsys, argv, flag) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["poses", str(folder), "--out", str(tmp_path / "o"), *argv])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"posecast poses: error: argument {flag}: must be ") and argv[1] in line
    assert not (tmp_path / "o").exists()


def test_the_library_checks_its_options_before_reading_the_input(tmp_path) -> None:
    with pytest.raises(OptionError, match="^--margin: must be a fraction"):
        extract_poses(tmp_path / "missing.mp4", tmp_path / "o", margin=-0.5, estimator=fake_estimator)
    with pytest.raises(OptionError, match="^--size: .* got 1x1$"):
        extract_poses(tmp_path / "missing.mp4", tmp_path / "o", size=(1, 1), estimator=fake_estimator)
    assert not (tmp_path / "o").exists()


def test_smoothing_strength_is_the_window(tmp_path) -> None:
    root = tmp_path / "video"
    root.mkdir()
    for i in range(11):
        Image.new("RGB", (640, 320), (i, 0, 0)).save(root / f"img{i}.png")

    def noisy(image: np.ndarray) -> np.ndarray:
        kp = skeleton()
        kp[:, 0] += 3.0 * (-1) ** int(image[0, 0, 0])  # a +-3 px zig-zag from frame to frame
        return kp
    spread = []
    for window in (0, 5, 9):
        summary = extract_poses(root, tmp_path / f"w{window}", estimator=noisy, smooth=window, progress=False)
        spread.append(np.ptp(load_keypoints(summary.keypoints_path).keypoints[2:-2, 0, 0]))
    assert spread[0] == pytest.approx(6.0) and spread[0] > spread[1] > spread[2]


def test_old_labels_are_refused_unless_overwrite(folder, tmp_path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    for k in range(9):
        Image.new("RGB", (64, 32), "white").save(out / f"frame{k}.png")
    with pytest.raises(PoseInputError, match="already holds 9 frame<N>.png labels"):
        extract_poses(folder, out, estimator=fake_estimator, progress=False)
    extract_poses(folder, out, estimator=fake_estimator, progress=False, overwrite=True)
    assert len(list(out.glob("frame*.png"))) == 4


def test_no_person_at_all_is_an_input_error(folder, tmp_path) -> None:
    with pytest.raises(PoseInputError, match="no person found in any of the 6 frames"):
        extract_poses(folder, tmp_path / "o", estimator=lambda image: None, progress=False)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="posecast")
    poses_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_runs_and_prints_the_summary(folder, tmp_path, monkeypatch, capsys) -> None:
    made: list[FakeMediaPipe] = []
    monkeypatch.setattr(extract_mod, "MediaPipePose", lambda: made.append(FakeMediaPipe()) or made[-1])
    args = parse(["poses", str(folder), "--out", str(tmp_path / "o"), "--size", "32x16", "--no-smooth"])
    assert (args.size, args.smooth) == ((32, 16), False)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "labels written: 4 (32x16)" in out and "left out): 2 [1, 3]" in out
    assert Image.open(tmp_path / "o" / "frame3.png").size == (32, 16)
    assert len(made) == 1 and made[0].closed  # the default estimator is made once and closed


def test_cli_bad_input_prints_error_and_returns_2(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert poses_cli.run(parse(["poses", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_rejects_a_bad_size(capsys) -> None:
    with pytest.raises(SystemExit):
        parse(["poses", "x.mp4", "--out", "o", "--size", "64by32"])
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err


class FakeMediaPipe:
    """Stands in for MediaPipePose in the CLI test (same call, plus close())."""

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        return fake_estimator(image)

    def close(self) -> None:
        self.closed = True
