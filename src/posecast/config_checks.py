"""The checks a config passes (posecast.config): each value's type as it is read, from the
dataclasses' annotations (FieldType, coerce), then the rules across fields (check_config). Every
failure is a ConfigError whose message starts with the field's name (``optim.lr: must be > 0``).
"""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Literal


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field."""


@dataclass(frozen=True)
class FieldType:
    """A field's annotation: the types it takes (None aside), whether it may be None (YAML null,
    ``none`` on the command line), a list's item type, and the values a ``Literal`` allows. Read
    from the dataclasses, so YAML checking and the command-line flags cannot disagree on a
    field's type or choices."""

    kinds: tuple[type, ...]
    optional: bool
    item: type | None = None
    choices: tuple[Any, ...] = ()


def field_type(hint: Any) -> FieldType:
    """The FieldType of a resolved annotation (``int | None``, ``Literal["a", "b"]``, ``list[int]``)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    kinds = tuple(a for a in args if a is not type(None))
    choices = tuple(v for k in kinds if typing.get_origin(k) is Literal for v in typing.get_args(k))
    item_args = typing.get_args(kinds[0]) if len(kinds) == 1 and not choices else ()
    return FieldType(tuple(type(typing.get_args(k)[0]) if typing.get_origin(k) is Literal else typing.get_origin(k) or k
                           for k in kinds), len(kinds) < len(args), item_args[0] if item_args else None, choices)


def choice_text(values: Iterable[Any]) -> str:
    """``a, b or c``: the allowed values of a choice, as messages name them."""
    *rest, last = [str(v) for v in values]
    return f"{', '.join(rest)} or {last}" if rest else last


def coerce(name: str, ftype: FieldType, value: Any) -> Any:
    """Check a value against its field's type; read numbers given as text (YAML reads ``1e-3``
    as a string). Fails with a ConfigError naming the field."""
    if value is None:
        if ftype.optional:
            return None
        raise ConfigError(f"{name}: a value is required (got null)")
    if ftype.kinds == (int, str):  # runtime.threads: a number or "auto"
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise ConfigError(f"{name}: expected a number, auto or null, got {value!r}")
    kind = ftype.kinds[0]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind in (int, float):
        return _number(name, kind, value)
    if kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{name}: expected a list of whole numbers, got {value!r}")
        return list(value)
    value = value if isinstance(value, str) else str(value)
    if ftype.choices and value not in ftype.choices:
        raise ConfigError(f"{name}: {choice_text(ftype.choices)}, got {value!r}")
    return value


def _number(name: str, kind: type, value: Any) -> int | float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}")
        return int(value)
    return float(value)


def _check(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {why}")


def check_config(cfg: Any, field_types: dict[str, FieldType]) -> None:
    """Fail before any training with a message naming the field: the choices of a Config built
    in code (read ones are checked by coerce), then the rules of each group."""
    for key, ftype in field_types.items():
        section, _, name = key.partition(".")
        value = getattr(getattr(cfg, section), name)
        if ftype.choices and isinstance(value, str):
            _check(value in ftype.choices, key, f"{choice_text(ftype.choices)}, got {value!r}")
    _check_data(cfg)
    _check_model(cfg)
    _check_training(cfg)


def _check_data(cfg: Any) -> None:
    d, m = cfg.data, cfg.model
    for name in ("frame_H", "frame_W"):
        _check(getattr(d, name) >= 6, f"data.{name}",
               "must be at least 6 pixels (SSIM's 11-pixel window needs 6 for its reflect padding)")
    _check(d.train_vi_len >= 2, "data.train_vi_len", "a clip needs at least 2 frames")
    _check(d.val_vi_len >= 2, "data.val_vi_len", "a validation sequence needs at least 2 frames")
    _check(d.clip_stride is None or d.clip_stride >= 1, "data.clip_stride", "must be >= 1")
    _check(0 < d.partial <= 1, "data.partial", f"must be in (0, 1], got {d.partial}")
    _check(0 < d.fast_partial <= 1, "data.fast_partial", f"must be in (0, 1], got {d.fast_partial}")
    _check(d.fast_train_epoch >= 0, "data.fast_train_epoch", "must be >= 0")
    _check(d.batch_size >= 1, "data.batch_size", "must be >= 1")
    _check(d.anchor == "clip" or m.first_frame_cond or m.output in ("masked_first", "composite", "warped_first"),
           "data.anchor", "random has no effect unless the model reads the first frame (model.first_frame_cond, "
           "or model.output masked_first, warped_first or composite)")
    _check(d.anchor_range >= 0, "data.anchor_range", "must be >= 0 (0: anywhere in the split)")
    _check(d.anchor_range == 0 or d.clip_order == "consecutive", "data.anchor_range",
           f"is measured from a clip's start, which random or mixed clip orders do not keep (use 0 with "
           f"data.clip_order {d.clip_order})")
    _check_augmentation(d)


def _check_augmentation(d: Any) -> None:
    """data.shift_x, shift_mask and the zoom (data.zoom_*)."""
    _check(0 <= d.shift_x <= d.frame_W // 2, "data.shift_x",
           f"pixels in [0, data.frame_W / 2] (at most half the frame), got {d.shift_x}")
    zoomed = d.zoom_min != 1 or d.zoom_max != 1
    _check(not d.shift_mask or d.shift_x > 0 or zoomed, "data.shift_mask",
           "leaves out of the loss the pixels a shift or zoom filled in: it needs data.shift_x > 0 or a zoom")
    _check(0 < d.zoom_min <= 1 <= d.zoom_max <= 4, "data.zoom_min",
           f"zoom_min <= 1 <= zoom_max <= 4 (and zoom_min > 0), got {d.zoom_min} and {d.zoom_max}")
    _check(0 <= d.zoom_prob <= 1, "data.zoom_prob", f"a probability in [0, 1], got {d.zoom_prob}")


def _check_model(cfg: Any) -> None:
    d, m = cfg.data, cfg.model
    for name in ("F_dim", "L_dim", "N_dim", "D_dim"):
        _check(getattr(m, name) >= 1, f"model.{name}", "must be >= 1")
    _check(m.pose_input == "raw" or m.arch != "lab", "model.pose_input",
           "inverted needs model.arch posecast or unet (the lab's label encoder reads the raw image)")
    _check(0 <= m.down <= 3, "model.down", f"0 to 3 downsampling stages, got {m.down}")
    _check(m.arch == "posecast" or m.down == 0, "model.down",
           f"the {m.arch} architecture has no downsampling encoders (down: 0)")
    _check(1 <= m.levels <= 5, "model.levels", f"1 to 5 halvings, got {m.levels}")
    _check(m.norm == "none" or m.arch == "unet", "model.norm", f"group is a U-Net option (model.arch unet), not {m.arch}")
    _check(0 <= m.pose_gate <= 32, "model.pose_gate", f"a radius of 0 to 32 pixels, got {m.pose_gate}")
    _check(m.pose_gate == 0 or m.output in ("masked_first", "warped_first"), "model.pose_gate",
           f"gates the first frame's mask or flow: model.output masked_first or warped_first, not {m.output}")
    _check(0 <= m.pose_context <= 4, "model.pose_context", f"0 to 4 neighbouring frames each side, got {m.pose_context}")
    _check(m.pose_context == 0 or m.arch == "unet", "model.pose_context",
           f"neighbouring poses are a U-Net option (model.arch unet), not {m.arch}")
    _check(m.pose_context == 0 or m.pose_gate == 0, "model.pose_context",
           "the pose gate compares one pose with the first frame's: set model.pose_gate 0 with neighbouring poses")
    if m.arch == "unet":
        for name in ("frame_H", "frame_W"):
            _check(getattr(d, name) % (2 ** m.levels) == 0, f"data.{name}",
                   f"{getattr(d, name)} is not divisible by 2**model.levels = {2 ** m.levels} (the U-Net halves it)")
    if not m.prev_frame_cond:
        _check(m.output in ("direct", "masked_first", "warped_first"), "model.output",
               f"{m.output} reads the previous frame; without model.prev_frame_cond use direct, masked_first "
               "or warped_first")
        _check(m.prior == "standard", "model.prior", "learned reads the previous frame (model.prev_frame_cond)")
    for name in ("frame_H", "frame_W"):
        size = getattr(d, name)
        _check(size % (2 ** m.down) == 0, f"data.{name}",
               f"{size} is not divisible by 2**model.down = {2 ** m.down} (the encoders halve it {m.down} times)")


def _check_training(cfg: Any) -> None:
    o, s, r = cfg.optim, cfg.schedule, cfg.runtime
    _check(o.num_epoch >= 1, "optim.num_epoch", "must be >= 1")
    _check(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    _check(0 < o.gamma <= 1, "optim.gamma", "must be in (0, 1]")
    _check(o.grad_clip is None or o.grad_clip > 0, "optim.grad_clip", "must be > 0 or null")
    _check(0 <= o.ema_decay < 1, "optim.ema_decay", f"a decay in [0, 1) (0: no average), got {o.ema_decay}")
    _check(o.minutes is None or o.minutes > 0, "optim.minutes", f"a training budget > 0 or null, got {o.minutes}")
    _check(0 <= s.tfr <= 1, "schedule.tfr", f"a ratio in [0, 1], got {s.tfr}")
    _check(s.tfr_d_step >= 0, "schedule.tfr_d_step", f"must be >= 0, got {s.tfr_d_step}")
    _check(0 <= s.tfr_sde < o.num_epoch or s.tfr_sde == 0, "schedule.tfr_sde",
           f"the decay start ({s.tfr_sde}) must be an epoch before optim.num_epoch ({o.num_epoch})")
    _check(s.kl_anneal_cycle >= 1, "schedule.kl_anneal_cycle", "must be >= 1")
    if s.kl_anneal_type == "Cyclical" and s.kl_anneal_per == "epoch":
        _check(s.kl_anneal_cycle <= o.num_epoch, "schedule.kl_anneal_cycle",
               f"{s.kl_anneal_cycle} cycles do not fit in {o.num_epoch} epochs")
    _check(0 < s.kl_anneal_ratio <= 1, "schedule.kl_anneal_ratio", f"must be in (0, 1], got {s.kl_anneal_ratio}")
    _check(0 <= s.recon_until <= 1, "schedule.recon_until", f"a fraction of the epochs in [0, 1], got {s.recon_until}")
    _check(r.threads is None or r.threads == "auto" or (isinstance(r.threads, int) and r.threads >= 1),
           "runtime.threads", f"a number >= 1, auto or null, got {r.threads!r}")
    _check(r.max_time is None or r.max_time > 0, "runtime.max_time", "must be > 0 or null")
    _check(r.per_save >= 1, "runtime.per_save", "must be >= 1")
    _check(r.val_every >= 1, "runtime.val_every", "must be >= 1")
