"""Shared helpers for the benchmarks: device/version metadata and timing."""

from __future__ import annotations

import json
import platform
import statistics
import time

import jax


def meta() -> dict:
    """Where the numbers come from."""
    dev = jax.devices()[0]
    return {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "devices": jax.device_count(),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def best_of(fn, repeats: int = 5, number: int = 1) -> float:
    """Minimum over ``repeats`` of the mean wall time of ``number`` calls (seconds)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            jax.block_until_ready(fn())
        times.append((time.perf_counter() - t) / number)
    return min(times)


def median_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def emit(obj: dict) -> None:
    print(json.dumps(obj, indent=2))
