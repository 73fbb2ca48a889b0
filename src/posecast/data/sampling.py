"""Which clips a training epoch sees, in which order, with which frames; teacher-forcing masks.

Every random choice of epoch e comes from a stream seeded by (seed, e) (and the DDP rank where
ranks must differ), so a resumed run draws exactly what an uninterrupted one would have.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import torch

from ..config import DataConfig
from ..perf import to_channels_last
from .lab import DataError, VideoSequence

# salts of the per-epoch streams (see epoch_seed): the trainer seeds the model's noise with
# NOISE_SALT + 1000 * rank and the teacher-forcing coins with COIN_SALT
ORDER_SALT, NOISE_SALT, COIN_SALT, ANCHOR_SALT, CLIP_SALT, AUGMENT_SALT = 1, 2, 3, 4, 5, 6


def epoch_seed(seed: int, epoch: int, salt: int) -> int:
    """The seed of one random stream of one epoch."""
    return (seed * 1_000_003 + epoch * 7_919 + salt) % (2**63 - 1)


def _generator(seed: int, epoch: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(epoch_seed(seed, epoch, salt))


@dataclass
class Batch:
    """Clips of a batch, uint8: frames and poses [B, T, 3, H, W]; anchor [B, 3, H, W] or None
    (None: the clips' own first frames); valid [B, W] bool or None: the columns of each sample
    that the reconstruction loss counts (None: all; see augment's ``mask_fill``)."""

    frames: torch.Tensor
    poses: torch.Tensor
    anchor: torch.Tensor | None = None
    valid: torch.Tensor | None = None

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
        return Batch(move(self.frames), move(self.poses), move(self.anchor), valid)


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


def gather_clips(seq: VideoSequence, starts: torch.Tensor, clip_len: int, order: str = "consecutive",
                 gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames and poses [B, T, 3, H, W] (uint8) of the clips starting at ``starts`` [B].

    With order random / mixed (training only, ``gen`` given), a clip (every clip, or each with
    probability 1/2) is T frames drawn anywhere in the sequence instead, each with its own pose:
    every step then predicts a frame from a previous frame at a random distance."""
    idx = starts[:, None] + torch.arange(clip_len)  # [B, T]
    if gen is not None and order != "consecutive":
        rand = torch.randint(0, len(seq), idx.shape, generator=gen)
        pick = torch.ones(len(idx), dtype=torch.bool) if order == "random" else torch.rand(len(idx), generator=gen) < 0.5
        idx = torch.where(pick[:, None], rand, idx)
    return seq.frames[idx], seq.poses[idx]


def draw_anchors(seq: VideoSequence, starts: torch.Tensor, anchor_range: int, gen: torch.Generator) -> torch.Tensor:
    """One frame of the sequence per clip, at most ``anchor_range`` frames from the clip's start
    (0: anywhere), as [B, 3, H, W] uint8."""
    n, r = len(seq), anchor_range
    if r <= 0:
        idx = torch.randint(0, n, (len(starts),), generator=gen)
    else:
        lo = (starts - r).clamp(min=0)
        hi = (starts + r).clamp(max=n - 1)
        idx = lo + (torch.rand(len(starts), generator=gen) * (hi - lo + 1)).long().clamp(max=hi - lo)
    return seq.frames[idx]


def augment(batch: Batch, shift_x: int, flip: bool, gen: torch.Generator, mask_fill: bool = False) -> Batch:
    """Each sample of the batch (its frames, poses and anchor alike) shifted right by a random
    dx in [-shift_x, shift_x] pixels, the edge column repeated into the gap, then mirrored left to
    right with probability 1/2 when ``flip``. A missing anchor stays missing: it is the clip's
    frame 0, moved with the clip. With ``mask_fill`` the batch's ``valid`` marks the columns the
    shift filled in as not counted by the loss (the repeated edge is not what the camera saw: a
    dancer at the edge would become a smear to learn); the draws are the same either way."""
    B, W = len(batch), batch.frames.shape[-1]
    dx = torch.randint(-shift_x, shift_x + 1, (B,), generator=gen)
    mirror = torch.rand(B, generator=gen) < 0.5 if flip else torch.zeros(B, dtype=torch.bool)
    src = torch.arange(W)[None, :] - dx[:, None]  # [B, W] source column per column, before clamping
    cols = src.clamp(0, W - 1)
    cols = torch.where(mirror[:, None], cols.flip(1), cols)
    valid = None if batch.valid is None else batch.valid.gather(-1, cols)  # a mask from before moves too
    if mask_fill:
        inside = (src >= 0) & (src < W)
        valid = torch.where(mirror[:, None], inside.flip(1), inside)
        if batch.valid is not None:
            valid &= batch.valid.gather(-1, cols)

    def move(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        idx = cols.view(B, *([1] * (x.dim() - 2)), W).expand(x.shape)
        return x.gather(-1, idx)

    return Batch(move(batch.frames), move(batch.poses), move(batch.anchor), valid)


def rank_share(batches: list[torch.Tensor], rank: int, world: int) -> list[torch.Tensor]:
    """This DDP rank's part of each global batch (batches smaller than the world are dropped)."""
    if world == 1:
        return batches
    return [b.tensor_split(world)[rank] for b in batches if len(b) >= world]


def validation_clips(seqs: list[VideoSequence], clip_len: int, length: int, batch_size: int) -> Iterator[Batch]:
    """Consecutive non-overlapping clips of the first ``length`` frames of each sequence, in
    batches (sequences shorter than a clip are left out)."""
    for seq in seqs:
        if len(seq) < clip_len:
            continue
        starts = torch.tensor(clip_starts(min(len(seq), length), clip_len, None))
        for chunk in starts.split(batch_size):
            yield Batch(*gather_clips(seq, chunk, clip_len))


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
    shift_mask: bool = False  # augment's mask_fill
    rank: int = 0
    world: int = 1

    @classmethod
    def from_config(cls, seq: VideoSequence, data: DataConfig, seed: int, rank: int = 0, world: int = 1,
                    where: str = "the training split") -> "ClipSampler":
        """The sampler of data.*; fails now (naming ``where``) when seq is shorter than a clip."""
        clip_starts(len(seq), data.train_vi_len, data.clip_stride, where=where)
        return cls(seq, data.train_vi_len, data.batch_size, seed, data.clip_stride, data.partial,
                   data.fast_partial, data.fast_train_epoch if data.fast_train else 0, data.clip_order,
                   data.anchor, data.anchor_range, data.shift_x, data.flip, data.shift_mask, rank, world)

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
        for starts in self.batches(epoch):
            frames, poses = gather_clips(self.seq, starts, self.clip_len, self.clip_order, clip_gen)
            anchor = None if self.anchor == "clip" else draw_anchors(self.seq, starts, self.anchor_range, anchor_gen)
            batch = Batch(frames, poses, anchor)
            if self.shift_x or self.flip:
                batch = augment(batch, self.shift_x, self.flip, aug_gen, mask_fill=self.shift_mask)
            yield batch
