"""Speed you feel: wall time of ``tpsopt`` commands in fresh processes, and per-call rates.

For each command, the median of ``--repeats`` fresh processes (``python -m search.cli``):
*cold* with an empty persistent compilation cache (a new ``TPSOPT_CACHE`` folder per run)
and *warm* with the cache filled by one run before. Commands: ``--help``, ``list models``,
``eval`` of a database model (llama-3.1-70b on hgx-h100-8), ``eval`` of an imported
``config.json`` (Qwen3-32B), a grid of 126 configurations (llama-3.1-8b on hgx-h100-8, 42
splits × batch 1, 8, 64) and ``optimize`` (llama-3.1-8b on hgx-h100-8). Rates, in one fresh
process each: single evaluations per second from a Python loop with prebuilt records
(``search.defaults.eval_one``), and with the names looked up on every call
(``search.scenario.scenario``). For ``eval``, ``grid`` and ``optimize`` also, cold, the
time *after imports*: a fresh process imports JAX, then the project, then runs the
command (``cold_after_imports``: the three times, medians).

The same measurements run on a baseline revision (default ``76f216a``: ``main`` before
the interpreter of :mod:`search.interpret`; ``3913b66`` is before all "speed you feel"
work) in a temporary ``git worktree``, with a temporary venv that borrows this
environment's packages (or ``--baseline-venv``), and both are printed side by side with
``baseline / current`` ratios (> 1: faster now). Both trees are byte-compiled first
(``compileall``, as ``pip install`` does; ``--no-compile`` measures source compilation
too). Every process sees the same environment apart from the tree; the current tree
uses its default device count (all available cores).

    python benchmarks/bench_startup.py [--repeats 3] [--baseline REV] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "tests/data/hf_configs/Qwen--Qwen3-32B_config.json"
SCENE = ["--model", "llama-3.1-8b", "--system", "hgx-h100-8"]
COMMANDS = {
    "help": ["--help"],
    "list_models": ["list", "models"],
    "eval_db_model": ["eval", "--model", "llama-3.1-70b", "--system", "hgx-h100-8", "--json"],
    "eval_config_json": ["eval", "--model", CONFIG, "--system", "hgx-h100-8", "--json"],
    "grid_126": ["grid", *SCENE, "--batch", "1,8,64", "--top", "5", "--json"],
    "optimize": ["optimize", *SCENE, "--json"],
}
"""Command name → arguments of ``tpsopt``."""

AFTER_IMPORTS = ("eval_db_model", "eval_config_json", "grid_126", "optimize")
"""Commands also measured *after imports* (JAX and the project imported first, timed
separately, then the command run in the same fresh process with an empty cache)."""

RUNNER = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import jax
t1 = time.perf_counter()
import costmodel, hardware_db, search, search.cli, search.scenario
t2, c2 = time.perf_counter(), time.process_time()
from search.cli import main
rc = main(sys.argv[1:])
t3, c3 = time.perf_counter(), time.process_time()
print("STARTUP " + json.dumps({"import_jax_s": t1 - t0, "import_ours_s": t2 - t1,
                               "after_imports_s": t3 - t2, "after_imports_cpu_s": c3 - c2,
                               "rc": rc}), file=sys.stderr)
"""
"""A fresh process: import JAX, import the project, run one command; the three wall times
and the CPU time of the command (all threads; less sensitive to a loaded machine)."""

RATES = r"""
import json, sys, time
t0 = time.perf_counter()
import jax
import search
from search.defaults import complete_parallelism, eval_one
from search.scenario import scenario
args = ("llama-3.1-70b", "hgx-h100-8")
sc = scenario(*args)
par = complete_parallelism(sc)
def one():
    return eval_one(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode)
def named():
    s = scenario(*args)
    return eval_one(s.model, s.precision, s.system, par, s.workload, s.mode)
jax.block_until_ready(one())
def rate(fn, seconds=float(sys.argv[1])):
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds or n < 10:
        jax.block_until_ready(fn())
        n += 1
    return n / (time.perf_counter() - t)
print(json.dumps({"eval_one_per_s": rate(one), "scenario_and_eval_per_s": rate(named),
                  "devices": jax.device_count(), "tree": search.__file__}))
"""


def _run(python: str, tree: Path, argv: list[str], cache: str) -> tuple[float, str]:
    env = dict(os.environ, TPSOPT_CACHE=cache, PYTHONPATH=str(tree))
    t = time.perf_counter()
    p = subprocess.run(
        [python, "-m", "search.cli", *argv], cwd=tree, env=env, capture_output=True, text=True
    )
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{tree}: tpsopt {' '.join(argv)} failed:\n{p.stderr[-2000:]}")
    return dt, p.stdout


def _after_imports(python: str, tree: Path, argv: list[str], cache: str) -> dict:
    env = dict(os.environ, TPSOPT_CACHE=cache, PYTHONPATH=str(tree))
    p = subprocess.run(
        [python, "-c", RUNNER, *argv], cwd=tree, env=env, capture_output=True, text=True
    )
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("STARTUP ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{tree}: tpsopt {' '.join(argv)} failed:\n{p.stderr[-2000:]}")
    return json.loads(lines[-1][len("STARTUP ") :])


def measure(trees: dict, repeats: int, rate_s: float, only=None) -> dict:
    """Cold/warm medians of every command and the per-call rates, for each of ``trees``
    (label → ``(python, tree)``). Runs alternate between the trees, so that a change in
    the machine's load during the measurement hits both alike."""
    out: dict = {k: {"commands": {}} for k in trees}
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        for name, argv in COMMANDS.items():
            if only and name not in only:
                continue
            cold: dict = {k: [] for k in trees}
            warm: dict = {k: [] for k in trees}
            for i in range(repeats):
                for k, (py, tree) in trees.items():
                    dt, stdout = _run(py, tree, argv, f"{tmp}/{k}_cold_{name}_{i}")
                    cold[k].append(dt)
                    if name == "grid_126":
                        g = json.loads(stdout)
                        out[k]["grid_candidates"] = g["total"]
                        out[k]["grid_devices"] = g["info"]["devices"]
            for k, (py, tree) in trees.items():
                _run(py, tree, argv, f"{tmp}/{k}_warm_{name}")  # fill the cache
            for _ in range(repeats):
                for k, (py, tree) in trees.items():
                    warm[k].append(_run(py, tree, argv, f"{tmp}/{k}_warm_{name}")[0])
            after: dict = {k: [] for k in trees}
            if name in AFTER_IMPORTS:
                for i in range(repeats):
                    for k, (py, tree) in trees.items():
                        cache = f"{tmp}/{k}_after_{name}_{i}"
                        after[k].append(_after_imports(py, tree, argv, cache))
            for k in trees:
                out[k]["commands"][name] = {
                    "cold_s": statistics.median(cold[k]),
                    "warm_s": statistics.median(warm[k]),
                }
                if after[k]:
                    out[k]["commands"][name]["cold_after_imports"] = {
                        f: statistics.median(a[f] for a in after[k])
                        for f in (
                            "import_jax_s",
                            "import_ours_s",
                            "after_imports_s",
                            "after_imports_cpu_s",
                        )
                        if all(f in a for a in after[k])
                    }
                print(f"  {k}: {name} {out[k]['commands'][name]}", file=sys.stderr)
        for k, (py, tree) in trees.items():
            env = dict(os.environ, TPSOPT_CACHE=f"{tmp}/{k}_rates", PYTHONPATH=str(tree))
            p = subprocess.run(
                [py, "-c", RATES, str(rate_s)],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            out[k]["rates"] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def baseline_python(tree: Path, venv: str | None, tmp: Path) -> str:
    """A Python for the baseline tree: ``venv``'s, or a new venv whose ``.pth`` file borrows
    this environment's site-packages (the baseline tree itself comes from ``PYTHONPATH``;
    this environment's editable install of the current tree is not loaded)."""
    if venv:
        return str(Path(venv) / "bin" / "python")
    v = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(v)], check=True)
    py = v / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(site) / "borrowed.pth").write_text(ours + "\n")
    return str(py)


def byte_compile(python: str, tree: Path) -> None:
    """Write the ``.pyc`` files of the tree's packages (``python -m compileall``), as a
    user's installation has them: ``pip install`` byte-compiles, and an editable install
    writes them on first import unless ``PYTHONDONTWRITEBYTECODE`` is set, as it is on
    some CI and sandbox machines, where every fresh process would otherwise spend
    ~0.1–0.2 s compiling the project's source."""
    pkgs = [str(tree / p) for p in ("costmodel", "hardware_db", "search") if (tree / p).is_dir()]
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", *pkgs], check=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="76f216a", help="revision to compare against")
    ap.add_argument("--baseline-venv", default=None, help="venv to run the baseline with")
    ap.add_argument("--no-baseline", action="store_true", help="measure this tree only")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per figure")
    ap.add_argument("--rate-seconds", type=float, default=3.0, help="duration of each rate")
    ap.add_argument(
        "--no-compile",
        action="store_true",
        help="do not byte-compile the trees first (measure source compilation too)",
    )
    ap.add_argument("--only", default=None, help="comma-separated command names (default all)")
    ap.add_argument("--note", default="", help="free text stored with the result")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).parent))
    from _common import meta

    result = {
        "figure": "startup",
        "units": {"cold_s": "s", "warm_s": "s", "rates": "evaluations/s"},
        **meta(),
        "repeats": a.repeats,
        "commands": {k: "tpsopt " + " ".join(v) for k, v in COMMANDS.items()},
        "note": a.note,
        "bytecode": "source compiled by each process"
        if a.no_compile
        else "trees byte-compiled before measuring (compileall), as pip install does",
    }
    only = set(a.only.split(",")) if a.only else None
    with contextlib.ExitStack() as stack:
        trees = {"current": (sys.executable, ROOT)}
        if not a.no_baseline:
            tmp = Path(tempfile.mkdtemp(prefix="bench_startup_base_"))
            stack.callback(shutil.rmtree, tmp, True)
            tree = tmp / "tree"
            subprocess.run(
                ["git", "worktree", "add", "--detach", "-q", str(tree), a.baseline],
                cwd=ROOT,
                check=True,
            )
            stack.callback(
                subprocess.run,
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=ROOT,
                check=False,
            )
            trees["baseline"] = (baseline_python(tree, a.baseline_venv, tmp), tree)
        if not a.no_compile:
            for python, tree in trees.values():
                byte_compile(python, tree)
        res = measure(trees, a.repeats, a.rate_seconds, only)
    cur = result["current"] = res["current"]
    if not a.no_baseline:
        base = res["baseline"]
        result["baseline"] = {"revision": a.baseline, **base}
        ratio = {}
        for name, c in cur["commands"].items():
            b = base["commands"][name]
            ratio[name] = {k: round(b[k] / c[k], 2) for k in ("cold_s", "warm_s")}
            if "cold_after_imports" in c:
                ca, ba = c["cold_after_imports"], b["cold_after_imports"]
                ratio[name]["cold_after_imports_s"] = round(
                    ba["after_imports_s"] / ca["after_imports_s"], 2
                )
        for k in ("eval_one_per_s", "scenario_and_eval_per_s"):
            ratio[k] = round(cur["rates"][k] / base["rates"][k], 2)
        # > 1: faster now (times: baseline / current; rates: current / baseline)
        result["speedup"] = ratio
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
