"""`posecast animate`: retargeted labels, the label-folder route, outputs, and bad inputs."""
from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from posecast.data.synth import synth_sequence
from posecast.cli import animate as animate_cli
from posecast.inference.animate import (AnimateError, Driving, animate, check_device, check_numbers, check_out,
                                        draw_labels, output_paths, prepare_inputs, preview_tiles, removed_on_error)
from posecast.inference.preview import overlay, preview_scale, skeleton_layer, write_preview
from posecast.poses.draw import limb_mask
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
    inputs = prepare_inputs(path, folder, SIZE, estimator=fixed_estimator(pose, 192))
    first, drv, labels, d = inputs.first, inputs.driving_labels, inputs.labels, inputs.driving
    assert d.keypoints is not None and len(labels) == 4 and inputs.mode == "keypoints"
    assert all(np.array_equal(label, expected) for label in labels)
    assert np.array_equal(drv, labels)
    assert np.array_equal(first, crop_resize(np.asarray(Image.open(path)), box, SIZE))
    # the same dance filmed twice as large, elsewhere in a larger frame: the same labels again
    moved = np.repeat(pose[None], 3, axis=0)
    moved[..., :2] = moved[..., :2] * 2 + np.array([50.0, 30.0])
    kp = keypoint_file(tmp_path / "moved.npz", moved, (640, 360))
    labels2 = prepare_inputs(path, "unused", SIZE, driving_keypoints=kp,
                             estimator=fixed_estimator(pose, 192)).labels
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
    inputs = prepare_inputs(first_path, folder, SIZE, estimator=lambda image: None)
    first, drv, labels, d = inputs.first, inputs.driving_labels, inputs.labels, inputs.driving
    assert inputs.mode == "labels" and d.keypoints is None and np.array_equal(labels, images) and np.array_equal(drv, images)
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
    common = ["--checkpoint", str(tiny_checkpoint), "--first-frame", str(first), "--out", str(tmp_path / "new/o.mp4")]
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
    truth = tmp_path / "one_frame"
    truth.mkdir()
    Image.new("RGB", (64, 32), "white").save(truth / "frame0.png")
    assert animate_cli.run(parse([*common, "--driving", str(clip), "--truth", str(truth)]), estimator=est) == 2
    assert "one_frame: the ground truth has 1 frame(s)" in one_line_error(capsys)
    assert animate_cli.run(parse([*common, "--driving", str(clip), "--device", "gpu0"]), estimator=est) == 2
    assert "device: 'gpu0' is not a device" in one_line_error(capsys)
    assert not (tmp_path / "new").exists()  # no failure left an output folder behind


def test_missing_first_frame_is_an_animate_error(tmp_path) -> None:
    with pytest.raises(AnimateError, match="no such image file"):
        prepare_inputs(tmp_path / "nope.png", tmp_path, SIZE)


class CountingEstimator:
    """Finds nobody in images ``width`` wide (the photo, upscaled), the dancer elsewhere; counts calls."""

    def __init__(self, width: int) -> None:
        self.width, self.calls, self.video = width, 0, fixed_estimator(dancer_keypoints(1)[0], 192)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        self.calls += 1
        return None if image.shape[1] == self.width else self.video(image)


def test_the_first_frame_is_checked_before_the_driving_video_is_posed(tmp_path) -> None:
    clip = write_video(tmp_path / "dance.mp4", synth_sequence(6, **VIDEO)[0])
    photo = tmp_path / "empty_room.png"
    Image.new("RGB", (96, 48), "gray").save(photo)  # upscaled x6 (576 wide) for the estimator
    est = CountingEstimator(576)
    with pytest.raises(AnimateError, match="empty_room.png: no person found in the first frame"):
        prepare_inputs(photo, clip, SIZE, estimator=est)
    assert est.calls == 1  # the photo only: not one video frame was posed
    # with a person in the photo, the video is posed only as far as --start + --max-frames
    est = CountingEstimator(-1)
    inputs = prepare_inputs(tmp_path / "empty_room.png", clip, SIZE, estimator=est, start=1, max_frames=3)
    assert est.calls == 1 + 4 and len(inputs.labels) == 3
    assert [inputs.driving.frame_number(t) for t in range(3)] == [1, 2, 3]


def test_arguments_are_checked_with_messages_naming_them(tmp_path) -> None:
    check_numbers(start=0, max_frames=2, fps=12.5)
    for kwargs, text in [({"start": -1}, "start: must be 0 or more"), ({"max_frames": 1}, "max_frames: at least 2"),
                         ({"fps": 0.0}, "fps: must be a positive"), ({"fps": float("nan")}, "fps: must be a positive")]:
        with pytest.raises(AnimateError, match=text):
            check_numbers(**kwargs)
    assert check_out(tmp_path / "a" / "b") == tmp_path / "a" / "b.mp4"
    with pytest.raises(AnimateError, match="the output must be an .mp4"):
        check_out(tmp_path / "dance.avi")
    with pytest.raises(AnimateError, match="is a folder"):
        check_out(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnimateError, match="cannot write under"):
        check_out(tmp_path / "file" / "dance.mp4")
    with pytest.raises(AnimateError, match="device: 'gpu0' is not a device"):
        check_device("gpu0")


@pytest.mark.parametrize("argv, text", [(["--fps", "0"], "--fps: must be a positive frame rate, got 0"),
                                        (["--max-frames", "1"], "--max-frames: must be 2 or more"),
                                        (["--start", "-2"], "--start: must be 0 or more")])
def test_bad_numbers_stop_at_parsing(argv, text, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        parse(["--checkpoint", "c", "--first-frame", "f", "--driving", "d", "--out", "o.mp4", *argv])
    assert stop.value.code == 2 and text in capsys.readouterr().err


def test_a_failure_removes_what_it_wrote(tmp_path) -> None:
    out = tmp_path / "new" / "deeper" / "dance.mp4"
    with pytest.raises(RuntimeError), removed_on_error(out):
        out.write_bytes(b"half")
        raise RuntimeError("the encoder failed")
    assert not (tmp_path / "new").exists()  # the folders it made are gone
    keep = tmp_path / "mine.txt"
    keep.write_text("not ours")
    out = tmp_path / "dance.mp4"
    with pytest.raises(RuntimeError), removed_on_error(out):
        for path in output_paths(out).values():
            path.mkdir() if path.name.endswith("_poses") else path.write_bytes(b"x")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def _blocks(mask: np.ndarray, scale: int) -> np.ndarray:
    """[H*s, W*s] bool -> [H, W]: whether each s x s block has a True pixel."""
    h, w = mask.shape[0] // scale, mask.shape[1] // scale
    return mask.reshape(h, scale, w, scale).any(axis=(1, 3))


def test_the_preview_draws_the_models_skeletons_thick_over_the_first_frame(photo, tmp_path) -> None:
    path, pose = photo
    moved = np.repeat(pose[None], 8, axis=0)
    moved[:, :, 0] += np.arange(8)[:, None] * 3.0  # the dancer walks right
    kp = keypoint_file(tmp_path / "walk.npz", moved, (192, 96))
    inputs = prepare_inputs(path, "unused", SIZE, driving_keypoints=kp, estimator=fixed_estimator(pose, 192))
    tiles = preview_tiles(inputs)
    assert [c for c, _ in tiles] == ["first frame: its own pose"] + [f"driving frame {i}, retargeted" for i in range(5)]
    scale = preview_scale(SIZE)
    assert scale == 8
    for t, (_, kwargs) in enumerate(tiles[1:]):
        layer = skeleton_layer(SIZE, scale, **kwargs)
        drawn = _blocks(limb_mask(layer), scale)
        # what the model gets lies under the thick lines (within 1 px: a 1-px line at 64x32 and a
        # wide one at 8x take slightly different pixel steps), and nothing else is drawn
        label = limb_mask(inputs.labels[t])
        near = np.ones((3, 3), bool)
        assert label.any() and not (label & ~binary_dilation(drawn, near)).any()
        assert not (drawn & ~binary_dilation(label, near)).any()
        shown = overlay(inputs.first, layer)
        painted = limb_mask(layer)
        assert shown.shape == (32 * scale, 64 * scale, 3)
        assert (shown[painted].min(axis=-1) < 10).all()  # saturated colours, not the labels' pale ones
        assert painted.sum() > 20 * label.sum()  # thick: a 1-px limb becomes ~8 x 4 pixels
    sheet = write_preview(tmp_path / "p" / "preview.png", inputs.first, tiles, SIZE)
    assert Image.open(sheet).size == (3 * (64 * scale + 4) + 4, 2 * (32 * scale + 24 + 4) + 4)


def test_the_labels_route_previews_its_labels_enlarged(tmp_path) -> None:
    label = np.full((32, 64, 3), 255, np.uint8)
    label[5:25, 30] = (214, 214, 255)  # a pale blue limb, as the dataset draws them
    d = Driving("labels", labels=np.stack([label] * 3), first_index=4)
    first = np.zeros((32, 64, 3), np.uint8)
    inputs = prepare_inputs(_png(tmp_path / "first.png", first), d, SIZE)
    tiles = preview_tiles(inputs)
    assert [c for c, _ in tiles] == ["label 4 (as it is)", "label 5 (as it is)", "label 6 (as it is)"]
    shown = overlay(inputs.first, skeleton_layer(SIZE, 8, **tiles[0][1]))
    assert (shown[40:200, 240:248] == (0, 0, 255)).all() and (shown[:, :240] == 0).all()


def _png(path: Path, image: np.ndarray) -> Path:
    Image.fromarray(image).save(path)
    return path


@pytest.mark.slow
def test_preview_writes_only_the_preview_and_names_it(tiny_checkpoint, photo, tmp_path, capsys) -> None:
    path, pose = photo
    folder = tmp_path / "pose_dir"
    keypoint_file(folder / "keypoints.npz", np.repeat(pose[None], 4, axis=0), (192, 96))
    out = tmp_path / "out" / "me.mp4"
    args = parse(["--checkpoint", str(tiny_checkpoint), "--first-frame", str(path), "--driving", str(folder),
                  "--out", str(out), "--preview"])
    assert animate_cli.run(args, estimator=fixed_estimator(pose, 192)) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"preview: {tmp_path / 'out' / 'me_preview.png'}\n")
    assert "retargeted" in text and "run again without --preview" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["me_preview.png"]  # nothing generated
    assert Image.open(tmp_path / "out" / "me_preview.png").size[0] > 1000


@pytest.mark.slow
def test_the_result_carries_the_copy_frame_0_baseline(tiny_checkpoint, synth_root, tmp_path) -> None:
    val = synth_root / "val"
    r = animate(tiny_checkpoint, val / "val_img/frame0.png", val / "val_label", tmp_path / "a.mp4",
                truth=val / "val_img", max_frames=6)
    truth = np.stack([np.asarray(Image.open(val / f"val_img/frame{i}.png"), np.float64) / 255 for i in range(6)])
    mse = ((truth[1:] - truth[0]) ** 2).mean(axis=(1, 2, 3))  # the first frame is val_img/frame0.png itself
    assert r.baseline_psnr == pytest.approx(float(np.mean(10 * np.log10(1 / mse))), abs=1e-4)
    assert r.mean_psnr is not None and r.preview == tmp_path / "a_preview.png" and r.preview.is_file()
    assert r.psnr_plot.is_file()
