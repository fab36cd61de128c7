"""Complex-step derivatives through the interpreter (:mod:`search.complex_step`) and the
gradient search run without compiling (:mod:`search.gradient_interpreted`)."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from search import complex_step as C

sys.path.insert(0, str(Path(__file__).parent))


def _grad_by_complex_step(fn, xs):
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(fn)(xs[0])
    return C.value_and_grad_rows(C.program(closed), xs)


def _grad_by_jax(fn, xs):
    with jax.enable_x64(True):
        val, g = jax.jit(lambda z: (jax.vmap(fn)(z), jax.vmap(jax.jacfwd(fn))(z)))(xs)
    return np.asarray(val), np.asarray(g)


def _probe(x):
    """Every non-analytic rule of COMPLEX_RULES, and analytic ones, away from kinks."""
    a, b, c = x[0], x[1], x[2]
    y = jnp.abs(a) * jnp.maximum(a, b) + jnp.minimum(b, c) ** 2
    y = y + jnp.abs(b) ** 1.7 + jnp.cbrt(jnp.abs(c) + 1) + jnp.fmod(a * 3, 1.3 + b * b)
    y = y + jnp.where(a > b, a * c, b) + jnp.floor(a) * c
    y = y + jnp.sqrt(jnp.abs(a) + 1) * jnp.exp(-b * b) / (1 + jnp.tanh(c))
    y = y + jax.nn.softplus(4 * a) + jnp.clip(b, -0.3, 0.3) * jnp.sign(c)
    y = y + jnp.max(jnp.stack([a, b * 2, c * 3])) + jax.lax.stop_gradient(a) * b
    y = y + jnp.log1p(a * a) + jnp.expm1(b / 4) + jnp.exp2(c / 3) + jax.nn.sigmoid(a - c)
    y = y + jnp.round(a * 4).astype(jnp.int32) * b + jnp.dot(x, x * x)
    y = y + jax.lax.scan(lambda s, v: (s * 0.5 + v * s, s), 1.0, x)[0]
    return y


def test_complex_step_equals_jax_forward_mode_on_every_rule():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(32, 3))
    val, g = _grad_by_complex_step(_probe, xs)
    ref_val, ref_g = _grad_by_jax(_probe, xs)
    np.testing.assert_allclose(val, ref_val, rtol=1e-13)
    np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-12)


def test_closed_forms():
    """Hand-derived derivatives: d|x| = sign x; d x^y/dx = y·x^(y−1); d cbrt = 1/(3·cbrt²);
    rounding and comparisons carry no derivative; a tie of real parts stays a tie."""
    xs = np.array([[-2.0, 8.0], [3.0, 27.0]])

    def f(x):
        return jnp.abs(x[0]) + x[0] ** 3.0 + jnp.cbrt(x[1]) + jnp.floor(x[1]) * 0 + jnp.where(
            x[0] == x[0] + 0.0, 1.0, 100.0
        )  # fmt: skip

    val, g = _grad_by_complex_step(f, xs)
    np.testing.assert_allclose(val, [2 - 8 + 2 + 1, 3 + 27 + 3 + 1])
    np.testing.assert_allclose(g[:, 0], [-1 + 3 * 4, 1 + 3 * 9])
    np.testing.assert_allclose(g[:, 1], [1 / (3 * 4), 1 / (3 * 9)])


def _ties(x):
    a, b = x[0], x[1]
    m = jnp.maximum(a, 1.0) + jnp.minimum(b, a) * 3 + jax.lax.clamp(0.0, b, 2.0) * 5
    return m + jnp.max(jnp.stack([a, a, b])) * 7 + jax.lax.clamp(a, b, 1.5) * 11


def test_ties_follow_jax_conventions():
    """At exact ties the derivative is JAX's (half each for max/min, the mean of tied
    elements for reductions, nothing at a clamp bound), e.g. a start on its box bound."""
    xs = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 0.0], [0.5, 0.5], [2.0, 1.5]])
    val, g = _grad_by_complex_step(_ties, xs)
    ref_val, ref_g = _grad_by_jax(_ties, xs)
    np.testing.assert_allclose(val, ref_val, rtol=1e-15)
    np.testing.assert_allclose(g, ref_g, rtol=1e-15)
    assert g[0, 0] == 0.5 + 1.5 + 7 * 2 / 3  # max(a, 1) tie; min(b, a) tie; 3-way max


def test_negative_base_pow_is_nan_as_in_xla():
    """A real negative base to a fractional power is NaN (XLA), not a complex root."""
    val, g = _grad_by_complex_step(lambda x: x[0] ** 0.5, np.array([[-4.0], [4.0]]))
    assert np.isnan(val[0]) and val[1] == 2.0 and g[1, 0] == 0.25


# --------------------------------------------------------------------------- the search


def _state(model, system, knobs):
    from search.gradient import Knob, _new_state, log_improvement_budget
    from search.optimize import split_table
    from search.scenario import scenario

    sc = scenario(model, system, batch=4, context=8192)
    ks = tuple(Knob(p, lo, hi) for p, lo, hi in knobs)
    budget = {
        "nominal": {k.path: k.hi for k in ks},
        "sign": {k.path: -1.0 for k in ks},
        "log_budget": np.log(4.0),
    }
    table = split_table(sc, 64)
    return _new_state(sc, table, ks, log_improvement_budget, budget)


CASES = [
    ("llama-3.1-70b", "hgx-h200-8", "tiers.nvlink.overhead_s"),
]  # dense GQA on HGX; MLA + MoE (Kimi-K2.5 on GB200) is checked against the compiled
# trajectories in tests/test_gradient.py (a trace of JAX's JVP of it costs ~15 s)


@pytest.mark.parametrize("model, system, path", CASES, ids=[c[0] for c in CASES])
def test_relaxed_loss_gradient_equals_jax_forward_mode(model, system, path):
    """The gradient search's relaxed loss (penalties, budget, knob masks): the complex-step gradient == JAX's forward mode (``value_and_jacfwd``,
    traced to a jaxpr and evaluated by the real interpreter: JAX's JVP arithmetic without
    compiling it). Central differences are no reference here: the model has kinks
    (``max`` of terms, rounding) that a finite step straddles."""
    from search import gradient_interpreted as GI
    from search import gradient_programs as gp
    from search import interpret

    p = _state(model, system, [(path, 1e-8, 1e-6)]).problem
    x = p.lo + np.random.default_rng(2).uniform(size=(4, len(p.lo))) * (p.hi - p.lo)
    bud, bud_def = GI._bud_leaves([p], [0] * len(x))
    shapes = ((x.shape[1],), p.leaves.shape, p.mask.shape, *(b.shape[1:] for b in bud), bud_def)
    prog = GI._loss_program(p.key, "utps", 20.0, 10.0, 20.0, shapes)
    rows = [np.stack([p.leaves] * len(x)), np.stack([p.mask] * len(x)), *bud]
    val, g = C.value_and_grad_rows(prog, x, *rows)
    loss = gp.relaxed_loss(p.key, "utps", 20.0, 10.0, 20.0)

    def vg(z, leaves, mask, *b):
        return gp.value_and_jacfwd(
            lambda y: loss(y, leaves, mask, jax.tree.unflatten(bud_def, list(b))), z
        )

    with jax.enable_x64(True):
        closed = jax.make_jaxpr(vg)(x[0], p.leaves, p.mask, *(b[0] for b in bud))
    with np.errstate(all="ignore"):
        ref_val, ref_g = interpret.Program(closed)(x, *rows)
    np.testing.assert_allclose(val, ref_val, rtol=1e-13)
    assert np.abs(g).max() > 0
    np.testing.assert_allclose(g, ref_g, rtol=1e-7, atol=1e-12 * np.abs(g).max())


def test_interpreted_exact_scores_equal_compiled(monkeypatch):
    """Exact re-scoring: the interpreter's scores and results == the compiled program's."""
    from search import gradient_programs as gp

    st = _state("llama-3.1-70b", "hgx-h200-8", [("tiers.nvlink.overhead_s", 1e-8, 1e-6)])
    kv = np.where(np.arange(len(st.table)) % 2, 1e-7, 1e-6)[:, None]  # 1e-7: 10× > budget
    req = [(0, st.table, kv)]
    si, ri = gp.run_exact([st.problem], req, "utps", want_results=True)
    monkeypatch.setattr(gp, "INTERPRET_ROWS", 0)
    sc, rc = gp.run_exact([st.problem], req, "utps", want_results=True)
    assert np.isfinite(si[0]).any() and np.isinf(si[0]).any()  # feasible and infeasible rows
    np.testing.assert_allclose(si[0], sc[0], rtol=1e-12)
    for a, b in zip(jax.tree.leaves(ri[0]), jax.tree.leaves(rc[0]), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-12)
