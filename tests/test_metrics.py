"""PSNR and SSIM per frame against hand-computed values (posecast.metrics)."""
from __future__ import annotations

import math

import pytest
import torch

from posecast.metrics import psnr, ssim


def test_psnr_hand_computed() -> None:
    target = torch.zeros(3, 4, 6)
    assert psnr(torch.full_like(target, 0.5), target).item() == pytest.approx(10 * math.log10(4))  # 6.0206
    assert psnr(torch.full_like(target, 0.1), target).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(torch.ones_like(target), target).item() == pytest.approx(0.0, abs=1e-6)
    half = target.clone()
    half[:, :2] = 1.0  # half the pixels wrong by 1: MSE 0.5
    assert psnr(half, target).item() == pytest.approx(10 * math.log10(2), abs=1e-5)  # 3.0103


def test_psnr_of_uint8_levels() -> None:
    # one grey level off everywhere: MSE (1/255)^2 -> 48.13 dB
    a = torch.full((3, 8, 8), 100 / 255)
    b = torch.full((3, 8, 8), 101 / 255)
    assert psnr(a, b).item() == pytest.approx(20 * math.log10(255), abs=1e-3)


def test_psnr_identical_is_capped() -> None:
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(psnr(x, x), torch.full((2,), 100.0))
    assert torch.equal(psnr(x, x, max_db=60.0), torch.full((2,), 60.0))


def test_psnr_is_per_frame_not_per_batch() -> None:
    target = torch.zeros(2, 5, 3, 4, 4)  # [B, T, C, H, W]
    pred = target.clone()
    pred[0] = 0.1  # 20 dB
    pred[1] = 0.01  # 40 dB
    pred[1, 4] = 0.5  # one frame at 6.02 dB
    got = psnr(pred, target)
    assert got.shape == (2, 5)
    expected = torch.tensor([[20.0] * 5, [40.0] * 4 + [10 * math.log10(4)]])
    assert torch.allclose(got, expected, atol=1e-3)
    # one MSE over the batch would give a single, lower number for everything
    batch_mse = (pred - target).pow(2).mean()
    assert got.mean() > 10 * torch.log10(1 / batch_mse) + 5


def test_psnr_accepts_half_precision_inputs() -> None:
    a = torch.zeros(1, 3, 4, 4, dtype=torch.bfloat16)
    assert psnr(a + 0.5, a).dtype == torch.float32


def test_ssim_identical_and_shape() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 3, 32, 64, generator=g)
    s = ssim(x, x)
    assert s.shape == (2, 3)
    assert torch.allclose(s, torch.ones(2, 3), atol=1e-5)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert (ssim(noisy, x) < 0.9).all()


def test_baselines_copy_first_and_median_frame_hand_computed() -> None:
    """Frame 0 black, frames 1-4 white but for one grey frame: exact PSNRs of both baselines."""
    from posecast.analysis.baselines import baseline_psnrs, copy_first, median_frame

    frames = torch.ones(5, 3, 4, 4)
    frames[0] = 0.0
    frames[3] = 0.5
    # copying frame 0 (black): white frames have MSE 1 (0 dB), the grey one MSE 0.25 (6.02 dB)
    assert copy_first(frames).tolist() == pytest.approx([0.0, 0.0, 10 * math.log10(4), 0.0], abs=1e-5)
    # the per-pixel median of (0, 1, 1, 0.5, 1) is 1: the white frames are exact (capped at 100 dB)
    assert median_frame(frames).tolist() == pytest.approx([100.0, 100.0, 10 * math.log10(4), 100.0], abs=1e-4)
    means = baseline_psnrs(frames)
    assert means["copy_first"] == pytest.approx(10 * math.log10(4) / 4, abs=1e-5)
    assert means["median_frame"] == pytest.approx((300 + 10 * math.log10(4)) / 4, abs=1e-4)
