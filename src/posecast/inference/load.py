"""Load a model for inference: posecast checkpoints, and the lab template's (the layout is
recognised by :mod:`posecast.io.checkpoint`; :mod:`posecast.models.lab`, beside the template's
modules, maps its keys by name)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from .. import config as cfgmod
from ..config import Config
from ..models import PoseCVAE
from ..models.lab import LAB_MODULES, lab_key_to_posecast, posecast_key_to_lab
from ..perf import use_channels_last
from ..io.checkpoint import CheckpointError, describe_state_dict_mismatch, load_checkpoint


def load_model(checkpoint: str | Path, device: str = "cpu", cfg: Config | None = None, *,
               layout: bool = True, use_ema: bool | None = None) -> tuple[PoseCVAE, Config]:
    """A PoseCVAE in eval mode and its config, from a posecast or lab-layout checkpoint.

    A checkpoint of a run with optim.ema_decay holds the moving average of the weights too: it is
    loaded where ``use_ema`` (None: the checkpoint's inference.use_ema), else the trained weights.

    With ``layout`` (the default) the model is put in the memory layout its config trains with
    (``runtime.channels_last``), so that rollouts take the fast path too (the ``lab`` rollout in bf16:
    121 frames/s in NHWC against 71 in NCHW, benchmarks/results/speed_options.md)."""
    state = load_checkpoint(checkpoint)
    if state["format"] == "lab":
        cfg = cfg or lab_config(state["model"])  # the lab preset with the checkpoint's sizes
        model = PoseCVAE(cfg.model)
        model.load_state_dict(map_lab_state_dict(state["model"], model))
    else:
        cfg = cfgmod.from_dict(state["config"])
        model = PoseCVAE(cfg.model)
        use_ema = cfg.inference.use_ema if use_ema is None else use_ema
        weights = state["ema"] if use_ema and "ema" in state else state["model"]
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(f"{checkpoint}: weights do not fit the model its config describes: "
                                  f"{describe_state_dict_mismatch(model.state_dict(), weights)}") from None
    model = model.to(device).eval()
    if layout and cfg.runtime.channels_last:
        use_channels_last(model)
    return model, cfg


def rollout_weights(cfg: Config, use_ema: bool | None = None) -> str:
    """Which weights :func:`load_model` rolls out for a checkpoint of config ``cfg``: ``moving average``
    (optim.ema_decay, with ``use_ema`` or else the config's inference.use_ema) or ``trained``."""
    use = cfg.inference.use_ema if use_ema is None else use_ema
    return "moving average" if use and cfg.optim.ema_decay > 0 else "trained"


def lab_dims(sd: dict[str, torch.Tensor]) -> dict[str, int]:
    """F_dim, L_dim, N_dim, D_dim of a lab checkpoint, read from its tensor shapes."""
    try:
        F = int(sd["frame_transformation.6.weight"].shape[0])
        N = int(sd["Gaussian_Predictor.6.weight"].shape[0]) // 2
        fusion_in = int(sd["Decoder_Fusion.0.block.0.conv1.0.weight"].shape[1])
        D = int(sd["Generator.0.block.0.conv1.0.weight"].shape[1])
    except (KeyError, IndexError) as exc:
        raise CheckpointError(f"lab checkpoint without the tensor {exc} that gives its sizes") from None
    return {"F_dim": F, "L_dim": fusion_in - F - N, "N_dim": N, "D_dim": D}


def lab_config(sd: dict[str, torch.Tensor]) -> Config:
    """The lab preset with the model sizes of this lab checkpoint and the lab's architecture
    (``model.arch: lab``)."""
    return cfgmod.override(cfgmod.preset("lab"), **lab_dims(sd), arch="lab")


def map_lab_state_dict(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lab state dict to ``model``'s keys, checking that every tensor has its place.

    Raises CheckpointError naming, per lab module, the tensors without a counterpart or of
    another shape, and the model's tensors the checkpoint lacks.
    """
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    problems: dict[str, list[str]] = defaultdict(list)
    for key, value in sd.items():
        module = key.partition(".")[0]
        try:
            mine = lab_key_to_posecast(key)
        except KeyError:
            continue  # not a model tensor (the lab's VAE_Model holds nothing else with weights)
        if mine not in ours:
            problems[module].append(f"{key} {tuple(value.shape)} has no counterpart")
        elif tuple(value.shape) != tuple(ours[mine].shape):
            problems[module].append(f"{key} {tuple(value.shape)} vs {mine} {tuple(ours[mine].shape)}")
        else:
            out[mine] = value
    to_lab = {v[0]: k for k, v in LAB_MODULES.items()}
    for key, value in ours.items():
        if key not in out and key.partition(".")[0] in to_lab:
            module = to_lab[key.partition(".")[0]]
            try:
                lab_name = posecast_key_to_lab(key)
            except KeyError:  # a layer that no lab module has (model.arch unet's stems and U-Net)
                lab_name = key
            if not any(p.startswith(lab_name + " ") for p in problems[module]):
                problems[module].append(f"posecast's {key} {tuple(value.shape)} is not in the checkpoint")
    other = sorted(set(ours) - set(out) - {k for k in ours if k.partition(".")[0] in to_lab})
    if not problems and not other:
        return out
    raise CheckpointError(_misfit_message(sd, model, problems, other))


def _misfit_message(sd: dict[str, torch.Tensor], model: nn.Module, problems: dict[str, list[str]],
                    other: list[str]) -> str:
    """Why a lab state dict does not fit ``model``: per lab module the tensors that differ, the
    model's tensors outside the lab's modules, and the likely cause."""
    parts = []
    for module, items in problems.items():
        if items:
            parts.append(f"{module} ({LAB_MODULES[module][1]}): {len(items)} tensor(s), e.g. "
                         + "; ".join(items[:2]))
    if other:
        parts.append(f"posecast's model also needs {other[:3]} (a posecast-only option such as "
                     "model.prior: learned is set)")
    why = ""
    dims = _model_dims(model)
    try:
        theirs = lab_dims(sd)
    except CheckpointError:
        theirs = None
    if dims and theirs and dims != theirs:
        why = f"the checkpoint's sizes are {theirs}, the model's {dims}. "
    elif any(problems.get(m) for m in ("label_transformation", "Decoder_Fusion", "Generator")):
        why = ("posecast's pose encoder, fusion decoder and generator are built differently from the lab "
               "template's Label_Encoder, Decoder_Fusion and Generator (see docs/robustness.md). ")
    return "the lab checkpoint does not fit posecast's model: " + why + "Differences: " + " | ".join(parts)


def _model_dims(model: nn.Module) -> dict[str, int] | None:
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return None
    return {k: getattr(cfg, k) for k in ("F_dim", "L_dim", "N_dim", "D_dim")}
