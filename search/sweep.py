r"""The on-device sweep: index-space chunks → vmapped cost model → running top-k and fronts.

One *chunk* is ``C`` consecutive candidate indices (``C`` static). A candidate's index is
never formed as an integer: every device carries the mixed-radix **digits** of its
current chunk base (``int32 [D]``, outermost first, split innermost) and adds the offsets
``0..C−1`` with carries, digit by digit::

    t_D = b_D + j ;  d_D = t_D mod r_D ;  carry = t_D div r_D ;  …  d_1 = b_1 + carry

The outermost digit is not reduced, so ``d_1 ≥ r_1`` marks an index past the end (the
masked tail). Every intermediate is below ``C + max r``, so grids of any size (> 2^31
candidates included) work in int32.

Per chunk (shapes ``[C]``): gather the split row and the axis values, build the
candidate's records (:func:`search.space.candidate_records`), evaluate
``decode_step(..., fused=True)`` in float32, mask (in range, ``fits``, constraints) and
reduce:

* **top-k**: ``max`` of the chunk first; only when it beats the k-th best so far,
  ``lax.top_k`` of the chunk and a merge (concat + ``top_k``). ``top_k`` keeps the
  lower position first on ties and the carry holds earlier indices, so ties resolve to
  the lowest global index.
* **groups** (for the Pareto fronts): the best UTPS per (composition group, batch value)
  by ``segment_max``, the lowest index per group on ties.
* **counts**: in range, feasible, and per violated rule (the cost model's reason bits,
  then the space's constraints).

**Tiles** (:func:`choose_tile`; the default for large grids): a chunk is then exactly
the split digit and the ``t − 1`` next-innermost digits (``C = ∏ r_{D−t+1..D}``, chunk
bases aligned, so the outer digits are one value per chunk). The model is ``vmap``-ped
once per tile digit, with the outer axis values as scalars: JAX batches a value only
along the ``vmap`` axes it depends on, so a term that reads the split, batch and context
but no link number is computed once per split of the tile instead of once per candidate
(the hoisting a hand-written per-split table would give, for any model term and any
axis). Flat chunks remain for an explicit ``chunk`` and for splits tables too long or
too short for a tile.

A host call runs ``n`` chunks per device in a ``fori_loop`` (``n`` dynamic: no
recompile), inside ``jax.shard_map`` over a 1-D mesh of all devices (axis ``"cand"``);
each device owns a contiguous range of chunks. Counts are ``psum``-ed per call; the
final merge all-gathers the per-device top-k and groups (``O(devices·k)`` bytes).
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from costmodel.decode import decode_step
from costmodel.feasibility import MESSAGES
from search.objectives import score_of
from search.space import SubGrid, candidate_records, cast_records

REASON_BITS = tuple(MESSAGES)
"""The cost model's reason bits, in count order."""

CONSTRAINTS = ("min_system_tps", "min_utps")
"""The space's constraints, in count order (after the reason bits)."""

N_COUNTS = 2 + len(REASON_BITS) + len(CONSTRAINTS)
"""Count vector: [in range, feasible, reason bits…, constraints…]."""


def constraint_fails(r, min_system_tps, min_utps):
    """Booleans per constraint of :data:`CONSTRAINTS` (None: never fails); traced or
    NumPy results alike (the interpreter's small-grid engine calls it too)."""
    out = []
    for v, x in ((min_system_tps, r.system_tps), (min_utps, r.utps)):
        out.append(np.zeros(np.shape(r.fits), bool) if v is None else x < v)
    return out


@dataclass(frozen=True)
class Plan:
    """Static configuration of one compiled sweep."""

    shape: tuple[int, ...]
    chunk: int
    k: int
    n_groups: int
    objective: str
    n_devices: int
    min_system_tps: float | None = None
    min_utps: float | None = None
    tile: int = 0
    """Innermost digits one chunk covers exactly (a *tile*; ``chunk`` = their product,
    chunk bases aligned), or 0 for flat chunks of consecutive indices."""


def add_offsets(base, offsets, shape):
    """Digits of ``base + offsets`` (mixed radix ``shape``; outermost not reduced).

    Args:
      base: ``int32 [D]`` digits.
      offsets: ``int32 [...]`` non-negative offsets.
    Returns:
      ``int32 [..., D]``.
    """
    u32 = jnp.uint32
    carry = jnp.asarray(offsets).astype(u32)
    digits = [None] * len(shape)
    for k in range(len(shape) - 1, 0, -1):
        t = base[k].astype(u32) + carry
        carry = jax.lax.div(t, u32(shape[k]))  # unsigned: no sign fix-ups
        digits[k] = t - carry * u32(shape[k])
    digits[0] = base[0].astype(u32) + carry
    digits = jnp.broadcast_arrays(*digits)
    return jnp.stack([d.astype(jnp.int32) for d in digits], axis=-1)


def host_digits(index: int, shape) -> np.ndarray:
    """Digits of ``index`` with the outermost digit unreduced (``index ≥ size`` allowed)."""
    out = []
    for r in reversed(shape[1:]):
        index, d = divmod(index, r)
        out.append(d)
    out.append(index)
    return np.asarray(out[::-1], np.int64)


class Kernels:
    """The jitted per-call sweep and the final merge for one sub-grid and plan.

    Model and system numbers are closure constants (XLA folds everything that depends
    only on them: ~2× faster than passing them as arguments); split and axis tables are
    arguments, so a space of the same shape with other axis values reuses the program.
    """

    def __init__(self, sub: SubGrid, plan: Plan, mesh):
        self.sub, self.plan, self.mesh = sub, plan, mesh
        self._base = cast_records(sub.base, np.float32)
        self._choices = cast_records(dict(sub.choices), np.float32)
        self.traces = 0
        spec = P("cand")
        self.step = jax.jit(
            jax.shard_map(
                self._step,
                mesh=mesh,
                in_specs=(spec, P(), P(), P(), P()),
                out_specs=(spec, P()),
                check_vma=False,
            )
        )
        self.final = jax.jit(
            jax.shard_map(self._final, mesh=mesh, in_specs=(spec,), out_specs=P(), check_vma=False)
        )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, base, tables):
        """Scores, group scores, group ids, count increments and a function giving the
        digits ``[n, D]`` of chunk positions ``[n]``, for the chunk that starts at
        ``base``."""
        if self.plan.tile:
            return self._evaluate_tile(base, tables)
        offsets = jnp.arange(self.plan.chunk, dtype=jnp.int32)
        digits = add_offsets(base, offsets, self.plan.shape)
        return (*self._evaluate_flat(digits, tables), lambda i: digits[i])

    def _evaluate_flat(self, digits, tables):
        """Scores, group scores, group ids and count increments of ``digits [C, D]``."""
        plan, sub = self.plan, self.sub
        split_tab, axis_tabs, group_tab = tables
        d = jnp.minimum(digits, jnp.asarray(np.asarray(plan.shape) - 1, jnp.int32))
        in_range = digits[:, 0] < plan.shape[0]
        rows = split_tab[d[:, -1]]
        vals = {a.name: axis_tabs[j][d[:, j]] for j, a in enumerate(sub.axes)}

        def one(row, v):
            rec, par = candidate_records(self._base, row, v, self._choices)
            return decode_step(
                rec.model, rec.precision, rec.system, par, rec.workload, rec.mode, fused=True
            )

        # The model runs in a branch of a runtime conditional (always taken): XLA does
        # not fuse across it, so the decoded inputs are materialised once instead of
        # being re-derived (integer div/mod, gathers) inside every fusion that reads them.
        r = jax.lax.cond(
            digits[0, 0] >= 0,
            lambda a: jax.vmap(one)(*a),
            lambda a: jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda b: jax.vmap(one)(*b), a)),
            (rows, vals),
        )
        gid = None
        if plan.n_groups:
            gid = group_tab[d[:, -1]]
            if sub.batch_axis is not None:
                gid = gid + len(sub.group_labels) * d[:, sub.batch_axis]
        return self._reduce(r, score_of(r, plan.objective), in_range, gid)

    def _reduce(self, r, raw_score, in_range, gid):
        """Scores, group scores, group ids and count increments of results ``r [C]``
        (``fits``, ``reason``, ``utps``, ``system_tps``) and their objective values."""
        plan = self.plan
        fails = constraint_fails(r, plan.min_system_tps, plan.min_utps)
        ok = in_range & r.fits
        for f in fails:
            ok = ok & ~f
        score = jnp.where(ok, raw_score.astype(jnp.float32), -jnp.inf)
        counts = [in_range, ok]
        counts += [in_range & ((r.reason & bit) != 0) for bit in REASON_BITS]
        counts += [in_range & r.fits & f for f in fails]
        counts = jnp.stack([jnp.sum(c, dtype=jnp.int32) for c in counts])
        gscore = None
        if plan.n_groups:
            gscore = jnp.where(ok, r.utps.astype(jnp.float32), -jnp.inf)
        return score, gscore, gid, counts

    def _evaluate_tile(self, base, tables):
        r"""One tile: the outer digits of ``base`` are fixed, the ``t`` innermost digits
        (the split and ``t − 1`` axes) run over their whole range.

        The model is ``vmap``-ped once per tile digit (split innermost) instead of once
        over the flattened chunk, and the outer axis values enter as scalars. ``vmap``
        batches a value only along the digits it depends on (an unbatched operand stays
        unbatched, JAX's batching rule), so every intermediate is computed once per
        combination of the digits it depends on: a term that depends on the split, batch
        and context only (the per-layer FLOPs and bytes) is computed ``S`` times per tile
        rather than ``S·∏ n_inner`` times, and only the terms that read an inner axis
        (e.g. a link's latency) run at the full tile size. Values are the same
        expressions as in flat chunks; positions are in index order (row-major
        ``[n_{D−t+1}, …, n_{D−1}, S]`` flattened), so top-k ties and groups resolve
        as in flat chunks.
        """
        plan, sub = self.plan, self.sub
        split_tab, axis_tabs, group_tab = tables
        D, t = len(plan.shape), plan.tile
        n_out = D - t
        in_range = base[0] < plan.shape[0]
        d_out = jnp.minimum(base[:n_out], jnp.asarray(np.asarray(plan.shape[:n_out]) - 1))
        outer = tuple(axis_tabs[j][d_out[j]] for j in range(n_out))
        inner = tuple(axis_tabs[j] for j in range(n_out, D - 1))
        names = [a.name for a in sub.axes]

        def one(row, inner_v, outer_v):
            v = dict(zip(names, (*outer_v, *inner_v), strict=True))
            rec, par = candidate_records(self._base, row, v, self._choices)
            r = decode_step(
                rec.model, rec.precision, rec.system, par, rec.workload, rec.mode, fused=True
            )
            # only what the reductions read leaves the vmap (each output is materialised
            # at the full tile size)
            return {
                "fits": r.fits,
                "reason": r.reason,
                "utps": r.utps,
                "system_tps": r.system_tps,
                "score": score_of(r, plan.objective),
            }

        f = jax.vmap(one, in_axes=(0, None, None))
        for i in reversed(range(len(inner))):
            spec = tuple(0 if j == i else None for j in range(len(inner)))
            f = jax.vmap(f, in_axes=(None, spec, None))
        r = jax.lax.cond(
            base[0] >= 0,
            lambda a: f(*a),
            lambda a: jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda b: f(*b), a)),
            (split_tab, inner, outer),
        )
        r = jax.tree.map(lambda x: jnp.broadcast_to(x, plan.shape[n_out:]).reshape(-1), r)
        r = types.SimpleNamespace(**r)
        in_range = jnp.broadcast_to(in_range, (plan.chunk,))
        gid = None
        if plan.n_groups:
            tile_shape = plan.shape[n_out:]
            g = jnp.broadcast_to(group_tab, tile_shape)
            if sub.batch_axis is not None:
                if sub.batch_axis < n_out:
                    b = d_out[sub.batch_axis]
                else:
                    b = jax.lax.broadcasted_iota(jnp.int32, tile_shape, sub.batch_axis - n_out)
                g = g + len(sub.group_labels) * b
            gid = g.reshape(-1)
        digits_at = lambda i: add_offsets(base, i, plan.shape)  # noqa: E731
        return (*self._reduce(r, r.score, in_range, gid), digits_at)

    # ------------------------------------------------------------------ one device

    def _chunk(self, carry, tables):
        plan = self.plan
        base, left, top_v, top_d, g_v, g_d, counts = carry
        offsets = jnp.arange(plan.chunk, dtype=jnp.int32)
        score, gscore, gid, inc, digits_at = self.evaluate(base, tables)

        def merge(args):
            top_v, top_d = args
            v, i = jax.lax.top_k(score, min(plan.k, plan.chunk))
            allv = jnp.concatenate([top_v, v])
            alld = jnp.concatenate([top_d, digits_at(i)])
            v2, j = jax.lax.top_k(allv, plan.k)
            return v2, alld[j]

        top_v, top_d = jax.lax.cond(jnp.max(score) > top_v[-1], merge, lambda a: a, (top_v, top_d))
        if plan.n_groups:
            G = plan.n_groups
            best = jax.ops.segment_max(gscore, gid, num_segments=G)
            pos = jnp.where((gscore == best[gid]) & (gscore > -jnp.inf), offsets, plan.chunk)
            first = jax.ops.segment_min(pos, gid, num_segments=G)
            better = best > g_v
            g_v = jnp.where(better, best, g_v)
            new_d = digits_at(jnp.minimum(first, plan.chunk - 1))
            g_d = jnp.where(better[:, None], new_d, g_d)
        base = add_offsets(base, jnp.int32(plan.chunk), plan.shape)
        return base, left - 1, top_v, top_d, g_v, g_d, counts + inc

    def _step(self, state, n_steps, split_tab, axis_tabs, group_tab):
        """``n_steps`` chunks on this device; state has a leading device axis of 1."""
        self.traces += 1
        tables = (split_tab, axis_tabs, group_tab)
        base, left, top_v, top_d, g_v, g_d = (x[0] for x in state)
        counts = jnp.zeros((N_COUNTS,), jnp.int32)
        n = jnp.minimum(n_steps, left)
        carry = (base, left, top_v, top_d, g_v, g_d, counts)
        carry = jax.lax.fori_loop(0, n, lambda _, c: self._chunk(c, tables), carry)
        base, left, top_v, top_d, g_v, g_d, counts = carry
        counts = jax.lax.psum(counts, "cand")
        new = tuple(x[None] for x in (base, left, top_v, top_d, g_v, g_d))
        return new, counts

    def _final(self, state):
        """All-gather and merge the per-device top-k and groups (device order = index
        order, so the first maximum is the lowest index)."""
        _, _, top_v, top_d, g_v, g_d = state
        all_v = jax.lax.all_gather(top_v[0], "cand", tiled=True)
        all_d = jax.lax.all_gather(top_d[0], "cand", tiled=True)
        v, i = jax.lax.top_k(all_v, self.plan.k)
        out = [v, all_d[i]]
        if self.plan.n_groups:
            gv = jax.lax.all_gather(g_v[0], "cand")  # [ndev, G]
            gd = jax.lax.all_gather(g_d[0], "cand")  # [ndev, G, D]
            j = jnp.argmax(gv, axis=0)
            out += [jnp.max(gv, axis=0), jnp.take_along_axis(gd, j[None, :, None], 0)[0]]
        return tuple(out)


# --------------------------------------------------------------------------- host side


def tables_of(sub: SubGrid):
    """Device tables: split rows (f32), axis values (f32 each), group ids (int32)."""
    split_tab = jnp.asarray(sub.splits, jnp.float32)
    axis_tabs = tuple(jnp.asarray(a.values, jnp.float32) for a in sub.axes)
    group_tab = jnp.asarray(sub.group, jnp.int32)
    return split_tab, axis_tabs, group_tab


def initial_state(plan: Plan, mesh, total: int):
    """Per-device state (leading device axis): chunk base digits, chunks left, empty
    top-k and groups. Device ``d`` owns chunks ``[d·per, (d+1)·per)``."""
    n_dev, C, D = plan.n_devices, plan.chunk, len(plan.shape)
    n_chunks = -(-total // C)
    per = -(-n_chunks // n_dev)
    base = np.stack([host_digits(min(d * per, n_chunks) * C, plan.shape) for d in range(n_dev)])
    if base.max(initial=0) >= 2**31 - 2 * C:
        raise ValueError("outermost axis too long for int32 digits")
    left = np.asarray(device_chunks(total, plan))
    G = max(plan.n_groups, 1)
    host = (
        base.astype(np.int32),
        left.astype(np.int32),
        np.full((n_dev, plan.k), -np.inf, np.float32),
        np.zeros((n_dev, plan.k, D), np.int32),
        np.full((n_dev, G), -np.inf, np.float32),
        np.zeros((n_dev, G, D), np.int32),
    )
    sharding = NamedSharding(mesh, P("cand"))
    return tuple(
        jax.make_array_from_callback(a.shape, sharding, partial(_slice, a)) for a in host
    ), per


MAX_CHUNKS_PER_DEVICE = 2**31 - 1
"""A device sweeps at most this many chunks (int32 counter); beyond, a run is partial."""


def device_chunks(total: int, plan: Plan) -> list[int]:
    """Chunks each device sweeps: contiguous ranges of ``ceil(chunks / devices)``."""
    n_chunks = -(-total // plan.chunk)
    per = -(-n_chunks // plan.n_devices)
    return [
        min(MAX_CHUNKS_PER_DEVICE, max(0, min(per, n_chunks - d * per)))
        for d in range(plan.n_devices)
    ]


def _slice(a, idx):
    return a[idx]


def local(x) -> np.ndarray:
    """A replicated global array as a host array (works across processes)."""
    return np.asarray(x.addressable_data(0))


def choose_chunk(total: int, n_devices: int, chunk: int | None) -> int:
    """Static chunk size: the requested one, else 2^16 (shrunk for small grids)."""
    if chunk is not None:
        return int(chunk)
    per_dev = -(-total // n_devices)
    return int(min(1 << 16, max(256, 1 << math.ceil(math.log2(max(per_dev, 1))))))


TILE_MAX = 1 << 18
"""Most candidates in one tile (a chunk of the tiled sweep, per device)."""

TILE_MIN = 1 << 12
"""Fewest candidates in one tile; below, the sweep uses flat chunks (per-chunk overhead)."""


def choose_tile(shape, n_devices: int, chunks_per_device: int = 4) -> tuple[int, int]:
    """``(t, chunk)`` of the tiled sweep, or ``(0, 0)`` for flat chunks.

    The tile is the split digit and as many of the next-innermost digits as fit in
    :data:`TILE_MAX` candidates while the grid still has ``chunks_per_device`` tiles per
    device (so every device has work); ``chunk = ∏ shape[−t:]``. Flat chunks when even
    the split digit alone exceeds :data:`TILE_MAX`, or when the tile stays below
    :data:`TILE_MIN` in a grid larger than one tile.
    """
    total = math.prod(shape)
    t, size = 1, int(shape[-1])
    if size > TILE_MAX:
        return 0, 0
    while t < len(shape):
        nxt = size * int(shape[-1 - t])
        if nxt > TILE_MAX or total // nxt < chunks_per_device * n_devices:
            break
        size, t = nxt, t + 1
    if size < TILE_MIN and total > size:
        return 0, 0
    return t, size
