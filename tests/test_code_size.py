"""No class over 150 lines and no function or method over 50 in src/posecast (issue 21): a long
body is a sign that a part of it wants a name of its own. A definition counts from its `def` or
`class` line to the last line of its body, docstring and comments included."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "posecast"
LIMITS = {ast.ClassDef: 150, ast.FunctionDef: 50, ast.AsyncFunctionDef: 50}


def oversized() -> list[str]:
    """`file:line name (N lines > limit)` for every definition in src/posecast over its limit."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            limit = LIMITS.get(type(node))
            if limit is None:
                continue
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name} ({lines} > {limit})")
    return found


def test_the_tree_is_read() -> None:
    # guards the test itself: a wrong SRC would find no files and pass on nothing
    assert len(list(SRC.rglob("*.py"))) > 20


def test_no_class_over_150_lines_and_no_function_over_50() -> None:
    found = oversized()
    assert not found, "\n".join(found)
