"""What the command modules share: argument types, and config flags made from the dataclasses."""
from __future__ import annotations

import argparse
import typing
from typing import Any, Callable

from .. import config as cfgmod

# The lab's flags that are spelled differently here (the rest keep the lab's names).
LAB_ALIASES = {"--DR": "--data", "--save_root": "--out", "--ckpt_path": "--resume", "--gpu": "--device"}


def bool_arg(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def number_arg(kind: Callable[[str], Any], *, low: float | None = None, high: float | None = None,
               what: str = "a number") -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float) of the text, within [low, high]; a message
    ``must be WHAT, got TEXT`` otherwise."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


positive_int_arg = number_arg(int, low=1, what="a positive integer")


def size_arg(text: str) -> tuple[int, int]:
    """'64x32' -> (64, 32): width x height, both positive."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 64x32, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


def optional_arg(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """``kind``, or None for the words none and null."""
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else kind(text)
    return parse


def threads_arg(text: str) -> int | str | None:
    """Intra-op threads: a positive number, auto or none."""
    if text.lower() in ("none", "null", "auto"):
        return None if text.lower() != "auto" else "auto"
    try:
        return positive_int_arg(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, auto or none, got {text!r}") from None


def choice_arg(key: str, choices: tuple[Any, ...]) -> Callable[[str], str]:
    """One of a Literal field's values; anything else fails naming the field and the values."""
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{key}: {cfgmod.choice_text(choices)}, got {text!r}")
        return text
    return parse


def _flag_options(key: str, ftype: cfgmod.FieldType) -> dict[str, Any]:
    """add_argument options for a config field, from its annotation (posecast.config.FIELD_TYPES)."""
    if ftype.kinds == (int, str):  # runtime.threads: a number or "auto"
        return {"type": threads_arg}
    (kind,) = ftype.kinds
    if ftype.choices:
        return {"type": choice_arg(key, ftype.choices), "choices": ftype.choices}
    if kind is bool:
        return {"type": bool_arg, "nargs": "?", "const": True}
    if kind is list:
        return {"type": ftype.item, "nargs": "+"}
    return {"type": optional_arg(kind) if ftype.optional else kind}


class ArgumentParser(argparse.ArgumentParser):
    """A command's parser whose usage errors are one line, ``posecast COMMAND: error: ...`` (exit
    code 2), like the errors the commands raise; ``-h`` shows the usage."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def add_config_overrides(p: argparse.ArgumentParser) -> None:
    """A flag ``--FIELD`` for every config field (the lab's flag names where it has them)."""
    g = p.add_argument_group("config overrides (the lab's flag names; see docs/lab_compatibility.md)")
    for key, ftype in cfgmod.FIELD_TYPES.items():
        name = key.partition(".")[2]
        # SUPPRESS: only flags given appear in args, so `--grad_clip none` can override 1.0
        g.add_argument(f"--{name}", dest=f"cfg_{name}", default=argparse.SUPPRESS, **_flag_options(key, ftype))


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given as flags: {field: value}."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}


def config_from(args: argparse.Namespace) -> cfgmod.Config:
    """The config of ``--config FILE`` or ``--preset NAME`` (default lab) with the flags' overrides."""
    if args.config and args.preset:
        raise cfgmod.ConfigError(f"--config {args.config} --preset {args.preset}: give one (a config file names "
                                 "the recipe it starts from inside: preset: NAME)")
    cfg = cfgmod.load(args.config) if args.config else cfgmod.preset(args.preset or "lab")
    overrides = config_overrides(args)
    return cfgmod.override(cfg, **overrides).validate() if overrides else cfg.validate()
