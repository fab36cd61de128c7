r"""The compiled programs of the gradient search, keyed by a scenario's *structure* only.

A scenario enters a program as data (:class:`Problem`): the 86 float leaves of its
records (model, precision, canonical system, workload, mode) as one vector, a 0/1 mask
``[K, L]`` saying which leaves knob ``k`` sets, the budget arguments as arrays, and the
box bounds. What stays static (and keys the compilation cache) is only:

* the records' tree structure — with :func:`search.stacking.canonical_system` that is
  the tiers' topology tuple (every model, precision and workload has one structure);
* the number of knobs ``K``, the objective, the budget kind, and the optimiser's
  constants (steps, learning rate, ``beta``, ``mu``, ``kappa``);
* the number of lanes per call (:func:`lane_count`: a power of two) for the relaxed run,
  and :data:`EXACT_ROWS` for exact re-scoring.

So one compiled program serves every scenario of the same structure, and many
scenarios' starts run as the lanes of one vmapped call (each lane carries its own
scenario's data). Which leaves a knob sets is data too (the mask), so ``chip.hbm_bw…`` and
``chip.sram_bw…`` knobs share a program.

The budget :func:`log_improvement_budget` runs in vector form (its dict arguments become
arrays ``nominal[K]``, ``sign[K]``, ``log_budget``); any other budget function is called
with ``{path: value}`` and keys the cache with its knob paths.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from costmodel.decode import decode_step
from costmodel.specs import Parallelism
from search.errors import UserError
from search.jit import FAST_COMPILE_OPTIONS
from search.paths import set_system_path
from search.stacking import canonical_system

N_FREE = 5
"""Relaxed degrees ``log2(attn_tp, attn_dp, kvp, ep, pp)``; ``moe_tp`` is derived."""

EXACT_ROWS = 256
"""Rows per exact re-scoring call (the last call padded): one compiled shape."""

MAX_LANES = 128
"""Most relaxed starts per call; fewer lanes round up to a power of two (≥ 8)."""


SEARCH_COMPILE_OPTIONS = dict(FAST_COMPILE_OPTIONS)
"""XLA:CPU options of both programs (no fusion emitters, :mod:`search.jit`)."""

QUICK_COMPILE_OPTIONS = {**SEARCH_COMPILE_OPTIONS, "xla_backend_optimization_level": 0}
"""Options for programs that run little: no LLVM optimisation as well. Measured on 2
shared cores (Kimi-K2.5 on GB200 NVL72, 4 knobs, CPU seconds, one process per variant):

=========================================  ===============  ====================
program                                    compile O2 → O0  run O2 → O0
=========================================  ===============  ====================
relaxed, 16 lanes × 60 steps               19.2 → 8.7 s     0.05 → 0.42 s
relaxed, 128 lanes × 60 steps              22.0 → 7.3 s     0.41 → 2.40 s
exact re-scoring, 256 rows                 4.7 → 1.3 s      0.003 → 0.003 s
=========================================  ===============  ====================

(reverse mode for the relaxed program: 31.7 s to compile, :func:`value_and_jacfwd`.)
So the exact program always uses these options, and the relaxed one while its work
(lanes × steps summed over calls, :func:`relax_options`) is below :data:`QUICK_LANE_STEPS`:
an optimised build saves about 2.6e-4 CPU s per lane-step and costs about 12 CPU s more
to compile."""

QUICK_LANE_STEPS = 32768
"""Relaxed lane-steps (per structure and call of :func:`run_relax`) up to which the
relaxed program is compiled with :data:`QUICK_COMPILE_OPTIONS` (break-even ≈ 12 s /
2.6e-4 s ≈ 46,000 lane-steps; e.g. 16 starts × 200 steps is 3,200)."""


INTERPRET_ROWS = 1 << 17
"""Most cost-model evaluations of one call (relaxed: lanes × steps × (6 + K), the
``5 + K`` complex-step directions and the value; exact: rows) run by the NumPy
interpreter instead of a compiled program (:mod:`search.gradient_interpreted`), on the
CPU backend. ``0``: always compile. The
interpreter costs ~15–40 ms per batched pass whatever the rows up to a few thousand and
compiles nothing; the relaxed program costs 7–20 s to compile (table above) and
~0.4 ms per 16 lanes × step after. Measured (Kimi-K2.5 on GB200 NVL72, 4 knobs, 12
starts × 60 steps, 2 cores): ``benchmarks/bench_gradient.py``."""


def use_interpreter(rows: int) -> bool:
    """Whether a call of ``rows`` evaluations runs in the interpreter (see
    :data:`INTERPRET_ROWS`)."""
    return rows <= INTERPRET_ROWS and jax.default_backend() == "cpu"


def relax_options(lane_steps: int) -> dict:
    """Compiler options of a relaxed run of ``lane_steps`` lanes × steps in all."""
    return QUICK_COMPILE_OPTIONS if lane_steps <= QUICK_LANE_STEPS else SEARCH_COMPILE_OPTIONS


def _jit(fn, options=None):
    if jax.default_backend() == "cpu":
        return jax.jit(fn, compiler_options=options or SEARCH_COMPILE_OPTIONS)
    return jax.jit(fn)


_SOURCES = ("costmodel", "search/gradient_programs.py", "search/stacking.py")


@functools.cache
def _source_hash() -> str:
    """Hash of the code a program is traced from (cost model and this module)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(jax.__version__.encode())
    for name in _SOURCES:
        p = root / name
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


_CALLS: dict = {}


@functools.cache
def _can_serialize() -> bool:
    """:mod:`jax.export` serialisation needs the optional ``flatbuffers`` package."""
    try:
        import flatbuffers  # noqa: F401
    except ImportError:
        return False
    return True


def _call(prog, tag, args, options):
    """``prog(*args)``, through a traced-once program saved on disk when JAX's
    persistent compilation cache is on (:func:`search.jit.enable_cache`).

    Tracing the relaxed program (JVP × vmap × scan of the cost model) costs several
    seconds per structure in every process, before the compilation cache can even be
    consulted. So the lowered program is saved with :mod:`jax.export` under the cache
    folder, keyed by ``tag`` (the static configuration), the argument shapes, the JAX
    version and a hash of the cost model's source; a later process deserialises it and
    its compilation hits the persistent cache. Without the optional ``flatbuffers``
    package (needed by :mod:`jax.export` serialisation) programs are traced as usual.
    ``prog`` is a function; it is compiled with the XLA:CPU ``options``."""
    spec = tuple((np.shape(a), str(np.asarray(a).dtype)) for a in jax.tree.leaves(args))
    # a program without a tag (a user budget) is keyed by its own identity
    key = (tag or id(prog), spec, jax.tree.structure(args), tuple(sorted(options.items())))
    fn = _CALLS.get(key)
    if fn is None:
        folder = jax.config.jax_compilation_cache_dir
        if not folder or tag is None or not _can_serialize():
            fn = _jit(prog, options)
        else:
            name = hashlib.sha256(repr((tag, spec, _source_hash())).encode()).hexdigest()[:32]
            path = Path(folder) / "tpsopt-gradient" / f"{name}.jaxexport"
            try:
                exp = jax.export.deserialize(bytearray(path.read_bytes()))
            except (OSError, ValueError):
                exp = jax.export.export(jax.jit(prog))(*args)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_bytes(exp.serialize())
                    tmp.replace(path)
                except OSError:
                    pass
            fn = _jit(exp.call, options)
        _CALLS[key] = fn
    return fn(*args)


def _tag(key, *settings):
    """A deterministic text key of a program, or ``None`` (a user budget function:
    not saved, it could change between runs under the same name)."""
    treedef, n_knobs, kind = key
    if kind not in (None, "log_improvement"):
        return None
    return repr((str(treedef), n_knobs, kind, *settings))


def log_improvement_budget(vals: dict, args: dict):
    """A hardware-improvement budget: ``Σ_k max(0, s_k·log(x_k / x_k⁰)) − log B ≤ 0``.

    ``args = {"nominal": {path: x⁰}, "sign": {path: +1 if higher is better else −1},
    "log_budget": log B}``: improving knobs by factors whose product is at most B (e.g.
    B = 4: a 4× lower latency, or 2× lower latency and 2× the bandwidth); degrading a
    knob earns nothing.
    """
    cost = 0.0
    for path, v in vals.items():
        gain = args["sign"][path] * jnp.log(v / args["nominal"][path])
        cost = cost + jnp.maximum(gain, 0.0)
    return cost - args["log_budget"]


def _vector_log_budget(v, a):
    """:func:`log_improvement_budget` on a knob vector ``v`` (arrays in ``a``)."""
    return jnp.sum(jnp.maximum(a["sign"] * jnp.log(v / a["nominal"]), 0.0)) - a["log_budget"]


def _log_space_budget(log_v, a):
    """:func:`_vector_log_budget` of ``v = exp(log_v)``, computed in log space:
    ``Σ max(s·(log v − log v⁰), 0) − log B`` with ``log v⁰`` from :func:`pack`
    (``math.log``, as the box bounds). The same value, but a knob on the bound at its
    nominal value gives an exact 0 inside the ``max`` (``log(exp(x)/v⁰)`` is off by an
    ulp that depends on the ``exp``/``log`` implementation), so its derivative there is
    ``lax.max``'s tie rule (half the one-sided slopes) for every evaluator of the
    relaxed loss, compiled or interpreted."""
    gain = a["sign"] * (log_v - a["log_nominal"])
    return jnp.sum(jnp.maximum(gain, 0.0)) - a["log_budget"]


@dataclass(frozen=True)
class Problem:
    """One scenario as data for the compiled programs (see the module docstring)."""

    key: tuple  # static: (treedef, K, budget kind) — equal keys share programs
    leaves: np.ndarray  # [L] float64
    mask: np.ndarray  # [K, L] float64 (0/1)
    bud: object  # pytree of float64 arrays (None without a budget)
    lo: np.ndarray  # [5 + K] box, log2 degrees then log knob values
    hi: np.ndarray


def _knob_mask(system, canon, treedef, n_leaves, path: str) -> np.ndarray:
    """Leaves of the canonical records that knob ``path`` sets (validated on ``system``)."""
    set_system_path(system, path, 1.0)  # raises a UserError naming the path if it is invalid
    parts = path.split(".")
    if parts[0] == "tiers":  # address the canonical tier(s) by position
        idx = [
            i
            for i, t in enumerate(system.tiers)
            if parts[1] == t.name or (parts[1] == "*" and t.name != "die")
        ]
        cpaths = [f"tiers.{canon.tiers[i].name}.{parts[2]}" for i in idx]
    else:
        cpaths = [path]
    marker = jax.tree.unflatten(treedef, [0.0] * n_leaves)
    for cp in cpaths:
        marker = marker[:2] + (set_system_path(marker[2], cp, 1.0),) + marker[3:]
    return np.asarray(jax.tree.leaves(marker), np.float64)


def pack(sc, knobs, budget, budget_args, lo_deg, hi_deg) -> Problem:
    """A :class:`Problem` for scenario ``sc`` with ``knobs`` and box ``[lo_deg, hi_deg]``
    on the relaxed degrees (knob paths as :func:`search.paths.set_system_path` takes them)."""
    canon = canonical_system(sc.system)
    rec = (sc.model, sc.precision, canon, sc.workload, sc.mode)
    leaves, treedef = jax.tree.flatten(rec)
    leaves = np.asarray([float(x) for x in leaves], np.float64)
    mask = np.zeros((len(knobs), len(leaves)))
    for i, k in enumerate(knobs):
        mask[i] = _knob_mask(sc.system, canon, treedef, len(leaves), k.path)
    paths = tuple(k.path for k in knobs)
    if budget is None:
        kind, bud = None, None
    elif budget is log_improvement_budget:
        kind = "log_improvement"
        try:
            bud = {
                "nominal": np.asarray([budget_args["nominal"][p] for p in paths], np.float64),
                "log_nominal": np.asarray(
                    [math.log(budget_args["nominal"][p]) for p in paths], np.float64
                ),
                "sign": np.asarray([budget_args["sign"][p] for p in paths], np.float64),
                "log_budget": np.float64(budget_args["log_budget"]),
            }
        except (KeyError, TypeError) as e:
            raise UserError(f"budget_args: no entry for knob {e}") from None
        except ValueError:  # math.log of a nominal value ≤ 0
            bad = next(p for p in paths if not budget_args["nominal"][p] > 0)
            raise UserError(
                f"budget_args: nominal value of knob {bad!r} is "
                f"{budget_args['nominal'][bad]!r}; it must be > 0"
            ) from None
    else:
        kind = (budget, paths)
        bud = jax.tree.map(lambda x: np.asarray(x, np.float64), budget_args)
    lo = np.concatenate([lo_deg, [math.log(k.lo) for k in knobs]])
    hi = np.concatenate([hi_deg, [math.log(k.hi) for k in knobs]])
    return Problem((treedef, len(knobs), kind), leaves, mask, bud, lo, hi)


def _budget_value(kind, vals, bud):
    if kind == "log_improvement":
        return _vector_log_budget(vals, bud)
    fn, paths = kind
    return fn({p: vals[i] for i, p in enumerate(paths)}, bud)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _decode(treedef, leaves, mask, par, vals, beta):
    """Decode step of the records in ``leaves`` with the knob values ``vals`` applied.

    A nested ``jit``: the cost model is traced once per structure into a jaxpr, and the
    relaxed program's JVP and vmap transform that jaxpr instead of re-running the Python
    model code (several times faster to lower)."""
    if mask.shape[0]:
        leaves = jnp.where(mask.sum(0) > 0, vals @ mask, leaves)
    model, precision, system, workload, mode = jax.tree.unflatten(treedef, list(leaves))
    r = decode_step(model, precision, system, par, workload, mode, beta)
    return r, system.max_chips, workload.batch


def value_and_jacfwd(f, x):
    """``(f(x), ∇f(x))`` by forward mode: one JVP per input, vmapped, primal once.

    With a handful of inputs this compiles ~3× faster than reverse mode on XLA:CPU
    (:mod:`search.jit`) and runs as fast.
    """
    basis = jnp.eye(x.shape[0], dtype=x.dtype)
    y, g = jax.vmap(lambda v: jax.jvp(f, (x,), (v,)), out_axes=(None, 0))(basis)
    return y, g


def relaxed_loss(key, objective, beta, mu, kappa):
    """The penalised relaxed objective of one start, ``(x [5 + K], leaves, mask, bud) →
    loss``: ``−log(objective) + mu·Σ softplus_kappa(violations)`` (module docstring of
    :mod:`search.gradient`, step 2)."""
    treedef, n_knobs, kind = key

    def loss(x, leaves, mask, bud):
        deg = jnp.exp2(x[:N_FREE])
        tp, dp, kvp, ep, pp = (deg[i] for i in range(N_FREE))
        par = Parallelism(tp, dp, kvp, ep, tp * kvp * dp / ep, pp)
        vals = jnp.exp(x[N_FREE:])
        r, max_chips, batch = _decode(treedef, leaves, mask, par, vals, beta)
        sp = lambda g: jax.nn.softplus(kappa * g) / kappa  # noqa: E731
        pen = sp(r.log_capacity_ratio) + sp(jnp.log2(r.chips) - jnp.log2(max_chips))
        pen = pen + sp(-jnp.log2(par.moe_tp))
        pen = pen + sp(jnp.log2(par.attn_dp) - jnp.log2(batch))
        if kind == "log_improvement":
            pen = pen + sp(_log_space_budget(x[N_FREE:], bud))
        elif kind is not None:
            pen = pen + sp(_budget_value(kind, vals, bud))
        return -jnp.log(getattr(r, objective)) + mu * pen

    return loss


@functools.lru_cache(maxsize=32)
def relax_program(key, objective, n_steps, lr, beta, mu, kappa):
    """Multi-start projected Adam on the penalised relaxed objective (module docstring
    of :mod:`search.gradient`, step 2–3); vmapped over lanes, each lane one start of one
    scenario: ``(x0, leaves, mask, bud, lo, hi) -> (x_final, loss per step)``."""
    opt = optax.adam(lr)
    loss = relaxed_loss(key, objective, beta, mu, kappa)

    def run_start(x0, leaves, mask, bud, lo, hi):
        f = lambda x: loss(x, leaves, mask, bud)  # noqa: E731

        def step(carry, _):
            x, st = carry
            val, g = value_and_jacfwd(f, x)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            upd, st = opt.update(g, st, x)
            x = optax.projections.projection_box(optax.apply_updates(x, upd), lo, hi)
            return (x, st), val

        (x, _), vals = jax.lax.scan(step, (x0, opt.init(x0)), None, length=n_steps)
        return x, vals

    return jax.vmap(run_start)


def exact_row(key, objective):
    """Exact score of one row (``beta = inf``, hard feasibility and budget): ``(leaves,
    mask, bud, split [6], kv [K]) -> (score, DecodeResult leaves)``; infeasible rows score
    ``-inf``."""
    treedef, n_knobs, kind = key

    def exact(leaves, mask, bud, row, kv):
        par = Parallelism(*(row[i] for i in range(6)))
        r, _, _ = _decode(treedef, leaves, mask, par, kv, math.inf)
        ok = r.fits
        if kind is not None:
            ok = ok & (_budget_value(kind, kv, bud) <= 0)
        # leaves, not the record: a saved (exported) program returns plain arrays
        return jnp.where(ok, getattr(r, objective), -jnp.inf), tuple(jax.tree.leaves(r))

    return exact


@functools.lru_cache(maxsize=32)
def exact_program(key, objective):
    """:func:`exact_row` vmapped over rows, each row with its scenario's data."""
    return jax.vmap(exact_row(key, objective))


@functools.cache
def _result_treedef():
    """Tree structure of a :class:`~costmodel.decode.DecodeResult` (to rebuild one from
    the exact program's leaves)."""
    from costmodel.decode import Breakdown, DecodeResult

    bd = Breakdown(**{f: 0.0 for f in Breakdown.__dataclass_fields__})
    fields = [f for f in DecodeResult.__dataclass_fields__ if f != "breakdown_s"]
    return jax.tree.structure(DecodeResult(**{f: 0.0 for f in fields}, breakdown_s=bd))


def lane_count(n: int) -> int:
    """Lanes per relaxed call for ``n`` starts: a power of two in ``[8, MAX_LANES]``."""
    return min(MAX_LANES, max(8, 1 << max(0, math.ceil(math.log2(max(n, 1))))))


def _take(problems, idx, field):
    """``field`` of ``problems[i]`` for every ``i`` in ``idx``, stacked (pytrees too)."""
    return jax.tree.map(lambda *xs: np.stack(xs), *(getattr(problems[i], field) for i in idx))


def run_relax(problems, x0s, objective, n_steps, lr, beta, mu, kappa):
    """Relaxed runs of every start of every problem (all with the same ``key``).

    ``x0s[i]``: ``[starts_i, 5 + K]`` starting points of ``problems[i]``. Returns, per
    problem, ``(x [starts_i, D], loss history [starts_i, n_steps])`` (numpy)."""
    owner = np.concatenate([np.full(len(x), i) for i, x in enumerate(x0s)])
    x0 = np.concatenate(x0s)
    if use_interpreter(len(x0) * n_steps * (x0.shape[1] + 1)):
        from search.gradient_interpreted import relax

        x_all, h_all = relax(problems, owner, x0, objective, n_steps, lr, beta, mu, kappa)
        return [(x_all[owner == i], h_all[owner == i]) for i in range(len(problems))]
    prog = relax_program(problems[0].key, objective, n_steps, lr, beta, mu, kappa)
    tag = _tag(problems[0].key, "relax", objective, n_steps, lr, beta, mu, kappa)
    lanes = lane_count(len(x0))
    options = relax_options(lanes * n_steps * math.ceil(len(x0) / lanes))
    xs, hs = [], []
    for s in range(0, len(x0), lanes):
        take = np.minimum(np.arange(s, s + lanes), len(x0) - 1)
        idx = owner[take]
        args = [x0[take]] + [_take(problems, idx, f) for f in ("leaves", "mask", "bud")]
        args += [_take(problems, idx, "lo"), _take(problems, idx, "hi")]
        with jax.enable_x64(True):
            x, h = _call(prog, tag, args, options)
        n = min(lanes, len(x0) - s)
        xs.append(np.asarray(x)[:n])
        hs.append(np.asarray(h)[:n])
    x_all, h_all = np.concatenate(xs), np.concatenate(hs)
    return [(x_all[owner == i], h_all[owner == i]) for i in range(len(problems))]


def run_exact(problems, requests, objective, want_results=False):
    """Exact scores of candidate rows for many problems (all with the same ``key``).

    ``requests``: list of ``(problem index, splits [n, 6], knob values [n, K])``.
    Returns one score array per request (and one DecodeResult of numpy arrays per
    request with ``want_results``)."""
    sizes = [len(r[1]) for r in requests]
    if sum(sizes) == 0:
        return [np.zeros(0)] * len(requests), [None] * len(requests)
    owner, rows, kv = flat_requests(problems, requests)
    if use_interpreter(len(rows)):
        from search.gradient_interpreted import exact

        scores, results = exact(problems, owner, rows, kv, objective, want_results)
        return split_requests(scores, results, sizes, want_results)
    prog = exact_program(problems[0].key, objective)
    tag = _tag(problems[0].key, "exact", objective)
    scores, results = [], []
    for s in range(0, len(rows), EXACT_ROWS):
        take = np.minimum(np.arange(s, s + EXACT_ROWS), len(rows) - 1)
        idx = owner[take]
        args = [_take(problems, idx, f) for f in ("leaves", "mask", "bud")]
        with jax.enable_x64(True):
            sc, r = _call(prog, tag, [*args, rows[take], kv[take]], QUICK_COMPILE_OPTIONS)
        n = min(EXACT_ROWS, len(rows) - s)
        scores.append(np.asarray(sc)[:n])
        if want_results:
            results.append([np.asarray(a)[:n] for a in r])
    return split_requests(scores, results, sizes, want_results)


def flat_requests(problems, requests):
    """``run_exact``'s requests as rows: the owning problem ``[n]``, splits ``[n, 6]`` and
    knob values ``[n, K]``, in request order."""
    sizes = [len(r[1]) for r in requests]
    owner = np.concatenate([np.full(n, req[0]) for n, req in zip(sizes, requests, strict=True)])
    rows = np.concatenate([np.asarray(r[1], np.float64).reshape(-1, 6) for r in requests])
    n_knobs = problems[0].key[1]
    kv = np.concatenate(
        [np.asarray(r[2], np.float64).reshape(len(r[1]), n_knobs) for r in requests]
    )
    return owner, rows, kv


def split_requests(scores, results, sizes, want_results):
    """Chunked scores (and DecodeResult leaves per chunk) → one array (and one
    DecodeResult of arrays) per request of ``sizes`` rows."""
    scores = np.concatenate(scores)
    cuts = np.cumsum([0, *sizes])
    out_s = [scores[cuts[i] : cuts[i + 1]] for i in range(len(sizes))]
    if not want_results:
        return out_s, [None] * len(sizes)
    cols = [np.concatenate(c) for c in zip(*results, strict=True)]
    treedef = _result_treedef()
    out_r = [
        jax.tree.unflatten(treedef, [c[cuts[i] : cuts[i + 1]] for c in cols])
        for i in range(len(sizes))
    ]
    return out_s, out_r
