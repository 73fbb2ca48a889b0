"""Typed configuration in groups (data, model, optim, schedule, runtime, inference), presets, YAML
in and out. A field with a fixed set of values is a ``Literal``: the YAML checks and the command
line's flag types and choices are read from the annotations (FIELD_TYPES).

Field names follow the lab's training script where it has one (``frame_H``, ``tfr_sde``,
``kl_anneal_cycle`` ...), so that the lab's flags map one to one (see the table in docs/lab_compatibility.md).
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field."""


@dataclass
class DataConfig:
    frame_H: int = 32
    frame_W: int = 64
    train_vi_len: int = 16
    val_vi_len: int = 630
    clip_stride: int | None = None  # None: non-overlapping clips, as in the lab
    # the first frame that first_frame_cond / output masked_first read in training: "clip" (the
    # clip's frame 0, the lab) or "random" (a random frame of the training split, at most
    # anchor_range frames from the clip, 0: anywhere), so that training sees the large
    # displacements from the first frame that a 630-frame rollout meets
    anchor: Literal["clip", "random"] = "clip"
    # consecutive (the lab); random: each training clip is T frames drawn anywhere in the split,
    # so a step predicts frame t from a previous frame at any distance (teacher forcing then
    # cannot teach copying the previous frame); mixed: each clip one or the other (p = 1/2)
    clip_order: Literal["consecutive", "random", "mixed"] = "consecutive"
    anchor_range: int = 0
    # augmentation of training samples (clip, poses and anchor moved alike, so what the model must
    # copy from the first frame stays where it is): a horizontal shift of up to shift_x pixels
    # (edges repeated) and, with flip, a mirror image half of the time; with shift_mask the
    # columns the shift filled in are left out of the reconstruction loss
    shift_x: int = 0
    flip: bool = False
    shift_mask: bool = False
    # scale augmentation: a fraction zoom_prob of the samples zoomed by a factor drawn log-uniformly
    # in [zoom_min, zoom_max] about the feet of the clip's skeletons (a dancer nearer or farther from
    # the camera); with shift_mask the pixels the zoom filled in are left out of the loss too
    zoom_min: float = 1.0
    zoom_max: float = 1.0
    zoom_prob: float = 0.5
    partial: float = 1.0
    fast_train: bool = False
    fast_partial: float = 0.4
    fast_train_epoch: int = 5
    batch_size: int = 2


@dataclass
class ModelConfig:
    F_dim: int = 128
    L_dim: int = 32
    N_dim: int = 12
    D_dim: int = 192
    # standard: N(0, I) as in the lab; learned: p(z_t | prev frame, pose_t)
    prior: Literal["standard", "learned"] = "standard"
    first_frame_cond: bool = False  # feed the first frame's features to the fusion decoder too
    # direct (the lab), residual, masked, masked_first, composite: see PoseCVAE.decode
    output: Literal["direct", "residual", "masked", "masked_first", "composite", "warped_first"] = "direct"
    down: int = 0  # stride-2 stages in the encoders (0: the lab's full resolution everywhere)
    pose_input: Literal["raw", "inverted"] = "raw"  # raw (the lab); inverted: the pose encoder reads (1 - pose) * 4
    ffn_gate: Literal["relu", "sigmoid"] = "relu"  # relu: the lab's value * relu(gate); sigmoid: a bounded GLU gate
    # lab: the lab template's modules layer for layer (loads its checkpoints); unet: full-resolution
    # stems and a U-Net fusion decoder of model.levels halvings (D_dim: its top width), see models/unet.py
    arch: Literal["posecast", "lab", "unet"] = "posecast"
    levels: int = 3  # model.arch unet: how many times the U-Net halves the resolution
    # feed the previous frame's features to the fusion decoder (the lab). false: each frame is drawn
    # from its pose and the first frame alone, so a rollout cannot accumulate its own errors
    prev_frame_cond: bool = True
    # feed the first frame's pose to the fusion decoder too (where the person stands in the first
    # frame: what a flow from the first frame to the target pose needs, see output warped_first)
    first_pose_cond: bool = False


@dataclass
class OptimConfig:
    """The optimiser and its learning-rate steps."""

    num_epoch: int = 70
    lr: float = 0.001
    optim: Literal["Adam", "AdamW"] = "Adam"
    weight_decay: float = 0.0  # AdamW's decoupled decay (Adam: L2 in the gradient)
    # multistep (the lab): the rate times gamma at each milestone; cosine: from lr down to 0 along
    # half a cosine over num_epoch epochs (milestones and gamma are then not read)
    lr_schedule: Literal["multistep", "cosine"] = "multistep"
    milestones: list[int] = field(default_factory=lambda: [2, 5])
    gamma: float = 0.1
    grad_clip: float | None = 1.0


@dataclass
class ScheduleConfig:
    """Teacher forcing and KL annealing: pure functions of progress (training.schedules)."""

    tfr: float = 1.0
    tfr_sde: int = 10
    tfr_d_step: float = 0.1
    tfr_mode: Literal["step", "linear"] = "step"  # step: the lab's decay; linear: the report's 1 -> 0 from tfr_sde
    tfr_flip: Literal["epoch", "batch", "step"] = "epoch"  # epoch (the lab): how often the coin is flipped
    kl_anneal_type: Literal["Cyclical", "Monotonic", "None"] = "Cyclical"
    kl_anneal_cycle: int = 10
    kl_anneal_ratio: float = 1.0
    kl_anneal_per: Literal["epoch", "step"] = "epoch"
    kl_reduction: Literal["lab", "mean"] = "lab"  # lab: KL summed over latent elements / batch; mean: per element


@dataclass
class RuntimeConfig:
    """How a run executes, not what it learns (seed aside): precision, layout, threads, budget, saving."""

    # auto: bf16 autocast where the device runs bf16 natively (AVX512-BF16/AMX CPUs, CUDA), else fp32
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True  # NHWC weights and activations (oneDNN runs them without reorders)
    threads: int | Literal["auto"] | None = None  # intra-op threads: a number, "auto" (idle CPUs by load) or null (torch's)
    max_time: float | None = None  # wall-clock budget in seconds; stops after the epoch that passes it
    seed: int = 0
    per_save: int = 3
    val_every: int = 1
    skip_nonfinite: bool = False  # skip a batch whose loss is not finite instead of stopping


@dataclass
class InferenceConfig:
    z_infer: Literal["prior", "zero"] = "prior"  # prior: sample p(z); zero: the prior's mean
    # the rollout averaged with that of the mirrored first frame and poses, mirrored back (test-time
    # flip averaging, for a model trained with data.flip: two rollouts' cost)
    mirror_average: bool = False


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    preset: str = "lab"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def validate(self) -> "Config":
        validate(self)
        return self


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "schedule": ScheduleConfig,
             "runtime": RuntimeConfig, "inference": InferenceConfig}

# configs and checkpoints written before the groups had one ``train:`` section for these four;
# from_dict and override put each of its fields into its group by name
LEGACY_TRAIN_GROUPS = ("optim", "schedule", "runtime", "inference")
# fields of older configs that had no effect, dropped when read
REMOVED_FIELDS = {"data": ("max_val_sequences",)}
# fields added after configs and checkpoints were written: a config that lacks one ran with this
# value (its default, the behaviour from before the field), so config_diff compares it as such
ADDED_FIELDS = {"data.shift_x": 0, "data.flip": False, "data.shift_mask": False, "inference.mirror_average": False, "model.levels": 3, "model.prev_frame_cond": True,
                "model.first_pose_cond": False, "data.zoom_min": 1.0, "data.zoom_max": 1.0, "data.zoom_prob": 0.5,
                "optim.lr_schedule": "multistep"}


@dataclass(frozen=True)
class FieldType:
    """A field's annotation: the types it takes (None aside), whether it may be None (YAML null,
    ``none`` on the command line), a list's item type, and the values a ``Literal`` allows. Read
    from the dataclasses above, so YAML checking and the command-line flags cannot disagree on a
    field's type or choices."""

    kinds: tuple[type, ...]
    optional: bool
    item: type | None = None
    choices: tuple[Any, ...] = ()


def _field_type(hint: Any) -> FieldType:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    kinds = tuple(a for a in args if a is not type(None))
    choices = tuple(v for k in kinds if typing.get_origin(k) is Literal for v in typing.get_args(k))
    item_args = typing.get_args(kinds[0]) if len(kinds) == 1 and not choices else ()
    return FieldType(tuple(type(typing.get_args(k)[0]) if typing.get_origin(k) is Literal else typing.get_origin(k) or k
                           for k in kinds), len(kinds) < len(args), item_args[0] if item_args else None, choices)


# "section.field" -> its type, for every field of every section
FIELD_TYPES: dict[str, FieldType] = {f"{s}.{name}": _field_type(hint) for s, cls in _SECTIONS.items()
                                     for name, hint in typing.get_type_hints(cls).items()}

# fields that bound a run's cost without changing what it learns (a wall-clock budget): a run
# that differs only in them is the same experiment (reports and studies leave them out)
BUDGET_FIELDS = ("runtime.max_time",)

PRESETS: dict[str, dict[str, Any]] = {
    # the lab's sizes and defaults
    "lab": {},
    # trains in minutes on 2 CPU cores
    "small": {
        "model": {"F_dim": 32, "L_dim": 16, "N_dim": 8, "D_dim": 48},
        "data": {"batch_size": 4},
        "optim": {"num_epoch": 10, "milestones": [6, 9]},
        "schedule": {"tfr_sde": 3, "tfr_d_step": 0.2, "kl_anneal_cycle": 2},
        "runtime": {"per_save": 2},
    },
    # unit tests
    "tiny": {
        "model": {"F_dim": 8, "L_dim": 4, "N_dim": 2, "D_dim": 8},
        "data": {"train_vi_len": 4, "val_vi_len": 12, "batch_size": 2},
        "optim": {"num_epoch": 2, "milestones": [10]},
        "schedule": {"tfr_sde": 1, "kl_anneal_cycle": 1},
        "runtime": {"per_save": 1, "precision": "fp32", "channels_last": False},  # fp32 tolerances in tests
    },
}


def choice_text(values: Iterable[Any]) -> str:
    """``a, b or c``: the allowed values of a choice, as messages name them."""
    *rest, last = [str(v) for v in values]
    return f"{', '.join(rest)} or {last}" if rest else last


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(name: str, value: Any) -> Any:
    """Check a value against its field's type; read numbers given as text (YAML reads ``1e-3``
    as a string). Fails with a ConfigError naming the field."""
    ftype = FIELD_TYPES[name]
    if value is None:
        if ftype.optional:
            return None
        raise ConfigError(f"{name}: a value is required (got null)")
    if ftype.kinds == (int, str):  # runtime.threads: a number or "auto"
        if value == "auto":
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected a number, auto or null, got {value!r}")
    kind = ftype.kinds[0]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if kind is int:
            if float(value) != int(value):
                raise ConfigError(f"{name}: expected a whole number, got {value!r}")
            return int(value)
        return float(value)
    if kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{name}: expected a list of whole numbers, got {value!r}")
        return list(value)
    if kind is str:
        value = value if isinstance(value, str) else str(value)
        if ftype.choices and value not in ftype.choices:
            raise ConfigError(f"{name}: {choice_text(ftype.choices)}, got {value!r}")
        return value
    return value


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Nested config data of an older layout in the current one: the fields of a ``train:``
    section go to their group (LEGACY_TRAIN_GROUPS) by name, and REMOVED_FIELDS are dropped.
    Data already in the current layout comes back as it is (a copy)."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for section, names in REMOVED_FIELDS.items():
        for name in names:
            if isinstance(data.get(section), dict):
                data[section].pop(name, None)
    train = data.pop("train", None) or {}
    if not isinstance(train, dict):
        raise ConfigError(f"train: expected a mapping, got {train!r}")
    unknown = [k for k in train if _legacy_group(k) is None]
    if unknown:
        raise ConfigError(f"train: unknown field(s) {sorted(unknown)}")
    for name, value in train.items():
        group = data.setdefault(_legacy_group(name), {})
        if isinstance(group, dict):
            group.setdefault(name, value)  # a value in its new group wins
    return data


def _legacy_group(name: str) -> str | None:
    """The group that a field of an old ``train:`` section belongs to now (None: not one of them)."""
    for section in LEGACY_TRAIN_GROUPS:
        if name in {f.name for f in fields(_SECTIONS[section])}:
            return section
    return None


def from_dict(data: dict[str, Any]) -> Config:
    """Build a Config from nested plain data, starting from its ``preset`` (default ``lab``).
    Data of the older layout (a ``train:`` section) is read too (see :func:`upgrade`)."""
    data = upgrade(data)
    preset = data.pop("preset", "lab")
    if preset not in PRESETS:
        raise ConfigError(f"preset: unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    merged = _merge(PRESETS[preset], data)
    kwargs: dict[str, Any] = {"preset": preset}
    for name, cls in _SECTIONS.items():
        section = merged.pop(name, {}) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{name}: expected a mapping, got {section!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ConfigError(f"{name}: unknown field(s) {sorted(unknown)}")
        kwargs[name] = cls(**{k: _coerce(f"{name}.{k}", v) for k, v in section.items()})
    if merged:
        raise ConfigError(f"unknown section(s) {sorted(merged)}")
    return Config(**kwargs)


def preset(name: str) -> Config:
    """The named preset as a Config."""
    return from_dict({"preset": name})


def load(path: str | Path) -> Config:
    """Load a YAML config file (the sections of Config, or an older one's ``train:``, and an optional preset)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping")
    return from_dict(data)


def find_field(name: str) -> str:
    """The section holding field ``name`` (for flat ``--name value`` overrides)."""
    for section, cls in _SECTIONS.items():
        if name in {f.name for f in fields(cls)}:
            return section
    raise ConfigError(f"unknown config field {name!r}")


def override(cfg: Config, **values: Any) -> Config:
    """A copy of cfg with flat field overrides (``lr=1e-3``) or dotted ones (``optim.lr``; the
    older ``optim.lr`` names its group by the field)."""
    data = cfg.to_dict()
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        if section == "train":
            section = _legacy_group(name) or section
        section = section or find_field(name)
        if section not in _SECTIONS:
            raise ConfigError(f"unknown section {section!r} in {key!r}")
        data[section][name] = value
    return from_dict(data)


def flat(cfg: Config | dict[str, Any]) -> dict[str, Any]:
    """A config (or its ``to_dict()``) as ``{"section.field": value}``, in field order; entries
    outside the sections (``preset``) keep their own name. A dict of the older layout is read as
    :func:`upgrade` reads it."""
    data = cfg.to_dict() if isinstance(cfg, Config) else upgrade(cfg)
    out: dict[str, Any] = {}
    for key, values in data.items():
        if isinstance(values, dict):
            out.update({f"{key}.{k}": v for k, v in values.items()})
        else:
            out[key] = values
    return out


def config_diff(a: Config | dict[str, Any], b: Config | dict[str, Any], *, sections: Iterable[str] | None = None,
                ignore: Iterable[str] = (), missing: Any = None) -> dict[str, tuple[Any, Any]]:
    """The fields in which two configs (or their ``to_dict()``) differ: ``{"section.field": (in a,
    in b)}``, in a's field order, then b's. ``sections``: compare only these (default: everything,
    the preset included); ``ignore``: names left out; ``missing``: the value of a field one lacks
    (a field of ADDED_FIELDS that one lacks has the value recorded there)."""
    fa, fb = flat(a), flat(b)
    keep = None if sections is None else set(sections)
    skip = set(ignore)
    out = {}
    for key in dict.fromkeys([*fa, *fb]):
        if key in skip or (keep is not None and key.partition(".")[0] not in keep):
            continue
        absent = ADDED_FIELDS.get(key, missing)
        va, vb = fa.get(key, absent), fb.get(key, absent)
        if va != vb:
            out[key] = (va, vb)
    return out


def _check(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {why}")


def validate(cfg: Config) -> None:
    """Fail before any training with a message naming the field. The choices of Literal fields
    are checked where the values are read (from_dict, the command line's flags)."""
    d, m, o, s, r = cfg.data, cfg.model, cfg.optim, cfg.schedule, cfg.runtime
    for key, ftype in FIELD_TYPES.items():  # a Config built in code, not read
        section, _, name = key.partition(".")
        value = getattr(getattr(cfg, section), name)
        if ftype.choices and isinstance(value, str):
            _check(value in ftype.choices, key, f"{choice_text(ftype.choices)}, got {value!r}")
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
    for name in ("F_dim", "L_dim", "N_dim", "D_dim"):
        _check(getattr(m, name) >= 1, f"model.{name}", "must be >= 1")
    _check(m.pose_input == "raw" or m.arch != "lab", "model.pose_input",
           "inverted needs model.arch posecast or unet (the lab's label encoder reads the raw image)")
    _check(0 <= m.down <= 3, "model.down", f"0 to 3 downsampling stages, got {m.down}")
    _check(m.arch == "posecast" or m.down == 0, "model.down",
           f"the {m.arch} architecture has no downsampling encoders (down: 0)")
    _check(1 <= m.levels <= 5, "model.levels", f"1 to 5 halvings, got {m.levels}")
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
    _check(o.num_epoch >= 1, "optim.num_epoch", "must be >= 1")
    _check(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    _check(0 < o.gamma <= 1, "optim.gamma", "must be in (0, 1]")
    _check(o.grad_clip is None or o.grad_clip > 0, "optim.grad_clip", "must be > 0 or null")
    _check(0 <= s.tfr <= 1, "schedule.tfr", f"a ratio in [0, 1], got {s.tfr}")
    _check(s.tfr_d_step >= 0, "schedule.tfr_d_step", f"must be >= 0, got {s.tfr_d_step}")
    _check(0 <= s.tfr_sde < o.num_epoch or s.tfr_sde == 0, "schedule.tfr_sde",
           f"the decay start ({s.tfr_sde}) must be an epoch before optim.num_epoch ({o.num_epoch})")
    _check(s.kl_anneal_cycle >= 1, "schedule.kl_anneal_cycle", "must be >= 1")
    if s.kl_anneal_type == "Cyclical" and s.kl_anneal_per == "epoch":
        _check(s.kl_anneal_cycle <= o.num_epoch, "schedule.kl_anneal_cycle",
               f"{s.kl_anneal_cycle} cycles do not fit in {o.num_epoch} epochs")
    _check(0 < s.kl_anneal_ratio <= 1, "schedule.kl_anneal_ratio", f"must be in (0, 1], got {s.kl_anneal_ratio}")
    _check(d.anchor == "clip" or m.first_frame_cond or m.output in ("masked_first", "composite", "warped_first"),
           "data.anchor",
           "random has no effect unless the model reads the first frame (model.first_frame_cond, or "
           "model.output masked_first or composite)")
    _check(d.anchor_range >= 0, "data.anchor_range", "must be >= 0 (0: anywhere in the split)")
    _check(d.anchor_range == 0 or d.clip_order == "consecutive", "data.anchor_range",
           f"is measured from a clip's start, which random or mixed clip orders do not keep (use 0 with "
           f"data.clip_order {d.clip_order})")
    _check(0 <= d.shift_x <= d.frame_W // 2, "data.shift_x",
           f"pixels in [0, data.frame_W / 2] (at most half the frame), got {d.shift_x}")
    _check(not d.shift_mask or d.shift_x > 0 or d.zoom_min != 1 or d.zoom_max != 1, "data.shift_mask",
           "leaves out of the loss the pixels a shift or zoom filled in: it needs data.shift_x > 0 or a zoom")
    _check(0 < d.zoom_min <= 1 <= d.zoom_max <= 4, "data.zoom_min",
           f"zoom_min <= 1 <= zoom_max, within (0, 4], got {d.zoom_min} and {d.zoom_max}")
    _check(0 <= d.zoom_prob <= 1, "data.zoom_prob", f"a probability in [0, 1], got {d.zoom_prob}")
    _check(r.threads is None or r.threads == "auto" or (isinstance(r.threads, int) and r.threads >= 1),
           "runtime.threads", f"a number >= 1, auto or null, got {r.threads!r}")
    _check(r.max_time is None or r.max_time > 0, "runtime.max_time", "must be > 0 or null")
    _check(r.per_save >= 1, "runtime.per_save", "must be >= 1")
    _check(r.val_every >= 1, "runtime.val_every", "must be >= 1")
