"""Compilation helpers for the searches.

The cost model is a large DAG of scalar arithmetic. XLA:CPU's fusion emitters turn its
derivative programs into giant fused kernels whose LLVM compilation is super-linear
(measured on 2 cores, Kimi-K2.5 on GB200 NVL72: reverse-mode gradient w.r.t. the five
relaxed degrees 60–80 s with default options; 12.7 s without fusion emitters; forward
mode ``jacfwd`` 4.6 s, ``search/jit.py`` history in the git log). Derivative programs are
therefore compiled with ``DERIVATIVE_OPTIONS`` on CPU, and the searches use forward mode
where the number of inputs is small.

A persistent compilation cache (``enable_cache``) makes a second run of the same command
start in well under a second of compile time.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

DERIVATIVE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


def jit_derivative(fn, **kw):
    """``jax.jit`` with :data:`DERIVATIVE_OPTIONS` on the CPU backend."""
    if jax.default_backend() == "cpu":
        kw.setdefault("compiler_options", DERIVATIVE_OPTIONS)
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
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return folder
