"""The NumPy evaluator of the cost model's jaxpr (search/interpret.py).

* interpreter == ``jit`` == ``vmap`` of the same flat-row function, float32 and float64,
  on several models and systems (to float rounding: XLA fuses and may contract
  ``a·b + c``; the interpreter equals JAX's op-by-op evaluation bit for bit);
* the float64 jaxpr narrowed to float32 reproduces the float32 trace bit for bit;
* every primitive of every database model × system structure (both modes) has a rule;
* the rules against ``jax.lax`` on small programs, unbatched and batched (``vmap``);
* the small-space grid and the interpreted exhaustive stage give the compiled engines'
  answers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hardware_db as db
from search import evaluate as E
from search import interpret as I
from search.scenario import scenario

CASES = [
    ("llama-3.1-70b", "hgx-h100-8", "sol"),
    ("kimi-k2.5", "gb200-nvl72", "sol"),
    ("deepseek-r1", "hgx-b200-8", "sol"),
    ("qwen3-32b", "reticle-die", "sol"),
]
ROWS = np.asarray(
    [
        (8, 1, 1, 1, 8, 1, 1, 8192, 0, 0, 0, 1),
        (4, 1, 1, 4, 1, 2, 8, 4096, 0, 0, 0, 1),
        (1, 1, 1, 1, 1, 8, 64, 8192, 1, 0.7, 0, 1.2),
        (2, 1, 2, 2, 2, 1, 16, 100000, 0, 0, 0.5, 1),
        (3, 1, 1, 1, 3, 1, 1, 8192, 0, 0, 0, 1),  # infeasible (heads): reason bits
        (64, 1, 1, 64, 1, 1, 1, 8192, 0, 0, 0, 1),  # more chips than the system has
    ],
    np.float64,
)
RTOL = {np.float32: 2e-6, np.float64: 1e-13}
"""Largest relative differences seen: float32 2.4e-7 (1–2 ulp), float64 ~2e-16."""


def _flat(model, system, mode):
    sc = scenario(model, system, mode=mode)
    return E.flat_records(E.Records(sc.model, sc.precision, sc.system, sc.mode))


def _x(flat, dtype):
    n = len(ROWS)
    return np.concatenate([np.tile(flat.vec(np.float64), (n, 1)), ROWS], 1).astype(dtype)


def _close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    fin = np.isfinite(b)
    assert np.array_equal(a[~fin], b[~fin])
    rel = np.abs(a[fin] - b[fin]) / np.maximum(np.abs(b[fin]), 1e-300)
    assert rel.max(initial=0) <= rtol, rel.max()


@pytest.mark.parametrize(
    "case, dtype",
    [(c, np.float32) for c in CASES] + [(c, np.float64) for c in CASES[::3]],
    ids=[f"{c[0]}-f32" for c in CASES] + [f"{c[0]}-f64" for c in CASES[::3]],
)
def test_interpreter_equals_jit_and_vmap(case, dtype):
    """Compiled rows (``jit`` of ``vmap``) vs the interpreter, batched and row by row
    (the single-row ``jit`` path is :func:`test_cli_eval_uses_no_compiled_program`)."""
    flat = _flat(*case)
    x = _x(flat, dtype)
    with jax.enable_x64(dtype == np.float64):
        ours = I.program(flat.treedef, flat.n, dtype)(x)
        vm = np.asarray(E.rows_program(flat.treedef, flat.n)(x))  # jit of vmap
    assert ours.dtype == dtype and ours.shape == (len(ROWS), E.N_OUT)
    _close(ours, vm, RTOL[dtype])
    single = np.stack([I.program(flat.treedef, flat.n, dtype)(row) for row in x])
    np.testing.assert_array_equal(single, ours)  # batched rows = row by row, bit for bit
    r = E.decode_result(ours)
    assert r.fits.dtype == bool and not r.fits[4] and int(r.reason[4]) != 0


@pytest.mark.parametrize("case", CASES[:2], ids=[c[0] for c in CASES[:2]])
def test_interpreter_equals_jax_op_by_op_bit_for_bit(case):
    flat = _flat(*case)
    x = _x(flat, np.float64)[1]
    closed = I.jaxpr_of(flat.treedef, flat.n)
    with jax.enable_x64(True):
        ref = np.asarray(jax.core.eval_jaxpr(closed.jaxpr, closed.consts, x)[0])
    np.testing.assert_array_equal(I.program(flat.treedef, flat.n, np.float64)(x), ref)


@pytest.mark.parametrize("case", CASES[:2], ids=[c[0] for c in CASES[:2]])
def test_narrowed_float64_jaxpr_is_the_float32_trace(case):
    flat = _flat(*case)
    x = _x(flat, np.float32)
    direct = I.Program(I.jaxpr_of(flat.treedef, flat.n, np.float32))(x)[0]
    narrowed = I.program(flat.treedef, flat.n, np.float32)(x)
    np.testing.assert_array_equal(direct.view(np.int32), narrowed.view(np.int32))


def _structures():
    """One (model, system, mode) per distinct record structure of the database."""
    from search.stacking import canonical_names

    out = {}
    model_defs = {}
    for m in db.list_names("models"):
        spec, _ = db.load_model(m)
        model_defs.setdefault(jax.tree.structure(spec), m)
    for s in db.list_names("systems"):
        sys_def = jax.tree.structure(canonical_names(db.load_system(s)))
        for mdef, m in model_defs.items():
            for mode in ("sol", "calibrated"):
                out.setdefault((mdef, sys_def, mode), (m, s, mode))
    return sorted(set(out.values()))


def test_every_database_structure_has_rules_for_all_primitives():
    """A primitive new to the cost model fails here, not for a user."""
    seen = set()
    for m, s, mode in _structures():
        sc = scenario(m, s, mode=mode)
        if not I.supports(sc.model, sc.precision, sc.system, sc.mode):
            continue  # array leaves (a kernel launch table): these records are compiled
        flat = _flat(m, s, mode)
        if (flat.treedef, flat.n) in seen:
            continue
        seen.add((flat.treedef, flat.n))
        prims = I.primitives_of(I.jaxpr_of(flat.treedef, flat.n))
        missing = prims - set(I.RULES)
        assert not missing, (m, s, mode, missing)
        out = I.program(flat.treedef, flat.n, np.float32)(_x(flat, np.float32))
        assert np.isfinite(out[:, 0]).all(), (m, s, mode)
    assert len(seen) >= 4


def test_unknown_primitive_is_named():
    closed = jax.make_jaxpr(lambda x: jnp.sin(x) * 2)(1.0)
    with pytest.raises(I.UnknownPrimitive, match="'sin'"):
        I.Program(closed)


def _rules_probe(x):
    """Uses the structural and semantic corners of the rules."""
    s = x[0]
    v = jnp.stack([s, x[1], -x[2]])
    b = jax.lax.broadcast_in_dim(s, (3,), ())
    w = jax.lax.broadcast_in_dim(v, (2, 3), (1,))
    r1 = jax.lax.round(v * 2.5, jax.lax.RoundingMethod.AWAY_FROM_ZERO)
    r2 = jax.lax.round(v * 2.5, jax.lax.RoundingMethod.TO_NEAREST_EVEN)
    i = jax.lax.convert_element_type(v * 1e10, jnp.int32)  # saturates
    q = jax.lax.div(i, jnp.int32(-7))  # integer division toward zero
    sel = jax.lax.select_n(jnp.clip(q, 0, 2).astype(jnp.int32)[0], v, b, v * 3)
    sel2 = jax.lax.select_n(s > 0, v, b)  # scalar predicate, array cases

    def body(c, y):
        return c * 0.5 + y, c + y

    c, ys = jax.lax.scan(body, s, v, reverse=True)
    c2, ys2 = jax.lax.scan(body, 1.0, jnp.ones(3))  # carry that stays unbatched
    red = jnp.sum(w, axis=0) + jax.lax.integer_pow(v, -3) + jax.lax.integer_pow(v, 5)
    sq = jax.lax.squeeze(jax.lax.slice(v, (1,), (2,)), (0,))
    cat = jnp.concatenate([v, jnp.reshape(w, (6,)), ys, ys2, jnp.stack([c, c2, sq])])
    nan = jax.lax.convert_element_type(jnp.log(s - 100.0), jnp.int32)  # NaN → 0
    dot = jnp.dot(w, v) + jax.lax.dot_general(w, w * 2, (((1,), (1,)), ((0,), (0,))))
    outer = jax.lax.dot_general(v, b, (((), ()), ((), ())))  # no contraction: [3, 3]
    inner = jax.jit(lambda a: (a * 2 + 1, a[0]))(v)  # a nested jit, inlined
    return (cat, red + sel + sel2, r1 + r2, i, q, nan, jnp.expm1(s) + jnp.log1p(x[1] ** 2),
            dot, outer, *inner)  # fmt: skip


def probe_inputs(n: int, dtype) -> np.ndarray:
    """``[n, 3]`` inputs of :func:`_rules_probe`; the first row gives the rounding methods
    exact halves."""
    xs = (np.random.default_rng(5).normal(size=(n, 3)) * 3).astype(dtype)
    xs[0] = (0.5 / 2.5, -1.5 / 2.5, 2.5 / 2.5)
    return xs


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_rules_match_lax_unbatched_and_batched(dtype):
    xs = probe_inputs(7, dtype)
    with jax.enable_x64(dtype == np.float64):
        closed = jax.make_jaxpr(_rules_probe)(xs[0])
        ref = jax.tree.map(np.asarray, jax.vmap(_rules_probe)(xs))
        ref0 = jax.tree.map(np.asarray, _rules_probe(xs[0]))
    prog = I.Program(closed)
    with np.errstate(all="ignore"):
        got = prog(xs)
        got0 = prog(xs[0])
    for a, b in zip(got, ref, strict=True):
        assert np.shape(a) == np.shape(b) and np.result_type(a) == b.dtype
        _close(a, b, RTOL[dtype])
    for a, b in zip(got0, ref0, strict=True):
        _close(a, b, RTOL[dtype])


# --------------------------------------------------------------------------- engines


def _key(res):
    return (
        [(r["index"], r.get("sub_grid", 0), r["parallelism"]) for r in res.top],
        [(r["index"], r.get("sub_grid", 0)) for r in res.groups or []],
        res.counts,
    )


def _values_close(a, b):
    for ra, rb in zip(a.top, b.top, strict=True):
        assert ra["score"] == pytest.approx(rb["score"], rel=1e-12)
        assert ra["result"]["tpot_s"] == pytest.approx(rb["result"]["tpot_s"], rel=1e-12)


def test_small_grid_engine_equals_sweep():
    """The issue's 126-configuration grid: same top-k, groups, fronts and counts."""
    from search.grid import grid
    from search.space import make_space

    sp = make_space("llama-3.1-8b", "hgx-h100-8", axes={"batch": [1, 8, 64]})
    auto = grid(sp, top=5, pareto=True)
    sweep = grid(sp, top=5, pareto=True, engine="sweep")
    assert auto.info["engine"] == "interpreter" and sweep.info["engine"] == "sweep"
    assert auto.total == 126
    assert _key(auto) == _key(sweep)
    _values_close(auto, sweep)
    for name in auto.pareto:
        assert [r["index"] for r in auto.pareto[name]] == [r["index"] for r in sweep.pareto[name]]


def test_small_grid_with_choices_axes_and_constraints_equals_sweep():
    """Model and system choice axes, a hardware axis, a constraint, a minimised objective."""
    from search.grid import grid
    from search.space import make_space

    sp = make_space(
        ["llama-3.1-8b", "qwen3-32b"],
        ["hgx-h100-8", "hgx-h200-8"],
        axes={"batch": [1, 16], "tiers.nvlink.hop_latency_s": [1e-7, 1e-6]},
        min_utps=50.0,
    )
    assert sp.size <= 4096
    auto = grid(sp, top=7, objective="tpot", pareto=True)
    sweep = grid(sp, top=7, objective="tpot", pareto=True, engine="sweep")
    assert auto.info["engine"] == "interpreter"
    assert _key(auto) == _key(sweep)
    _values_close(auto, sweep)


def test_exhaustive_stage_interpreted_equals_compiled(monkeypatch):
    import search.optimize as O

    sc = scenario("llama-3.1-8b", "hgx-h100-8", batch=8)
    table = O.split_table(sc)
    i, r = O.exhaustive_best(sc, table)
    monkeypatch.setattr(O, "INTERPRET_MAX_ROWS", 0)
    j, q = O.exhaustive_best(sc, table)
    assert i == j
    assert float(r.utps) == pytest.approx(float(q.utps), rel=1e-12)
    assert np.asarray(r.utps).dtype == np.float64


def test_cli_eval_uses_no_compiled_program(capsys):
    """``tpsopt eval`` answers through the interpreter: its values equal the compiled
    program's to float32 rounding, and it compiles nothing (no jit cache entry)."""
    import json

    from search.cli import main
    from search.defaults import complete_parallelism, eval_one

    compiles = []

    def listen(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    argv = ["eval", "--model", "llama-3.1-70b", "--system", "hgx-h100-8", "--json"]
    try:
        assert main(argv) in (0, None)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []
    d = json.loads(capsys.readouterr().out)
    sc = scenario("llama-3.1-70b", "hgx-h100-8")
    r = eval_one(sc.model, sc.precision, sc.system, complete_parallelism(sc), sc.workload)
    assert d["result"]["utps"] == pytest.approx(float(r.utps), rel=RTOL[np.float32])
