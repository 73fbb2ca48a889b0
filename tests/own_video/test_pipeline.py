"""Your own video end to end: a synthetic dancer MP4 (PyAV) -> `posecast prepare` -> `posecast
train` (tiny, unchanged) -> `posecast animate` driven by the dataset's keypoints.npz. The pose
estimator is injected through the PoseEstimator protocol with the dancer's known keypoints."""
from __future__ import annotations

import argparse
import json

import av
import numpy as np
import pytest
from PIL import Image

from posecast import cli
from posecast.cli import prepare as prepare_cli
from posecast.cli import animate as animate_cli
from posecast.poses.draw import label_overlap
from posecast.poses.framing import CropBox, keypoints_into
from posecast.poses.keypoints import load_keypoints
from own_video_testing import VIDEO, ListEstimator, dancer_keypoints, dancer_video, fixed_estimator

FRAMES = 60


def parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="posecast")
    module.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.mark.slow
def test_video_to_dataset_to_model_to_animation(tmp_path, capsys) -> None:
    clip = dancer_video(tmp_path / "me_dancing.mp4", FRAMES)
    ds, run = tmp_path / "dataset", tmp_path / "run"
    est = ListEstimator(dancer_keypoints(FRAMES), VIDEO["width"], missing={7})
    args = parse(prepare_cli, ["prepare", str(clip), "--out", str(ds), "--val-seconds", "0.4",
                               "--test-seconds", "0.4", "--margin", "0.05"])
    assert prepare_cli.run(args, estimator=est) == 0
    assert "splits: train 35, val 12, test 12 frames (64x32)" in capsys.readouterr().out
    # `posecast train` runs on it unchanged (the tiny preset: 2 epochs, 4-frame clips, 12-frame validation)
    assert cli.main(["train", "--data", str(ds), "--preset", "tiny", "--out", str(run), "--no-progress"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    # animate the test part's first frame with the test part's poses, against its ground truth
    report = json.loads((ds / "prepare_report.json").read_text())
    seq = load_keypoints(ds / "keypoints.npz")
    start = int(np.flatnonzero(seq.frame_indices == report["source_frames"]["test"][0])[0])
    box = CropBox(**{k: report["crop"][k] for k in ("left", "top", "width", "height")})
    first_pose = keypoints_into(seq.keypoints[start], box, (64, 32))  # the pose in the 64x32 frame
    out = tmp_path / "anim" / "test_dance.mp4"
    args = parse(animate_cli, ["animate", "--checkpoint", str(ckpt), "--first-frame",
                               str(ds / "test/test_img/0/frame0.png"), "--driving", str(clip),
                               "--driving-keypoints", str(ds / "keypoints.npz"), "--start", str(start),
                               "--max-frames", "12", "--truth", str(ds / "gt/0.npz"), "--out", str(out)])
    assert animate_cli.run(args, estimator=fixed_estimator(first_pose, 64)) == 0
    text = capsys.readouterr().out
    assert "animated 12 frames driven by retargeted keypoints" in text and "PSNR against the truth: mean" in text
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    # the first frame's own poses, retargeted onto itself, reproduce the dataset's test labels
    for t in (0, 5, 11):
        ours = np.asarray(Image.open(tmp_path / "anim/test_dance_poses" / f"frame{t}.png"))
        theirs = np.asarray(Image.open(ds / "test/test_label/0" / f"frame{t}.png"))
        assert label_overlap(ours, theirs).f1 > 0.95
    assert (tmp_path / "anim/test_dance_psnr.png").is_file() and out.with_suffix(".gif").is_file()
