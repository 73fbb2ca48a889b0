"""Typed configuration in groups (data, model, optim, schedule, runtime, inference), recipes, YAML
in and out. The dataclasses' defaults are the lab's values, the one place defaults are written.
A recipe (a preset) is a YAML file in posecast/recipes/ holding what differs from the recipe it
starts from (``preset: NAME``, default lab); :func:`preset` loads one by name, :func:`load` a
user's file of the same form. A field with a fixed set of values is a ``Literal``: the YAML checks
and the command line's flag types and choices are read from the annotations (FIELD_TYPES; the
checks themselves are in posecast.config_checks).

Field names follow the lab's training script where it has one (``frame_H``, ``tfr_sde``,
``kl_anneal_cycle`` ...), so that the lab's flags map one to one (see docs/lab_compatibility.md).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml

# ConfigError, FieldType, choice_text, PRESETS, read_yaml and recipe_path are part of this module's
# API too: callers import one config module
from .config_checks import ConfigError, FieldType, check_config, choice_text, coerce, field_type  # noqa: F401
from .recipes import PRESETS, merge, read_yaml, recipe_data, recipe_path  # noqa: F401


@dataclass
class DataConfig:
    """The frames, the clips drawn from them and their augmentation."""

    frame_H: int = 32
    frame_W: int = 64
    train_vi_len: int = 16
    val_vi_len: int = 630
    clip_stride: int | None = None  # None: non-overlapping clips, as in the lab; less: more clips of a short video
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
    partial: float = 1.0  # the lab's --partial, --fast_train, --fast_partial, --fast_train_epoch: see ClipSampler
    fast_train: bool = False
    fast_partial: float = 0.4
    fast_train_epoch: int = 5
    batch_size: int = 2


@dataclass
class ModelConfig:
    """The architecture: its widths, conditioning and output.

    The lab's channel widths: F_dim the frame features, L_dim the pose features, N_dim the latent z,
    D_dim the fusion decoder's output (model.arch unet: its top width).
    """

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
    # model.arch unet: GroupNorm before each activation of the U-Net and the head (group), or none;
    # without it a long budget's learning rate made the activations grow without bound
    norm: Literal["none", "group"] = "none"
    # output masked_first / warped_first: new pixels and the flow only within pose_gate pixels of where
    # the target pose image differs from the first frame's (0: everywhere); identical poses keep the first frame
    pose_gate: int = 0
    # model.arch unet: each step also reads the pose images of its pose_context neighbouring frames on
    # either side (models/pose_context.py): a label off its dancer or missing matters less
    pose_context: int = 0


@dataclass
class OptimConfig:
    """The optimiser and its learning-rate steps."""

    num_epoch: int = 70
    lr: float = 0.001
    optim: Literal["Adam", "AdamW"] = "Adam"  # the lab's --optim, with torch's defaults (AdamW: weight decay 0.01)
    # multistep (the lab): the rate times gamma at each milestone; cosine: from lr down to 0 along
    # half a cosine over num_epoch epochs (milestones and gamma are then not read)
    lr_schedule: Literal["multistep", "cosine"] = "multistep"
    milestones: list[int] = field(default_factory=lambda: [2, 5])
    gamma: float = 0.1
    grad_clip: float | None = 1.0
    # a training budget in minutes: a new run first times a few steps here and sets num_epoch to the
    # epochs that fit it (posecast.training.budget; the run's config records that count and null here).
    # null: num_epoch as given. An explicit --num_epoch wins over it.
    minutes: float | None = None
    # an exponential moving average of the weights kept beside them (posecast.training.ema), with this
    # decay per step (e.g. 0.999; 0: none); it does not change training, inference.use_ema rolls out with it
    ema_decay: float = 0.0


@dataclass
class ScheduleConfig:
    """Teacher forcing and KL annealing (pure functions of progress, training.schedules), and the
    objective's reconstruction term."""

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
    # the reconstruction term: mse (the lab's) or l1 (mean absolute error); the logged train_mse is the MSE either way
    recon: Literal["mse", "l1"] = "mse"
    # the fraction of optim.num_epoch trained with recon, the MSE after it (1: recon throughout; e.g. 0.5
    # with recon l1: L1 for the first half of the epochs, then the MSE that PSNR measures)
    recon_until: float = 1.0


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
    # roll out with the moving average of the weights (optim.ema_decay) where the checkpoint has one
    use_ema: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    preset: str = "lab"  # the recipe it starts from (posecast/recipes/NAME.yaml)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def validate(self) -> "Config":
        """Check every field (a ConfigError names the first wrong one); returns self."""
        check_config(self, FIELD_TYPES)
        return self


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "schedule": ScheduleConfig,
             "runtime": RuntimeConfig, "inference": InferenceConfig}

# "section.field" -> its type, for every field of every section
FIELD_TYPES: dict[str, FieldType] = {f"{s}.{name}": field_type(hint) for s, cls in _SECTIONS.items()
                                     for name, hint in typing.get_type_hints(cls).items()}

# fields that bound a run's cost without changing what it learns (a wall-clock budget): a run
# that differs only in them is the same experiment (reports and studies leave them out)
BUDGET_FIELDS = ("runtime.max_time",)

# the config layout before the groups (one train: section), no longer read
_OLD_LAYOUT = ("train: the older config layout (one train: section) is no longer read: move its fields "
               "into the groups optim, schedule, runtime and inference (posecast train --help lists them)")


def from_dict(data: dict[str, Any]) -> Config:
    """Build a Config from nested plain data over its ``preset``'s recipe (default ``lab``)."""
    data = dict(data or {})
    if "train" in data:
        raise ConfigError(_OLD_LAYOUT)
    name = data.pop("preset", "lab")
    merged = merge(recipe_data(str(name)), data)
    kwargs: dict[str, Any] = {"preset": str(name)}
    for section, cls in _SECTIONS.items():
        values = merged.pop(section, {}) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a mapping, got {values!r}")
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"{section}: unknown field(s) {sorted(unknown)}")
        kwargs[section] = cls(**{k: coerce(f"{section}.{k}", FIELD_TYPES[f"{section}.{k}"], v)
                                 for k, v in values.items()})
    if merged:
        raise ConfigError(f"unknown section(s) {sorted(merged)}")
    return Config(**kwargs)


def preset(name: str) -> Config:
    """The shipped recipe ``name`` (posecast/recipes/NAME.yaml) as a Config."""
    return from_dict({"preset": name})


def load(path: str | Path) -> Config:
    """Load a YAML config file: the groups of Config, over the recipe its ``preset:`` names (default lab)."""
    return from_dict(read_yaml(Path(path)))


def find_field(name: str) -> str:
    """The section holding field ``name`` (for flat ``--name value`` overrides)."""
    for section, cls in _SECTIONS.items():
        if name in {f.name for f in fields(cls)}:
            return section
    raise ConfigError(f"unknown config field {name!r}")


def override(cfg: Config, **values: Any) -> Config:
    """A copy of cfg with flat field overrides (``lr=1e-3``) or dotted ones (``optim.lr``)."""
    data = cfg.to_dict()
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        section = section or find_field(name)
        if section not in _SECTIONS:
            raise ConfigError(f"unknown section {section!r} in {key!r}")
        data[section][name] = value
    return from_dict(data)


def flat(cfg: Config | dict[str, Any]) -> dict[str, Any]:
    """A config (or its ``to_dict()``) as ``{"section.field": value}``, in field order; entries
    outside the sections (``preset``) keep their own name."""
    data = cfg.to_dict() if isinstance(cfg, Config) else cfg
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
    the preset included); ``ignore``: names left out; ``missing``: the value of a field one lacks."""
    fa, fb = flat(a), flat(b)
    keep = None if sections is None else set(sections)
    skip = set(ignore)
    return {key: (fa.get(key, missing), fb.get(key, missing)) for key in dict.fromkeys([*fa, *fb])
            if key not in skip and (keep is None or key.partition(".")[0] in keep)
            and fa.get(key, missing) != fb.get(key, missing)}
