"""Compilation helpers for the searches.

The cost model is a large DAG of scalar arithmetic. XLA:CPU's fusion emitters turn it
into giant fused kernels whose LLVM compilation is super-linear (measured on 2 cores,
Kimi-K2.5 on GB200 NVL72: reverse-mode gradient w.r.t. the five relaxed degrees 60–80 s
with default options, 12.7 s without fusion emitters; one forward evaluation 1.7 s vs
0.8 s). Without them the vmapped forward program runs 10–25 % slower (2.0e6 vs
2.3–2.7e6 evaluations/s, 65,536 configurations), which matters only where a program runs
over many chunks. So every program that runs a few times (derivatives, single
evaluations, one pass over a split table) is compiled with :func:`jit_fast_compile`;
only the grid engine's sweep step (:mod:`search.sweep`) keeps the default options.

A persistent compilation cache (``enable_cache``) makes a second run of the same command
start in well under a second of compile time.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

FAST_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


def jit_fast_compile(fn, **kw):
    """``jax.jit`` with :data:`FAST_COMPILE_OPTIONS` on the CPU backend (other backends:
    plain ``jax.jit``). For programs that run a few times; see the module docstring.
    JAX accepts compiler options only on a top-level jit, so a function that callers may
    nest in their own ``jit``/``vmap`` (e.g. :data:`search.target.solve_scale_jit`) uses
    plain ``jax.jit`` instead."""
    if jax.default_backend() == "cpu":
        kw.setdefault("compiler_options", FAST_COMPILE_OPTIONS)
    return jax.jit(fn, **kw)


def enable_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache (``$TPSOPT_CACHE`` or
    ``~/.cache/tpsopt/jax``); ``TPSOPT_CACHE=off`` disables it. Returns the folder."""
    env = os.environ.get("TPSOPT_CACHE")
    if env == "off":
        return None
    folder = Path(path or env or Path.home() / ".cache" / "tpsopt" / "jax")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return folder
