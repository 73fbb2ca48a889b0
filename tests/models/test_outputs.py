"""Output modes (posecast.models.outputs): invariants of each mode's blend."""
from __future__ import annotations

import torch

import pytest

from posecast.models.outputs import (FLOW, FLOW_MAX, bounded_flow, compose_frame, init_output_layer, output_channels,
                                    pose_change_gate, warp)


def test_channels_per_mode() -> None:
    modes = ("direct", "residual", "masked", "masked_first", "composite", "warped_first")
    assert [output_channels(m) for m in modes] == [3, 3, 4, 4, 6, 6]


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


def test_zero_flow_is_the_identity_and_a_flow_moves_the_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 6, 7, generator=g)
    torch.testing.assert_close(warp(image, torch.zeros(2, 2, 6, 7)), image, atol=1e-6, rtol=0)
    right = torch.zeros(2, 2, 6, 7)
    right[:, 0] = 2.0  # each pixel reads the one two columns to its right
    torch.testing.assert_close(warp(image, right)[..., :5], image[..., 2:], atol=1e-6, rtol=0)
    torch.testing.assert_close(warp(image, right)[..., 5:], image[..., 6:].expand(2, 3, 6, 2), atol=1e-6, rtol=0)  # edge
    down = torch.zeros(2, 2, 6, 7)
    down[:, 1] = -1.0  # each pixel reads the one above it
    torch.testing.assert_close(warp(image, down)[:, :, 1:], image[:, :, :5], atol=1e-6, rtol=0)
    half = torch.zeros(2, 2, 6, 7)
    half[:, 0] = 0.5  # bilinear: halfway between two columns
    torch.testing.assert_close(warp(image, half)[..., :6], (image[..., :6] + image[..., 1:]) / 2, atol=1e-6, rtol=0)


def test_warped_first_blends_over_the_warped_first_frame_and_gradients_reach_the_flow() -> None:
    g = torch.Generator().manual_seed(1)
    prev, first = torch.rand(2, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    closed = torch.cat([torch.zeros(2, 3, 4, 5), torch.full((2, 1, 4, 5), -1e4), torch.zeros(2, 2, 4, 5)], 1)
    torch.testing.assert_close(compose_frame("warped_first", closed, prev, first), first, atol=1e-6, rtol=0)
    out = torch.cat([torch.randn(2, 4, 4, 5, generator=g), 0.3 * torch.randn(2, 2, 4, 5, generator=g)], 1)
    out.requires_grad_(True)
    frame = compose_frame("warped_first", out, prev, first)
    expected = compose_frame("masked_first", out[:, :4], prev, warp(first, bounded_flow(out[:, FLOW])))
    torch.testing.assert_close(frame, expected)
    (frame - torch.rand(2, 3, 4, 5, generator=g)).pow(2).sum().backward()
    assert (out.grad[:, FLOW] != 0).any()  # the flow learns
    opened = out.detach().clone()
    opened[:, 3] = 1e4  # an open mask: the new pixels, whatever the flow
    torch.testing.assert_close(compose_frame("warped_first", opened, prev, first), torch.sigmoid(opened[:, :3]))


def test_the_flow_is_bounded_and_the_identity_near_zero() -> None:
    raw = torch.tensor([0.0, 0.01, -0.5, 1e8, -1e8, float(FLOW_MAX)])
    flow = bounded_flow(raw)
    torch.testing.assert_close(flow[:3], raw[:3], atol=1e-4, rtol=1e-3)  # small flows as they are
    assert flow.abs().max() <= FLOW_MAX and flow[3] == FLOW_MAX and flow[4] == -FLOW_MAX  # never beyond


def test_init_output_layer_zeroes_the_flow_channels_only() -> None:
    conv = torch.nn.Conv2d(8, 6, 3, padding=1)
    before = conv.weight.detach().clone()
    init_output_layer(conv, "masked_first")
    assert torch.equal(conv.weight, before)  # other modes: untouched
    init_output_layer(conv, "warped_first")
    assert (conv.weight[FLOW] == 0).all() and (conv.bias[FLOW] == 0).all()
    assert torch.equal(conv.weight[:4], before[:4])


def test_pose_change_gate_is_the_changed_pixels_grown_by_the_radius() -> None:
    g = torch.Generator().manual_seed(2)
    first = torch.randint(0, 256, (2, 3, 9, 11), generator=g).float() / 255
    assert torch.equal(pose_change_gate(first.clone(), first, 2), torch.zeros(2, 1, 9, 11))  # the same pose
    pose = first.clone()
    pose[0, 1, 4, 5] += 1 / 255  # one uint8 level in one channel of one pixel
    pose[1, 0, 0, 10] = 1 - pose[1, 0, 0, 10]  # a corner
    expected = torch.zeros(2, 1, 9, 11)
    expected[0, 0, 2:7, 3:8] = 1  # a 5 x 5 square about (4, 5)
    expected[1, 0, 0:3, 8:11] = 1  # clipped at the corner
    assert torch.equal(pose_change_gate(pose, first, 2), expected)
    assert torch.equal(pose_change_gate(pose, first, 0), (pose != first).any(1, keepdim=True).float())
    assert torch.equal(pose_change_gate(first + 0.4 / 255, first, 3), torch.zeros(2, 1, 9, 11))  # below half a level


@pytest.mark.parametrize("mode", ["masked_first", "warped_first"])
def test_a_closed_gate_keeps_the_first_frame_and_an_open_one_changes_nothing(mode: str) -> None:
    g = torch.Generator().manual_seed(3)
    prev, first = torch.rand(2, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    out = torch.randn(2, output_channels(mode), 4, 5, generator=g) * 3  # any logits, flow included
    torch.testing.assert_close(compose_frame(mode, out, prev, first, torch.zeros(2, 1, 4, 5)), first, atol=1e-6, rtol=0)
    assert torch.equal(compose_frame(mode, out, prev, first, torch.ones(2, 1, 4, 5)), compose_frame(mode, out, prev, first))
    half = torch.zeros(2, 1, 4, 5)
    half[..., :2] = 1
    frame = compose_frame(mode, out, prev, first, half)
    torch.testing.assert_close(frame[..., 2:], first[..., 2:], atol=1e-6, rtol=0)
    assert (frame[..., :2] - first[..., :2]).abs().mean() > 0.05
    with pytest.raises(ValueError, match="pose gate"):
        compose_frame("direct", out[:, :3], prev, first, half)
