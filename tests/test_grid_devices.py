"""The grid gives identical results on 1, 4 and 8 CPU devices and across 2 processes.

The device count must be set before JAX initialises its backend, so each configuration
runs in a subprocess (``tests/grid_worker.py``); the 2-process run joins a
``jax.distributed`` job on localhost (random free port, timeout).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "grid_worker.py")
TIMEOUT_S = 180


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("XLA_FLAGS", None)
    return env


def _parse(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert lines, out
    return json.loads(lines[-1][len("RESULT ") :])


def _run(n_dev: int) -> dict:
    p = subprocess.run(
        [sys.executable, WORKER, str(n_dev)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(),
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return _parse(p.stdout)


@pytest.fixture(scope="module")
def single():
    """The reference: the same grid in this process (one device)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import grid_worker

    return grid_worker.run()


@pytest.mark.parametrize("n_dev", [1, 4, 8])
def test_same_topk_on_1_4_8_devices(single, n_dev):
    out = _run(n_dev)
    assert out["devices"] == n_dev
    assert out["top"] == single["top"]
    assert out["counts"] == single["counts"]
    assert out["front"] == single["front"] and out["front_tpc"] == single["front_tpc"]
    flat = {k: single[k] for k in ("top", "counts", "front", "front_tpc")}
    assert out["tiled"] == single["tiled"] == flat


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_jax_distributed(single):
    coord = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "2", coord, "2", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT_S)
            assert p.returncode == 0, err[-3000:]
            outs.append(_parse(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for out in outs:
        assert out["processes"] == 2 and out["devices"] == 4
        assert out["top"] == single["top"]
        assert out["counts"] == single["counts"]
        assert out["front"] == single["front"]
