"""The options of `posecast poses` and `posecast prepare`, checked before any work starts.

One rule per option, used by the command line (an argparse type: ``posecast prepare: error:
argument --margin: ...``) and by the library functions (:class:`OptionError` naming the flag),
so a bad value ends in one line before a frame is decoded or a folder is made.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from .errors import PoseInputError

SIZE_STEP, SIZE_MIN, SIZE_MAX = 8, 16, 4096


class OptionError(PoseInputError):
    """An option value outside its range; the message starts with the flag."""


def _size_ok(size: Any) -> bool:
    return (len(size) == 2 and all(isinstance(v, int) and SIZE_MIN <= v <= SIZE_MAX and v % SIZE_STEP == 0
                                   for v in size))


# option -> (flag, test, what a good value is)
RULES: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "size": ("--size", _size_ok, f"WIDTHxHEIGHT with both sides multiples of {SIZE_STEP} from {SIZE_MIN} "
             f"to {SIZE_MAX} pixels (the models halve the frame 3 times), such as 64x32 or 128x64"),
    "margin": ("--margin", lambda v: math.isfinite(v) and 0 <= v <= 2,
               "a fraction of the person's height from 0 to 2"),
    "fps": ("--fps", lambda v: v is None or (math.isfinite(v) and v > 0), "a frame rate above 0"),
    "val_seconds": ("--val-seconds", lambda v: math.isfinite(v) and v > 0, "a number of seconds above 0"),
    "test_seconds": ("--test-seconds", lambda v: math.isfinite(v) and v >= 0,
                     "0 (no test split) or more seconds"),
    "min_train": ("--min-train-frames", lambda v: isinstance(v, int) and v >= 2, "a whole number of frames, 2 or more"),
    # window 3 fits its quadratic exactly through the 3 points: it would smooth nothing
    "smooth": ("--smooth", lambda v: isinstance(v, int) and (v == 0 or (v >= 5 and v % 2 == 1)),
               "0 (off) or an odd number of frames, 5 or more (the Savitzky-Golay window)"),
}


def problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for option ``name`` (``must be ..., got ...``), or None."""
    _flag, test, what = RULES[name]
    try:
        good = bool(test(value))
    except (TypeError, ValueError):
        good = False
    if good:
        return None
    shown = "x".join(str(v) for v in value) if name == "size" and isinstance(value, (tuple, list)) else value
    return f"must be {what}, got {shown}"


def check_options(**values: Any) -> None:
    """Raise :class:`OptionError` (``--flag: must be ..., got ...``) for the first bad value."""
    for name, value in values.items():
        text = problem(name, value)
        if text is not None:
            raise OptionError(f"{RULES[name][0]}: {text}")


def option_type(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type``: ``parse`` the text, then check it against option ``name``'s rule."""
    import argparse

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:  # (an ArgumentTypeError of ``parse`` keeps its own message)
            raise argparse.ArgumentTypeError(f"must be {RULES[name][2]}, got {text}") from None
        if problem(name, value) is not None:
            raise argparse.ArgumentTypeError(f"must be {RULES[name][2]}, got {text}")
        return value
    return convert
