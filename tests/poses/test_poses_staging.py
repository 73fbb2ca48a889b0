"""staged_output: an output folder appears whole, or not at all."""
from __future__ import annotations

import pytest

from posecast.poses.staging import staged_output


def test_a_new_folder_appears_only_when_complete(tmp_path) -> None:
    out = tmp_path / "a" / "b" / "out"
    with staged_output(out) as stage:
        (stage / "x.txt").write_text("1")
        assert not out.exists() and stage.parent == out.parent and stage.name.startswith(".out.partial-")
    assert (out / "x.txt").read_text() == "1" and sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_a_failure_removes_the_stage_and_the_parents_made_for_it(tmp_path) -> None:
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError):
        with staged_output(out) as stage:
            (stage / "x.txt").write_text("1")
            raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_keeps_its_other_files_and_loses_the_stale_ones(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("keep.txt", "stale.txt", "x.txt"):
        (out / name).write_text("old")
    (out / "sub").mkdir()
    (out / "sub" / "old.png").write_text("old")
    with staged_output(out, stale=lambda: [out / "stale.txt"]) as stage:
        (stage / "x.txt").write_text("new")
        (stage / "sub").mkdir()
        (stage / "sub" / "new.png").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "sub", "x.txt"]
    assert (out / "x.txt").read_text() == "new" and [p.name for p in (out / "sub").iterdir()] == ["new.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupt_leaves_the_existing_folder_as_it_was(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged_output(out, stale=lambda: list(out.iterdir())) as stage:
            (stage / "x.txt").write_text("new")
            raise KeyboardInterrupt
    assert (out / "x.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
