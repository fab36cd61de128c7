r"""Exact first derivatives without compiling: the interpreter on complex-step inputs.

For a real function ``f`` analytic at ``x``, the *complex step*

.. math:: f(x + i\,h\,v) = f(x) + i\,h\,\nabla f(x)\cdot v + O(h^2)

gives the directional derivative as ``Im f(x + ihv) / h`` with no subtraction, so ``h``
can be tiny (:data:`H` = 1e-30): the derivative is exact to float64 rounding, and the
real part is ``f(x)`` to rounding (the ``O(h²)`` term is ~1e-60 relative). Squire &
Trapp, "Using complex variables to estimate derivatives of real functions", SIAM Review
40 (1998), doi:10.1137/S003614459631241X; Martins, Sturdza & Alonso, "The complex-step
derivative approximation", ACM TOMS 29 (2003), doi:10.1145/838250.838251.

The cost model's jaxpr is evaluated by :class:`search.interpret.Program` with
:data:`COMPLEX_RULES`: the rules of :data:`search.interpret.RULES`, NumPy's complex
arithmetic for the analytic primitives (``add``, ``mul``, ``div``, ``exp``, ``log``,
``tanh``, ``sqrt``, ``integer_pow``, the structural ones, …) and, for every primitive that
is not complex-analytic, a rule that returns ``f(Re z) + i·f'(Re z)·Im z`` (the first-order
dual-number rule, exact for the complex step since ``(Im z)²`` vanishes):

* comparisons and ``is_finite`` read the real part (a tie of real parts stays a tie,
  whatever the perturbations);
* ``abs``, ``sign``, ``floor``, ``ceil``, ``round``, ``rem``, ``convert_element_type`` to
  an integer or a bool: JAX's derivative (``sign(x)``, ``0``, ``0``, …);
* ``pow`` ``x^y``: real part ``x^y`` in real arithmetic (so a negative base gives NaN as in
  XLA, not a complex root), imaginary part ``y·x^(y−1)·Im x + x^y·log(x)·Im y``;
* ``cbrt``: ``Im x / (3·cbrt(x)²)``; ``stop_gradient``: the real part;
* ``max``/``min``/``reduce_max``/``reduce_min``/``clamp``: the selected operand's
  derivative, with JAX's conventions at exact ties (``lax``'s JVP rules: half each for
  ``max``/``min``, the mean over tied elements for the reductions, none at a ``clamp``
  bound). A tie is common here, not a corner case: a projected-gradient start sits on its
  box bound, e.g. ``max(2^x, 1)`` at ``x = 0``; a one-sided derivative there sends the
  search elsewhere.

Many directions at once: the tangent directions ride the interpreter's batch axis (one row
per direction, :func:`value_and_grad_rows`), so a gradient with respect to ``D`` inputs
costs one batched pass over ``D`` rows: for a handful of inputs it needs no derivative
program at all — no JVP trace, no XLA compilation (what :mod:`search.gradient_programs`
compiles for many steps).
"""

from __future__ import annotations

import numpy as np

from search import interpret

H = 1e-30
"""Complex step: ``x + i·H·v``. Far below float64's resolution of ``x`` (the real part is
untouched), far above its smallest normal number (derivatives up to ~1e270 stay finite)."""


def _re(x):
    return np.real(x)


def _dual(f, df):
    """Rule of a non-analytic elementwise ``f`` with derivative ``df`` (both real)."""

    def fn(x):
        if not np.iscomplexobj(x):
            return f(x)
        r = _re(x)
        return f(r) + 1j * (df(r) * np.imag(x))

    return fn


def _real_only(f):
    """Rule of a primitive whose result has no derivative (comparisons, rounding)."""

    def fn(*xs):
        return f(*(_re(x) if np.iscomplexobj(x) else x for x in xs))

    return fn


def _pow(x, y):
    if not (np.iscomplexobj(x) or np.iscomplexobj(y)):
        return np.power(x, y)
    xr, yr = _re(x), _re(y)
    val = np.power(xr, yr)
    d = yr * np.power(xr, yr - 1) * np.imag(x)
    iy = np.imag(y)
    if np.any(iy != 0):
        d = d + np.where(iy != 0, val * np.log(np.where(iy != 0, xr, 1.0)) * iy, 0.0)
    return val + 1j * d


def _balanced(f):
    """``max``/``min`` with JAX's derivative (``lax.max_p``'s JVP, ``_balanced_eq``): the
    operand equal to the result carries the derivative, half each at a tie."""

    def fn(x, y):
        if not (np.iscomplexobj(x) or np.iscomplexobj(y)):
            return f(x, y)
        xr, yr = _re(x), _re(y)
        ans = f(xr, yr)
        ex, ey = xr == ans, yr == ans
        d = np.imag(x) * ex / (1.0 + ey) + np.imag(y) * ey / (1.0 + ex)
        return ans + 1j * d

    return fn


def _clamp(lo, x, hi):
    """``lax.clamp`` with JAX's derivative: ``x``'s strictly inside ``(lo, hi)``, ``lo``'s
    where ``lo > x`` (and ``lo < hi``), ``hi``'s where ``hi < x``."""
    if not any(np.iscomplexobj(a) for a in (lo, x, hi)):
        return np.minimum(np.maximum(x, lo), hi)
    lr, xr, hr = _re(lo), _re(x), _re(hi)
    ans = np.minimum(np.maximum(xr, lr), hr)
    d = np.imag(x) * ((xr > lr) & (xr < hr)) + np.imag(lo) * ((lr > xr) & (lr < hr))
    d = d + np.imag(hi) * (hr < xr)
    return ans + 1j * d


def _chooser(f):
    """``reduce_max``/``reduce_min`` with JAX's derivative (``_reduce_chooser_jvp_rule``):
    the mean derivative of the elements equal to the result."""

    def fn(x, axes):
        if not np.iscomplexobj(x):
            return f(x, axis=axes)
        xr = _re(x)
        ans = f(xr, axis=axes, keepdims=True)
        hit = xr == ans
        d = np.sum(np.imag(x) * hit, axis=axes) / np.sum(hit, axis=axes)
        return np.squeeze(ans, axis=axes) + 1j * d

    return fn


def _cbrt(x):
    if not np.iscomplexobj(x):
        return np.cbrt(x)
    c = np.cbrt(_re(x))
    return c + 1j * (np.imag(x) / (3 * c * c))


def _rem(x, y):
    """``x − y·trunc(x/y)``: derivative ``dx − trunc(x/y)·dy``."""
    if not (np.iscomplexobj(x) or np.iscomplexobj(y)):
        return np.fmod(x, y)
    q = np.trunc(_re(x) / _re(y))
    return np.fmod(_re(x), _re(y)) + 1j * (np.imag(x) - q * np.imag(y))


def _convert(ranks, params, x):
    dt = np.dtype(params["new_dtype"])
    if np.iscomplexobj(x):
        if np.issubdtype(dt, np.floating):  # keep the derivative: a complex of that width
            return np.asarray(x).astype(np.result_type(dt, np.complex64))
        x = _re(x)
    return interpret.RULES["convert_element_type"](ranks, params, x)


def _round(ranks, params, x):
    return interpret.RULES["round"](ranks, params, _re(x) if np.iscomplexobj(x) else x)


def _stop_gradient(ranks, params, x):
    return _re(x) + 0j if np.iscomplexobj(x) else x


_E = interpret._elementwise
COMPLEX_RULES: dict = {
    **interpret.RULES,
    "abs": _E(_dual(np.abs, np.sign)),
    "max": _E(_balanced(np.maximum)),
    "min": _E(_balanced(np.minimum)),
    "clamp": _E(_clamp),
    "reduce_max": interpret._reduce(_chooser(np.max)),
    "reduce_min": interpret._reduce(_chooser(np.min)),
    "sign": _E(_real_only(np.sign)),
    "floor": _E(_real_only(np.floor)),
    "ceil": _E(_real_only(np.ceil)),
    "round": _round,
    "rem": _E(_rem),
    "pow": _E(_pow),
    "cbrt": _E(_cbrt),
    "is_finite": _E(_real_only(np.isfinite)),
    "eq": _E(_real_only(np.equal)),
    "ne": _E(_real_only(np.not_equal)),
    "lt": _E(_real_only(np.less)),
    "le": _E(_real_only(np.less_equal)),
    "gt": _E(_real_only(np.greater)),
    "ge": _E(_real_only(np.greater_equal)),
    "convert_element_type": _convert,
    "stop_gradient": _stop_gradient,
}
"""Primitive → NumPy rule on complex-step values (module docstring)."""


def program(closed) -> interpret.Program:
    """A :class:`search.interpret.Program` of ``closed`` (a float64 jaxpr) with
    :data:`COMPLEX_RULES`."""
    return interpret.Program(closed, rules=COMPLEX_RULES)


def value_and_grad_rows(prog, x: np.ndarray, *data):
    """Values ``[N]`` and gradients ``[N, D]`` of a scalar-output program at ``N`` points.

    ``prog(x [B, D], *data [B, ...]) → (y [B], ...)`` is a batched interpreter program
    (first output the scalar objective); ``x [N, D]`` the points, ``data`` per-point
    arrays. One pass over ``N·D`` rows: row ``(n, d)`` is ``x[n] + i·H·e_d``."""
    x = np.asarray(x, np.float64)
    return value_and_grad_repeated(prog, x, repeat_rows(data, x.shape[1]))


def repeat_rows(data, d: int) -> list:
    """Per-point arrays ``[N, ...]`` repeated for the ``d`` directions of each point
    (``[N·d, ...]``, point-major): what :func:`value_and_grad_repeated` takes, built once
    by a caller that evaluates the same points' data many times."""
    return [np.repeat(np.asarray(a), d, axis=0) for a in data]


def value_and_grad_repeated(prog, x: np.ndarray, rows):
    """:func:`value_and_grad_rows` with the data already repeated (:func:`repeat_rows`)."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    xc = np.repeat(x[:, None, :], d, axis=1).astype(np.complex128)
    xc[:, np.arange(d), np.arange(d)] += 1j * H
    with np.errstate(all="ignore"):
        y = np.asarray(prog(xc.reshape(n * d, d), *rows)[0]).reshape(n, d)
    return np.real(y[:, 0]), np.imag(y) / H
