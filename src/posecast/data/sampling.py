"""Which clips a training epoch sees, in which order, with which frames; teacher-forcing masks.

Every random choice of epoch e comes from a stream seeded by (seed, e) (and the DDP rank where
ranks must differ), so a resumed run draws exactly what an uninterrupted one would have.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.nn import functional as F

from ..config import DataConfig
from ..perf import to_channels_last
from .lab import DataError, VideoSequence

# salts of the per-epoch streams (see epoch_seed): the trainer seeds the model's noise with
# NOISE_SALT + 1000 * rank and the teacher-forcing coins with COIN_SALT
ORDER_SALT, NOISE_SALT, COIN_SALT, ANCHOR_SALT, CLIP_SALT, AUGMENT_SALT, ZOOM_SALT = 1, 2, 3, 4, 5, 6, 7


def epoch_seed(seed: int, epoch: int, salt: int) -> int:
    """The seed of one random stream of one epoch."""
    return (seed * 1_000_003 + epoch * 7_919 + salt) % (2**63 - 1)


def _generator(seed: int, epoch: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(epoch_seed(seed, epoch, salt))


@dataclass
class Batch:
    """Clips of a batch, uint8: frames [B, T, 3, H, W] and poses [B, T, 3 (2k + 1), H, W] (k:
    model.pose_context, the neighbours' poses beside each); anchor [B, 3, H, W] or None (None: the
    clips' own first frames) and its pose anchor_pose; valid [B, H, W] bool or None: the
    pixels of each sample that the reconstruction loss counts (None: all; see augment's ``mask_fill``)."""

    frames: torch.Tensor
    poses: torch.Tensor
    anchor: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    anchor_pose: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def to(self, device: torch.device | str, channels_last: bool = False) -> "Batch":
        """The batch on ``device`` (in NHWC strides with ``channels_last``)."""
        def move(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            x = x.to(device)
            return to_channels_last(x) if channels_last else x

        valid = None if self.valid is None else self.valid.to(device)
        return Batch(move(self.frames), move(self.poses), move(self.anchor), valid, move(self.anchor_pose))


def clip_starts(length: int, clip_len: int, stride: int | None, fraction: float = 1.0,
                where: str = "the training split") -> list[int]:
    """Start indices of the training clips (non-overlapping by default); the first ``fraction``."""
    if length < clip_len:
        raise DataError(f"{where}: {length} frames are fewer than one training clip of {clip_len} frames "
                        "(lower data.train_vi_len)")
    starts = list(range(0, length - clip_len + 1, stride or clip_len))
    return starts[: max(1, int(len(starts) * fraction))]


def tf_mask_for(mode: str, ratio: float, steps: int, rng: random.Random, epoch_flip: bool) -> torch.Tensor:
    """Which steps of a clip are teacher-forced. ``epoch_flip`` is the coin of this epoch."""
    if mode == "epoch":
        return torch.full((steps,), epoch_flip, dtype=torch.bool)
    if mode == "batch":
        return torch.full((steps,), rng.random() < ratio, dtype=torch.bool)
    return torch.tensor([rng.random() < ratio for _ in range(steps)], dtype=torch.bool)


def context_index(idx: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """The frames whose poses step ``idx`` reads with ``model.pose_context`` k (models/pose_context.py):
    idx - k .. idx + k clamped to 0 .. n - 1, a new last dimension of 2k + 1."""
    return (idx[..., None] + torch.arange(-k, k + 1, device=idx.device)).clamp(0, n - 1)


def gather_poses(poses: torch.Tensor, idx: torch.Tensor, k: int = 0, n: int | None = None) -> torch.Tensor:
    """The pose images [N, 3, H, W] of frames ``idx`` (any shape S), each stacked with its k
    neighbours on either side among the first ``n`` frames (default all): [*S, 3 (2k + 1), H, W].
    Gathered per batch, so a sequence's stacked copy (2k + 1 times its poses) is never held."""
    if k == 0:
        return poses[idx]
    if poses.dim() != 4 or poses.shape[1] != 3:
        raise DataError(f"model.pose_context {k}: plain pose images [N, 3, H, W] to gather with their "
                        f"neighbours, got {tuple(poses.shape)}")
    return poses[context_index(idx, k, len(poses) if n is None else n)].flatten(-4, -3)


def gather_clips(seq: VideoSequence, starts: torch.Tensor, clip_len: int, order: str = "consecutive",
                 gen: torch.Generator | None = None, pose_context: int = 0,
                 n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [B, T, 3, H, W] and poses [B, T, 3 (2k + 1), H, W] (uint8) of the clips starting at
    ``starts`` [B], each pose with its ``pose_context`` k neighbours in the sequence's first ``n``
    frames (default all).

    With order random / mixed (training only, ``gen`` given), a clip (every clip, or each with
    probability 1/2) is T frames drawn anywhere in the sequence instead, each with its own pose:
    every step then predicts a frame from a previous frame at a random distance."""
    idx = starts[:, None] + torch.arange(clip_len)  # [B, T]
    if gen is not None and order != "consecutive":
        rand = torch.randint(0, len(seq), idx.shape, generator=gen)
        pick = torch.ones(len(idx), dtype=torch.bool) if order == "random" else torch.rand(len(idx), generator=gen) < 0.5
        idx = torch.where(pick[:, None], rand, idx)
    return seq.frames[idx], gather_poses(seq.poses, idx, pose_context, n)


def draw_anchors(seq: VideoSequence, starts: torch.Tensor, anchor_range: int,
                 gen: torch.Generator, pose_context: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame of the sequence per clip, at most ``anchor_range`` frames from the clip's start
    (0: anywhere), and its pose (with its ``pose_context`` neighbours), as [B, C, H, W] uint8 each."""
    n, r = len(seq), anchor_range
    if r <= 0:
        idx = torch.randint(0, n, (len(starts),), generator=gen)
    else:
        lo = (starts - r).clamp(min=0)
        hi = (starts + r).clamp(max=n - 1)
        idx = lo + (torch.rand(len(starts), generator=gen) * (hi - lo + 1)).long().clamp(max=hi - lo)
    return seq.frames[idx], gather_poses(seq.poses, idx, pose_context)


def feet(poses: torch.Tensor, threshold: int = 230) -> torch.Tensor:
    """Where each sample's dancer stands: (x, y) in pixels [B, 2], the middle column and the lowest
    row of the skeleton pixels (any channel below ``threshold`` on the white label image) over all
    frames of the clip; the frame's bottom centre for a sample without skeleton pixels."""
    B, H, W = poses.shape[0], poses.shape[-2], poses.shape[-1]
    on = (poses.amin(dim=-3) < threshold).reshape(B, -1, H, W).any(dim=1)  # [B, H, W]
    cols, rows = on.any(dim=1), on.any(dim=2)  # [B, W], [B, H]
    xs, ys = torch.arange(W), torch.arange(H)
    left = torch.where(cols, xs, W).amin(1)
    right = torch.where(cols, xs, -1).amax(1)
    bottom = torch.where(rows, ys, -1).amax(1)
    found = bottom >= 0
    x = torch.where(found, (left + right).float() / 2, (W - 1) / 2)
    y = torch.where(found, bottom.float(), float(H - 1))
    return torch.stack([x, y], dim=1)


def zoom_grid(scale: torch.Tensor, centre: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling grid of a zoom by ``scale`` [B] about ``centre`` [B, 2] (pixels), for
    grid_sample (align_corners False) [B, H, W, 2], and the pixels it does not fill in [B, H, W]:
    those whose source point lies within the frame's pixel centres (outside them, grid_sample's
    border padding repeats the edge)."""
    xs, ys = torch.arange(W, dtype=torch.float32), torch.arange(H, dtype=torch.float32)
    s = scale.float()[:, None, None]
    cx, cy = centre[:, 0, None, None].float(), centre[:, 1, None, None].float()
    u = (cx + (xs[None, None, :] - cx) / s).expand(-1, H, W)  # source x of each pixel
    v = (cy + (ys[None, :, None] - cy) / s).expand(-1, H, W)  # source y
    grid = torch.stack([(2 * u + 1) / W - 1, (2 * v + 1) / H - 1], dim=-1)
    inside = (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    return grid, inside


def _resample(x: torch.Tensor | None, grid: torch.Tensor) -> torch.Tensor | None:
    """uint8 images [B, ..., 3, H, W] resampled on one grid per sample [B, H, W, 2], uint8 again."""
    if x is None:
        return None
    B = x.shape[0]
    flat = x.reshape(B, -1, *x.shape[-3:])  # [B, k, 3, H, W]
    k = flat.shape[1]
    g = grid[:, None].expand(B, k, *grid.shape[1:]).reshape(B * k, *grid.shape[1:])
    out = F.grid_sample(flat.flatten(0, 1).float(), g, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).reshape(x.shape)


def zoom(batch: Batch, zoom_min: float, zoom_max: float, prob: float, gen: torch.Generator,
         mask_fill: bool = False) -> Batch:
    """A fraction ``prob`` of the samples (frames, poses, anchor and its pose alike) zoomed by a
    factor drawn log-uniformly in [zoom_min, zoom_max] about the feet of the clip's skeletons
    (:func:`feet`): a dancer nearer to (> 1) or farther from (< 1) the camera, standing where they
    stood. With ``mask_fill`` the batch's ``valid`` leaves out the pixels the zoom filled in
    (outside the frame's pixel centres); the draws are the same either way. Factor 1 is the identity."""
    B, H, W = len(batch), batch.frames.shape[-2], batch.frames.shape[-1]
    lo, hi = torch.log(torch.tensor(zoom_min)), torch.log(torch.tensor(zoom_max))
    scale = torch.exp(lo + (hi - lo) * torch.rand(B, generator=gen))
    scale = torch.where(torch.rand(B, generator=gen) < prob, scale, torch.ones(B))
    grid, inside = zoom_grid(scale, feet(batch.poses), H, W)
    if batch.valid is not None:  # the sampler zooms first, before any shift has made a mask
        raise ValueError("zoom: the batch already has a loss mask; zoom before shifting")
    valid = inside if mask_fill else None
    return Batch(_resample(batch.frames, grid), _resample(batch.poses, grid), _resample(batch.anchor, grid),
                 valid, _resample(batch.anchor_pose, grid))


def zoom_sequence(seq: VideoSequence, scales: torch.Tensor) -> tuple[VideoSequence, torch.Tensor]:
    """Frame t of a sequence and its pose zoomed by ``scales[t]`` about the feet of all its
    skeletons (:func:`feet`, one point for the whole sequence): a dancer walking towards (> 1) or away
    from (< 1) the camera. Returns the zoomed sequence and the pixels each zoom did not fill in
    (bool [T, H, W]; the rest repeat the frame's edge). Scale 1 is the identity."""
    T, H, W = len(seq), seq.poses.shape[-2], seq.poses.shape[-1]
    if seq.frames.shape[0] != T or scales.shape != (T,):
        raise ValueError(f"zoom_sequence: {T} frames and poses and as many scales are needed, got "
                         f"{seq.frames.shape[0]} frames and {tuple(scales.shape)} scales")
    centre = feet(seq.poses[None]).expand(T, 2)
    grid, inside = zoom_grid(scales, centre, H, W)
    zoomed = VideoSequence(seq.name, _resample(seq.frames, grid), _resample(seq.poses, grid), seq.has_gt)
    return zoomed, inside


def augment(batch: Batch, shift_x: int, flip: bool, gen: torch.Generator, mask_fill: bool = False) -> Batch:
    """Each sample of the batch (its frames, poses and anchor alike) shifted right by a random
    dx in [-shift_x, shift_x] pixels, the edge column repeated into the gap, then mirrored left to
    right with probability 1/2 when ``flip``. A missing anchor stays missing: it is the clip's
    frame 0, moved with the clip. With ``mask_fill`` the batch's ``valid`` [B, H, W] marks the columns the
    shift filled in as not counted by the loss (the repeated edge is not what the camera saw: a
    dancer at the edge would become a smear to learn); the draws are the same either way."""
    B, W = len(batch), batch.frames.shape[-1]
    dx = torch.randint(-shift_x, shift_x + 1, (B,), generator=gen)
    mirror = torch.rand(B, generator=gen) < 0.5 if flip else torch.zeros(B, dtype=torch.bool)
    src = torch.arange(W)[None, :] - dx[:, None]  # [B, W] source column per column, before clamping
    cols = src.clamp(0, W - 1)
    cols = torch.where(mirror[:, None], cols.flip(1), cols)
    H = batch.frames.shape[-2]
    valid = None if batch.valid is None else batch.valid.gather(-1, cols[:, None].expand(B, H, W))  # moves too
    if mask_fill:
        inside = (src >= 0) & (src < W)
        inside = torch.where(mirror[:, None], inside.flip(1), inside)[:, None].expand(B, H, W)
        valid = inside if valid is None else valid & inside

    def move(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        idx = cols.view(B, *([1] * (x.dim() - 2)), W).expand(x.shape)
        return x.gather(-1, idx)

    return Batch(move(batch.frames), move(batch.poses), move(batch.anchor), valid, move(batch.anchor_pose))


def rank_share(batches: list[torch.Tensor], rank: int, world: int) -> list[torch.Tensor]:
    """This DDP rank's part of each global batch (batches smaller than the world are dropped)."""
    if world == 1:
        return batches
    return [b.tensor_split(world)[rank] for b in batches if len(b) >= world]


def validation_clips(seqs: list[VideoSequence], clip_len: int, length: int, batch_size: int,
                     pose_context: int = 0) -> Iterator[Batch]:
    """Consecutive non-overlapping clips of the first ``length`` frames of each sequence, in
    batches (sequences shorter than a clip are left out); each pose with its ``pose_context``
    neighbours among those frames, as the validation rollout reads them."""
    for seq in seqs:
        n = min(len(seq), length)
        if n < clip_len:
            continue
        starts = torch.tensor(clip_starts(n, clip_len, None))
        for chunk in starts.split(batch_size):
            yield Batch(*gather_clips(seq, chunk, clip_len, pose_context=pose_context, n=n))


@dataclass
class ClipSampler:
    """The training clips of one sequence, epoch by epoch (data.* fields of the same names).

    The first ``fast_epochs`` epochs take the first ``fast_partial`` of the clips, later ones the
    first ``partial``; an epoch's clips are shuffled by (seed, epoch) and split into global
    batches of ``batch_size``, of which DDP rank ``rank`` takes its share."""

    seq: VideoSequence
    clip_len: int
    batch_size: int
    seed: int
    clip_stride: int | None = None
    partial: float = 1.0
    fast_partial: float = 1.0
    fast_epochs: int = 0
    clip_order: str = "consecutive"
    anchor: str = "clip"  # clip: the clip's first frame; random: see draw_anchors
    anchor_range: int = 0
    shift_x: int = 0  # augmentation: see augment
    flip: bool = False
    shift_mask: bool = False  # augment's and zoom's mask_fill
    zoom: tuple[float, float, float] = (1.0, 1.0, 0.0)  # zoom_min, zoom_max, zoom_prob: see zoom
    rank: int = 0
    world: int = 1
    pose_context: int = 0  # model.pose_context: each pose gathered with its neighbours (gather_poses)

    @classmethod
    def from_config(cls, seq: VideoSequence, data: DataConfig, seed: int, rank: int = 0, world: int = 1,
                    where: str = "the training split", pose_context: int = 0) -> "ClipSampler":
        """The sampler of data.* (and model.pose_context); fails now (naming ``where``) when seq is
        shorter than a clip."""
        clip_starts(len(seq), data.train_vi_len, data.clip_stride, where=where)
        return cls(seq, data.train_vi_len, data.batch_size, seed, data.clip_stride, data.partial,
                   data.fast_partial, data.fast_train_epoch if data.fast_train else 0, data.clip_order,
                   data.anchor, data.anchor_range, data.shift_x, data.flip, data.shift_mask,
                   (data.zoom_min, data.zoom_max, data.zoom_prob), rank, world, pose_context)

    def starts(self, epoch: int) -> list[int]:
        """Start indices of the clips of this epoch, in time order."""
        fraction = self.fast_partial if epoch < self.fast_epochs else self.partial
        return clip_starts(len(self.seq), self.clip_len, self.clip_stride, fraction)

    def num_batches(self, epoch: int) -> int:
        """Global batches (optimiser steps) of this epoch, the last partial one included."""
        return -(-len(self.starts(epoch)) // self.batch_size)

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """Clip start indices per batch (this rank's share), shuffled by (seed, epoch)."""
        starts = torch.tensor(self.starts(epoch))
        order = starts[torch.randperm(len(starts), generator=_generator(self.seed, epoch, ORDER_SALT))]
        return rank_share(list(order.split(self.batch_size)), self.rank, self.world)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """This rank's batches of an epoch, in order, on the CPU."""
        # per rank, like the model's noise: DDP ranks must not draw the same random clips and anchors
        anchor_gen = _generator(self.seed, epoch, ANCHOR_SALT + 1000 * self.rank)
        clip_gen = _generator(self.seed, epoch, CLIP_SALT + 1000 * self.rank)
        aug_gen = _generator(self.seed, epoch, AUGMENT_SALT + 1000 * self.rank)
        zoom_gen = _generator(self.seed, epoch, ZOOM_SALT + 1000 * self.rank)
        for starts in self.batches(epoch):
            frames, poses = gather_clips(self.seq, starts, self.clip_len, self.clip_order, clip_gen, self.pose_context)
            anchor, anchor_pose = (None, None) if self.anchor == "clip" else draw_anchors(
                self.seq, starts, self.anchor_range, anchor_gen, self.pose_context)
            batch = Batch(frames, poses, anchor, None, anchor_pose)
            if self.zoom[0] != 1 or self.zoom[1] != 1:
                batch = zoom(batch, *self.zoom, zoom_gen, mask_fill=self.shift_mask)
            if self.shift_x or self.flip:
                batch = augment(batch, self.shift_x, self.flip, aug_gen, mask_fill=self.shift_mask)
            yield batch
