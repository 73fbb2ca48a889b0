"""Keep MediaPipe's native log lines off the terminal.

MediaPipe 0.10.21 writes from C++ straight to file descriptor 2: TF Lite's ``INFO: Created
TensorFlow Lite XNNPACK delegate for CPU.``, absl's ``WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR`` and ``W0000 ... calculator.cc:186]``
lines on the first frames. Measured: ``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` do not
stop them (absl's C++ log ignores glog's variable, TF Lite's logger ignores TF's), so besides
setting those variables and absl's Python verbosity, a MediaPipe graph lives with descriptor 2
pointed at a temporary file (:func:`quiet_native_logs`); what the file receives is written back
to ``sys.stderr`` except the native log lines, so nothing else is lost.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from typing import Iterator

# TF Lite's "INFO: ...", absl's pre-init notice, and absl/glog lines such as
# "W0000 00:00:1796222319.292774   12732 inference_feedback_manager.cc:114] ..." (the clock unset)
NATIVE_LOG = re.compile(r"^(INFO: |WARNING: All log messages before absl|[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\])")
_depth = 0


def silence_mediapipe_logging() -> None:
    """Set the log levels MediaPipe's libraries read (unless the user set them) and absl's."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # glog: errors and worse
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ logging
    try:
        from absl import logging as absl_logging
    except ImportError:  # absl comes with the pose extra; without it there is nothing to quiet
        return
    absl_logging.set_verbosity(absl_logging.ERROR)
    absl_logging.set_stderrthreshold("error")


def keep_lines(text: str) -> str:
    """``text`` without its native log lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not NATIVE_LOG.match(line))


def _python_stderr_on(fd: int) -> io.TextIOWrapper | None:
    """A text stream on ``fd`` to stand in for ``sys.stderr`` while descriptor 2 is captured,
    when ``sys.stderr`` writes to descriptor 2 (under pytest's capsys it does not: leave it)."""
    try:
        if sys.stderr.fileno() != 2:
            return None
    except (AttributeError, OSError, ValueError):
        return None
    return io.TextIOWrapper(os.fdopen(os.dup(fd), "wb", buffering=0), encoding=sys.stderr.encoding,
                            errors="backslashreplace", line_buffering=True, write_through=True)


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Run the block with file descriptor 2 captured: native code's writes go to a temporary
    file, and on leaving, everything in it but the native log lines is written to stderr.
    Python's own ``sys.stderr`` (progress bars, warnings, tracebacks) still reaches the terminal
    during the block. Hold it for the whole life of a graph: its threads log when they start,
    not always before a call returns. Re-entrant (an inner block does nothing); a no-op where
    descriptor 2 cannot be duplicated."""
    global _depth
    if _depth:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()  # Python's buffered text goes out before the descriptor moves
    _depth += 1
    python_stderr, stand_in = sys.stderr, _python_stderr_on(saved)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        if stand_in is not None:
            sys.stderr = stand_in
        try:
            yield
        finally:
            sys.stderr = python_stderr
            if stand_in is not None:
                stand_in.close()
            os.dup2(saved, 2)
            os.close(saved)
            _depth -= 1
            sink.seek(0)
            rest = keep_lines(sink.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
