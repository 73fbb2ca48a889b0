"""extract_poses and `posecast poses` with an injected estimator (no mediapipe needed)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from posecast.cli import poses as poses_cli
from posecast.poses import extract as extract_mod
from posecast.poses.draw import draw_label
from posecast.poses.errors import PoseInputError
from posecast.poses.extract import extract_poses
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
    label = np.array(Image.open(out / "frame2.png"))
    assert np.array_equal(label, draw_label(seq.keypoints[2], (640, 320), (64, 32)))
    assert "frames with no person (left out): 2 [1, 3]" in summary.describe()


def test_smoothing_keeps_steady_motion_and_the_label_size(folder, tmp_path) -> None:
    summary = extract_poses(folder, tmp_path / "o", size=(128, 64), estimator=fake_estimator, progress=False)
    seq = load_keypoints(summary.keypoints_path)
    # the missing frames count as confidence 0 while smoothing: x = skeleton + 4 * frame exactly
    assert np.allclose(seq.keypoints[:, :, 0] - skeleton()[:, 0], 4 * seq.frame_indices[:, None], atol=1e-3)
    assert Image.open(tmp_path / "o" / "frame0.png").size == (128, 64)


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
