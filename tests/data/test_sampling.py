"""Clip sampling (posecast.data.sampling): clip starts, the epoch's batches, clip orders, anchors,
teacher-forcing masks."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from posecast.data.lab import DataError, VideoSequence, load_split
from torch.nn import functional as F

from posecast.data.sampling import (Batch, ClipSampler, augment, clip_starts, feet, gather_clips, rank_share,
                                    tf_mask_for, validation_clips, zoom, zoom_grid)
from posecast_testing import tiny_config


def test_clip_starts() -> None:
    assert clip_starts(24, 4, None) == [0, 4, 8, 12, 16, 20]  # non-overlapping, as in the lab
    assert clip_starts(25, 4, None) == [0, 4, 8, 12, 16, 20]  # a partial clip at the end is dropped
    assert clip_starts(24, 4, 2) == list(range(0, 21, 2))
    assert clip_starts(24, 4, 1) == list(range(21))
    assert clip_starts(24, 4, None, 0.5) == [0, 4, 8]  # partial: the first part of the clips
    assert clip_starts(24, 4, None, 0.01) == [0]  # never empty
    assert clip_starts(4, 4, None) == [0]
    with pytest.raises(DataError, match="fewer than one training clip"):
        clip_starts(3, 4, None)


def _sampler(seq, **overrides) -> ClipSampler:
    cfg = tiny_config(**overrides)
    return ClipSampler.from_config(seq, cfg.data, cfg.runtime.seed)


def test_partial_fast_train_and_stride(synth_root: Path) -> None:
    seq = load_split(synth_root, "train")
    part = _sampler(seq, partial=0.5)
    assert part.starts(0) == part.starts(5) == [0, 4, 8]
    assert _sampler(seq, clip_stride=2).starts(0) == list(range(0, 21, 2))
    fast = _sampler(seq, fast_train=True, fast_partial=0.5, fast_train_epoch=2, partial=1.0)
    assert [len(fast.starts(e)) for e in range(4)] == [3, 3, 6, 6]  # fast_partial for 2 epochs
    # every clip exactly once per epoch, in an order fixed by (seed, epoch)
    for e in range(3):
        got = torch.cat(fast.batches(e)).tolist()
        assert sorted(got) == fast.starts(e) and got == torch.cat(fast.batches(e)).tolist()
    assert [len(b) for b in fast.batches(2)] == [2, 2, 2]
    assert torch.cat(fast.batches(2)).tolist() != torch.cat(fast.batches(3)).tolist()
    frames, poses = gather_clips(seq, torch.tensor([8, 0]), 4)
    assert frames.shape == poses.shape == (2, 4, 3, 32, 64) and frames.dtype == torch.uint8
    assert torch.equal(frames[0], seq.frames[8:12]) and torch.equal(poses[1], seq.poses[0:4])
    batches = list(fast.epoch(2))  # the clips of those batches, in the same order
    assert [len(b) for b in batches] == [2, 2, 2] and all(b.anchor is None for b in batches)
    assert torch.equal(batches[0].frames, gather_clips(seq, fast.batches(2)[0], 4)[0])


def test_a_ddp_rank_takes_its_share_of_each_global_batch() -> None:
    batches = [torch.tensor([5, 1, 3, 0]), torch.tensor([4, 2, 7]), torch.tensor([6])]
    assert [b.tolist() for b in rank_share(batches, 0, 2)] == [[5, 1], [4, 2]]
    assert [b.tolist() for b in rank_share(batches, 1, 2)] == [[3, 0], [7]]
    assert rank_share(batches, 0, 1) == batches


def test_tf_mask_coin_modes() -> None:
    rng = random.Random(0)
    state = rng.getstate()
    assert tf_mask_for("epoch", 0.3, 5, rng, True).tolist() == [True] * 5
    assert tf_mask_for("epoch", 0.3, 5, rng, False).tolist() == [False] * 5
    assert rng.getstate() == state  # the epoch coin was flipped once, before
    batch = [tf_mask_for("batch", 0.5, 5, rng, True) for _ in range(400)]
    assert all(m.all() or not m.any() for m in batch)  # one coin per batch
    assert 0.4 < sum(bool(m[0]) for m in batch) / 400 < 0.6
    step = torch.stack([tf_mask_for("step", 0.5, 5, rng, True) for _ in range(400)])
    assert step.dtype == torch.bool and step.shape == (400, 5)
    assert sum(bool(m.any() and not m.all()) for m in step) > 300  # one coin per step
    assert 0.4 < step.float().mean() < 0.6
    for mode in ("batch", "step"):
        assert not tf_mask_for(mode, 0.0, 5, rng, True).any()
        assert tf_mask_for(mode, 1.0, 5, rng, False).all()


@pytest.mark.parametrize("order", ["random", "mixed"])
def test_clip_order_draws_frames_with_their_own_poses(synth_root: Path, order: str) -> None:
    seq = load_split(synth_root, "train")
    n, T = len(seq), tiny_config().data.train_vi_len
    starts = torch.tensor([0, 4, 8, 12] * 4)
    gen = torch.Generator().manual_seed(0)
    frames, poses = gather_clips(seq, starts, T, order, gen)
    again, _ = gather_clips(seq, starts, T, order, torch.Generator().manual_seed(0))
    assert torch.equal(frames, again)  # seeded
    consecutive = 0
    for b in range(len(starts)):
        idx = []
        for t in range(frames.shape[1]):
            i = [k for k in range(n) if torch.equal(seq.frames[k], frames[b, t])]
            assert i and any(torch.equal(seq.poses[k], poses[b, t]) for k in i)  # a frame keeps its pose
            idx.append(i[0])
        consecutive += idx == list(range(idx[0], idx[0] + len(idx)))
    assert consecutive < len(starts)
    if order == "random":
        assert consecutive == 0
    else:
        assert consecutive > 0
    plain, _ = gather_clips(seq, starts, T, order)  # validation: no generator, always consecutive
    assert torch.equal(plain, seq.frames[starts[:, None] + torch.arange(frames.shape[1])])


def _moves(src: torch.Tensor, dst: torch.Tensor, shift_x: int) -> list[tuple[int, bool]]:
    """The (dx, mirror) that turn src into dst: shifted right by dx, the edge column repeated."""
    W = src.shape[-1]
    found = []
    for dx in range(-shift_x, shift_x + 1):
        cols = (torch.arange(W) - dx).clamp(0, W - 1)
        for mirror in (False, True):
            if torch.equal(dst, src[..., cols.flip(0) if mirror else cols]):
                found.append((dx, mirror))
    return found


def test_augment_moves_clip_poses_and_anchor_alike() -> None:
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (64, 3, 3, 4, 10), dtype=torch.uint8, generator=g)
    batch = Batch(frames, frames.clone(), frames[:, 1].clone())
    out = augment(batch, 3, True, torch.Generator().manual_seed(1))
    assert out.frames.shape == frames.shape and out.frames.dtype == torch.uint8
    assert torch.equal(out.frames, out.poses) and torch.equal(out.anchor, out.frames[:, 1])  # one move per sample
    moves = [_moves(frames[b], out.frames[b], 3) for b in range(len(frames))]
    assert all(len(m) == 1 for m in moves), moves  # exactly one shift within the range, maybe mirrored
    assert len({m[0][0] for m in moves}) >= 5 and 16 < sum(m[0][1] for m in moves) < 48  # random, ~half mirrored
    plain = augment(Batch(frames, frames, None), 0, False, torch.Generator().manual_seed(1))
    assert torch.equal(plain.frames, frames) and plain.anchor is None  # nothing to do: unchanged
    again = augment(batch, 3, True, torch.Generator().manual_seed(1))
    assert torch.equal(again.frames, out.frames)  # seeded


def test_mask_fill_marks_exactly_the_columns_the_shift_filled_in() -> None:
    """mask_fill: ``valid`` is false where a column holds the repeated edge, not a pixel of the
    sample; the counted columns hold the sample's own pixels, moved; the draws are unchanged."""
    g = torch.Generator().manual_seed(0)
    W = 10
    frames = torch.randint(0, 256, (64, 3, 3, 4, W), dtype=torch.uint8, generator=g)
    batch = Batch(frames, frames.clone(), frames[:, 1].clone())
    out = augment(batch, 3, True, torch.Generator().manual_seed(1), mask_fill=True)
    assert augment(batch, 3, True, torch.Generator().manual_seed(1)).valid is None  # asked only
    assert torch.equal(out.frames, augment(batch, 3, True, torch.Generator().manual_seed(1)).frames)
    assert out.valid.shape == (64, 4, W) and out.valid.dtype == torch.bool  # [B, H, W]
    filled = set()
    for b in range(len(frames)):
        (dx, mirror), = _moves(frames[b], out.frames[b], 3)
        src = torch.arange(W) - dx  # shifted right by dx: column c shows the sample's column c - dx
        inside = (src >= 0) & (src < W)
        expected = inside.flip(0) if mirror else inside
        assert torch.equal(out.valid[b], expected.expand(4, W)), (b, dx, mirror)
        assert int((~out.valid[b]).sum()) == 4 * abs(dx)
        seen = out.frames[b].flip(-1) if mirror else out.frames[b]  # undo the mirror
        assert torch.equal(seen[..., inside], frames[b][..., src[inside]])  # counted: real pixels
        filled.add(abs(dx))
    assert filled == {0, 1, 2, 3}
    still = augment(batch, 0, True, torch.Generator().manual_seed(1), mask_fill=True)
    assert still.valid.all()  # a mirror alone fills nothing in
    again = augment(out, 3, False, torch.Generator().manual_seed(2), mask_fill=True)
    assert int((~again.valid).sum()) >= int((~out.valid).sum())  # a filled column stays left out
    kept = augment(out, 0, True, torch.Generator().manual_seed(2))  # mirrored, no new mask: the old one moves
    for b in range(len(frames)):
        (_, mirror), = _moves(out.frames[b], kept.frames[b], 0)
        assert torch.equal(kept.valid[b], out.valid[b].flip(-1) if mirror else out.valid[b])
    assert out.to("cpu").valid is not None


def test_the_sampler_augments_only_when_asked(synth_root: Path) -> None:
    seq = load_split(synth_root, "train")
    plain = list(_sampler(seq, anchor="random", first_frame_cond=True).epoch(1))
    moved = list(_sampler(seq, anchor="random", first_frame_cond=True, shift_x=4, flip=True).epoch(1))
    assert [len(b) for b in plain] == [len(b) for b in moved]
    assert any(not torch.equal(a.frames, b.frames) for a, b in zip(plain, moved))
    for a, b in zip(plain, moved):  # the same clips and anchors, each sample moved as a whole
        for i in range(len(a)):
            assert _moves(torch.cat([a.frames[i], a.poses[i], a.anchor[i, None]]),
                          torch.cat([b.frames[i], b.poses[i], b.anchor[i, None]]), 4)
    again = list(_sampler(seq, anchor="random", first_frame_cond=True, shift_x=4, flip=True).epoch(1))
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(moved, again))  # seeded by (seed, epoch)

    def draws(epoch: int, rank: int) -> list:  # the moves of one rank's epoch, read against its plain clips
        plain = tiny_config(anchor="random", first_frame_cond=True)
        aug = tiny_config(anchor="random", first_frame_cond=True, shift_x=4, flip=True)
        a = ClipSampler.from_config(seq, plain.data, plain.runtime.seed, rank, 2).epoch(epoch)
        b = ClipSampler.from_config(seq, aug.data, aug.runtime.seed, rank, 2).epoch(epoch)
        return [_moves(x.frames[i], y.frames[i], 4) for x, y in zip(a, b) for i in range(len(x))]

    assert all(draws(1, 0)) and draws(1, 0) != draws(2, 0) and draws(1, 0) != draws(1, 1)  # per epoch and rank
    assert all(b.valid is None for b in moved)  # data.shift_mask off: every column counts
    masked = list(_sampler(seq, anchor="random", first_frame_cond=True, shift_x=4, flip=True,
                           shift_mask=True).epoch(1))
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(moved, masked))  # the same moves
    assert all(b.valid is not None and b.valid.shape == (len(b), *b.frames.shape[-2:]) for b in masked)
    assert any(not b.valid.all() for b in masked)


def _white_with_dancer(B: int, T: int, H: int, W: int) -> torch.Tensor:
    """uint8 pose images [B, T, 3, H, W]: white, with a dark vertical bar per sample (a 'dancer')."""
    poses = torch.full((B, T, 3, H, W), 255, dtype=torch.uint8)
    for b in range(B):
        x = 3 + 2 * b
        poses[b, :, :, 2: H - 2 - b, x: x + 2] = 40  # feet at row H - 3 - b, centre x + 0.5
    return poses


def test_feet_are_the_bottom_centre_of_the_skeleton_pixels() -> None:
    poses = _white_with_dancer(3, 2, 16, 20)
    assert torch.equal(feet(poses), torch.tensor([[3.5, 13.0], [5.5, 12.0], [7.5, 11.0]]))
    blank = torch.full((1, 2, 3, 16, 20), 255, dtype=torch.uint8)
    assert torch.equal(feet(blank), torch.tensor([[9.5, 15.0]]))  # nobody: the bottom centre


def test_a_zoom_of_one_changes_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (4, 3, 3, 16, 20), dtype=torch.uint8, generator=g)
    batch = Batch(frames, _white_with_dancer(4, 3, 16, 20), frames[:, 1].clone(), None, frames[:, 2].clone())
    for out in (zoom(batch, 1.0, 1.0, 1.0, torch.Generator().manual_seed(1), mask_fill=True),
                zoom(batch, 0.5, 2.0, 0.0, torch.Generator().manual_seed(1), mask_fill=True)):
        for name in ("frames", "poses", "anchor", "anchor_pose"):
            assert torch.equal(getattr(out, name), getattr(batch, name)), name
        assert out.valid.shape == (4, 16, 20) and out.valid.all()


def test_the_zoom_mask_is_exactly_the_filled_region() -> None:
    """valid is False exactly where the zoom's sample point lies outside the frame's pixel centres:
    where a sample with zero padding of an all-ones image is not 1 (it mixes in the padding)."""
    H, W = 16, 20
    scale = torch.tensor([0.6, 0.8, 1.0, 1.2, 2.0])
    centre = torch.tensor([[9.5, 15.0], [3.0, 14.0], [10.0, 8.0], [9.5, 15.0], [2.0, 3.0]])
    grid, inside = zoom_grid(scale, centre, H, W)
    ones = F.grid_sample(torch.ones(5, 1, H, W), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert torch.equal(inside, ones[:, 0] > 1 - 1e-6)
    assert inside[2].all() and not inside[0].all() and (~inside[0]).sum() > 0.3 * H * W
    assert inside[3].all()  # a zoom in fills nothing in when the centre is inside the frame


def test_zoom_moves_frames_poses_and_anchors_alike_about_the_feet() -> None:
    H, W = 16, 20
    g = torch.Generator().manual_seed(0)
    poses = _white_with_dancer(6, 3, H, W)
    frames = poses.clone()
    batch = Batch(frames, poses, frames[:, 0].clone(), None, poses[:, 0].clone())
    out = zoom(batch, 0.5, 0.7, 1.0, g, mask_fill=True)
    assert torch.equal(out.frames, out.poses) and torch.equal(out.anchor, out.frames[:, 0])  # alike
    assert torch.equal(out.anchor_pose, out.poses[:, 0])
    before, after = feet(poses), feet(out.poses)
    assert (after[:, 1] - before[:, 1]).abs().max() <= 1  # the feet stay where they stood
    height = lambda p: (p[:, 0, 0] < 230).any(dim=2).sum(dim=1).float()  # skeleton rows
    assert ((height(out.poses) / height(poses)) < 0.8).all()  # the dancer is smaller
    assert not out.valid.all()  # the filled-in border is left out
    again = zoom(batch, 0.5, 0.7, 1.0, torch.Generator().manual_seed(0), mask_fill=True)
    assert torch.equal(again.frames, out.frames)  # seeded
    plain = zoom(batch, 0.5, 0.7, 1.0, torch.Generator().manual_seed(0))
    assert plain.valid is None and torch.equal(plain.frames, out.frames)  # the mask is asked for only


def test_the_sampler_zooms_only_when_asked(synth_root: Path) -> None:
    seq = load_split(synth_root, "train")
    plain = list(_sampler(seq, anchor="random", first_frame_cond=True).epoch(1))
    zoomed = list(_sampler(seq, anchor="random", first_frame_cond=True, zoom_min=0.6, zoom_max=1.2, zoom_prob=1.0,
                           shift_x=2, shift_mask=True).epoch(1))
    assert all(b.anchor_pose is not None and b.anchor_pose.shape == b.anchor.shape for b in plain)
    assert any(not torch.equal(a.poses, b.poses) for a, b in zip(plain, zoomed))
    assert all(b.valid is not None and b.valid.shape == (len(b), *b.frames.shape[-2:]) for b in zoomed)


def test_validation_clips_leave_out_a_scored_length_shorter_than_a_clip() -> None:
    seq = VideoSequence("s", torch.zeros(12, 3, 4, 5, dtype=torch.uint8), torch.zeros(12, 3, 4, 5, dtype=torch.uint8))
    assert list(validation_clips([seq], 3, 2, 8)) == []  # 2 frames scored, clips of 3: no clip, no error
    assert [len(b) for b in validation_clips([seq], 3, 7, 8)] == [2]  # frames 0-2 and 3-5
