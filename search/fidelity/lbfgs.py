r"""L-BFGS with a backtracking Armijo line search that needs one evaluation per iteration.

Directions come from ``optax.lbfgs`` (no line search of its own). Each iteration
evaluates the objective and its gradient once, at a trial point
``p_trial = p_acc + α·d``; the trial is accepted when the Armijo condition holds::

    f(p_trial) ≤ f(p_acc) + c₁·α·⟨∇f(p_acc), d⟩,      c₁ = 10⁻⁴

otherwise α halves and the next iteration tries again from ``p_acc``. Steps are capped
at a Euclidean length of :data:`MAX_STEP`. The iteration count is fixed (deterministic,
``jax.vmap``-able over many fits).

>>> import jax.numpy as jnp
>>> vg = lambda p: (jnp.sum((p["x"] - 3.0) ** 2), {"x": 2 * (p["x"] - 3.0)}, p["x"])
>>> p, f, aux = minimise(vg, {"x": jnp.zeros(2)}, jnp.zeros(2), iterations=30)
>>> [round(float(v), 4) for v in p["x"]]
[3.0, 3.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

ARMIJO = 1e-4
"""Sufficient-decrease constant c₁ of the Armijo condition."""

MAX_STEP = 2.0
"""Largest step (parameter units, Euclidean) tried along a direction."""


def _dot(a, b):
    leaves = jax.tree.leaves
    return sum(jnp.vdot(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))


def minimise(value_and_grad, p0, aux0, iterations: int):
    """Minimise ``f`` from ``p0`` with :data:`iterations` evaluations.

    Args:
      value_and_grad: ``p -> (f, ∇f, aux)``; ``aux`` (any pytree shaped like ``aux0``) is
        returned for the last accepted point (e.g. the model's predictions there).
      p0: starting parameters (a pytree of float arrays).
      aux0: ``aux`` before any point is accepted.
      iterations: number of evaluations (a Python int: the length of the ``lax.scan``).

    Returns:
      ``(p, f, aux)`` at the last accepted point.
    """
    opt = optax.lbfgs(linesearch=None)
    zero = jax.tree.map(jnp.zeros_like, p0)
    init = dict(
        p_acc=p0, f_acc=jnp.inf, slope=jnp.zeros(()), d=zero, alpha=jnp.ones(()),
        trial=p0, state=opt.init(p0), aux=aux0,
    )  # fmt: skip

    def step(c, _):
        f_t, g_t, aux_t = value_and_grad(c["trial"])
        ok = jnp.isfinite(f_t) & (f_t <= c["f_acc"] + ARMIJO * c["alpha"] * c["slope"])
        d_new, state_new = opt.update(g_t, c["state"], c["trial"])
        norm = jnp.sqrt(_dot(d_new, d_new))
        a_new = jnp.minimum(1.0, MAX_STEP / jnp.maximum(norm, 1e-30))
        pick = lambda x, y: jax.tree.map(lambda u, v: jnp.where(ok, u, v), x, y)  # noqa: E731
        p_acc = pick(c["trial"], c["p_acc"])
        alpha = jnp.where(ok, a_new, 0.5 * c["alpha"])
        out = dict(
            p_acc=p_acc,
            f_acc=jnp.where(ok, f_t, c["f_acc"]),
            slope=jnp.where(ok, _dot(g_t, d_new), c["slope"]),
            d=pick(d_new, c["d"]),
            alpha=alpha,
            trial=jax.tree.map(lambda u, v: alpha * u + v, pick(d_new, c["d"]), p_acc),
            state=pick(state_new, c["state"]),
            aux=pick(aux_t, c["aux"]),
        )
        return out, jnp.where(ok, f_t, c["f_acc"])

    c, values = jax.lax.scan(step, init, None, length=iterations)
    return c["p_acc"], values[-1], c["aux"]
