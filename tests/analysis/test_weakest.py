"""The weakest frames of a scored rollout: which they are, and their sheet."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from posecast.analysis.weakest import WeakFrame, figure_weakest, plot_weakest, weakest_frames
from posecast.data.lab import VideoSequence
from posecast.rollout import SequenceEval


def _eval(psnr: torch.Tensor, H: int = 8, W: int = 16) -> SequenceEval:
    K, B, S = psnr.shape
    return SequenceEval([f"s{b}" for b in range(B)], torch.rand(K, B, S + 1, 3, H, W), psnr, torch.ones_like(psnr))


def test_weakest_frames_are_the_lowest_mean_over_samples_in_order() -> None:
    p = torch.tensor([[[30.0, 20.0, 25.0], [18.0, 40.0, 20.0]],
                      [[30.0, 22.0, 25.0], [24.0, 40.0, 20.0]]])  # [K=2, B=2, T-1=3]
    ev = _eval(p)
    # means: s0 [30, 21, 25], s1 [21, 40, 20]; frame numbers count from 1 (frame 0 is given)
    assert weakest_frames(ev, 3) == [WeakFrame(1, "s1", 3, 20.0), WeakFrame(0, "s0", 2, 21.0),
                                     WeakFrame(1, "s1", 1, 21.0)]
    assert len(weakest_frames(ev, 100)) == 6
    p[:, 1, 1] = float("nan")  # a diverged frame comes first
    assert [(f.name, f.frame) for f in weakest_frames(_eval(p), 2)] == [("s1", 2), ("s1", 3)]
    with pytest.raises(ValueError, match="at least 1"):
        weakest_frames(ev, 0)


def test_the_sheet_has_one_column_per_weak_frame(tmp_path) -> None:
    p = torch.tensor([[[30.0, 12.0, 25.0, 28.0]]])
    ev = _eval(p)
    u8 = torch.randint(0, 255, (5, 3, 8, 16), dtype=torch.uint8)
    seq = VideoSequence("s0", u8, u8.clone())
    two = plot_weakest(ev, [seq], tmp_path / "two.png", k=2)
    four = plot_weakest(ev, [seq], tmp_path / "four.png", k=9)  # no more than there are frames
    assert [f.frame for f in two] == [2, 3] and len(four) == 4
    w2, w4 = Image.open(tmp_path / "two.png").width, Image.open(tmp_path / "four.png").width
    assert w4 > 1.6 * w2


def test_each_column_shows_its_frame_prediction_truth_and_pose() -> None:
    T, H, W = 5, 8, 16
    truth = torch.randint(0, 255, (T, 3, H, W), dtype=torch.uint8)
    pose = torch.randint(0, 255, (T, 3, H, W), dtype=torch.uint8)
    pred = truth.float()[None, None] / 255  # [K=1, B=1, T, 3, H, W]: right everywhere but frame 3
    pred[0, 0, 3] = 1 - pred[0, 0, 3]
    ev = SequenceEval(["s0"], pred, torch.tensor([[[40.0, 35.0, 9.0, 30.0]]]), torch.ones(1, 1, 4))
    frames = weakest_frames(ev, 2)
    assert [f.frame for f in frames] == [3, 4]
    fig = figure_weakest(ev, [VideoSequence("s0", truth, pose)], frames)
    shown = [torch.from_numpy(np.asarray(ax.images[0].get_array(), dtype=np.float32)) for ax in fig.axes]  # row by row: prediction, truth, pose, error
    for c, f in enumerate(frames):
        assert torch.allclose(shown[c], pred[0, 0, f.frame].permute(1, 2, 0))
        assert torch.allclose(shown[2 + c], truth[f.frame].permute(1, 2, 0).float() / 255)
        assert torch.allclose(shown[4 + c], pose[f.frame].permute(1, 2, 0).float() / 255)
    assert float(shown[6].mean()) > 0.1 and float(shown[7].max()) < 1e-6  # the error of frame 3 only (frame 4 is right)
