"""PoseCVAE: the time-step logic of the lab's conditional VAE (its batched teacher-forced forward
and its rollout) over the modules of an architecture (models/default.py, lab.py, unet.py).
models/reference.py is the same forward and loss one step at a time: read it first."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import ModelConfig
from ..perf import to_channels_last
from . import default, lab, unet
from .outputs import compose_frame, pose_change_gate
from .parts import CVAEModules, Gaussian
from .pose_context import pose_window, single_pose_context, stack_pose_context

# model.arch -> the build of its modules: one file per architecture
ARCHS: dict[str, Callable[[ModelConfig], CVAEModules]] = {
    "posecast": default.build, "lab": lab.build, "unet": unet.build,
}


@dataclass
class CVAEOutput:
    """What the teacher-forced forward returns; time axis t = 1..T-1."""

    pred: torch.Tensor  # [B, T-1, 3, H, W] predicted frames in [0, 1]
    posterior: Gaussian  # mu/logvar [B, T-1, N, H, W]
    prior: Gaussian | None  # learned prior p(z_t | prev, pose_t), or None for N(0, I)
    z: torch.Tensor  # [B, T-1, N, H, W] the latents used


def _channels_inner(x: torch.Tensor) -> bool:
    """Whether a [B, T, C, H, W] (or [B, C, H, W]) tensor keeps its channels innermost (NHWC)."""
    c = x.dim() - 3
    return x.shape[c] > 1 and x.stride(c) == 1


def _bt(x: torch.Tensor) -> torch.Tensor:
    """[B, T, C, H, W] -> [B*T, C, H, W] in the same layout: a clip of channels_last frames stays
    channels_last even when the merge needs a copy (a slice or an index over time), so no
    convolution reorders its input and no gradient comes back in the other layout."""
    if _channels_inner(x):
        return x.permute(0, 1, 3, 4, 2).flatten(0, 1).permute(0, 3, 1, 2)
    return x.flatten(0, 1)


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """x with channels innermost when the model runs channels_last, else as it is."""
    return to_channels_last(x) if channels_last else x


def _steps(x: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """The time steps ``idx`` of [B, T, C, H, W] (a slice when they are consecutive), same layout."""
    if idx == list(range(idx[0], idx[-1] + 1)):
        return x[:, idx[0]: idx[-1] + 1]
    if _channels_inner(x):
        return x.permute(0, 1, 3, 4, 2)[:, idx].permute(0, 1, 4, 2, 3)
    return x[:, idx]


# the most pixels (sequences x steps x H x W) one batched call of a rollout takes (the decode of a
# model without the previous frame, the pose encoder's chunk of one with it): 320 frames of
# 64 x 32 (5 sequences x 64 steps, what the rollout speed was measured at), so that many
# sequences or large frames do not grow the peak memory of a rollout
ROLLOUT_PIXELS_PER_CALL = 320 * 64 * 32


def _teacher_forced(tf_mask: torch.Tensor | None, steps: int) -> list[int]:
    """The steps that take the ground truth as their previous frame (step 0 always does)."""
    if tf_mask is None:
        return list(range(steps))
    tf_list = [bool(v) for v in tf_mask.tolist()]  # host list once, outside the time loop
    tf_list[0] = True
    return [s for s in range(steps) if tf_list[s]]


class PoseCVAE(nn.Module):
    """Frame encoder, pose encoder, Gaussian predictor, fusion decoder and generator.

    ``forward`` encodes every ground-truth frame and pose of a clip in one batched call, and
    runs the fusion decoder and generator over all teacher-forced steps at once; only the
    steps that feed back their own prediction run one after another. ``rollout`` advances all
    sequences of a batch together, one frame at a time (a model that reads no previous frame:
    a chunk of frames at a time).
    """

    def __init__(self, cfg: ModelConfig, modules: CVAEModules | None = None) -> None:
        """``modules``: what the architecture's build returns (default: ``ARCHS[cfg.arch](cfg)``)."""
        super().__init__()
        self.cfg = cfg
        m = modules if modules is not None else ARCHS[cfg.arch](cfg)
        # registered in this order: the state dict's keys and the optimiser's parameter order
        self.frame_encoder, self.pose_encoder, self.posterior_net = m.frame_encoder, m.pose_encoder, m.posterior_net
        self.fusion, self.generator, self.prior_net = m.fusion, m.generator, m.prior_net

    @property
    def channels_last(self) -> bool:
        """Whether the weights are in channels_last (``posecast.perf.use_channels_last``): the
        forward and the rollout then keep every activation NHWC (inputs are converted once)."""
        w = next(m.weight for m in self.frame_encoder.modules() if isinstance(m, nn.Conv2d))
        return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()

    # -- one step -----------------------------------------------------------------------
    def decode(self, prev_frame: torch.Tensor, prev_feat: torch.Tensor | None, pose_feat: torch.Tensor,
               z: torch.Tensor, first_feat: torch.Tensor | None,
               first_frame: torch.Tensor | None = None, first_pose: torch.Tensor | None = None,
               gate: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse (prev features, pose features, z[, first-frame features]) into a frame [B', 3, H, W]
        in the config's output mode (:func:`posecast.models.outputs.compose_frame`). Without
        model.prev_frame_cond the previous frame's features are not read (prev_feat may be None);
        first_pose: the first frame's pose features (model.first_pose_cond); gate: model.pose_gate's
        [B', 1, H, W] (:func:`pose_gates`), or None."""
        parts = ([prev_feat] if self.cfg.prev_frame_cond else []) + [pose_feat, z]
        parts += [first_feat] if first_feat is not None else []
        parts += [first_pose] if first_pose is not None else []
        out = self.generator(self.fusion(*parts))
        return compose_frame(self.cfg.output, out, prev_frame, first_frame, gate)

    @property
    def reads_prev(self) -> bool:
        """Whether a step reads the previous frame's features (the fusion decoder or a learned prior)."""
        return self.cfg.prev_frame_cond or self.prior_net is not None

    def prior(self, prev_feat: torch.Tensor, pose_feat: torch.Tensor) -> Gaussian | None:
        """The learned prior p(z | prev features, pose features), or None for N(0, I)."""
        return None if self.prior_net is None else self.prior_net(prev_feat, pose_feat)

    # -- training -----------------------------------------------------------------------
    def forward(self, frames: torch.Tensor, poses: torch.Tensor, tf_mask: torch.Tensor | None = None,
                eps: torch.Tensor | None = None, anchor: torch.Tensor | None = None,
                anchor_pose: torch.Tensor | None = None) -> CVAEOutput:
        """Teacher-forced pass over a clip.

        frames, poses: [B, T, 3, H, W] in [0, 1] (poses may come stacked, models/pose_context.py).
        tf_mask: bool [T-1] (True: step t uses the ground truth x_{t-1} as the previous frame; False:
        the model's own prediction; None: all True). Step 1 always uses x_0. eps: noise [B, T-1, N, H, W].
        anchor: optional first frame [B, 3, H, W] for first_frame_cond / masked_first (default
        x_0; a frame far from the clip teaches the large displacements of a long rollout).
        anchor_pose: the anchor's pose [B, 3, H, W] (model.first_pose_cond; default pose 0 of the clip,
        which is then the anchor's only when no anchor is given).
        """
        (B, T), k = frames.shape[:2], self.cfg.pose_context
        S = T - 1  # poses with their k neighbours (model.pose_context), stacked within the clip unless given so
        poses, anchor_pose = stack_pose_context(poses, k), single_pose_context(anchor_pose, k)
        if self.channels_last:
            frames, poses = to_channels_last(frames), to_channels_last(poses)
            anchor = None if anchor is None else to_channels_last(anchor)
            anchor_pose = None if anchor_pose is None else to_channels_last(anchor_pose)
        feats = self.frame_encoder(_bt(frames)).unflatten(0, (B, T))  # [B, T, F, H, W]
        pose_feat = self.pose_encoder(_bt(poses[:, 1:])).unflatten(0, (B, S))  # [B, S, L, H, W]
        post = self.posterior_net(_bt(feats[:, 1:]), _bt(pose_feat))
        mu, logvar = post.mu.unflatten(0, (B, S)), post.logvar.unflatten(0, (B, S))
        if eps is None:  # drawn in NCHW order (the same numbers with or without channels_last), laid
            # out like mu (randn_like of a channel slice of an NHWC tensor takes a slow scalar path)
            eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device)
            eps = _layout(eps, self.channels_last)
        z = mu + eps * torch.exp(0.5 * logvar)  # [B, S, N, H, W]
        x0 = frames[:, 0] if anchor is None else anchor
        first = None
        if self.cfg.first_frame_cond:
            first = feats[:, 0] if anchor is None else self.frame_encoder(anchor)
        first_pose = self._first_pose(poses, anchor, anchor_pose)
        gates = pose_gates(self, poses[:, 1:], poses[:, 0] if anchor_pose is None else anchor_pose)

        # without the previous frame every step is independent of the others: all run batched
        tf_idx = _teacher_forced(tf_mask if self.cfg.prev_frame_cond else None, S)
        pred, prior = _decode_steps(self, frames, feats, pose_feat, z, tf_idx, (first, first_pose, gates), x0)
        return CVAEOutput(pred, Gaussian(mu, logvar), prior, z)

    def _first_pose(self, poses: torch.Tensor, anchor: torch.Tensor | None,
                    anchor_pose: torch.Tensor | None) -> torch.Tensor | None:
        """The first frame's pose features [B, L, H, W] (model.first_pose_cond), else None."""
        if anchor_pose is None and anchor is not None and (self.cfg.first_pose_cond or self.cfg.pose_gate):
            raise ValueError("model.first_pose_cond and model.pose_gate: an anchor frame needs its pose (anchor_pose)")
        if not self.cfg.first_pose_cond:
            return None
        return self.pose_encoder(poses[:, 0] if anchor_pose is None else anchor_pose)

    # -- inference ----------------------------------------------------------------------
    def rollout(self, first_frame: torch.Tensor, poses: torch.Tensor, *, z_mode: str = "prior",
                z: torch.Tensor | None = None, teacher: torch.Tensor | None = None,
                generator: torch.Generator | None = None, pose_chunk: int = 64) -> torch.Tensor:
        """Autoregressive prediction of frames 1..T-1 from frame 0 and the poses.

        first_frame: [B, 3, H, W]; poses: [B, T, 3, H, W] (pose 0, the first frame's, is read only
        with model.first_pose_cond). z_mode:
        ``prior`` samples the prior (N(0, I) or the learned one), ``zero`` takes its mean.
        z: optional latents [B, T-1, N, H, W] to use instead; teacher: optional ground-truth
        frames [B, T, 3, H, W] to feed as the previous frame (teacher forcing).
        Returns [B, T, 3, H, W] with frame 0 = first_frame. Call it under torch.inference_mode
        for evaluation (no graph is kept).
        """
        (B, T), (H, W) = poses.shape[:2], first_frame.shape[-2:]
        out = first_frame.new_empty(B, T, 3, H, W)
        out[:, 0] = first_frame
        cl = self.channels_last
        if cl:
            first_frame = to_channels_last(first_frame)
        prev = first_frame
        first = self.frame_encoder(first_frame) if self.cfg.first_frame_cond else None
        first_pose = self._first_pose(_layout(_pose_steps(self, poses, 0, 1), cl), None, None)
        N = self.cfg.N_dim
        if not self.reads_prev:  # no step reads the one before
            return _rollout_independent(self, out, first_frame, (first, first_pose), poses, z_mode, z, generator,
                                        pose_chunk)
        gates = pose_gates(self, poses, poses[:, 0])  # [B, T, 1, H, W] or None (step t reads gates[:, t])
        pose_feat = None
        pose_chunk = max(1, min(pose_chunk, ROLLOUT_PIXELS_PER_CALL // (B * H * W)))  # bounded memory, as below
        for t in range(1, T):
            c = (t - 1) % pose_chunk
            if c == 0:  # encode the poses of the next chunk of steps in one batched call
                end = min(T, t + pose_chunk)
                chunk = _bt(_layout(_pose_steps(self, poses, t, end), cl))
                pose_feat = self.pose_encoder(chunk).unflatten(0, (B, end - t))
            p = pose_feat[:, c]
            prev_f = self.frame_encoder(prev)
            if z is not None:
                z_t = _layout(z[:, t - 1], cl)
            else:
                z_t = _draw_z(self.prior(prev_f, p), p, N, z_mode, generator, cl)
            frame = self.decode(prev, prev_f, p, z_t, first, first_frame, first_pose,
                                None if gates is None else gates[:, t])
            out[:, t] = frame
            prev = teacher[:, t] if teacher is not None else frame
        return out


def _pose_steps(model: PoseCVAE, poses: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """The pose images of steps start .. end - 1 as the pose encoder reads them: with their
    neighbours from the whole sequence (model.pose_context), stacked one chunk at a time."""
    return pose_window(poses, start, end, model.cfg.pose_context)


def pose_gates(model: PoseCVAE, poses: torch.Tensor, first_pose_image: torch.Tensor) -> torch.Tensor | None:
    """model.pose_gate's gates [B, T', 1, H, W] for the pose images ``poses`` [B, T', 3, H, W]
    against the first frame's pose image [B, 3, H, W] (see posecast.models.outputs), or None."""
    if not model.cfg.pose_gate:
        return None
    B, T = poses.shape[:2]
    return pose_change_gate(_bt(poses), _repeat(first_pose_image, T), model.cfg.pose_gate).unflatten(0, (B, T))


def _repeat(x: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """[B, C, H, W] -> [B*k, C, H, W]: one frame (or its features) for each of k steps, as ``_bt``
    lays them out, or None."""
    return None if x is None else _bt(x[:, None].expand(x.shape[0], k, *x.shape[1:]))


def _decode_steps(model: PoseCVAE, frames: torch.Tensor, feats: torch.Tensor, pose_feat: torch.Tensor,
                  z: torch.Tensor, tf_idx: list[int], firsts: tuple[torch.Tensor | None, ...],
                  x0: torch.Tensor) -> tuple[torch.Tensor, Gaussian | None]:
    """``PoseCVAE.forward``'s decode: predicted frames [B, S, 3, H, W] and the prior (None: N(0, I)).
    The teacher-forced steps ``tf_idx`` run in one batched call, then the others one after another,
    each fed the previous prediction. feats: [B, T, F, H, W]; pose_feat: [B, S, L, H, W]; z: [B, S, N, H, W];
    firsts: the first frame's features and its pose's features ([B, C, H, W] or None), and the steps'
    pose gates ([B, S, 1, H, W] or None)."""
    B, S = z.shape[:2]
    first, first_pose, gates = firsts
    done: dict[int, tuple[torch.Tensor, Gaussian | None]] = {}  # step -> (frame, prior)
    if tf_idx:  # every teacher-forced step at once: prev = ground truth x_{s}
        k = len(tf_idx)
        prev_f = _bt(_steps(feats, tf_idx)) if model.reads_prev else None
        pose_k, x0_k = _bt(_steps(pose_feat, tf_idx)), _repeat(x0, k)
        prev_x = _bt(_steps(frames, tf_idx)) if model.cfg.prev_frame_cond else x0_k  # (an output mode's base)
        first_k, fpose_k = _repeat(first, k), _repeat(first_pose, k)
        gate_k = None if gates is None else _bt(_steps(gates, tf_idx))
        out = model.decode(prev_x, prev_f, pose_k, _bt(_steps(z, tf_idx)), first_k, x0_k, fpose_k,
                           gate_k).unflatten(0, (B, k))
        pri = model.prior(prev_f, pose_k)
        pri = None if pri is None else Gaussian(pri.mu.unflatten(0, (B, k)), pri.logvar.unflatten(0, (B, k)))
        if k == S:  # every step teacher-forced: no per-step split and stack
            return out, pri
        done = {s: (out[:, j], None if pri is None else Gaussian(pri.mu[:, j], pri.logvar[:, j]))
                for j, s in enumerate(tf_idx)}
    for s in range(S):
        if s not in done:  # a step that feeds back the model's own previous prediction
            prev, pose_s = done[s - 1][0], pose_feat[:, s]
            prev_f = model.frame_encoder(_layout(prev, model.channels_last))
            gate_s = None if gates is None else gates[:, s]
            done[s] = (model.decode(prev, prev_f, pose_s, z[:, s], first, x0, first_pose, gate_s),
                       model.prior(prev_f, pose_s))
    preds = torch.stack([done[s][0] for s in range(S)], 1)
    if model.prior_net is None:
        return preds, None
    priors = [done[s][1] for s in range(S)]
    return preds, Gaussian(torch.stack([p.mu for p in priors], 1), torch.stack([p.logvar for p in priors], 1))


def _rollout_independent(model: PoseCVAE, out: torch.Tensor, first_frame: torch.Tensor,
                         firsts: tuple[torch.Tensor | None, torch.Tensor | None], poses: torch.Tensor,
                         z_mode: str, z: torch.Tensor | None, generator: torch.Generator | None,
                         chunk: int) -> torch.Tensor:
    """``PoseCVAE.rollout`` of a model that reads no previous frame (model.prev_frame_cond false, the
    standard prior): a step depends on its pose, z and the first frame only, so ``chunk`` steps
    are decoded in one batched call (fewer where B x chunk frames would pass
    ROLLOUT_PIXELS_PER_CALL). The frames, and the z drawn from ``generator`` (one step after
    another), are those of a rollout one step at a time; a teacher changes nothing."""
    B, T = poses.shape[:2]
    cl, N = model.channels_last, model.cfg.N_dim
    first, first_pose = firsts
    chunk = max(1, min(chunk, ROLLOUT_PIXELS_PER_CALL // (B * poses.shape[-2] * poses.shape[-1])))
    for t in range(1, T, chunk):
        end = min(T, t + chunk)
        k = end - t
        pose_f = model.pose_encoder(_bt(_layout(_pose_steps(model, poses, t, end), cl)))  # [B*k, L, h, w]
        if z is not None:
            z_k = _bt(_layout(z[:, t - 1:end - 1], cl))
        else:
            per_step = pose_f.unflatten(0, (B, k))
            zs = torch.stack([_draw_z(None, per_step[:, j], N, z_mode, generator, False) for j in range(k)], 1)
            z_k = _bt(_layout(zs, cl))  # the same numbers, laid out like the features
        first_k, fpose_k, x0_k = (_repeat(v, k) for v in (first, first_pose, first_frame))
        gates = pose_gates(model, poses[:, t:end], poses[:, 0])
        gate_k = None if gates is None else _bt(gates)
        out[:, t:end] = model.decode(x0_k, None, pose_f, z_k, first_k, x0_k, fpose_k, gate_k).unflatten(0, (B, k))
    return out


def _draw_z(prior: Gaussian | None, feat: torch.Tensor, n_dim: int, z_mode: str,
            generator: torch.Generator | None, channels_last: bool) -> torch.Tensor:
    """One rollout step's z [B, N, h, w]: the prior's mean (``zero``) or a sample (``prior``)
    of N(0, I) (``prior`` None) or of the learned prior; ``feat`` (the step's pose features) gives
    the batch, size and device."""
    if prior is not None:
        if z_mode == "zero":
            return prior.mu
        noise = torch.randn(prior.mu.shape, generator=generator, device=prior.mu.device, dtype=prior.mu.dtype)
        return prior.mu + noise * torch.exp(0.5 * prior.logvar)
    z = feat.new_zeros(feat.shape[0], n_dim, *feat.shape[-2:])
    if z_mode != "zero":
        z = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    return _layout(z, channels_last)  # the same numbers as NCHW randn, laid out like the features
