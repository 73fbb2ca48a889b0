"""Output modes (posecast.models.outputs): invariants of each mode's blend."""
from __future__ import annotations

import torch

from posecast.models.outputs import compose_frame, output_channels


def test_channels_per_mode() -> None:
    assert [output_channels(m) for m in ("direct", "residual", "masked", "masked_first", "composite")] == [3, 3, 4, 4, 6]


def test_each_mode_blends_as_documented() -> None:
    g = torch.Generator().manual_seed(0)
    prev, first = torch.rand(2, 3, 4, 5, generator=g) * 0.9 + 0.05, torch.rand(2, 3, 4, 5, generator=g)
    # residual: a zero change copies the previous frame
    assert torch.allclose(compose_frame("residual", torch.zeros(2, 3, 4, 5), prev, first), prev, atol=1e-6)
    # masked / masked_first: a closed mask (logit -inf) keeps the base, an open one shows the new pixels
    closed = torch.cat([torch.zeros(2, 3, 4, 5), torch.full((2, 1, 4, 5), -1e4)], 1)
    assert torch.equal(compose_frame("masked", closed, prev, first), prev)
    assert torch.equal(compose_frame("masked_first", closed, prev, first), first)
    opened = torch.cat([torch.zeros(2, 3, 4, 5), torch.full((2, 1, 4, 5), 1e4)], 1)
    assert torch.equal(compose_frame("masked", opened, prev, first), torch.full_like(prev, 0.5))
    # composite: all weight on the previous frame gives it back
    w = torch.cat([torch.zeros(2, 3, 4, 5), torch.full((2, 1, 4, 5), -1e4), torch.full((2, 1, 4, 5), 1e4),
                   torch.full((2, 1, 4, 5), -1e4)], 1)
    assert torch.allclose(compose_frame("composite", w, prev, first), prev)
    # direct: the sigmoid of the logits
    x = torch.randn(2, 3, 4, 5, generator=g)
    assert torch.equal(compose_frame("direct", x, prev, first), torch.sigmoid(x))
