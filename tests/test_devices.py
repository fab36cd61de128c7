"""One JAX CPU device per available core by default (:mod:`search._devices`).

The device count is fixed when JAX initialises its backend, so each case runs in a fresh
interpreter. Results do not depend on the count (``tests/test_grid_devices.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAG = "--xla_force_host_platform_device_count"

PROBE = """
import json, os, sys
{before}
import search
{after}
import jax
print(json.dumps({{"devices": jax.device_count(), "state": search._devices.state,
                  "xla_flags": os.environ.get("XLA_FLAGS")}}))
"""


def _probe(env_extra: dict, before: str = "", after: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TPSOPT_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **env_extra)
    p = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before, after=after)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def test_default_is_one_device_per_available_cpu():
    assert _probe({})["devices"] == _cpus()


@pytest.mark.parametrize("n", [1, 3])
def test_env_chooses_the_count(n):
    out = _probe({"TPSOPT_DEVICES": str(n)})
    assert out["devices"] == n
    if n == 1:
        assert not out["xla_flags"]


def test_user_xla_flag_is_kept_unless_asked():
    out = _probe({"XLA_FLAGS": f"--xla_cpu_use_thunk_runtime=true {FLAG}=2"})
    assert out["devices"] == 2 and out["xla_flags"].startswith("--xla_cpu_use_thunk_runtime")
    assert _probe({"XLA_FLAGS": f"{FLAG}=2", "TPSOPT_DEVICES": "3"})["devices"] == 3


def test_initialised_jax_is_left_alone():
    out = _probe({"TPSOPT_DEVICES": "3"}, before="import jax; jax.devices()")
    assert out["devices"] == 1 and "already initialised" in out["state"]


def test_accelerator_platform_is_left_alone():
    code = "import os, search; print(os.environ.get('XLA_FLAGS'), search._devices.state)"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TPSOPT_DEVICES")}
    env.update(JAX_PLATFORMS="tpu", TPSOPT_DEVICES="3", PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert p.stdout.startswith("None JAX_PLATFORMS=tpu")


def test_cli_devices_flag_overrides():
    out = _probe(
        {"TPSOPT_DEVICES": "2"},
        after="from search.cli import main; main(['list', 'chips', '--devices', '3'])",
    )
    assert out["devices"] == 3


@pytest.mark.parametrize(
    "argv", [["--devices", "0", "list", "chips"], ["list", "chips", "--devices", "x"]]
)
def test_cli_bad_devices_is_one_line(argv):
    p = subprocess.run(
        [sys.executable, "-m", "search.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2
    assert p.stderr.strip().endswith("expected a whole number of devices ≥ 1")
    assert "--devices" in p.stderr and len(p.stderr.strip().splitlines()) == 1
