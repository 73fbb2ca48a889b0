"""`posecast animate`: retargeted labels, the label-folder route, outputs, and bad inputs."""
from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from posecast.data.synth import synth_sequence
from posecast.cli import animate as animate_cli
from posecast.inference.animate import AnimateError, draw_labels, prepare_inputs
from posecast.poses.framing import crop_box, crop_resize, keypoints_into
from posecast.poses.keypoints import PoseSequence, save_keypoints
from own_video_testing import VIDEO, dancer_keypoints, fixed_estimator, write_video

SIZE = (64, 32)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 192x96 frame of the synthetic dancer and its pose."""
    path = tmp_path_factory.mktemp("photo") / "first.png"
    Image.fromarray(synth_sequence(1, **VIDEO)[0][0]).save(path)
    return path, dancer_keypoints(1)[0]


def keypoint_file(path: Path, poses: np.ndarray, image_size: tuple[int, int]) -> Path:
    n = len(poses)
    return save_keypoints(path, PoseSequence(poses, image_size, np.arange(n), [f"frame{i}" for i in range(n)]))


def test_a_driving_skeleton_equal_to_the_targets_gives_the_first_frames_labels(photo, tmp_path) -> None:
    path, pose = photo
    box = crop_box(pose, (192, 96), 2.0)
    expected = draw_labels(keypoints_into(pose, box, SIZE)[None], SIZE)[0]
    folder = tmp_path / "pose_dir"  # the layout of `posecast poses`: keypoints.npz (+ labels)
    keypoint_file(folder / "keypoints.npz", np.repeat(pose[None], 4, axis=0), (192, 96))
    first, drv, labels, d = prepare_inputs(path, folder, SIZE, estimator=fixed_estimator(pose, 192))
    assert d.keypoints is not None and len(labels) == 4
    assert all(np.array_equal(label, expected) for label in labels)
    assert np.array_equal(drv, labels)
    assert np.array_equal(first, crop_resize(np.asarray(Image.open(path)), box, SIZE))
    # the same dance filmed twice as large, elsewhere in a larger frame: the same labels again
    moved = np.repeat(pose[None], 3, axis=0)
    moved[..., :2] = moved[..., :2] * 2 + np.array([50.0, 30.0])
    kp = keypoint_file(tmp_path / "moved.npz", moved, (640, 360))
    _, drv2, labels2, _ = prepare_inputs(path, "unused", SIZE, driving_keypoints=kp,
                                         estimator=fixed_estimator(pose, 192))
    assert all(np.array_equal(label, expected) for label in labels2)


def test_a_folder_of_label_images_drives_as_it_is(tmp_path) -> None:
    folder = tmp_path / "labels"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 64, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"frame{i}.png")
    first_path = tmp_path / "first.png"
    Image.fromarray(images[0]).save(first_path)
    first, drv, labels, d = prepare_inputs(first_path, folder, SIZE, estimator=lambda image: None)
    assert d.keypoints is None and np.array_equal(labels, images) and np.array_equal(drv, images)
    assert np.array_equal(first, images[0])


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="posecast")
    animate_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["animate", *argv])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()  # a progress bar may come before the error line
    assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line] == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("error: ")
    return err.splitlines()[-1]


@pytest.mark.slow
def test_animate_with_label_folder_and_truth_writes_a_playable_video(tiny_checkpoint, synth_root, tmp_path,
                                                                      capsys) -> None:
    val = synth_root / "val"
    out = tmp_path / "anim" / "dance.mp4"
    args = parse(["--checkpoint", str(tiny_checkpoint), "--first-frame", str(val / "val_img/frame0.png"),
                  "--driving", str(val / "val_label"), "--truth", str(val / "val_img"), "--out", str(out),
                  "--max-frames", "8"])
    assert animate_cli.run(args) == 0
    text = capsys.readouterr().out
    assert "animated 8 frames driven by label images as they are (no retargeting)" in text
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and np.std(frames[-1]) > 10  # three panels, not a blank picture
    assert out.with_suffix(".gif").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "anim/dance_poses").iterdir()) == [f"frame{i}.png" for i in range(8)]
    assert (tmp_path / "anim/dance_psnr.png").stat().st_size > 0 and "PSNR against the truth: mean" in text


@pytest.mark.slow
def test_bad_inputs_give_one_line_errors(tiny_checkpoint, tmp_path, capsys) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (64, 32), "white").save(mixed / "frame0.png")
    Image.new("RGB", (60, 32), "white").save(mixed / "frame1.png")
    first = tmp_path / "first.png"
    Image.new("RGB", (64, 32), "gray").save(first)
    not_video = tmp_path / "dance.mp4"
    not_video.write_text("hello")
    common = ["--checkpoint", str(tiny_checkpoint), "--first-frame", str(first), "--out", str(tmp_path / "o.mp4")]
    assert animate_cli.run(parse([*common, "--driving", str(mixed)])) == 2
    assert "images of different sizes: frame0.png is 64x32 but frame1.png is 60x32" in one_line_error(capsys)
    assert animate_cli.run(parse([*common, "--driving", str(not_video)]), estimator=lambda im: None) == 2
    assert "not a readable video file" in one_line_error(capsys)
    clip = write_video(tmp_path / "ok.mp4", np.full((4, 32, 64, 3), 80, np.uint8))
    photo = tmp_path / "empty_room.png"
    Image.new("RGB", (96, 48), "gray").save(photo)  # upscaled x6 (576 wide) for the estimator
    video_est = fixed_estimator(dancer_keypoints(1)[0], 192)  # the dancer in every video frame
    est = lambda image: None if image.shape[1] == 576 else video_est(image)  # noqa: E731
    args = parse([*common, "--driving", str(clip)])
    args.first_frame = str(photo)
    assert animate_cli.run(args, estimator=est) == 2
    assert "no person found in the first frame" in one_line_error(capsys)
    assert animate_cli.run(parse([*common[:2], "--first-frame", str(not_video), *common[4:],
                                  "--driving", str(mixed)])) == 2
    assert "not a readable image" in one_line_error(capsys)


def test_missing_first_frame_is_an_animate_error(tmp_path) -> None:
    with pytest.raises(AnimateError, match="no such image file"):
        prepare_inputs(tmp_path / "nope.png", tmp_path, SIZE)
