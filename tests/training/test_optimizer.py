"""optim.optim, the lab's --optim: Adam or AdamW with torch's defaults (the recipes use Adam)."""
from __future__ import annotations

import torch

from posecast.config import OptimConfig
from posecast.training.step import make_optimizer


def test_adam_and_adamw_with_torch_s_default_weight_decay() -> None:
    model = torch.nn.Linear(3, 2)
    adam = make_optimizer(model, OptimConfig(lr=0.01))
    adamw = make_optimizer(model, OptimConfig(lr=0.01, optim="AdamW"))
    assert type(adam) is torch.optim.Adam and type(adamw) is torch.optim.AdamW
    assert (adam.param_groups[0]["weight_decay"], adamw.param_groups[0]["weight_decay"]) == (0, 0.01)
    assert adam.param_groups[0]["lr"] == adamw.param_groups[0]["lr"] == 0.01
