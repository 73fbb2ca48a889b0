"""Output folders that appear whole or not at all.

`posecast poses` and `posecast prepare` write into a hidden folder beside the output
(``.NAME.partial-XXXX``); only when everything is written do its entries move into the output
folder (``os.replace``: a rename on one file system). A failure or Ctrl-C at any point removes
the hidden folder and any parent folders made for it, so no empty or half-written output is
left behind, and an existing output is untouched until the new one is complete.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator


def _make_parents(folder: Path) -> Path | None:
    """Create ``folder``'s missing ancestors; the topmost one made (None when none was)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    if missing:
        folder.mkdir(parents=True)
    return missing[-1] if missing else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _commit(stage: Path, out_dir: Path, stale: Iterable[Path]) -> None:
    """Move everything in ``stage`` into ``out_dir`` (after removing ``stale`` paths there)."""
    if not out_dir.exists():
        os.replace(stage, out_dir)
        return
    for path in stale:
        _remove(path)
    for entry in sorted(stage.iterdir()):
        target = out_dir / entry.name
        _remove(target)
        os.replace(entry, target)
    stage.rmdir()


@contextlib.contextmanager
def staged_output(out_dir: str | Path, stale: Callable[[], Iterable[Path]] = tuple) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``out_dir`` to write the whole output into.

    On success its entries replace the same-named ones in ``out_dir`` (made if missing), and
    the paths ``stale()`` names (an earlier run's files that this run does not write) are
    removed first. On any exception the hidden folder, and the parent folders made for it, are
    removed and ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    made = _make_parents(out_dir.parent)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    try:
        yield stage
        _commit(stage, out_dir, stale())
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
