"""Read-only commands do not import JAX (nor Flax, Optax, Matplotlib).

``tpsopt --help``, ``list``, ``show`` and ``import-model`` read TOML and JSON files and do
arithmetic; importing JAX would cost them seconds. Each command runs in a fresh interpreter
(``search.cli.main``) that then reports which heavy modules got imported. The JAX-free paths
they use must give what the JAX paths give: the field table of :mod:`hardware_db.fields`
equals the records of :mod:`costmodel.specs`, and :mod:`costmodel.params` counts the same
float32 numbers with NumPy as with ``jax.numpy``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "tests/data/hf_configs/meta-llama--Meta-Llama-3.1-8B_config.json"

PROBE = """
import contextlib, io, json, sys
from search.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        rc = main(sys.argv[1:])
    except SystemExit as e:
        rc = e.code
heavy = [m for m in ("jax", "flax", "optax", "matplotlib") if m in sys.modules]
print(json.dumps({"rc": rc, "heavy": heavy}))
"""

COMMANDS = [
    ["--help"],
    ["eval", "--help"],
    ["grid", "--help"],
    *(["list", k] for k in ("models", "chips", "systems", "precisions")),
    ["list", "models", "--json"],
    ["show", "llama-3.1-70b"],
    ["show", "kimi-k2.5", "--json"],
    ["show", "gb200-nvl72"],
    ["show", "b200"],
    ["import-model", CONFIG],
    ["import-model", CONFIG, "--json"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_read_only_command_imports_no_jax(argv, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["rc"] in (0, None), out.stderr
    assert res["heavy"] == [], f"tpsopt {' '.join(argv)} imported {res['heavy']}"


def test_import_model_out_imports_no_jax(tmp_path):
    target = tmp_path / "m.toml"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "import-model", CONFIG, "--out", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1])["heavy"] == []
    assert target.read_text().startswith('name = "llama-3.1-8b"')


def test_field_table_matches_records():
    from costmodel import specs
    from hardware_db.fields import RECORDS, REQUIRED, TOPOLOGIES

    assert TOPOLOGIES == specs.TOPOLOGIES
    for name, table in RECORDS.items():
        fs = [
            f
            for f in dataclasses.fields(getattr(specs, name))
            if f.metadata.get("pytree_node", True)
        ]
        want = tuple(
            (f.name, REQUIRED if f.default is dataclasses.MISSING else f.default) for f in fs
        )
        assert table == want, name


def _summaries():
    import hardware_db
    from hardware_db.hf_import import from_hf_config
    from search.cli.import_cmd import summary
    from search.cli.list_cmd import model_summary

    out = {}
    for name in hardware_db.list_names("models"):
        out[name] = model_summary(*hardware_db.load_model(name))
    for p in sorted((ROOT / "tests/data/hf_configs").glob("*_config.json")):
        if not p.name.endswith("_hf_quant_config.json"):
            out[p.name] = summary(from_hf_config(p), "x")
    return json.dumps(out, sort_keys=True)


def test_params_without_jax_equal_params_with_jax(monkeypatch):
    """The NumPy float32 path of ``costmodel.params`` (used before JAX is imported) gives
    bit-identical counts to ``jax.numpy`` for every database model and every config
    (float32, the default outside this test suite, which enables float64)."""
    import jax

    import costmodel.params as P

    with jax.enable_x64(False):
        with_jax = _summaries()
    assert P._xp().__name__ == "jax.numpy"
    monkeypatch.setattr(P, "_xp", lambda: P._Float32)
    assert _summaries() == with_jax
