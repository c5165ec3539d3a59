"""The layers import downwards only, and the two packages that must stay light do.

Layers, lowest first (ARCHITECTURE's rule): sandbox -> problems -> engines (the records
and engines both actors and learner use) -> actors -> learner -> evaluation -> launch.
A module may import its own layer and those below it; every import counts, those inside
functions too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (
    ("sandbox",),
    ("problems",),
    ("engines",),
    ("actors",),
    ("learner",),
    ("launch.evaluation",),
    ("launch",),
)
"""Module prefixes of each layer, lowest first; a module is in the layer of its longest
matching prefix."""
PACKAGES = ("sandbox", "problems", "engines", "actors", "learner", "launch")


def layer_of(module: str) -> int | None:
    """The layer of one of our modules (None: not ours)."""
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, relative ones resolved."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            found.append((node.lineno, target))
    return found


def upward_imports() -> list[str]:
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(
                ".__init__"
            )
            own = layer_of(module)
            for line, target in imports_of(path):
                other = layer_of(target)
                if other is not None and other > own:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return wrong


def test_no_layer_imports_one_above_it():
    assert upward_imports() == []


def test_the_layer_check_finds_an_upward_import(tmp_path, monkeypatch):
    """The check itself: a sandbox module importing actors is caught."""
    fake = tmp_path / "sandbox"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from actors.pool import run_on_actors\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("sandbox",))
    assert upward_imports() == ["sandbox/bad.py:2 imports actors.pool"]


def test_the_sandbox_imports_nothing_of_ours_and_no_ray():
    for path in (ROOT / "sandbox").rglob("*.py"):
        for line, target in imports_of(path):
            top = target.split(".")[0]
            assert top not in set(PACKAGES) - {"sandbox"}, f"{path}:{line} imports {target}"
            assert top != "ray", f"{path}:{line} imports {target}"


@pytest.mark.parametrize(
    "module, heavy",
    [
        ("sandbox", ("ray", "torch", "numpy", "problems", "actors")),
        ("learner.algo", ("ray", "vllm", "deepspeed", "transformers", "actors")),
        ("engines", ("ray", "torch", "vllm", "transformers")),
    ],
)
def test_importing_these_stays_light(module, heavy):
    """In a fresh interpreter: what importing `module` loads."""
    probe = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert not loaded & set(heavy), loaded & set(heavy)
