"""The recipes shipped with posecast, one YAML file each (lab, small, tiny, demo, best ...), and
their reader. A recipe holds what differs from the recipe it starts from (``preset: NAME``; none
given: the dataclasses' defaults in posecast.config, the lab's values). ``posecast train --preset
NAME`` and ``posecast.config.preset(NAME)`` load one; a user's ``--config FILE`` has the same form.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ..config_checks import ConfigError

RECIPES_DIR = Path(__file__).resolve().parent
# the recipes' names, from the files beside this module
PRESETS: tuple[str, ...] = tuple(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))


def recipe_path(name: str) -> Path:
    """The YAML file of the shipped recipe ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return RECIPES_DIR / f"{name}.yaml"


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping; a missing, unreadable or malformed file fails in one line naming it."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping")
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Nested data: ``over``'s values replace ``base``'s, group by group (a copy)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def recipe_data(name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """Recipe ``name``'s nested values over those of the recipe it starts from, and so on."""
    if name in chain:
        raise ConfigError(f"preset: recipe {name!r} starts from itself ({' -> '.join((*chain, name))})")
    data = read_yaml(recipe_path(name))
    base = data.pop("preset", None)
    return merge(recipe_data(str(base), (*chain, name)), data) if base else data
