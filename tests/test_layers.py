"""Imports point down the layers only (docs/code_layout.md), and no import cycle hides
inside a function: every import of src/posecast, at any depth of the code, is checked."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# module (or package) -> (rank, group). A module may import a lower rank, or its own group; groups of
# one rank are side by side (training and inference never import each other). The longest entry
# naming a module decides; "posecast" itself is the package's __init__ (its version) only.
LAYERS = {
    "posecast": (0, "base"), "posecast.config": (0, "base"), "posecast.io": (0, "base"),
    "posecast.metrics": (0, "base"), "posecast.runtime": (0, "base"), "posecast.perf": (0, "base"),
    "posecast.config_checks": (0, "base"), "posecast.recipes": (0, "base"),
    "posecast.data": (1, "data"),
    "posecast.models": (2, "models"),
    "posecast.rollout": (3, "rollout"),
    "posecast.training": (4, "training"), "posecast.inference": (4, "inference"),
    "posecast.analysis": (5, "analysis"),
    # the workflows on top of the library: a person's own video (poses, a dataset from a video,
    # animating a photo, the web page) and the demo
    "posecast.poses": (6, "own-video"), "posecast.data.prepare": (6, "own-video"),
    "posecast.inference.animate": (6, "own-video"), "posecast.inference.preview": (6, "own-video"),
    "posecast.app": (6, "own-video"),
    "posecast.demo": (6, "demo"),
    "posecast.cli": (7, "cli"),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted((SRC / "posecast").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


MODULES = _modules()


def layer(module: str) -> tuple[int, str]:
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or (name != "posecast" and module.startswith(name + ".")):
            return LAYERS[name]
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py and docs/code_layout.md")


def imports(module: str) -> list[tuple[int, str]]:
    """(line, imported posecast module) for every import statement of the module, functions included."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "posecast"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [node.module or ""])
            else:
                base = node.module or ""
            base = base.rstrip(".")
            if base.split(".")[0] == "posecast":  # `from pkg import submodule` imports the submodule
                found += [(node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
                          for a in node.names]
    return sorted(set(found))


def violations(module: str) -> list[str]:
    """The imports of ``module`` against the layers, as ``module:line imports target (group, rank)``."""
    rank, group = layer(module)
    return [f"{module}:{line} imports {target} ({layer(target)[1]}, rank {layer(target)[0]})"
            for line, target in imports(module)
            if target != module and not (layer(target)[0] < rank or layer(target)[1] == group)]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    wrong = violations(module)
    assert not wrong, f"{module} is {layer(module)[1]} (rank {layer(module)[0]}): " + "; ".join(wrong)


def test_no_import_cycle() -> None:
    graph = {m: {t for _, t in imports(m) if t != m} for m in MODULES}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle (imports inside functions included): {' -> '.join(exc.args[1])}")


def test_the_check_fails_on_an_upward_import_inside_a_function(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text("from ..rollout import predict\n\n\ndef f():\n    from ..inference import load\n    return load\n")
    monkeypatch.setitem(MODULES, "posecast.training.fake", fake)
    assert violations("posecast.training.fake") == [
        "posecast.training.fake:5 imports posecast.inference.load (inference, rank 4)"]
    with pytest.raises(AssertionError, match="has no layer"):
        layer("posecast.newpackage.module")
