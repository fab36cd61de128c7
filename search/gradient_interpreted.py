r"""The gradient search's two programs without compiling: interpreter and complex step.

A gradient search of a few scenarios evaluates the cost model a few thousand times; its
compiled programs (:mod:`search.gradient_programs`) cost tens of seconds of tracing and
XLA compilation per structure before the first step, most of the search's wall-clock
time. Here the same two functions run in NumPy (:mod:`search.interpret`):

* **relaxed run** (:func:`relax`): the penalised relaxed loss
  (:func:`search.gradient_programs.relaxed_loss`) is traced once per structure and
  settings into a float64 jaxpr (no JVP, vmap or scan transformation), and its gradient
  comes from the complex step (:mod:`search.complex_step`): one batched interpreter
  pass over ``lanes × (5 + K)`` rows per Adam step gives every lane's loss and gradient.
  Adam (``optax.adam``: ``b1 = 0.9``, ``b2 = 0.999``, ``eps = 1e-8``, bias-corrected
  moments, Kingma & Ba, arXiv:1412.6980, Algorithm 1) and the box projection
  (``optax.projections.projection_box``: a clip) are the same arithmetic in NumPy, so
  the trajectories equal the compiled program's to float64 rounding
  (``tests/test_gradient_interpreted.py``).
* **exact re-scoring** (:func:`exact`): :func:`search.gradient_programs.exact_row`'s
  jaxpr, all rows in one batched pass (real arithmetic).

:func:`search.gradient_programs.use_interpreter` chooses this path for calls of up to
:data:`search.gradient_programs.INTERPRET_ROWS` evaluations on the CPU backend.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from search import complex_step, interpret
from search import gradient_programs as gp

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8
"""``optax.adam``'s defaults (``eps_root = 0``), which the compiled program uses."""

CHUNK_ROWS = 4096
"""Rows per interpreter pass (exact re-scoring): bounds the intermediates' memory."""


@functools.lru_cache(maxsize=32)
def _loss_program(key, objective, beta, mu, kappa, shapes):
    """Complex-step interpreter program of the relaxed loss of one start; ``shapes``:
    the argument shapes ``(x, leaves, mask, *budget leaves)``."""
    loss = gp.relaxed_loss(key, objective, beta, mu, kappa)
    bud_def = shapes[-1]
    specs = [jax.ShapeDtypeStruct(s, np.float64) for s in shapes[:-1]]

    def flat(x, leaves, mask, *bud):
        return loss(x, leaves, mask, jax.tree.unflatten(bud_def, list(bud)))

    with jax.enable_x64(True):
        closed = jax.make_jaxpr(flat)(*specs)
    return complex_step.program(closed)


@functools.lru_cache(maxsize=32)
def _exact_program(key, objective, shapes):
    """Interpreter program of :func:`search.gradient_programs.exact_row` (flat outputs:
    score, then the DecodeResult leaves)."""
    row = gp.exact_row(key, objective)
    bud_def = shapes[-1]
    specs = [jax.ShapeDtypeStruct(s, np.float64) for s in shapes[:-1]]

    def flat(leaves, mask, split, kv, *bud):
        score, leaves_out = row(leaves, mask, jax.tree.unflatten(bud_def, list(bud)), split, kv)
        return (score, *leaves_out)

    with jax.enable_x64(True):
        closed = jax.make_jaxpr(flat)(*specs)
    return interpret.Program(closed)


def _bud_leaves(problems, idx):
    """The budget arguments of ``problems[i]`` for ``i`` in ``idx``, stacked
    (:func:`search.gradient_programs._take`), as leaves and their tree structure."""
    return jax.tree.flatten(gp._take(problems, idx, "bud"))


def relax(problems, owner, x0, objective, n_steps, lr, beta, mu, kappa):
    """Relaxed runs of the starts ``x0 [N, D]`` (start ``n`` of ``problems[owner[n]]``,
    all of one structure): ``(x_final [N, D], loss per step [N, n_steps])``, as
    :func:`search.gradient_programs.run_relax`'s compiled program computes them."""
    x = np.array(x0, np.float64)
    leaves, mask, lo, hi = (gp._take(problems, owner, f) for f in ("leaves", "mask", "lo", "hi"))
    bud, bud_def = _bud_leaves(problems, owner)
    shapes = (
        (x.shape[1],),
        leaves.shape[1:],
        mask.shape[1:],
        *(b.shape[1:] for b in bud),
        bud_def,
    )
    prog = _loss_program(problems[0].key, objective, beta, mu, kappa, shapes)
    rows = complex_step.repeat_rows([leaves, mask, *bud], x.shape[1])  # once, not per step
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    hist = np.empty((len(x), n_steps))
    for t in range(1, n_steps + 1):
        val, g = complex_step.value_and_grad_repeated(prog, x, rows)
        hist[:, t - 1] = val
        g = np.where(np.isfinite(g), g, 0.0)
        m = ADAM_B1 * m + (1 - ADAM_B1) * g
        v = ADAM_B2 * v + (1 - ADAM_B2) * g * g
        m_hat = m / (1 - ADAM_B1**t)
        v_hat = v / (1 - ADAM_B2**t)
        x = np.clip(x - lr * (m_hat / (np.sqrt(v_hat) + ADAM_EPS)), lo, hi)
    return x, hist


def exact(problems, owner, rows, kv, objective, want_results=False):
    """Exact scores of ``rows`` (splits ``[n, 6]``, knob values ``kv [n, K]``, row ``i`` of
    ``problems[owner[i]]``) by the interpreter, in chunks: ``(scores, results)`` as
    :func:`search.gradient_programs.split_requests` takes them (results: the DecodeResult
    leaves per chunk, with ``want_results``)."""
    n_knobs = problems[0].key[1]
    scores, results = [], []
    for s in range(0, len(rows), CHUNK_ROWS):
        idx = owner[s : s + CHUNK_ROWS]
        n = len(idx)
        leaves, mask = gp._take(problems, idx, "leaves"), gp._take(problems, idx, "mask")
        bud, bud_def = _bud_leaves(problems, idx)
        shapes = (
            leaves.shape[1:],
            mask.shape[1:],
            (6,),
            (n_knobs,),
            *(b.shape[1:] for b in bud),
            bud_def,
        )
        prog = _exact_program(problems[0].key, objective, shapes)
        with np.errstate(all="ignore"):
            out = prog(leaves, mask, rows[s : s + n], kv[s : s + n], *bud)
        out = [np.broadcast_to(np.asarray(o), (n,)) for o in out]
        scores.append(out[0])
        if want_results:
            results.append(out[1:])
    return scores, results
