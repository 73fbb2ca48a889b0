"""animate with ground truth: PSNR beside copying the first frame forward, and a warning in words."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from posecast.inference.animate import AnimateResult, _psnr_plot


def _result(mean: float, copy: float, tmp_path: Path) -> AnimateResult:
    return AnimateResult(tmp_path / "a.mp4", tmp_path / "a.gif", tmp_path / "a_poses", 4, "keypoints",
                         psnr_plot=tmp_path / "a_psnr.png", mean_psnr=mean, baseline_psnr=copy)


def test_psnr_beside_copying_the_first_frame(tmp_path: Path) -> None:
    truth = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    truth[1:, :, :4] = 255  # frames 1..3: half the pixels changed from frame 0
    pred = truth.float() / 255
    pred[1:, :, 4:] = 0.5  # right where the truth changed, off by 0.5 where it did not
    mean, copy, plot = _psnr_plot(pred, truth, tmp_path / "a_psnr.png")
    assert copy == pytest.approx(10 * math.log10(2), abs=1e-4)  # frame 0 copied: MSE 1/2
    assert mean == pytest.approx(10 * math.log10(8), abs=1e-4)  # MSE 1/8
    assert plot.stat().st_size > 0


@pytest.mark.parametrize("mean, warned", [(20.0, True), (21.0, True), (25.0, False)])
def test_an_animation_that_does_not_beat_copying_is_warned_about(mean: float, warned: bool, tmp_path: Path) -> None:
    text = _result(mean, 21.0, tmp_path).describe()
    assert f"PSNR against the truth: mean {mean:.2f} dB (copying the first frame forward: 21.00 dB)" in text
    assert ("warning: the animation does not beat copying the first frame" in text) == warned
