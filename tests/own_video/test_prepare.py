"""`posecast prepare`: a synthetic dancer video (PyAV) with known keypoints -> the lab layout."""
from __future__ import annotations

import argparse
import json

import av
import numpy as np
import pytest
from PIL import Image

from posecast import cli
from posecast.cli import prepare as prepare_cli
from posecast.data.lab import load_split, load_test
from posecast.data.prepare import PrepareError, load_first_frame_keypoints, plan_splits, prepare_dataset
from posecast.poses.draw import draw_label, label_overlap
from posecast.poses.errors import PoseInputError
from posecast.poses.options import OptionError
from posecast.poses.framing import CropBox, crop_box, keypoints_into
from posecast.poses.keypoints import load_keypoints
from own_video_testing import VIDEO, ListEstimator, dancer_keypoints, dancer_video, fixed_estimator, write_video

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
    args = parse(["prepare", str(clip), "--out", str(tmp_path / "ds"), "--val-seconds", "0.1",
                  "--test-seconds", "0.1", "--min-train-frames", "2"])  # 8 frames can hold these splits
    assert prepare_cli.run(args, estimator=lambda image: None) == 2
    assert "no person found in any of the 8 frames" in one_line_error(capsys)


def test_a_video_too_short_for_the_splits(tmp_path, capsys) -> None:
    clip = write_video(tmp_path / "short.mp4", np.full((12, 32, 48, 3), 90, np.uint8))
    pose = dancer_keypoints(1)[0] / 4
    args = parse(["prepare", str(clip), "--out", str(tmp_path / "ds"), "--val-seconds", "0.1", "--test-seconds", "0.1"])
    est = ListEstimator(np.repeat(pose[None], 12, axis=0), 48)
    assert prepare_cli.run(args, estimator=est) == 2
    err = one_line_error(capsys)
    # before the pose pass, from the header's frame count, with the clip's duration
    assert "short.mp4 is too short for the splits: 0.4 s, 12 frames at 30.00 fps; 3 for val and 3 for test leave 6" in err
    assert "so the clip needs 22 frames (0.7 s)" in err and est.calls == 0
    assert not (tmp_path / "ds").exists()


def test_frames_without_a_person_can_make_a_clip_too_short(tmp_path, capsys) -> None:
    clip = write_video(tmp_path / "gappy.mp4", np.full((30, 32, 48, 3), 90, np.uint8))
    pose = dancer_keypoints(1)[0] / 4
    est = ListEstimator(np.repeat(pose[None], 30, axis=0), 48, missing=set(range(10)))
    args = parse(["prepare", str(clip), "--out", str(tmp_path / "ds"), "--val-seconds", "0.1", "--test-seconds", "0.1"])
    assert prepare_cli.run(args, estimator=est) == 2
    err = one_line_error(capsys)
    assert ("too short for the splits: 20 frames with a person (the clip: 1.0 s, 30 frames at 30.00 fps), "
            "3 for val and 3 for test leave 14") in err
    assert est.calls == 30 and not (tmp_path / "ds").exists()


def test_a_3_second_clip_against_the_default_splits_is_refused_before_the_pose_pass(tmp_path, capsys) -> None:
    clip = write_video(tmp_path / "three.mp4", np.full((90, 16, 16, 3), 90, np.uint8))
    est = ListEstimator(np.zeros((90, 18, 3), np.float32), 16)
    assert prepare_cli.run(parse(["prepare", str(clip), "--out", str(tmp_path / "ds")]), estimator=est) == 2
    assert ("three.mp4 is too short for the splits: 3.0 s, 90 frames at 30.00 fps; 90 for val and 90 for test "
            "leave -90 for training") in one_line_error(capsys)
    assert est.calls == 0 and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("argv, flag", [(["--margin", "-0.5"], "--margin"), (["--size", "1x1"], "--size"),
                                        (["--fps", "0"], "--fps"), (["--smooth", "4"], "--smooth"),
                                        (["--val-seconds", "0"], "--val-seconds"),
                                        (["--min-train-frames", "0"], "--min-train-frames")])
def test_bad_options_end_in_one_line_naming_the_flag(tmp_path, capsys, argv, flag) -> None:
    clip = write_video(tmp_path / "c.mp4", np.full((4, 16, 16, 3), 90, np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["prepare", str(clip), "--out", str(tmp_path / "new" / "ds"), *argv])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"posecast prepare: error: argument {flag}: must be ") and f"got {argv[1]} " in line
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("option, flag", [(dict(margin=-0.5), "--margin"), (dict(size=(1, 1)), "--size"),
                                          (dict(fps=0.0), "--fps"), (dict(smooth=2), "--smooth")])
def test_the_library_checks_every_option_before_the_pose_pass(tmp_path, option, flag) -> None:
    est = ListEstimator(np.zeros((4, 18, 3), np.float32), 16)
    clip = write_video(tmp_path / "c.mp4", np.full((4, 16, 16, 3), 90, np.uint8))
    with pytest.raises(OptionError, match=f"^{flag}: must be "):
        prepare_dataset(clip, tmp_path / "ds", estimator=est, progress=False, **option)
    assert est.calls == 0 and not (tmp_path / "ds").exists()


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


@pytest.fixture(scope="module")
def framed(video, tmp_path_factory):
    """The clip prepared with the default margin: the crop (175 x 87 px) is not the whole frame."""
    out = tmp_path_factory.mktemp("framed") / "dataset"
    est = ListEstimator(dancer_keypoints(FRAMES), VIDEO["width"])
    return out, prepare_dataset(video, out, val_seconds=0.4, test_seconds=0.4, estimator=est, progress=False)


def test_the_first_frames_poses_are_recorded_and_found_from_the_image(framed, tmp_path) -> None:
    out, summary = framed
    seq = load_keypoints(out / "keypoints.npz")
    box = crop_box(seq.keypoints, (192, 96), 2.0)  # exact (the report rounds the crop to 0.01 px)
    record = json.loads((out / "first_frames.json").read_text())["frames"]
    assert sorted(record) == ["test/test_img/0/frame0.png", "train/train_img/frame0.png", "val/val_img/frame0.png"]
    test_start = summary.report["source_frames"]["test"][0]
    assert record["test/test_img/0/frame0.png"]["source_frame"] == test_start
    row = int(np.flatnonzero(seq.frame_indices == test_start)[0])
    kp = load_first_frame_keypoints(out / "test/test_img/0/frame0.png")
    assert kp.dtype == np.float32 and np.array_equal(kp, keypoints_into(seq.keypoints[row], box, (64, 32)))
    # its label is the dataset's own
    assert np.array_equal(draw_label(kp, (64, 32)), np.asarray(Image.open(out / "test/test_label/0/frame0.png")))
    assert load_first_frame_keypoints(out / "train/train_label/frame0.png") is None  # a label, not a first frame
    copy = tmp_path / "frame0.png"
    copy.write_bytes((out / "val/val_img/frame0.png").read_bytes())
    assert load_first_frame_keypoints(copy) is None  # outside the dataset: nothing recorded for it


def test_a_changed_first_frame_or_a_broken_record(framed, tmp_path) -> None:
    out, _ = framed
    ds = tmp_path / "ds"
    (ds / "test/test_img/0").mkdir(parents=True)
    (ds / "first_frames.json").write_text((out / "first_frames.json").read_text())
    image = ds / "test/test_img/0/frame0.png"
    Image.new("RGB", (64, 32)).save(image)  # not the image prepare wrote
    assert load_first_frame_keypoints(image) is None
    (ds / "first_frames.json").write_text("{not json")
    with pytest.raises(PrepareError, match="first_frames.json: not a readable first-frame record"):
        load_first_frame_keypoints(image)


def test_retargeting_the_datasets_own_keypoints_onto_its_first_frame_gives_its_labels(framed) -> None:
    """The invariant through animate's inputs: the test part's first frame (its recorded pose)
    driven by the dataset's keypoints.npz from the test part on gives the dataset's test labels,
    every pixel, and the first frame as it is (not cropped again)."""
    from posecast.inference.animate import prepare_inputs

    out, summary = framed
    first_path = out / "test/test_img/0/frame0.png"
    pose = load_first_frame_keypoints(first_path)
    seq = load_keypoints(out / "keypoints.npz")
    start = int(np.flatnonzero(seq.frame_indices == summary.report["source_frames"]["test"][0])[0])
    inputs = prepare_inputs(first_path, "unused", (64, 32), driving_keypoints=out / "keypoints.npz",
                            start=start, estimator=fixed_estimator(pose, 64))
    first, labels = inputs.first, inputs.labels
    assert np.array_equal(first, np.asarray(Image.open(first_path)))
    assert len(labels) == 12
    for t, label in enumerate(labels):
        assert np.array_equal(label, np.asarray(Image.open(out / f"test/test_label/0/frame{t}.png"))), t


def test_the_report_folder_has_the_jitter_plot_and_the_previews(framed) -> None:
    out, summary = framed
    r = json.loads((out / "prepare_report.json").read_text())
    assert r["smoothing"]["window"] == 7 and r["jitter_plot"] == "jitter.png" and r["frames_redetected"] == 0
    assert r["smoothing"]["jitter_smoothed"] <= r["smoothing"]["jitter_raw"]
    assert Image.open(out / "jitter.png").size == (900, 320)
    assert Image.open(out / r["preview"]["contact_sheet"]).size[0] == 4 * 320
    with av.open(str(out / r["preview"]["overlay"])) as container:
        assert sum(1 for _ in container.decode(video=0)) == 50  # every written frame
    assert "smoothing: 7 frames; jitter" in summary.describe()


def test_a_failure_while_writing_leaves_no_folder_and_keeps_an_old_dataset(video, framed, tmp_path, monkeypatch) -> None:
    from posecast.data import prepare as prepare_mod

    calls = []

    def failing_save(arr, path):
        calls.append(path)
        if len(calls) == 30:
            raise OSError("No space left on device")
    monkeypatch.setattr(prepare_mod, "_save_png", failing_save)
    est = ListEstimator(dancer_keypoints(FRAMES), VIDEO["width"])
    with pytest.raises(OSError, match="No space"):
        prepare_dataset(video, tmp_path / "new" / "ds", val_seconds=0.4, test_seconds=0.4, estimator=est, progress=False)
    assert list(tmp_path.iterdir()) == []
    old, _ = framed
    before = sorted(p.relative_to(old) for p in old.rglob("*"))
    calls.clear()
    est.calls = 0
    with pytest.raises(OSError, match="No space"):
        prepare_dataset(video, old, val_seconds=0.4, test_seconds=0.4, estimator=est, progress=False, overwrite=True)
    assert sorted(p.relative_to(old) for p in old.rglob("*")) == before
    assert [p.name for p in old.parent.iterdir()] == ["dataset"]
