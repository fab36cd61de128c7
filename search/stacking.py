"""Evaluate many configurations at once: group by structure, stack, one vmapped call.

``decode_step`` is written for one configuration; records only stack when their pytree
structure matches, and a :class:`~costmodel.specs.SystemSpec`'s structure is its number
of tiers and each tier's (static) topology and name. :func:`canonical_system` pads every
system to :data:`N_TIERS` tiers and renames the tiers after the first (``die``) to
``t1, t2, …`` — the names carry no meaning in the cost model except ``die``
(:func:`costmodel.collectives.t_onchip_s`) — so only the **topology tuple** separates
groups. A padding tier is a scale-out tier of unbounded domain that no group reaches
(the previous last tier's domain already holds every chip of the system), so its cost
is exactly zero (:func:`costmodel.smooth.active` of a sub-group of 1).

:func:`evaluate` runs one ``jax.jit(jax.vmap(decode_step))`` per group, in chunks of
:data:`CHUNK` rows (the last one padded), so each group structure compiles once, and
scatters the results back to row order. Records shared by many rows (a model, a system)
are stacked once and gathered (:func:`_stack_shared`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import numpy as np

from costmodel.decode import decode_step
from costmodel.specs import (
    Efficiency,
    ModelSpec,
    Parallelism,
    Precision,
    SystemSpec,
    TierSpec,
    Workload,
)
from search.jit import jit_fast_compile

N_TIERS = 3
"""Tiers every system is padded to (die, scale-up, scale-out)."""


class Config(NamedTuple):
    """One configuration to evaluate (host-side records)."""

    model: ModelSpec
    precision: Precision
    system: SystemSpec
    parallelism: Parallelism
    workload: Workload
    mode: Efficiency


def canonical_names(system: SystemSpec) -> SystemSpec:
    """``system`` with its tiers named ``die``/``t0``, ``t1``, … (the cost model reads a
    tier's name only to find the on-die tier, ``die``, in first place), so that systems
    differing only in tier names share one program."""
    names = ["die" if i == 0 and t.name == "die" else f"t{i}" for i, t in enumerate(system.tiers)]
    if all(t.name == n for t, n in zip(system.tiers, names, strict=True)):
        return system
    tiers = tuple(t.replace(name=n) for t, n in zip(system.tiers, names, strict=True))
    return system.replace(tiers=tiers)


def canonical_system(system: SystemSpec, n_tiers: int = N_TIERS) -> SystemSpec:
    """``system`` with ``n_tiers`` tiers named ``die, t1, t2, …`` (see module docstring).

    Raises ``ValueError`` if the system already has more than ``n_tiers`` tiers.
    """
    tiers = list(system.tiers)
    if len(tiers) > n_tiers:
        raise ValueError(f"system has {len(tiers)} tiers; at most {n_tiers} are supported")
    last = tiers[-1]
    while len(tiers) < n_tiers:
        tiers.append(
            TierSpec(
                hop_latency_s=0.0,
                overhead_s=0.0,
                bw_bytes_per_s=last.bw_bytes_per_s,
                domain_chips=math.inf,
                energy_j_per_byte=0.0,
                topology="switch",
            )
        )
    named = list(canonical_names(system.replace(tiers=tuple(tiers))).tiers)
    # the former last tier must now hold every chip (it was the outermost one)
    k = len(system.tiers) - 1
    if k < n_tiers - 1:
        named[k] = named[k].replace(
            domain_chips=np.maximum(_f64(named[k].domain_chips), _f64(system.max_chips))
        )
    return system.replace(tiers=tuple(named))


def structure_key(system: SystemSpec) -> tuple:
    """What separates stacking groups: the static part of a (canonical) system."""
    return tuple((t.topology, t.name) for t in system.tiers)


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def stack_configs(configs) -> Config:
    """Stack equal-structure configurations along a new leading axis (numpy float64)."""
    return jax.tree.map(lambda *xs: np.stack([_f64(x) for x in xs]), *configs)


def _stack_shared(configs) -> Config:
    """:func:`stack_configs`, stacking each distinct record object once and gathering:
    rows of a large file share their model, system and precision objects."""
    parts = []
    for j in range(len(Config._fields)):
        uniq: dict[int, int] = {}
        objs, idx = [], np.empty(len(configs), np.int64)
        for i, c in enumerate(configs):
            o = c[j]
            k = uniq.get(id(o))
            if k is None:
                k = uniq[id(o)] = len(objs)
                objs.append(o)
            idx[i] = k
        st = jax.tree.map(lambda *xs: np.stack([_f64(x) for x in xs]), *objs)
        parts.append(jax.tree.map(lambda a, idx=idx: a[idx], st))
    return Config(*parts)


@functools.cache
def _vmapped():
    # compiled without XLA:CPU fusion emitters: ~40 % less compile time, same speed here
    return jit_fast_compile(jax.vmap(decode_step))


CHUNK = 1024
"""Rows per vmapped call; every chunk is padded to this size, so each structure group
compiles exactly once (evaluating 1024 rows takes milliseconds; compiling, seconds)."""


def _pad_len(n: int) -> int:
    del n
    return CHUNK


def evaluate(configs):
    """``decode_step`` of every configuration, vectorised per structure group.

    Args:
      configs: sequence of :class:`Config` (systems are canonicalised here).

    Returns:
      A :class:`~costmodel.decode.DecodeResult` of numpy arrays with one entry per input,
      in input order (``None`` for an empty input).
    """
    if not configs:
        return None
    canon: dict[int, SystemSpec] = {}
    groups: dict[tuple, list[int]] = {}
    rows = []
    for i, c in enumerate(configs):
        sysc = canon.get(id(c.system))
        if sysc is None:
            sysc = canon[id(c.system)] = canonical_system(c.system)
        rows.append(c._replace(system=sysc))
        # the mode's record type is structure too (SOL/Efficiency or KernelCalibration)
        groups.setdefault((structure_key(sysc), type(c.mode).__name__), []).append(i)
    fn = _vmapped()
    out_leaves = treedef = None
    for idx in groups.values():
        st = _stack_shared([rows[i] for i in idx])
        n = len(idx)
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            m = _pad_len(hi - lo)
            take = np.minimum(np.arange(lo, lo + m), hi - 1)
            chunk = jax.tree.map(lambda a, take=take: a[take], st)
            leaves, td = jax.tree.flatten(fn(*chunk))
            if out_leaves is None:
                treedef = td
                out_leaves = [np.empty((len(configs),), np.asarray(x).dtype) for x in leaves]
            dst_rows = np.asarray(idx[lo:hi])
            for dst, src in zip(out_leaves, leaves, strict=True):
                dst[dst_rows] = np.asarray(src)[: hi - lo]
    return jax.tree.unflatten(treedef, out_leaves)
