"""`posecast prepare`: a synthetic dancer video (PyAV) with known keypoints -> the lab layout."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from posecast import cli
from posecast.cli import prepare as prepare_cli
from posecast.data.lab import load_split, load_test
from posecast.data.prepare import PrepareError, plan_splits, prepare_dataset
from posecast.poses.draw import draw_label, label_overlap
from posecast.poses.errors import PoseInputError
from posecast.poses.framing import CropBox, crop_box, keypoints_into
from posecast.poses.keypoints import load_keypoints
from own_video_testing import VIDEO, ListEstimator, dancer_keypoints, dancer_video, write_video

FRAMES = 50
MISSING = {20, 21}  # the estimator finds nobody in these frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return dancer_video(tmp_path_factory.mktemp("clip") / "dancer.mp4", FRAMES)


@pytest.fixture(scope="module")
def dataset(video, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "dataset"
    est = ListEstimator(dancer_keypoints(FRAMES), VIDEO["width"], MISSING)
    summary = prepare_dataset(video, out, val_seconds=0.4, test_seconds=0.3, estimator=est,
                              margin=0.05, progress=False)
    return out, summary


@pytest.mark.slow
def test_prepare_writes_the_lab_layout_the_reader_loads(dataset) -> None:
    out, summary = dataset
    r = json.loads((out / "prepare_report.json").read_text())
    assert r == summary.report
    assert (r["frames_decoded"], r["frames_kept"], r["frames_without_person"]) == (50, 48, 2)
    assert r["missing_frames"] == [20, 21] and r["fps"] == pytest.approx(30.0)
    assert r["splits"] == {"train": 27, "val": 12, "test": 9}
    assert r["source_frames"] == {"train": [0, 28], "val": [29, 40], "test": [41, 49]}
    assert r["train_cuts"] == [20]  # train frame 20 is source frame 22: the jump is reported
    train, val = load_split(out, "train"), load_split(out, "val")
    assert tuple(train.frames.shape) == (27, 3, 32, 64) and tuple(val.poses.shape) == (12, 3, 32, 64)
    (test,) = load_test(out)
    assert test.has_gt and tuple(test.frames.shape) == (9, 3, 32, 64) and len(test) == 9
    first = np.asarray(Image.open(out / "test/test_img/0/frame0.png"))
    assert np.array_equal(test.frames[0].permute(1, 2, 0).numpy(), first)
    assert "train jumps over left-out frames before frame(s) [20]" in summary.describe()


@pytest.mark.slow
def test_crop_has_the_frame_aspect_holds_the_person_and_labels_follow_it(dataset) -> None:
    out, summary = dataset
    c = summary.report["crop"]
    box = CropBox(c["left"], c["top"], c["width"], c["height"])
    assert c["width"] / c["height"] == pytest.approx(2.0, rel=1e-3) and not c["clipped"]
    assert c["left"] >= 0 and c["top"] >= 0 and c["left"] + c["width"] <= 192 + 1e-6 and c["top"] + c["height"] <= 96 + 1e-6
    kp = dancer_keypoints(FRAMES)
    inside = keypoints_into(kp, box, (64, 32))
    assert inside[..., 0].min() >= 0 and inside[..., 0].max() <= 64 and inside[..., 1].min() >= 0 and inside[..., 1].max() <= 32
    seq = load_keypoints(out / "keypoints.npz")
    assert seq.frame_indices[:22].tolist() == list(range(20)) + [22, 23]
    label = np.asarray(Image.open(out / "train/train_label/frame20.png"))  # source frame 22
    exact = crop_box(seq.keypoints, (192, 96), 2.0, margin=0.05)
    assert np.array_equal(label, draw_label(keypoints_into(seq.keypoints[20], exact, (64, 32)), (64, 32), (64, 32)))
    truth = draw_label(keypoints_into(kp[22], box, (64, 32)), (64, 32), (64, 32))
    assert label_overlap(label, truth).f1 > 0.9  # smoothing moves joints by far less than a pixel


def test_plan_keeps_val_and_test_unbroken() -> None:
    # frames 0..29 and 33..39: a 7-frame run at the end is too short for an 8-frame test
    idx = np.array(list(range(30)) + list(range(33, 40)))
    plan = plan_splits(idx, n_val=6, n_test=8, min_train=4)
    assert idx[plan.test].tolist() == list(range(22, 30))  # the latest run that holds 8 frames
    assert idx[plan.val].tolist() == list(range(34, 40))  # the latest run that holds 6 of the rest
    assert idx[plan.train].tolist() == list(range(22)) + [33] and plan.train_cuts == [22]
    with pytest.raises(PrepareError, match="too short for the splits"):
        plan_splits(np.arange(20), n_val=8, n_test=8, min_train=16)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="posecast")
    prepare_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()  # a progress bar may come before the error line
    assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line] == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("error: ")
    return err.splitlines()[-1]


def test_a_file_that_is_not_a_video(tmp_path, capsys) -> None:
    fake = tmp_path / "dance.mp4"
    fake.write_text("not a video")
    assert cli.main(["prepare", str(fake), "--out", str(tmp_path / "ds")]) == 2
    assert "not a readable video file" in one_line_error(capsys)
    assert not (tmp_path / "ds" / "train").exists()


def test_a_video_with_no_person(tmp_path, capsys) -> None:
    clip = write_video(tmp_path / "empty.mp4", np.full((8, 32, 48, 3), 90, np.uint8))
    args = parse(["prepare", str(clip), "--out", str(tmp_path / "ds")])
    assert prepare_cli.run(args, estimator=lambda image: None) == 2
    assert "no person found in any of the 8 frames" in one_line_error(capsys)


def test_a_video_too_short_for_the_splits(tmp_path, capsys) -> None:
    clip = write_video(tmp_path / "short.mp4", np.full((12, 32, 48, 3), 90, np.uint8))
    pose = dancer_keypoints(1)[0] / 4
    args = parse(["prepare", str(clip), "--out", str(tmp_path / "ds"), "--val-seconds", "0.1", "--test-seconds", "0.1"])
    assert prepare_cli.run(args, estimator=lambda image: pose * image.shape[1] / 48) == 2
    err = one_line_error(capsys)
    assert "too short for the splits: 12 frames with a person, 3 for val and 3 for test leave 6" in err


def test_an_existing_dataset_is_not_overwritten_by_mistake(tmp_path, capsys) -> None:
    (tmp_path / "ds" / "train").mkdir(parents=True)
    clip = write_video(tmp_path / "c.mp4", np.full((4, 32, 48, 3), 90, np.uint8))
    assert prepare_cli.run(parse(["prepare", str(clip), "--out", str(tmp_path / "ds")]),
                           estimator=lambda image: None) == 2
    assert "already holds a dataset (train/)" in one_line_error(capsys)


def test_image_folder_with_mixed_sizes(tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (48, 32)).save(folder / "a0.png")
    Image.new("RGB", (50, 32)).save(folder / "a1.png")
    with pytest.raises(PoseInputError, match="a0.png is 48x32 but a1.png is 50x32"):
        prepare_dataset(folder, tmp_path / "ds", estimator=lambda image: None, progress=False)


def test_a_person_wider_than_the_frame_allows_is_clipped_and_reported() -> None:
    pose = dancer_keypoints(1)[0]
    wide = np.repeat(pose[None], 2, axis=0)
    wide[1, :, 0] += 175  # the dancer crosses the whole 192 px frame (and leaves it)
    box = crop_box(wide, (192, 96), 2.0)
    assert box.clipped is True and json.loads(json.dumps(box.to_dict()))["clipped"] is True
    assert (box.left, box.width, box.height) == (0.0, 192.0, 96.0) and box.top == 0.0
