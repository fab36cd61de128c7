"""Determinism: the same inputs give bit-identical JSON across runs.

Two fresh processes (different ``PYTHONHASHSEED``, one after the other) each run ``tpsopt eval/grid/optimize/target/sweep/validate --json``
in-process and print their stdout; the documents must be byte-identical, except the
wall time of ``optimize`` (``seconds``), which is masked. The gradient search's
determinism for a seed is checked in-process by
``tests/test_gradient.py::test_parallelism_only_matches_exhaustive_and_is_deterministic``
(a cross-process run would recompile its derivative program, ~25 s per process).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "db" / "models" / "tiny-moe.toml")
S = ["--model", "llama-3.1-8b", "--system", "hgx-h100-8", "--context", "4096", "--json"]
COMMANDS = {
    "eval": ["eval", *S, "--batch", "4", "--mtp", "2", "--acceptance", "0.7"],
    "grid": ["grid", "--model", TINY, "--system", "hgx-h100-8", "--batch", "1,2,4", "--top", "5"]
    + ["--pareto", "--json"],
    "optimize": ["optimize", *S],
    "target": ["target", *S, "--utps", "100:100000:4"],
    "sweep": ["sweep", *S, "--param", "latency_scale", "--range", "0.1:10:4", "--log"],
    "validate": ["validate", "--json"],
}
MASKED = {"optimize": ("seconds",)}


def mask(name: str, text: str) -> str:
    """``text`` with the values of the masked keys replaced (the document must have them)."""
    for key in MASKED.get(name, ()):
        text, n = re.subn(rf'("{key}": )[^,\n}}]+', r"\1null", text)
        assert n == 1, (name, key, n)
    return text


def worker() -> None:
    """Subprocess entry: every command's exit status and stdout, as one JSON line."""
    from search.cli import main

    out = {}
    for name, argv in COMMANDS.items():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(argv)
        json.loads(buf.getvalue())  # one JSON document
        out[name] = {"rc": rc, "text": mask(name, buf.getvalue())}
    print("RESULT " + json.dumps(out), flush=True)


def _run(hash_seed: int, cache: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONHASHSEED"] = str(hash_seed)
    env["TPSOPT_CACHE"] = str(cache)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    p = subprocess.run(
        [sys.executable, "-c", "import test_determinism as t; t.worker()"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT / "tests",
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow
def test_json_is_bit_identical_across_processes(tmp_path):
    """The second run loads the first run's compiled programs from a fresh persistent
    cache (as users' second runs do) and must print the same bytes."""
    a, b = _run(1, tmp_path / "jax"), _run(2, tmp_path / "jax")
    assert set(a) == set(COMMANDS)
    for name in COMMANDS:
        assert a[name]["rc"] == 0, name
        assert a[name] == b[name], f"{name}: the two runs differ"
