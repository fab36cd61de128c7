r"""First answers without waiting for XLA: the cost model's jaxpr evaluated with NumPy.

A compiled program pays off over many evaluations; a first answer needs a handful. Compiling
``decode_step`` for one configuration costs seconds on a CPU (XLA: ~1.1 s of compilation
after ~0.3 s of lowering for Llama-3.1-70B on HGX H100), while the program has only ~3,500
scalar equations. This module evaluates them directly:

1. **trace once per record structure** (in float64; a float32 evaluation narrows every
   64-bit dtype of that jaxpr, which reproduces the float32 trace bit for bit):
   :func:`jaxpr_of` is ``jax.make_jaxpr`` of the same
   flat-row function that :func:`search.evaluate.single_program` compiles (``x [n + 12] →
   results [N_OUT]``: records, six degrees, six workload numbers in, packed
   :class:`~costmodel.decode.DecodeResult` out). The records' numbers are data (the traced
   row), so every model and system of one structure (the tier names and topologies, see
   :func:`search.stacking.canonical_names`) shares the jaxpr, a model never seen before
   included.
2. **evaluate it equation by equation** (:class:`Program`): each primitive maps to a NumPy
   function with ``jax.lax`` semantics (:data:`RULES`): ``select_n`` picks case ``pred``,
   ``broadcast_in_dim`` maps operand axes to ``broadcast_dimensions``,
   ``convert_element_type`` saturates float → integer and sends NaN to 0 (XLA's
   conversion), ``integer_pow`` multiplies by binary exponentiation (as ``lax`` lowers
   it), ``round`` honours its ``rounding_method``, ``reduce_sum`` adds in index order,
   ``scan`` runs as a loop, custom-derivative calls recursively; nested ``jit`` calls are
   inlined when the program is built, which also folds equations of constants, drops
   repeats of an equation already evaluated (same rule, parameters and operands) and
   drops equations no output needs (a loss reading one field of the result skips the
   others). A primitive without a rule raises :class:`UnknownPrimitive` naming it
   (``tests/test_interpret.py`` walks the jaxprs of every database model × system
   structure, so a new primitive in the cost model fails there, not for a user).
3. **batched for free**: a row ``[B, n + 12]`` carries a leading batch axis through the
   same equations (what ``jax.vmap`` does, by hand): elementwise rules broadcast as NumPy
   does, structural rules (``broadcast_in_dim``, ``reduce_sum``, ``slice``, ``squeeze``,
   ``stack``, ``concatenate``, ``reshape``, ``scan``) shift their axes by one for an
   operand that carries it (an operand carries it when its rank exceeds its abstract
   value's).

Cost: tracing ~0.5–1 s once per structure and dtype in a process (no XLA), then ~15 ms per
call whatever the batch up to thousands of rows (NumPy dispatch per equation dominates).
The values equal the compiled program's to float rounding: XLA may contract ``a·b + c``
into one fused multiply-add and has its own ``exp``/``log``/``pow``; the tests compare
interpreter, ``jit`` and ``vmap`` in float32 and float64.

Use: :func:`program` (``program(treedef, n, dtype)(x)``, the same call as
:func:`search.evaluate.single_program` without compiling), :func:`packed_rows`
(:func:`search.evaluate.packed_rows` without compiling), :func:`eval_records`
(``decode_step``'s positional records → a :class:`~costmodel.decode.DecodeResult` of
NumPy values).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.extend.core import ClosedJaxpr, Jaxpr, Literal

__all__ = [
    "Program",
    "RULES",
    "UnknownPrimitive",
    "eval_records",
    "eval_splits",
    "jaxpr_of",
    "packed_rows",
    "primitives_of",
    "program",
    "supports",
]


class UnknownPrimitive(NotImplementedError):
    """The jaxpr holds a primitive :data:`RULES` has no NumPy rule for."""


# --------------------------------------------------------------------------- rules
#
# A rule is ``rule(ranks, params, *operands) -> output or tuple of outputs``: ``ranks`` the
# operands' abstract ranks (an operand whose ``ndim`` is one more carries the batch axis
# first), ``params`` the equation's parameters.


def _elementwise(fn):
    """An elementwise rule. Operands of a lower rank than the output (scalars that lax
    broadcasts) get unit axes after the batch axis when they carry it."""

    def rule(ranks, params, *xs):
        if ranks[-1] is not None:  # mixed ranks (see Program): align batched operands
            r_out = ranks[-1]
            xs = [
                np.reshape(x, np.shape(x)[:1] + (1,) * (r_out - r) + np.shape(x)[1:])
                if r < r_out and np.ndim(x) > r
                else x
                for x, r in zip(xs, ranks[:-1], strict=False)
            ]
        return fn(*xs)

    rule.elementwise = True
    rule.fn = fn
    return rule


def _off(x, rank: int) -> int:
    """1 when ``x`` carries the leading batch axis, else 0."""
    return int(np.ndim(x) > rank)


def _div(x, y):
    """``lax.div``: true division for floats, rounding toward zero for integers."""
    if np.issubdtype(np.result_type(x), np.integer):
        y = np.where(y == 0, 1, y)
        return (x - np.fmod(x, y)) // y  # an exact multiple: no rounding, no overflow
    return np.divide(x, y)


def _rem(x, y):
    """``lax.rem``: the remainder takes the sign of the dividend (C ``fmod``)."""
    return np.fmod(x, y)


def _integer_pow(ranks, params, x):
    """``lax.integer_pow``: binary exponentiation with ``mul`` (as ``lax`` lowers it)."""
    y = int(params["y"])
    if y == 0:
        return np.ones_like(x)
    recip, y = y < 0, abs(y)
    acc = None
    while y > 0:
        if y & 1:
            acc = x if acc is None else acc * x
        y >>= 1
        if y > 0:
            x = x * x
    return (np.ones_like(acc) / acc) if recip else acc


def _round(ranks, params, x):
    """``lax.round``: ``TO_NEAREST_EVEN`` (1) or ``AWAY_FROM_ZERO`` (0, the default)."""
    if int(params["rounding_method"]) == 1:
        return np.rint(x)
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t).astype(np.result_type(x))


def _convert(ranks, params, x):
    """``lax.convert_element_type``: float → integer saturates, NaN → 0 (XLA)."""
    dt = np.dtype(params["new_dtype"])
    src = np.result_type(x)
    if np.issubdtype(dt, np.integer) and np.issubdtype(src, np.floating):
        info = np.iinfo(dt)
        hi, lo = x >= float(info.max), x <= float(info.min)  # bounds rounded to x's dtype
        out = np.where(np.isnan(x) | hi | lo, 0, x).astype(dt)
        return np.where(hi, dt.type(info.max), np.where(lo, dt.type(info.min), out))[()]
    elif dt == np.bool_:
        return np.not_equal(x, 0)
    return np.asarray(x).astype(dt)[()] if np.ndim(x) == 0 else np.asarray(x).astype(dt)


def _select_n(ranks, params, pred, *cases):
    """``lax.select_n``: case ``pred`` (bool: False → 0, True → 1; int32: the index). A
    scalar predicate may select whole arrays; a batched one is then expanded."""
    r_out = ranks[1]
    if _off(pred, ranks[0]) and ranks[0] < r_out:
        pred = np.reshape(pred, np.shape(pred) + (1,) * (r_out - ranks[0]))
    if len(cases) == 1:
        return cases[0]
    if np.result_type(pred) == np.bool_ or len(cases) == 2:
        return np.where(pred, cases[1], cases[0])
    out = cases[0]
    for i, c in enumerate(cases[1:], 1):
        out = np.where(pred == i, c, out)
    return out


def _broadcast_in_dim(ranks, params, x, *dyn):
    """``lax.broadcast_in_dim``: operand axis ``i`` becomes output axis
    ``broadcast_dimensions[i]``; the other output axes are broadcast."""
    if dyn:
        raise UnknownPrimitive("broadcast_in_dim with dynamic shapes")
    off = _off(x, ranks[0])
    shape = tuple(params["shape"])
    dims = tuple(params["broadcast_dimensions"])
    lead = np.shape(x)[:off]
    target = lead + shape
    expanded = [1] * len(target)
    for j in range(off):
        expanded[j] = lead[j]
    for i, d in enumerate(dims):
        expanded[d + off] = np.shape(x)[i + off]
    return np.broadcast_to(np.reshape(x, expanded), target)


def _reduce(fn):
    def rule(ranks, params, x):
        off = _off(x, ranks[0])
        return fn(x, tuple(a + off for a in params["axes"]))

    return rule


def _sum_in_order(x, axes):
    """Sum over ``axes`` adding elements in index order, ``((0 + x₀) + x₁) + …``."""
    x = np.asarray(x)
    for a in sorted(axes, reverse=True):
        n = x.shape[a]
        if n == 0:
            x = np.zeros(x.shape[:a] + x.shape[a + 1 :], x.dtype)
            continue
        x = np.cumsum(x, axis=a, dtype=x.dtype).take(n - 1, axis=a)
    return x


def _slice(ranks, params, x):
    off = _off(x, ranks[0])
    strides = params["strides"] or (1,) * len(params["start_indices"])
    idx = tuple(
        slice(a, b, s)
        for a, b, s in zip(params["start_indices"], params["limit_indices"], strides, strict=True)
    )
    return np.asarray(x)[(slice(None),) * off + idx]


def _squeeze(ranks, params, x):
    off = _off(x, ranks[0])
    return np.squeeze(x, axis=tuple(d + off for d in params["dimensions"]))


def _reshape(ranks, params, x, *dyn):
    if dyn:
        raise UnknownPrimitive("reshape with dynamic shapes")
    off = _off(x, ranks[0])
    return np.reshape(x, np.shape(x)[:off] + tuple(params["new_sizes"]))


def _batch_all(ranks, xs):
    """Operands with the batch axis on all of them when any carries it; the offset."""
    size = None
    for x, r in zip(xs, ranks, strict=False):
        if np.ndim(x) > r:
            size = np.shape(x)[0]
            break
    if size is None:
        return list(xs), 0
    return [
        x if np.ndim(x) > r else np.broadcast_to(x, (size, *np.shape(x)))
        for x, r in zip(xs, ranks, strict=False)
    ], 1


def _stack(ranks, params, *xs):
    xs, off = _batch_all(ranks, xs)
    return np.stack(xs, axis=params["axis"] + off)


def _concatenate(ranks, params, *xs):
    xs, off = _batch_all(ranks, xs)
    return np.concatenate(xs, axis=params["dimension"] + off)


def _dot_general(ranks, params, x, y):
    """``lax.dot_general``: contract ``dimension_numbers``' contracting axes, keep its
    batch axes first, then ``x``'s free axes, then ``y``'s (``np.einsum``); an operand's
    leading evaluation-batch axis (see :class:`Program`) leads the output."""
    (cx, cy), (bx, by) = params["dimension_numbers"]
    ox, oy = _off(x, ranks[0]), _off(y, ranks[1])
    letters = iter("abcdefghijklmnopqrstuvwxy")
    sx = [next(letters) for _ in range(ranks[0])]
    sy = [next(letters) for _ in range(ranks[1])]
    for i, j in zip(tuple(cx) + tuple(bx), tuple(cy) + tuple(by), strict=True):
        sy[j] = sx[i]
    out = [sx[i] for i in bx]
    out += [sx[i] for i in range(ranks[0]) if i not in cx and i not in bx]
    out += [sy[j] for j in range(ranks[1]) if j not in cy and j not in by]
    lead = "z" if ox or oy else ""
    spec = f"{'z' * ox}{''.join(sx)},{'z' * oy}{''.join(sy)}->{lead}{''.join(out)}"
    return np.einsum(spec, x, y)


def _transpose(ranks, params, x):
    """``lax.transpose``: output axis ``i`` is operand axis ``permutation[i]``."""
    off = _off(x, ranks[0])
    return np.transpose(x, tuple(range(off)) + tuple(p + off for p in params["permutation"]))


def _iota(ranks, params):
    """``lax.iota``: ``0, 1, …`` along ``dimension`` of ``shape``, broadcast over the rest."""
    shape, dim = tuple(params["shape"]), params["dimension"]
    ramp = np.arange(shape[dim], dtype=np.dtype(params["dtype"]))
    return np.broadcast_to(ramp.reshape([-1 if i == dim else 1 for i in range(len(shape))]), shape)


def _identity(ranks, params, x):
    return x


def _clamp(lo, x, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _call(key):
    """Nested ``jit``/call: evaluate the inner jaxpr (its own :class:`Program`)."""

    def rule(ranks, params, *xs):
        return params["_program"](*xs)

    return rule


def _custom(ranks, params, *xs):
    """``custom_jvp_call``/``custom_vjp_call``: values only, the primal jaxpr."""
    return params["_program"](*xs)


def _scan(ranks, params, *xs):
    """``lax.scan`` as a loop: ``consts, carry, xs → carry, ys`` (``reverse`` honoured;
    ``ys`` stacked in index order)."""
    nc, nk, length = params["num_consts"], params["num_carry"], params["length"]
    body = params["_program"]
    consts, carry, seqs = list(xs[:nc]), list(xs[nc : nc + nk]), xs[nc + nk :]
    seq_ranks = ranks[nc + nk :]
    seq_off = [_off(s, r) for s, r in zip(seqs, seq_ranks, strict=True)]
    steps = range(length - 1, -1, -1) if params["reverse"] else range(length)
    ys: list[list] = []
    for i in steps:
        cur = [s[:, i] if o else s[i] for s, o in zip(seqs, seq_off, strict=True)]
        out = body(*consts, *carry, *cur)
        carry = list(out[:nk])
        ys.append(list(out[nk:]))
    if params["reverse"]:
        ys.reverse()
    stacked = []
    y_ranks = [len(v.aval.shape) for v in body.jaxpr.outvars[nk:]]
    for j, r in enumerate(y_ranks):
        col, off = _batch_all([r] * len(ys), [y[j] for y in ys])
        if not col:
            raise UnknownPrimitive("scan of length 0")
        stacked.append(np.stack(col, axis=off))
    return (*carry, *stacked)


RULES: dict = {
    # arithmetic (IEEE in NumPy as in XLA)
    "add": _elementwise(np.add),
    "add_any": _elementwise(np.add),
    "sub": _elementwise(np.subtract),
    "mul": _elementwise(np.multiply),
    "div": _elementwise(_div),
    "rem": _elementwise(_rem),
    "max": _elementwise(np.maximum),
    "min": _elementwise(np.minimum),
    "pow": _elementwise(np.power),
    "integer_pow": _integer_pow,
    "neg": _elementwise(np.negative),
    "abs": _elementwise(np.abs),
    "sign": _elementwise(np.sign),
    "square": _elementwise(lambda x: x * x),
    "sqrt": _elementwise(np.sqrt),
    "cbrt": _elementwise(np.cbrt),
    "rsqrt": _elementwise(lambda x: 1 / np.sqrt(x)),
    "exp": _elementwise(np.exp),
    "exp2": _elementwise(np.exp2),
    "expm1": _elementwise(np.expm1),
    "log": _elementwise(np.log),
    "log1p": _elementwise(np.log1p),
    "tanh": _elementwise(np.tanh),
    "logistic": _elementwise(lambda x: 1 / (1 + np.exp(-x))),
    "floor": _elementwise(np.floor),
    "ceil": _elementwise(np.ceil),
    "round": _round,
    "is_finite": _elementwise(np.isfinite),
    "clamp": _elementwise(_clamp),
    # comparisons and logic
    "eq": _elementwise(np.equal),
    "ne": _elementwise(np.not_equal),
    "lt": _elementwise(np.less),
    "le": _elementwise(np.less_equal),
    "gt": _elementwise(np.greater),
    "ge": _elementwise(np.greater_equal),
    "and": _elementwise(np.bitwise_and),
    "or": _elementwise(np.bitwise_or),
    "xor": _elementwise(np.bitwise_xor),
    "not": _elementwise(np.invert),
    "select_n": _select_n,
    # types and shapes
    "convert_element_type": _convert,
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "squeeze": _squeeze,
    "slice": _slice,
    "stack": _stack,
    "concatenate": _concatenate,
    "dot_general": _dot_general,
    "iota": _iota,
    "transpose": _transpose,
    "reduce_sum": _reduce(_sum_in_order),
    "reduce_max": _reduce(lambda x, a: np.max(x, axis=a)),
    "reduce_min": _reduce(lambda x, a: np.min(x, axis=a)),
    "stop_gradient": _identity,
    "copy": _identity,
    "copy_p": _identity,
    "optimization_barrier": lambda ranks, params, *xs: xs,
    # control flow and calls
    "scan": _scan,
    "jit": _call("jaxpr"),
    "pjit": _call("jaxpr"),
    "closed_call": _call("call_jaxpr"),
    "core_call": _call("call_jaxpr"),
    "remat": _call("jaxpr"),
    "checkpoint": _call("jaxpr"),
    "custom_jvp_call": _custom,
    "custom_vjp_call": _custom,
}
"""Primitive name → NumPy rule with ``jax.lax`` semantics (see the module docstring)."""

_MULTI = {"scan", "jit", "pjit", "closed_call", "core_call", "remat", "checkpoint",
          "custom_jvp_call", "custom_vjp_call", "optimization_barrier"}  # fmt: skip


# --------------------------------------------------------------------------- programs


_INLINE = {"jit", "pjit", "closed_call", "core_call", "remat", "checkpoint"}
"""Call primitives whose inner equations :class:`Program` inlines (evaluation order and
arithmetic unchanged; a call of a sub-program per nested ``jnp`` function cost more than
its equations: ~650 calls per cost-model evaluation)."""


def _copy_rule(ranks, params, x):
    return x


def _drop_copies(steps: list) -> tuple[list, dict]:
    """``steps`` without the copies left by inlining (an inner output → the outer
    variable), and the aliases ``{copy slot: source slot}`` its readers now use."""
    alias: dict = {}
    out = []
    for rule, ranks, params, ins, outs, multi in steps:
        ins = tuple(alias.get(i, i) for i in ins)
        if rule is _copy_rule:
            alias[outs[0]] = ins[0]
            continue
        out.append((rule, ranks, params, ins, outs, multi))
    return out, alias


def _fold_constants(steps: list, init: list) -> list:
    """``steps`` less those whose operands are all constants or literals: evaluated once
    here, with the same rule, their results become constants (``init``)."""
    out = []
    for st in steps:
        rule, ranks, params, ins, outs, multi = st
        if all(init[i] is not None for i in ins):
            with np.errstate(all="ignore"):
                res = _bound(rule, ranks, params)(*[init[i] for i in ins])
            for o, r in zip(outs, res if multi else (res,), strict=True):
                init[o] = r
            continue
        out.append(st)
    return out


def _common_subexpressions(steps: list) -> tuple[list, dict]:
    """``steps`` without repeats of an equation already evaluated (same rule, ranks,
    parameters and operand slots: the same NumPy call on the same values, so the same
    result), and the aliases ``{repeat's output slot: first output slot}``."""
    seen: dict = {}
    same: dict = {}
    out = []
    for rule, ranks, params, ins, outs, multi in steps:
        ins = tuple(same.get(i, i) for i in ins)
        key = None
        if not multi:
            try:
                key = (rule, ranks, _params_key(params), ins)
                hash(key)
            except TypeError:
                key = None
        if key is not None and key in seen:
            same[outs[0]] = seen[key]
            continue
        if key is not None:
            seen[key] = outs[0]
        out.append((rule, ranks, params, ins, outs, multi))
    return out, same


def _params_key(params) -> tuple:
    """A hashable key of an equation's parameters (inner programs by identity)."""
    if params is None:
        return ()
    return tuple(
        (k, id(v) if k == "_program" else v)
        for k, v in sorted(params.items(), key=lambda kv: kv[0])
    )


def _live(steps: list, out_slots) -> list:
    """``steps`` that an output depends on (dead-code elimination: e.g. a loss that reads
    one field of the cost model's result skips the equations of the others)."""
    need = set(out_slots)
    keep = []
    for st in reversed(steps):
        if any(o in need for o in st[4]):
            keep.append(st)
            need.update(st[3])
    return keep[::-1]


def _bound(rule, ranks, params):
    """``operands → result`` of one step: an elementwise rule whose operands all have
    the output's rank is its NumPy function itself (no alignment to do)."""
    if getattr(rule, "elementwise", False) and ranks[-1] is None:
        return rule.fn
    return functools.partial(rule, ranks, params)


class Program:
    """A jaxpr prepared for NumPy evaluation: ``Program(closed)(*args) → outputs``.

    Variables become register slots; literals and constants are NumPy values of their
    abstract dtype; each equation keeps its rule, operand slots and abstract ranks.
    """

    def __init__(self, closed: ClosedJaxpr | Jaxpr, consts=(), narrow: bool = False, rules=None):
        rules = RULES if rules is None else rules
        if isinstance(closed, ClosedJaxpr):
            jaxpr, consts = closed.jaxpr, closed.consts
        else:
            jaxpr = closed
        self.jaxpr, self.consts = jaxpr, tuple(consts)
        dtype_of = _narrowed if narrow else np.dtype
        init: list = []
        steps: list = []

        def literal(v):
            init.append(np.asarray(v.val, dtype_of(v.aval.dtype))[()])
            return len(init) - 1

        def fresh():
            init.append(None)
            return len(init) - 1

        def emit(jaxpr, env: dict) -> None:
            """Steps of ``jaxpr``'s equations, ``env`` mapping its variables to slots;
            nested calls (``_INLINE``) are inlined: their equations join this list, so
            a call costs nothing at run time."""

            def slot(v):
                if isinstance(v, Literal):
                    return literal(v)
                if v not in env:
                    env[v] = fresh()
                return env[v]

            for e in jaxpr.eqns:
                name = e.primitive.name
                params = e.params
                key = next((k for k in ("jaxpr", "call_jaxpr") if k in params), None)
                if name in _INLINE and key is not None:
                    inner = params[key]
                    ij = inner.jaxpr if isinstance(inner, ClosedJaxpr) else inner
                    sub = {}
                    ic = inner.consts if isinstance(inner, ClosedJaxpr) else ()
                    for cv, c in zip(ij.constvars, ic, strict=True):
                        sub[cv] = fresh()
                        init[sub[cv]] = np.asarray(c, dtype_of(np.asarray(c).dtype))
                    for iv, ov in zip(ij.invars, e.invars, strict=True):
                        sub[iv] = slot(ov)
                    emit(ij, sub)
                    for iv, ov in zip(ij.outvars, e.outvars, strict=True):
                        src = literal(iv) if isinstance(iv, Literal) else sub[iv]
                        steps.append((_copy_rule, (), None, (src,), (slot(ov),), False))
                    continue
                rule = rules.get(name)
                if rule is None:
                    raise UnknownPrimitive(
                        f"search.interpret: no NumPy rule for primitive {name!r} "
                        f"(add one to search.interpret.RULES)"
                    )
                if name in _MULTI and key is not None:  # inner programs prepared now
                    params = dict(params, _program=_sub_program(params[key], narrow, rules))
                elif name == "convert_element_type":
                    params = dict(params, new_dtype=dtype_of(params["new_dtype"]))
                ranks = tuple(len(getattr(v.aval, "shape", ())) for v in e.invars)
                r_out = len(getattr(e.outvars[0].aval, "shape", ())) if e.outvars else 0
                if name == "select_n":
                    ranks = (ranks[0], r_out)
                elif getattr(rule, "elementwise", False):
                    ranks = (*ranks, r_out if any(r != r_out for r in ranks) else None)
                ins = tuple(slot(v) for v in e.invars)
                outs = tuple(slot(v) for v in e.outvars)
                multi = name in _MULTI or len(e.outvars) != 1
                steps.append((rule, ranks, params, ins, outs, multi))

        env: dict = {}
        for v, c in zip(jaxpr.constvars, consts, strict=True):
            env[v] = fresh()
            init[env[v]] = np.asarray(c, dtype_of(np.asarray(c).dtype))
        for v in jaxpr.invars:
            env[v] = fresh()
        self.in_slots = [env[v] for v in jaxpr.invars]
        emit(jaxpr, env)
        steps, alias = _drop_copies(steps)
        steps = _fold_constants(steps, init)
        steps, same = _common_subexpressions(steps)
        outs = [literal(v) if isinstance(v, Literal) else env[v] for v in jaxpr.outvars]
        self.out_slots = [same.get(alias.get(o, o), alias.get(o, o)) for o in outs]
        self.steps = _live(steps, self.out_slots)
        self.init = init
        self._run = [(_bound(rule, ranks, params), ins, outs, multi)
                     for rule, ranks, params, ins, outs, multi in self.steps]  # fmt: skip

    def __call__(self, *args):
        regs = list(self.init)
        for s, a in zip(self.in_slots, args, strict=True):
            regs[s] = a
        for fn, ins, outs, multi in self._run:
            res = fn(*[regs[i] for i in ins])
            if multi:
                for o, r in zip(outs, res, strict=True):
                    regs[o] = r
            else:
                regs[outs[0]] = res
        return [regs[s] for s in self.out_slots]


_NARROW = {np.dtype(a): np.dtype(b) for a, b in
           ((np.float64, np.float32), (np.int64, np.int32), (np.uint64, np.uint32))}  # fmt: skip


def _narrowed(dtype) -> np.dtype:
    """The 32-bit twin of a 64-bit dtype (others unchanged)."""
    dt = np.dtype(dtype)
    return _NARROW.get(dt, dt)


_SUB: dict = {}


def _sub_program(closed, narrow: bool = False, rules=None) -> Program:
    """The :class:`Program` of an inner jaxpr (cached by identity: JAX shares the inner
    jaxpr of a nested ``jit`` called with the same abstract arguments), with the outer
    program's ``rules``."""
    key = (id(closed), narrow, id(rules))
    hit = _SUB.get(key)
    if hit is None or hit[0] is not closed:
        hit = _SUB[key] = (closed, Program(closed, narrow=narrow, rules=rules))
    return hit[1]


def primitives_of(closed) -> set[str]:
    """Names of every primitive in a jaxpr, nested ones included."""
    jaxpr = closed.jaxpr if isinstance(closed, ClosedJaxpr) else closed
    out = set()
    for e in jaxpr.eqns:
        out.add(e.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(e.params):
            out |= primitives_of(sub)
    return out


# --------------------------------------------------------------------------- cost model


@functools.cache
def jaxpr_of(treedef, n: int, dtype=np.float64) -> ClosedJaxpr:
    """The jaxpr of :func:`search.evaluate.single_program`'s function ``x [n + 12] →
    results [N_OUT]`` for one record structure, traced with ``x`` of ``dtype`` (float64
    under ``jax.enable_x64``, float32 without)."""
    from search.evaluate import row_function

    dt = np.dtype(dtype)
    spec = jax.ShapeDtypeStruct((n + 12,), dt)
    with jax.enable_x64(dt == np.float64):
        return jax.make_jaxpr(row_function(treedef, n))(spec)


@functools.cache
def _program(treedef, n: int, dtype) -> Program:
    """One trace per structure serves both dtypes: the float64 jaxpr, run in float32 with
    every 64-bit dtype narrowed (literals, constants, conversions). That is the float32
    trace's arithmetic, bit for bit (``tests/test_interpret.py`` checks it), for half the
    tracing."""
    return Program(jaxpr_of(treedef, n), narrow=np.dtype(dtype) == np.float32)


def program(treedef, n: int, dtype=np.float32):
    """``x [n + 12] → results [N_OUT]`` (or ``[B, n + 12] → [B, N_OUT]``) evaluated with
    NumPy: the interpreter's twin of :func:`search.evaluate.single_program` (same
    arguments, same packed outputs, no compilation). ``x`` is cast to ``dtype``."""
    prog = _program(treedef, n, np.dtype(dtype))
    dt = np.dtype(dtype)

    def run(x):
        x = np.asarray(x, dt)
        with np.errstate(all="ignore"):
            (out,) = prog(x)
        out = np.asarray(out, dt)
        if x.ndim == 2 and out.ndim == 1:
            out = np.broadcast_to(out, (len(x), *out.shape))
        return out

    return run


def supports(*records) -> bool:
    """Whether records flatten to the scalar row the interpreter reads (every leaf a
    scalar; e.g. a kernel-level calibration with a launch table does not: callers then
    compile)."""
    return all(np.ndim(leaf) == 0 for leaf in jax.tree.leaves(records))


def packed_rows(flats, rows: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Packed outputs ``[n, N_OUT]`` of ``flats[i]`` (records, see
    :func:`search.evaluate.resolve`) with ``rows[i]`` (six degrees, six workload
    numbers): :func:`search.evaluate.packed_rows` without compiling, one batched pass per
    record structure."""
    from search.evaluate import N_OUT

    dt = np.dtype(dtype)
    rows = np.asarray(rows, np.float64)
    out = np.empty((len(rows), N_OUT), dt)
    by_struct: dict = {}
    for i, f in enumerate(flats):
        by_struct.setdefault((f.treedef, f.n), []).append(i)
    for (td, nl), idx in by_struct.items():
        vecs = np.stack([flats[i].vec(np.dtype(np.float64)) for i in idx])
        x = np.concatenate([vecs, rows[idx]], axis=1)
        out[np.asarray(idx)] = program(td, nl, dt)(x)
    return out


def eval_splits(model, precision, system, table, workload, mode=None, dtype=None):
    """``decode_step`` of every split row of ``table [n, 6]`` (columns
    :data:`~costmodel.specs.DEGREES`) → a :class:`~costmodel.decode.DecodeResult` of
    ``[n]`` NumPy arrays, by the interpreter in one batched pass (JAX's default float
    unless ``dtype``)."""
    from costmodel.specs import SOL
    from search import evaluate as E

    flat = E.flat_records(E.Records(model, precision, system, SOL if mode is None else mode))
    wl = np.asarray([float(getattr(workload, f)) for f in E.WORKLOAD_FIELDS], np.float64)
    dt = np.dtype(dtype) if dtype is not None else E.float_dtype()
    table = np.asarray(table, np.float64).reshape(-1, 6)
    n = len(table)
    x = np.concatenate(
        [np.broadcast_to(flat.vec(np.dtype(np.float64)), (n, flat.n)), table,
         np.broadcast_to(wl, (n, 6))], axis=1,
    )  # fmt: skip
    return E.decode_result(program(flat.treedef, flat.n, dt)(x))


def eval_records(model, precision, system, parallelism, workload, mode=None, dtype=None):
    """``decode_step``'s positional records → :class:`~costmodel.decode.DecodeResult` of
    NumPy values, evaluated by the interpreter (JAX's default float unless ``dtype``)."""
    from costmodel.specs import SOL
    from search import evaluate as E

    flat = E.flat_records(E.Records(model, precision, system, SOL if mode is None else mode))
    wl = tuple(float(getattr(workload, f)) for f in E.WORKLOAD_FIELDS)
    dt = np.dtype(dtype) if dtype is not None else E.float_dtype()
    x = np.concatenate([flat.vec(dt), np.asarray((*E.degrees_of(parallelism), *wl), dt)])
    return E.decode_result(program(flat.treedef, flat.n, dt)(x))
