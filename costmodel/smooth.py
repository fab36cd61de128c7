r"""Exact values, usable gradients: the model's conventions at kinks.

The cost model takes maxima (roofline), minima (choice of collective algorithm), ceilings
(heads or layers per chip) and on/off switches (a collective exists only for a group of 2
or more). In *value* each is exact. Under differentiation:

* :func:`select` — choosing one of several alternatives by max or min. The value is the
  exact winner. The derivative is the winner's (a subgradient, like ``jnp.maximum``) when
  ``beta = inf`` (the default), or, for finite ``beta``, the log-space softmax blend
  ``Σ_i w_i ∂t_i`` with ``w ∝ t_i^{±β}``: the gradient of the smooth maximum
  ``(Σ t_i^β)^{1/β}`` (scale-free LogSumExp on log-times, ``docs/design.md`` §6),
  while the value stays exact. Finite at ties either way.
* :func:`ceil_st` — value ``ceil(x)``, derivative 1 (straight-through), so relaxed degrees
  get the gradient of ``x``.
* :func:`active` — ``clip(g - 1, 0, 1)``: 0 for a group of one chip, 1 from two chips on,
  linear in between (a relaxed "does this collective exist").
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

TINY = 1e-30


def ceil_st(x):
    """``ceil(x)`` in value; derivative 1 (straight-through estimator)."""
    x = jnp.asarray(x)
    return x + jax.lax.stop_gradient(jnp.ceil(x - 1e-6) - x)


def active(g):
    """``clip(g - 1, 0, 1)``: whether a group of size ``g`` communicates at all."""
    return jnp.clip(jnp.asarray(g) - 1.0, 0.0, 1.0)


def safe_div(a, b):
    """``a / b`` with ``b`` floored at a tiny positive number (no inf/NaN for b = 0)."""
    return a / jnp.maximum(b, TINY)


def stack(xs):
    """Stack scalars/arrays of mixed Python and JAX types at their common (weak-type
    aware) dtype, so float32 inputs stay float32 when x64 is enabled."""
    arrs = [jnp.asarray(x) for x in xs]
    arrs = [a if jnp.issubdtype(a.dtype, jnp.floating) else a * 1.0 for a in arrs]
    return jnp.stack(jnp.broadcast_arrays(*arrs))


def _soft_parts(values, parts, largest: bool, beta: float):
    """Exact winner (and parts) in value; gradients blended by ``w_i ∝ t_i^{±β}``.

    ``Σ onehot_i·p_i + Σ (w_i − onehot_i)·(p_i − stop(p_i))``: the value is the winner's,
    the derivative ``Σ w_i ∂p_i`` (weights held constant), i.e. the gradient of the
    scale-free smooth max ``(Σ t_i^β)^{1/β}``. Elementwise: no stacking, cheap under vmap.
    """
    sign = beta if largest else -beta
    logs = [jnp.log(jnp.maximum(v, TINY)) for v in values]
    top = logs[0]
    for lv in logs[1:]:
        top = jnp.maximum(top, lv) if largest else jnp.minimum(top, lv)
    ex = [jax.lax.stop_gradient(jnp.exp(sign * (lv - top))) for lv in logs]
    norm = sum(ex)
    soft = [e / norm for e in ex]
    win = _select_exact(values, None, largest)
    # one-hot of the exact winner, as weights (first winner on ties)
    onehot, taken = [], 0.0
    for v in values:
        hit = jnp.where((v == win) & (taken == 0.0), 1.0, 0.0)
        taken = taken + hit
        onehot.append(jax.lax.stop_gradient(hit))

    def mix(ps):
        out = 0.0
        for w, oh, p in zip(soft, onehot, ps, strict=True):
            out = out + oh * p + (w - oh) * (p - jax.lax.stop_gradient(p))
        return out

    win_s = mix(values)
    if parts is None:
        return win_s
    return win_s, tuple(mix([p[j] for p in parts]) for j in range(len(parts[0])))


def select(values, parts=None, largest=True, beta=math.inf):
    """Pick the max (or min) of ``values``; also return matching ``parts``.

    Args:
      values: sequence of n scalars (same shape), the quantities compared.
      parts: optional sequence of n tuples of scalars (e.g. the latency and bandwidth
        components of each alternative); the same component of the winner is returned.
      largest: max if True, min if False.
      beta: sharpness of the gradient surrogate (``inf`` = exact subgradient).

    Returns:
      ``winner`` or ``(winner, winner_parts)``.
    """
    if math.isinf(beta):
        return _select_exact(values, parts, largest)
    return _soft_parts(values, parts, largest, beta)


def _select_exact(values, parts, largest):
    """``beta = inf``: a chain of ``where`` (cheap under ``vmap``), first winner on ties."""
    win = values[0]
    best_parts = None if parts is None else tuple(parts[0])
    for i in range(1, len(values)):
        v = values[i]
        better = v > win if largest else v < win
        win = jnp.where(better, v, win)
        if parts is not None:
            best_parts = tuple(
                jnp.where(better, a, b) for a, b in zip(parts[i], best_parts, strict=True)
            )
    return win if parts is None else (win, best_parts)
