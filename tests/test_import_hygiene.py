"""The import direction of ``docs/design.md``, read from the source (ast), not by importing.

* ``costmodel`` imports neither ``search`` nor ``hardware_db`` (nor any other package of
  the project);
* ``hardware_db`` imports nothing from ``search``, and from ``costmodel`` only the
  record types (``costmodel.specs``) and the derived counts (``costmodel.params``);
* the engine (``search`` outside ``search/cli/``) imports neither the front end
  (``search.cli``) nor ``rich`` nor ``matplotlib``, and outside ``search/fidelity/`` not
  the fidelity package either (calibrated parameters come from ``hardware_db``);
* ``search.fidelity`` does not import the front end.

Every import statement counts, also inside functions, as does ``importlib.import_module``
or ``__import__`` with a literal name; relative imports are resolved against the file's
package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("costmodel", "search", "hardware_db")


def _package_of(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] != "__init__" else parts[:-1]


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, name)`` of every import in ``path``; ``from a import b`` gives ``a.b``
    (``b`` may be a module or a name defined in ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _package_of(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [a.name for a in node.names if a.name != "*"]
            out += [(node.lineno, f"{mod}.{n}") for n in names] or [(node.lineno, mod)]
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    out.append((node.lineno, arg.value))
    return out


def _top(mod: str) -> str:
    return mod.split(".")[0]


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    return files


def violations(package: str, allowed) -> list[str]:
    bad = []
    for path in _sources(package):
        for line, mod in imports(path):
            if _top(mod) in PACKAGES and _top(mod) != package and not allowed(mod):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {mod}")
    return bad


FRONT_END_ONLY = ("search.cli", "rich", "matplotlib")
"""What only the front end (``search/cli/``) may import."""


def engine_violations(skip=("cli",), forbidden=FRONT_END_ONLY) -> list[str]:
    """Imports of ``forbidden`` modules by ``search`` files outside the subpackages
    ``skip``."""
    bad = []
    for path in _sources("search"):
        rel = path.relative_to(ROOT / "search").parts
        if rel[0] in skip:
            continue
        for line, mod in imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {mod}")
    return bad


def test_engine_imports_no_front_end():
    assert engine_violations() == []


def test_engine_imports_no_fidelity():
    assert engine_violations(skip=("cli", "fidelity"), forbidden=("search.fidelity",)) == []


def test_front_end_is_what_imports_rich_and_matplotlib():
    """The rule is not vacuous: the front end does import them."""
    mods = {mod for p in (ROOT / "search" / "cli").rglob("*.py") for _, mod in imports(p)}
    assert any(m.startswith("rich") for m in mods) and any(m.startswith("matplotlib") for m in mods)


def test_costmodel_imports_neither_search_nor_hardware_db():
    assert violations("costmodel", lambda mod: False) == []


def _hardware_db_allowed(mod: str) -> bool:
    if _top(mod) == "search":
        return False
    # costmodel.specs / costmodel.params and the names imported from them
    parts = mod.split(".")
    return parts[0] == "costmodel" and len(parts) >= 2 and parts[1] in ("specs", "params")


def test_hardware_db_imports_only_records_and_counts_from_costmodel():
    assert violations("hardware_db", _hardware_db_allowed) == []


def test_hardware_db_uses_records_from_costmodel():
    """The rule is not vacuous: hardware_db does build costmodel records."""
    mods = {mod for p in _sources("hardware_db") for _, mod in imports(p)}
    assert any(m.startswith("costmodel.specs.") for m in mods)


@pytest.mark.parametrize(
    "path, source, expect",
    [
        ("grid.py", "from search.cli import report\n", ["search.cli.report"]),
        ("space.py", "def f():\n    import rich.table\n", ["rich.table"]),
        ("fidelity/fit.py", "import matplotlib.pyplot as plt\n", ["matplotlib.pyplot"]),
        ("cli/plots.py", "import matplotlib\n", []),
    ],
)
def test_the_engine_checker_catches_violations(tmp_path, monkeypatch, path, source, expect):
    f = tmp_path / "search" / path
    f.parent.mkdir(parents=True)
    f.write_text(source)
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    found = engine_violations()
    assert len(found) == len(expect) and all(w in v for w, v in zip(expect, found, strict=True))


@pytest.mark.parametrize(
    "source, package, expect",
    [
        ("import search.grid\n", "costmodel", ["imports search.grid"]),
        ("def f():\n    from hardware_db import load_model\n", "costmodel", ["hardware_db"]),
        ("import importlib\nimportlib.import_module('search.cli')\n", "costmodel", ["search.cli"]),
        ("from costmodel.decode import decode_step\n", "hardware_db", ["costmodel.decode"]),
        ("from costmodel import decode\n", "hardware_db", ["costmodel.decode"]),
        ("from costmodel.specs import ModelSpec\n", "hardware_db", []),
        ("from costmodel import params as P\n", "hardware_db", []),
        ("from ..search import grid\n", "hardware_db", ["search"]),
    ],
)
def test_the_checker_catches_violations(tmp_path, monkeypatch, source, package, expect):
    """The checker itself, on small synthetic packages."""
    pkg = tmp_path / package
    pkg.mkdir()
    (pkg / "mod.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    allowed = _hardware_db_allowed if package == "hardware_db" else (lambda mod: False)
    found = violations(package, allowed)
    if not expect:
        assert found == []
    for word in expect:
        assert any(word in v for v in found), found
