"""PoseCVAE: the lab's conditional VAE, its batched teacher-forced forward and its rollout."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig
from ..perf import to_channels_last
from .blocks import GatedConvFFN
from .modules import (FrameEncoder, FusionDecoder, Gaussian, GaussianPredictor, Generator, LabLabelEncoder,
                      PoseEncoder)
from .objective import LossOutput, elbo_loss
from .outputs import compose_frame, init_output_layer, output_channels
from .unet import Head, Stem, UNetFusion

# The lab template's VAE_Model attributes -> (PoseCVAE's attribute, the lab's class name): the one
# table behind reading the lab's checkpoints (posecast.io.checkpoint recognises them by these
# prefixes, its LAB_MODULE_NAMES; posecast.inference.load renames their keys)
LAB_MODULES = {
    "frame_transformation": ("frame_encoder", "RGB_Encoder"),
    "label_transformation": ("pose_encoder", "Label_Encoder"),
    "Gaussian_Predictor": ("posterior_net", "Gaussian_Predictor"),
    "Decoder_Fusion": ("fusion", "Decoder_Fusion"),
    "Generator": ("generator", "Generator"),
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

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        F, L, N, D = cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_dim
        lab = cfg.arch == "lab"  # the lab template's modules, layer for layer (loads its checkpoints)
        inverted = cfg.pose_input == "inverted"
        fusion_in = (F if cfg.prev_frame_cond else 0) + L + N + (F if cfg.first_frame_cond else 0)
        fusion_in += L if cfg.first_pose_cond else 0
        if cfg.arch == "unet":  # full-resolution stems, a U-Net fusion decoder, a 3x3 head
            self.frame_encoder = Stem(3, F)
            self.pose_encoder = Stem(3, L, inverted)
        else:
            self.frame_encoder = FrameEncoder(3, F, cfg.down, lab)
            self.pose_encoder = LabLabelEncoder(3, L) if lab else PoseEncoder(3, L, cfg.down, inverted)
        self.posterior_net = GaussianPredictor(F + L, N, lab)
        if not lab:
            # q starts as N(0, I), so the KL term starts at 0 instead of dominating the first
            # hundreds of steps (with the lab's summed KL it began ~1e4 times the MSE)
            self.posterior_net.zero_init()
        if cfg.arch == "unet":
            self.fusion = UNetFusion(fusion_in, D, cfg.levels)
            self.generator = Head(D, output_channels(cfg.output))
        else:
            self.fusion = FusionDecoder(fusion_in, D, lab)
            self.generator = Generator(D, output_channels(cfg.output), cfg.down, lab)
        init_output_layer([m for m in self.generator.modules() if isinstance(m, nn.Conv2d)][-1], cfg.output)
        self.prior_net = GaussianPredictor(F + L, N, lab) if cfg.prior == "learned" else None
        if cfg.ffn_gate == "sigmoid":
            for m in self.modules():
                if isinstance(m, GatedConvFFN):
                    m.bounded = True

    @property
    def channels_last(self) -> bool:
        """Whether the weights are in channels_last (``posecast.perf.use_channels_last``): the
        forward and the rollout then keep every activation NHWC (inputs are converted once)."""
        w = next(m.weight for m in self.frame_encoder.modules() if isinstance(m, nn.Conv2d))
        return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()

    # -- one step -----------------------------------------------------------------------
    def decode(self, prev_frame: torch.Tensor, prev_feat: torch.Tensor | None, pose_feat: torch.Tensor,
               z: torch.Tensor, first_feat: torch.Tensor | None,
               first_frame: torch.Tensor | None = None, first_pose: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse (prev features, pose features, z[, first-frame features]) into a frame [B', 3, H, W]
        in the config's output mode (:func:`posecast.models.outputs.compose_frame`). Without
        model.prev_frame_cond the previous frame's features are not read (prev_feat may be None);
        first_pose: the first frame's pose features (model.first_pose_cond)."""
        parts = ([prev_feat] if self.cfg.prev_frame_cond else []) + [pose_feat, z]
        parts += [first_feat] if first_feat is not None else []
        parts += [first_pose] if first_pose is not None else []
        out = self.generator(self.fusion(*parts))
        return compose_frame(self.cfg.output, out, prev_frame, first_frame)

    def prior(self, prev_feat: torch.Tensor, pose_feat: torch.Tensor) -> Gaussian | None:
        return None if self.prior_net is None else self.prior_net(prev_feat, pose_feat)

    # -- training -----------------------------------------------------------------------
    def forward(self, frames: torch.Tensor, poses: torch.Tensor, tf_mask: torch.Tensor | None = None,
                eps: torch.Tensor | None = None, anchor: torch.Tensor | None = None,
                anchor_pose: torch.Tensor | None = None) -> CVAEOutput:
        """Teacher-forced pass over a clip.

        frames, poses: [B, T, 3, H, W] in [0, 1]. tf_mask: bool [T-1] (True: step t uses the
        ground truth x_{t-1} as the previous frame; False: the model's own prediction); None
        means all True. Step 1 always uses x_0. eps: optional noise [B, T-1, N, H, W].
        anchor: optional first frame [B, 3, H, W] for first_frame_cond / masked_first (default
        x_0; a frame far from the clip teaches the large displacements of a long rollout).
        anchor_pose: the anchor's pose [B, 3, H, W] (model.first_pose_cond; default pose 0 of the clip,
        which is then the anchor's only when no anchor is given).
        """
        B, T = frames.shape[:2]
        S = T - 1
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
            eps = to_channels_last(eps) if self.channels_last else eps
        z = mu + eps * torch.exp(0.5 * logvar)  # [B, S, N, H, W]
        x0 = frames[:, 0] if anchor is None else anchor
        first = None
        if self.cfg.first_frame_cond:
            first = feats[:, 0] if anchor is None else self.frame_encoder(anchor)
        first_pose = self._first_pose(poses, anchor, anchor_pose)

        # without the previous frame every step is independent of the others: all run batched
        tf_idx = _teacher_forced(tf_mask if self.cfg.prev_frame_cond else None, S)
        pred, prior = self._decode_steps(frames, feats, pose_feat, z, tf_idx, (first, first_pose), x0)
        return CVAEOutput(pred, Gaussian(mu, logvar), prior, z)

    def _first_pose(self, poses: torch.Tensor, anchor: torch.Tensor | None,
                    anchor_pose: torch.Tensor | None) -> torch.Tensor | None:
        """The first frame's pose features [B, L, H, W] (model.first_pose_cond), else None."""
        if not self.cfg.first_pose_cond:
            return None
        if anchor_pose is None and anchor is not None:
            raise ValueError("model.first_pose_cond: an anchor frame needs its pose (anchor_pose)")
        return self.pose_encoder(poses[:, 0] if anchor_pose is None else anchor_pose)

    def _decode_steps(self, frames: torch.Tensor, feats: torch.Tensor, pose_feat: torch.Tensor, z: torch.Tensor,
                      tf_idx: list[int], firsts: tuple[torch.Tensor | None, torch.Tensor | None],
                      x0: torch.Tensor) -> tuple[torch.Tensor, Gaussian | None]:
        """Predicted frames [B, S, 3, H, W] and the prior (None: N(0, I)): the teacher-forced
        steps ``tf_idx`` in one batched call, then the others one after another, each fed the
        previous prediction. feats: [B, T, F, H, W]; pose_feat: [B, S, L, H, W]; z: [B, S, N, H, W];
        firsts: the first frame's features and its pose's features ([B, C, H, W] or None)."""
        B, S = z.shape[:2]
        first, first_pose = firsts
        fed_idx = [s for s in range(S) if s not in set(tf_idx)]
        preds: list[torch.Tensor | None] = [None] * S
        prior_mu: list[torch.Tensor | None] = [None] * S
        prior_lv: list[torch.Tensor | None] = [None] * S
        if tf_idx:  # every teacher-forced step at once: prev = ground truth x_{s}
            k = len(tf_idx)
            reads_prev = self.cfg.prev_frame_cond or self.prior_net is not None
            prev_f = _bt(_steps(feats, tf_idx)) if reads_prev else None
            pose_k = _bt(_steps(pose_feat, tf_idx))
            first_k, fpose_k, x0_k = (_repeat(v, k) for v in (first, first_pose, x0))
            prev_x = _bt(_steps(frames, tf_idx)) if self.cfg.prev_frame_cond else x0_k  # (an output mode's base)
            out = self.decode(prev_x, prev_f, pose_k, _bt(_steps(z, tf_idx)), first_k, x0_k, fpose_k)
            out = out.unflatten(0, (B, k))
            pri = self.prior(prev_f, pose_k)
            if not fed_idx:  # every step teacher-forced: no per-step split and stack
                prior = None if pri is None else Gaussian(pri.mu.unflatten(0, (B, k)), pri.logvar.unflatten(0, (B, k)))
                return out, prior
            for j, s in enumerate(tf_idx):
                preds[s] = out[:, j]
                if pri is not None:
                    prior_mu[s] = pri.mu.unflatten(0, (B, k))[:, j]
                    prior_lv[s] = pri.logvar.unflatten(0, (B, k))[:, j]
        for s in fed_idx:  # steps that feed back the model's own previous prediction
            prev = preds[s - 1]
            prev_f = self.frame_encoder(to_channels_last(prev) if self.channels_last else prev)
            preds[s] = self.decode(prev, prev_f, pose_feat[:, s], z[:, s], first, x0, first_pose)
            pri = self.prior(prev_f, pose_feat[:, s])
            if pri is not None:
                prior_mu[s], prior_lv[s] = pri.mu, pri.logvar
        prior = None
        if self.prior_net is not None:
            prior = Gaussian(torch.stack(prior_mu, 1), torch.stack(prior_lv, 1))
        return torch.stack(preds, 1), prior

    def loss(self, frames: torch.Tensor, poses: torch.Tensor, tf_mask: torch.Tensor | None, beta: float, *,
             kl_reduction: str, anchor: torch.Tensor | None = None,
             eps: torch.Tensor | None = None, valid: torch.Tensor | None = None,
             anchor_pose: torch.Tensor | None = None) -> LossOutput:
        """The training objective of a batch of clips: sum over steps of MSE + beta * KL(q || p).

        frames, poses: [B, T, 3, H, W] in [0, 1]; tf_mask, anchor, eps: as in ``forward``;
        valid: [B, H, W] bool or None, the pixels the MSE counts (``objective.reconstruction``).
        kl_reduction: ``lab`` or ``mean`` (see ``objective.kl_divergence``). Under autocast the
        forward may run in bf16; the loss itself is computed in fp32.
        """
        out = self(frames, poses, tf_mask, eps=eps, anchor=anchor, anchor_pose=anchor_pose)
        return elbo_loss(out.pred, frames[:, 1:], out.posterior, out.prior, beta, kl_reduction, valid)

    # -- inference ----------------------------------------------------------------------
    def rollout(self, first_frame: torch.Tensor, poses: torch.Tensor, *, z_mode: str = "prior",
                z: torch.Tensor | None = None, teacher: torch.Tensor | None = None,
                generator: torch.Generator | None = None, pose_chunk: int = 64) -> torch.Tensor:
        """Autoregressive prediction of frames 1..T-1 from frame 0 and the poses.

        first_frame: [B, 3, H, W]; poses: [B, T, 3, H, W] (pose 0, the first frame's, is read only with
        model.first_pose_cond). z_mode:
        ``prior`` samples the prior (N(0, I) or the learned one), ``zero`` takes its mean.
        z: optional latents [B, T-1, N, H, W] to use instead; teacher: optional ground-truth
        frames [B, T, 3, H, W] to feed as the previous frame (teacher forcing).
        Returns [B, T, 3, H, W] with frame 0 = first_frame. Call it under torch.inference_mode
        for evaluation (no graph is kept).
        """
        B, T = poses.shape[:2]
        H, W = first_frame.shape[-2:]
        out = first_frame.new_empty(B, T, 3, H, W)
        out[:, 0] = first_frame
        cl = self.channels_last
        if cl:
            first_frame = to_channels_last(first_frame)
        prev = first_frame
        first = self.frame_encoder(first_frame) if self.cfg.first_frame_cond else None
        first_pose = self._first_pose(to_channels_last(poses) if cl else poses, None, None)
        N = self.cfg.N_dim
        if not (self.cfg.prev_frame_cond or self.prior_net is not None):  # no step reads the one before
            return self._rollout_independent(out, first_frame, (first, first_pose), poses, z_mode, z, generator,
                                             pose_chunk)
        pose_feat = None
        pose_chunk = max(1, min(pose_chunk, ROLLOUT_PIXELS_PER_CALL // (B * H * W)))  # bounded memory, as below
        for t in range(1, T):
            c = (t - 1) % pose_chunk
            if c == 0:  # encode the poses of the next chunk of steps in one batched call
                end = min(T, t + pose_chunk)
                chunk = to_channels_last(poses[:, t:end]) if cl else poses[:, t:end]
                pose_feat = self.pose_encoder(_bt(chunk)).unflatten(0, (B, end - t))
            p = pose_feat[:, c]
            prev_f = self.frame_encoder(prev)
            if z is not None:
                z_t = to_channels_last(z[:, t - 1]) if cl else z[:, t - 1]
            else:
                z_t = _draw_z(self.prior(prev_f, p), p, N, z_mode, generator, cl)
            frame = self.decode(prev, prev_f, p, z_t, first, first_frame, first_pose)
            out[:, t] = frame
            prev = teacher[:, t] if teacher is not None else frame
        return out

    def _rollout_independent(self, out: torch.Tensor, first_frame: torch.Tensor,
                             firsts: tuple[torch.Tensor | None, torch.Tensor | None],
                             poses: torch.Tensor, z_mode: str, z: torch.Tensor | None,
                             generator: torch.Generator | None, chunk: int) -> torch.Tensor:
        """``rollout`` of a model that reads no previous frame (model.prev_frame_cond false, the
        standard prior): a step depends on its pose, z and the first frame only, so ``chunk`` steps
        are decoded in one batched call (fewer where B x chunk frames would pass
        ROLLOUT_PIXELS_PER_CALL). The frames, and the z drawn from ``generator`` (one step after
        another), are those of a rollout one step at a time; a teacher changes nothing."""
        B, T = poses.shape[:2]
        cl, N = self.channels_last, self.cfg.N_dim
        first, first_pose = firsts
        chunk = max(1, min(chunk, ROLLOUT_PIXELS_PER_CALL // (B * poses.shape[-2] * poses.shape[-1])))
        for t in range(1, T, chunk):
            end = min(T, t + chunk)
            k = end - t
            steps = poses[:, t:end]
            pose_f = self.pose_encoder(_bt(to_channels_last(steps) if cl else steps))  # [B*k, L, h, w]
            if z is not None:
                z_k = _bt(to_channels_last(z[:, t - 1:end - 1]) if cl else z[:, t - 1:end - 1])
            else:
                per_step = pose_f.unflatten(0, (B, k))
                zs = torch.stack([_draw_z(None, per_step[:, j], N, z_mode, generator, False) for j in range(k)], 1)
                z_k = _bt(to_channels_last(zs) if cl else zs)  # the same numbers, laid out like the features
            first_k, fpose_k, x0_k = (_repeat(v, k) for v in (first, first_pose, first_frame))
            out[:, t:end] = self.decode(x0_k, None, pose_f, z_k, first_k, x0_k, fpose_k).unflatten(0, (B, k))
        return out


def _repeat(x: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """[B, C, H, W] -> [B*k, C, H, W], each sample k times in a row (the layout of _bt), or None."""
    return None if x is None else _bt(x[:, None].expand(x.shape[0], k, *x.shape[1:]))


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
    return to_channels_last(z) if channels_last else z  # the same numbers as NCHW randn, laid out like the features
