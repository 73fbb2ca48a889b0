"""model.pose_context: each step reads its neighbours' pose images too (models/pose_context.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posecast import config as cfgmod
from posecast.config import ConfigError
from posecast.data.lab import VideoSequence
from posecast.data.lab import DataError
from posecast.data.sampling import ClipSampler, gather_clips, gather_poses, validation_clips
from posecast.models import PoseCVAE
from posecast.data.lab import load_split
from posecast.models.pose_context import context_channels, pose_window, single_pose_context, stack_pose_context
from posecast.training.trainer import Trainer
from posecast_testing import tiny_config

B, T, H, W = 2, 6, 16, 24


def _model(k: int, seed: int = 0) -> PoseCVAE:
    torch.manual_seed(seed)
    cfg = cfgmod.override(cfgmod.preset("tiny"), arch="unet", levels=3, first_frame_cond=True, output="warped_first",
                          prev_frame_cond=False, first_pose_cond=True, pose_input="inverted", norm="group",
                          pose_context=k, frame_H=H, frame_W=W).validate()
    return PoseCVAE(cfg.model).eval()


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, T, 3, H, W, generator=g), torch.rand(B, T, 3, H, W, generator=g)


def _numbered(t: int = T) -> torch.Tensor:
    """Pose images whose every pixel of step s holds s, and of channel c the fraction c / 10."""
    steps = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1)
    return (steps + torch.arange(3).view(1, 1, 3, 1, 1) / 10).expand(1, t, 3, 2, 2).clone()


def test_stacking_is_in_time_order_and_clamped_at_the_ends() -> None:
    out = stack_pose_context(_numbered(), 2)
    assert out.shape == (1, T, context_channels(2), 2, 2) == (1, T, 15, 2, 2)
    got = out[0, :, :, 0, 0].view(T, 5, 3)  # [step, neighbour, channel]
    for t in range(T):
        for j, n in enumerate(range(t - 2, t + 3)):
            src = min(max(n, 0), T - 1)
            torch.testing.assert_close(got[t, j], torch.tensor([src, src + 0.1, src + 0.2]))


def test_stacked_poses_and_k_0_pass_through() -> None:
    poses = _numbered()
    assert stack_pose_context(poses, 0) is poses
    stacked = stack_pose_context(poses, 1)
    assert stack_pose_context(stacked, 1) is stacked
    with pytest.raises(ValueError, match=r"pose_context 2: pose images \[B, T, 3, H, W\] or \[B, T, 15"):
        stack_pose_context(stacked, 2)  # 9 channels are neither plain nor k = 2's


def test_a_single_pose_is_its_own_neighbour() -> None:
    pose = torch.rand(2, 3, 4, 5)
    torch.testing.assert_close(single_pose_context(pose, 1), pose.repeat(1, 3, 1, 1))
    assert single_pose_context(None, 1) is None
    assert single_pose_context(pose, 0) is pose


def test_the_pose_encoder_reads_the_neighbours() -> None:
    assert _model(2).pose_encoder.conv.in_channels == 15
    assert _model(0).pose_encoder.conv.in_channels == 3


@torch.no_grad()
def test_a_neighbours_pose_changes_the_frame_with_context_and_not_without() -> None:
    frames, poses = _data()
    moved = poses.clone()
    moved[:, 3] = torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(5))  # pose of step 3 only
    for k, changed in ((1, {2, 3, 4}), (0, {3})):
        model = _model(k)
        a = model.rollout(frames[:, 0], poses, z_mode="zero")
        b = model.rollout(frames[:, 0], moved, z_mode="zero")
        diff = {t for t in range(1, T) if not torch.equal(a[:, t], b[:, t])}
        assert diff == changed, (k, diff)


@torch.no_grad()
def test_plain_and_stacked_poses_give_the_same_rollout_and_forward() -> None:
    model = _model(2)
    frames, poses = _data()
    stacked = stack_pose_context(poses, 2)
    torch.testing.assert_close(model.rollout(frames[:, 0], poses, z_mode="zero"),
                               model.rollout(frames[:, 0], stacked, z_mode="zero"), rtol=0, atol=0)
    eps = torch.randn(B, T - 1, model.cfg.N_dim, H, W, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(frames, poses, eps=eps).pred, model(frames, stacked, eps=eps).pred, rtol=0, atol=0)


def test_gradients_reach_the_neighbour_channels() -> None:
    model = _model(1).train()
    frames, poses = _data()
    model(frames, poses).pred.mean().backward()
    grad = model.pose_encoder.conv.weight.grad  # [L, 9, 3, 3]
    assert all(grad[:, c].abs().sum() > 0 for c in range(9))


def _unet_config(**options) -> cfgmod.Config:
    return cfgmod.override(cfgmod.preset("tiny"), arch="unet", levels=3, first_frame_cond=True, output="warped_first",
                           prev_frame_cond=False, frame_H=H, frame_W=W, **options)


@pytest.mark.parametrize("options, why", [({"pose_context": 5}, "0 to 4"), ({"pose_context": -1}, "0 to 4"),
                                          ({"pose_context": 1, "pose_gate": 2}, "pose_gate 0")])
def test_config_checks(options: dict, why: str) -> None:
    with pytest.raises(ConfigError, match=f"model.pose_context: .*{why}"):
        _unet_config(**options).validate()
    assert _unet_config(pose_context=4).validate().model.pose_context == 4
    with pytest.raises(ConfigError, match="model.pose_context: .*U-Net"):
        cfgmod.override(cfgmod.preset("tiny"), pose_context=1).validate()  # tiny is arch posecast


def test_a_window_of_steps_is_those_steps_of_the_whole_stack() -> None:
    poses = _numbered()
    whole = stack_pose_context(poses, 2)
    for start, end in ((0, 1), (1, 3), (4, T)):
        torch.testing.assert_close(pose_window(poses, start, end, 2), whole[:, start:end], rtol=0, atol=0)
        assert pose_window(whole, start, end, 2).data_ptr() == whole[:, start:end].data_ptr()  # stacked: a slice


@torch.no_grad()
def test_a_rollout_in_chunks_sees_the_neighbours_beyond_each_chunk() -> None:
    model = _model(2)
    frames, poses = _data()
    whole = model.rollout(frames[:, 0], poses, z_mode="zero")
    torch.testing.assert_close(model.rollout(frames[:, 0], poses, z_mode="zero", pose_chunk=2), whole, rtol=0, atol=1e-5)


def test_trainer_clips_see_neighbours_outside_the_clip(synth_root: Path, tmp_path: Path) -> None:
    cfg = cfgmod.override(tiny_config(num_epoch=1, tfr_sde=0), arch="unet", levels=2, first_frame_cond=True,
                          prev_frame_cond=False, output="masked_first", pose_context=1, prior="standard",
                          clip_order="consecutive", anchor="random").validate()
    trainer = Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lambda _: None)
    plain = load_split(synth_root, "train", (cfg.data.frame_H, cfg.data.frame_W)).poses  # as on disk
    torch.testing.assert_close(trainer.train_seq.poses, plain, rtol=0, atol=0)  # no stacked copy of the split held
    whole = stack_pose_context(plain[None], 1)[0]  # [N, 9, H, W]: every frame with its neighbours
    T = cfg.data.train_vi_len
    starts = trainer.sampler.batches(0)[0]
    batch = next(iter(trainer.sampler.epoch(0)))
    torch.testing.assert_close(batch.poses, whole[starts[:, None] + torch.arange(T)], rtol=0, atol=0)
    assert batch.anchor_pose.shape[1] == 9  # the values: test_the_sampler_draws_what_it_drew_from_a_stacked_split
    _, clip_poses = gather_clips(trainer.train_seq, torch.tensor([4]), T, pose_context=1)
    torch.testing.assert_close(clip_poses[0, 0, :3], plain[3])  # frame 4's left neighbour, before the clip
    torch.testing.assert_close(clip_poses[0, -1, 6:], plain[4 + T])  # and the right one after it
    trainer.fit()  # a run trains and validates with its poses gathered with their neighbours
    assert (tmp_path / "r" / "checkpoints" / "last.ckpt").exists()


def test_validation_clips_clamp_the_neighbours_at_the_scored_length() -> None:
    g = torch.Generator().manual_seed(0)
    seq = VideoSequence("s", torch.randint(0, 256, (12, 3, 4, 5), dtype=torch.uint8, generator=g),
                        torch.randint(0, 256, (12, 3, 4, 5), dtype=torch.uint8, generator=g), True)
    batches = list(validation_clips([seq], 3, 9, 8, pose_context=1))  # clips of frames 0-2, 3-5, 6-8
    poses = torch.cat([b.poses for b in batches])
    assert poses.shape == (3, 3, 9, 4, 5)
    torch.testing.assert_close(poses[-1, -1], torch.cat([seq.poses[7], seq.poses[8], seq.poses[8]]))  # 9 is not read
    torch.testing.assert_close(poses[1, 0, :3], seq.poses[2])  # a clip's first step reads the frame before it
    torch.testing.assert_close(poses, stack_pose_context(seq.poses[None, :9], 1)[0].unflatten(0, (3, 3)))


def test_gather_poses_is_the_stack_at_those_frames() -> None:
    poses = torch.randint(0, 256, (10, 3, 2, 3), dtype=torch.uint8)
    idx = torch.tensor([[0, 9, 4], [2, 2, 7]])
    by_hand = torch.stack([torch.stack([torch.cat([poses[min(max(t + j, 0), 9)] for j in range(-2, 3)])
                                        for t in row.tolist()]) for row in idx])
    torch.testing.assert_close(gather_poses(poses, idx, 2), by_hand, rtol=0, atol=0)
    torch.testing.assert_close(gather_poses(poses, idx, 0), poses[idx], rtol=0, atol=0)
    torch.testing.assert_close(gather_poses(poses, idx, 1, n=5)[0, 1], torch.cat([poses[4], poses[4], poses[4]]))
    with pytest.raises(DataError, match="plain pose images"):
        gather_poses(stack_pose_context(poses[None], 1)[0], idx, 1)  # already stacked: refused, not re-stacked


def test_pose_window_keeps_the_samples_of_a_batch_apart() -> None:
    poses = torch.cat([_numbered(), _numbered() + 100])  # sample b's step s holds 100 b + s
    got = pose_window(poses, 1, 4, 1)[:, :, :, 0, 0].unflatten(-1, (3, 3))[..., 0]  # [B, step, neighbour]
    expected = torch.tensor([[0.0, 1, 2], [1, 2, 3], [2, 3, 4]])
    torch.testing.assert_close(got, torch.stack([expected, expected + 100]))


@pytest.mark.parametrize("k", [0, 2])
def test_the_sampler_draws_what_it_drew_from_a_stacked_split(k: int) -> None:
    """Gathering per batch gives the batches that indexing a split stacked beforehand gave (the way
    the trainer worked before), random clip orders, anchors and every augmentation included."""
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (40, 3, 16, 24), dtype=torch.uint8, generator=g)
    poses = torch.randint(0, 256, (40, 3, 16, 24), dtype=torch.uint8, generator=g)
    plain = VideoSequence("s", frames, poses, True)
    stacked = VideoSequence("s", frames, stack_pose_context(poses[None], k)[0], True)
    opts = dict(clip_len=4, batch_size=4, seed=5, clip_order="mixed", anchor="random", anchor_range=3, shift_x=2,
                flip=True, shift_mask=True, zoom=(0.7, 1.3, 0.5), rank=1, world=2)
    for epoch in range(2):
        new = list(ClipSampler(plain, pose_context=k, **opts).epoch(epoch))
        old = list(ClipSampler(stacked, **opts).epoch(epoch))
        assert len(new) == len(old) > 0
        for a, b in zip(new, old):
            assert a.poses.shape[2] == 3 * (2 * k + 1)
            for field in ("frames", "poses", "anchor", "valid", "anchor_pose"):
                torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0)
