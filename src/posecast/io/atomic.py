"""Atomic writes: a temporary file beside the target, fsync, rename. A crash at any moment leaves
the old file or the new one, never a partial file."""
from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    """The process umask (from /proc where it can: setting and restoring it races other threads)."""
    try:
        with open("/proc/self/status") as f:
            line = next(ln for ln in f if ln.startswith("Umask:"))
        return int(line.split()[1], 8)
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _set_mode(fd: int, target: Path) -> None:
    """Give the temporary file the mode of the file it replaces, else 0666 minus the umask."""
    if not hasattr(os, "fchmod"):
        return
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = 0o666 & ~_current_umask()
    try:
        os.fchmod(fd, mode)
    except OSError:
        pass


_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.XXXX.tmp``) that a killed atomic write left in folder.

    Call it only while nothing else writes there (before a resumed run starts).
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if _TEMP_RE.match(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Write with ``write(fileobj)`` to a temporary file beside ``path``, fsync, then rename.

    A crash at any moment leaves either the old file or the new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        _set_mode(fd, path)  # mkstemp makes 0600 files: give the usual umask mode, as open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # e.g. ENOSPC: say which file
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    data = text.encode()
    atomic_write_bytes(path, lambda f: f.write(data))
