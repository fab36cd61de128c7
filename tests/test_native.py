"""Native single evaluations (search/native.py): the cost model's jaxpr as C.

* every rule against ``jax.lax`` on a probe of their corners (NaN-propagating extrema,
  saturating conversions, rounding methods, integer powers, selects, scans both ways,
  structural copies, dot products, nested calls), float32 and float64, in one library;
* the cost model: native == the XLA program on several database structures and rows
  (infeasible ones included), float32 and float64, to float rounding;
* every interpreter rule has a C rule (the interpreter's cover every database structure);
* no compiler, a failing compile or an unknown primitive: None (callers use XLA).

Skipped where no C compiler is found (the library then falls back to XLA).
"""

from __future__ import annotations

import ctypes

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_interpret import CASES, RTOL, _close, _flat, _rules_probe, _x, probe_inputs

from search import evaluate as E
from search import interpret as I
from search import native

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C compiler")


def _probe_flat(x):
    """The interpreter's probe as one flat output of ``x``'s dtype."""
    outs = _rules_probe(x)
    return jnp.concatenate([jnp.ravel(o).astype(x.dtype) for o in outs])


def _run(closed, x: np.ndarray) -> np.ndarray:
    """The jaxpr ``closed`` (one array in, one out) compiled by native, on ``x``."""
    lib = native.library(native.c_source(closed, tail=0))
    assert lib is not None
    out_aval = closed.jaxpr.outvars[0].aval
    out = np.empty(out_aval.shape, out_aval.dtype)
    x = np.ascontiguousarray(x)
    lib.tpsopt_row(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_rules_match_lax(dtype):
    xs = probe_inputs(4, dtype)
    with jax.enable_x64(dtype == np.float64):
        closed = jax.make_jaxpr(_probe_flat)(xs[0])
        refs = [np.asarray(jax.jit(_probe_flat)(x)) for x in xs]
    for x, ref in zip(xs, refs, strict=True):
        _close(_run(closed, x), ref, RTOL[dtype])


def test_nan_and_saturation_corners():
    """NaN propagates through max/min/clamp; float → int32 saturates, NaN → 0; integer
    division rounds toward zero; ``is_finite``; both rounding methods on halves."""

    def f(x):
        a, b = x[0], x[1]  # a = NaN, b = 3.5
        i = jax.lax.convert_element_type(x * 1e10, jnp.int32)
        return jnp.concatenate([
            jnp.stack([jnp.maximum(a, b), jnp.minimum(b, a), jnp.clip(a, 0.0, 1.0),
                       jnp.isfinite(a).astype(x.dtype), jnp.sign(-b), jnp.abs(-b),
                       jnp.fmod(-b, 2.0), jax.lax.round(b, jax.lax.RoundingMethod.TO_NEAREST_EVEN),
                       jax.lax.round(-b, jax.lax.RoundingMethod.AWAY_FROM_ZERO)]),
            i.astype(x.dtype), jax.lax.div(i, jnp.int32(-7)).astype(x.dtype),
        ])  # fmt: skip

    x = np.asarray([np.nan, 3.5, -2.0], np.float32)
    closed = jax.make_jaxpr(f)(x)
    got = _run(closed, x)
    want = np.asarray(jax.jit(f)(x))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:3]).all() and got[3] == 0.0 and got[7] == 4.0 and got[8] == -4.0
    assert got[9] == 0 and got[10] == np.iinfo(np.int32).max and got[11] < -2e9


@pytest.mark.parametrize(
    "case, dtype",
    [(CASES[0], np.float32), (CASES[1], np.float32), (CASES[3], np.float64)],
    ids=["llama-3.1-70b-f32", "kimi-k2.5-f32", "qwen3-32b-f64"],
)
def test_native_equals_xla_program(case, dtype):
    """Six rows (two infeasible, with their reason bits) through the native function and
    the compiled program: equal to float rounding; ``fits`` and ``reason`` exactly."""
    flat = _flat(*case)
    x = _x(flat, dtype)
    fn = native.row_function(flat.treedef, flat.n, np.dtype(dtype))
    assert fn is not None
    head = flat.vec(np.dtype(dtype))
    got = np.asarray([fn(head.ctypes.data, row[flat.n :].tolist()) for row in x], dtype)
    with jax.enable_x64(dtype == np.float64):
        prog = E.single_program(flat.treedef, flat.n)
        parts = E.input_parts(x.shape[1], np.dtype(dtype).itemsize)
        want = np.asarray([np.asarray(prog(*(r[a:b] for a, b in parts))) for r in x])
    _close(got, want, RTOL[dtype])
    i, j = E._I_FITS, E._I_REASON
    np.testing.assert_array_equal(got[:, [i, j]], want[:, [i, j]])
    assert not want[:, i].all()  # the infeasible rows are there


def test_every_interpreter_rule_has_a_c_rule():
    """The interpreter's rules cover every primitive of every database structure
    (``tests/test_interpret.py``); the C rules cover the interpreter's."""
    assert set(I.RULES) <= native.PRIMITIVES


def test_fallbacks(monkeypatch):
    flat = _flat(*CASES[0])
    closed = jax.make_jaxpr(lambda x: jnp.sin(x) * 2)(np.ones(2))
    with pytest.raises(native.Unsupported, match="'sin'"):
        native.c_source(closed)
    assert native.library("this is not C") is None
    build = native.row_function.__wrapped__
    monkeypatch.setattr(native, "compiler", lambda: None)
    assert build(flat.treedef, flat.n, np.dtype(np.float32)) is None
    monkeypatch.undo()
    monkeypatch.setattr(native, "ENABLED", False)
    assert build(flat.treedef, flat.n, np.dtype(np.float32)) is None
