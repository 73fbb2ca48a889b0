"""Per-frame image metrics with pixels in [0, 1]."""
from __future__ import annotations

import torch


def psnr(pred: torch.Tensor, target: torch.Tensor, *, max_db: float = 100.0) -> torch.Tensor:
    """PSNR in dB per image: 10 * log10(1 / MSE), MSE over the last three dims.

    pred, target: [..., C, H, W] in [0, 1]; returns [...]. Each frame has its own MSE (never one
    MSE over the batch). Identical images give ``max_db``.
    """
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-max_db / 10)))).clamp_max(max_db)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM per image (torchmetrics, Gaussian window 11, sigma 1.5). [..., C, H, W] -> [...]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    lead = pred.shape[:-3]
    p = pred.float().reshape(-1, *pred.shape[-3:])
    t = target.float().reshape(-1, *target.shape[-3:])
    out = [structural_similarity_index_measure(p[i:i + 256], t[i:i + 256], data_range=1.0,
                                               reduction="none") for i in range(0, len(p), 256)]
    return torch.cat(out).reshape(lead)
