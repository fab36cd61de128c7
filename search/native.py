r"""Single evaluations as native code: the cost model's jaxpr emitted as one C function.

Why: a script that loops over configurations calls the cost model once per configuration.
XLA:CPU runs one evaluation as ~250 small kernels (a scalar graph of ~2,900 operations,
split wherever a divide, ``exp`` or ``log`` has several users) at ~0.3–0.5 µs each, so a
call costs ~120 µs however little arithmetic it does; the NumPy interpreter
(:mod:`search.interpret`) costs ~1 µs per equation. The same equations as straight-line C
cost a few nanoseconds each: one call takes a few microseconds.

How:

1. **the same jaxpr** as :func:`search.evaluate.single_program` and the interpreter
   (:func:`search.interpret.jaxpr_of`: ``x [n + 12] → results [N_OUT]``, records, six
   degrees and six workload numbers in; traced in the requested dtype), so one library
   serves every model and system of a record structure (numbers are data);
2. **emitted equation by equation** (:class:`_Emitter`): every value is a C array of its
   size (a scalar is an array of one; the compiler keeps it in a register); elementwise
   primitives become loops with ``jax.lax`` semantics (``max``/``min`` propagate NaN,
   float → integer conversion saturates and sends NaN to 0, ``round`` honours its
   method, ``integer_pow`` multiplies by binary exponentiation, sums add in index
   order: the interpreter's rules, :mod:`search.interpret`); structural primitives
   (``broadcast_in_dim``, ``slice``, ``stack``, ``concatenate``, ``transpose``, …) become
   copies whose index maps are computed here, at generation time; nested calls are
   inlined and ``scan`` becomes a ``for`` loop around its body;
3. **compiled once per structure and dtype** with the system's C compiler (``$CC``, else
   ``cc``, ``gcc`` or ``clang``) with :data:`FLAGS` (no fused multiply-add, no
   fast-math: IEEE arithmetic as written) into a shared library cached on disk under
   ``$TPSOPT_CACHE/native`` (default ``~/.cache/tpsopt/native``), named by a hash of the
   source, compiler and flags, so a later process loads it in a millisecond; called
   through :mod:`ctypes`.

Values equal the compiled program's to float rounding: ``+ − × ÷`` and ``sqrt`` are
correctly rounded in both, but XLA has its own ``exp``/``log``/``pow`` and may contract
``a·b + c`` (``tests/test_native.py`` compares both on every database structure, float32
and float64). Without a C compiler (or with ``TPSOPT_NATIVE=off``, or for a primitive
this module has no rule for) :func:`row_function` returns None and callers use the XLA
program.

Cost: tracing and emitting ~0.5–1 s per structure and dtype in a process; compiling
~1 s (SOL) to ~3 s (kernel-level calibrated mode, ~3× the equations) once per machine;
then ~5–10 µs per call, against ~120 µs for the XLA program on the same core.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
from jax.extend.core import ClosedJaxpr, Literal

__all__ = ["ENABLED", "Unsupported", "c_source", "compiler", "library", "row_function"]

FLAGS = ("-Og", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared")
"""Compiler flags. ``-Og``: measured on this straight-line code (Kimi-K2.5 on GB200 NVL72,
float32, GCC, CPU seconds on 2 busy cores): ``-O0`` compiles in 0.4 s and runs a call in
~17 µs, ``-Og`` 1.0 s and ~8.5 µs, ``-O1`` 1.6 s and ~8 µs, ``-O2`` ~3 s and ~7 µs. No
contraction into fused multiply-adds (``-ffp-contract=off``, which GCC otherwise applies
where the target has FMA); ``-fno-math-errno`` (``sqrt`` as one instruction; ``errno``
is never read); no fast-math."""


class Unsupported(NotImplementedError):
    """The jaxpr holds a primitive or a dtype this module has no C rule for."""


_CTYPE = {
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.uint32): "uint32_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int8): "int8_t",
    np.dtype(np.bool_): "uint8_t",
}
_SUFFIX = {np.dtype(np.float32): "f", np.dtype(np.float64): ""}

_PRELUDE = r"""#include <math.h>
#include <stdint.h>
#include <string.h>
#define NAN_MAX(a, b) (((a) != (a) || (a) > (b)) ? (a) : (b))
#define NAN_MIN(a, b) (((a) != (a) || (a) < (b)) ? (a) : (b))
#define SIGN(x) ((x) > 0 ? 1 : ((x) < 0 ? -1 : (x)))
"""


def _ctype(dtype) -> str:
    ct = _CTYPE.get(np.dtype(dtype))
    if ct is None:
        raise Unsupported(f"search.native: no C type for dtype {np.dtype(dtype)}")
    return ct


def _literal(value, dtype) -> str:
    """``value`` as an exact C constant of ``dtype`` (floats in hexadecimal)."""
    dt = np.dtype(dtype)
    v = np.asarray(value, dt)[()]
    if dt.kind == "f":
        f = float(v)
        if np.isnan(f):
            text = "NAN"
        elif np.isinf(f):
            text = "INFINITY" if f > 0 else "(-INFINITY)"
        else:
            text = f.hex() + _SUFFIX[dt]
        return f"(({_ctype(dt)}){text})"
    if dt == np.bool_:
        return "1" if bool(v) else "0"
    return f"(({_ctype(dt)}){int(v)}LL)" if dt.itemsize == 8 else f"(({_ctype(dt)}){int(v)})"


class _Val(NamedTuple):
    """A value of the emitted code: a C array (``ref[i]``), a C scalar variable (``var``:
    ``ref`` itself, whatever the index) or a literal (``lit``: one C constant)."""

    ref: str
    shape: tuple
    dtype: np.dtype
    lit: str | None = None
    var: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def at(self, i) -> str:
        if self.lit is not None:
            return self.lit
        if self.var:
            return self.ref
        return f"{self.ref}[{0 if self.size == 1 else i}]"


def _math(name):
    return lambda dt, x: f"{name}{_SUFFIX[dt]}({x})"


def _float_only(fn):
    def rule(dt, *xs):
        if dt.kind != "f":
            raise Unsupported(f"search.native: {fn.__name__} of {dt}")
        return fn(dt, *xs)

    rule.__name__ = getattr(fn, "__name__", "rule")
    return rule


def _div(dt, x, y):
    if dt.kind == "f":
        return f"({x} / {y})"
    return f"({y} == 0 ? {x} : {x} / {y})"  # the interpreter's rule (search.interpret._div)


def _rem(dt, x, y):
    return f"fmod{_SUFFIX[dt]}({x}, {y})" if dt.kind == "f" else f"({y} == 0 ? 0 : {x} % {y})"


def _abs(dt, x):
    return f"fabs{_SUFFIX[dt]}({x})" if dt.kind == "f" else f"({x} < 0 ? -{x} : {x})"


def _not(dt, x):
    return f"(!{x})" if dt == np.bool_ else f"(~{x})"


def _one(dt):
    return _literal(1, dt)


_ELEMENTWISE = {
    "add": lambda dt, x, y: f"({x} + {y})",
    "add_any": lambda dt, x, y: f"({x} + {y})",
    "sub": lambda dt, x, y: f"({x} - {y})",
    "mul": lambda dt, x, y: f"({x} * {y})",
    "div": _div,
    "rem": _rem,
    "max": lambda dt, x, y: f"NAN_MAX({x}, {y})" if dt.kind == "f" else f"({x} > {y} ? {x} : {y})",
    "min": lambda dt, x, y: f"NAN_MIN({x}, {y})" if dt.kind == "f" else f"({x} < {y} ? {x} : {y})",
    "pow": _float_only(lambda dt, x, y: f"pow{_SUFFIX[dt]}({x}, {y})"),
    "neg": lambda dt, x: f"(-{x})",
    "abs": _abs,
    "sign": lambda dt, x: f"(({_ctype(dt)})SIGN({x}))",
    "square": lambda dt, x: f"({x} * {x})",
    "sqrt": _float_only(_math("sqrt")),
    "cbrt": _float_only(_math("cbrt")),
    "rsqrt": _float_only(lambda dt, x: f"({_one(dt)} / sqrt{_SUFFIX[dt]}({x}))"),
    "exp": _float_only(_math("exp")),
    "exp2": _float_only(_math("exp2")),
    "expm1": _float_only(_math("expm1")),
    "log": _float_only(_math("log")),
    "log1p": _float_only(_math("log1p")),
    "tanh": _float_only(_math("tanh")),
    "logistic": _float_only(lambda dt, x: f"({_one(dt)} / ({_one(dt)} + exp{_SUFFIX[dt]}(-{x})))"),
    "floor": _float_only(_math("floor")),
    "ceil": _float_only(_math("ceil")),
    "is_finite": lambda dt, x: f"(isfinite({x}) != 0)",
    "eq": lambda dt, x, y: f"({x} == {y})",
    "ne": lambda dt, x, y: f"({x} != {y})",
    "lt": lambda dt, x, y: f"({x} < {y})",
    "le": lambda dt, x, y: f"({x} <= {y})",
    "gt": lambda dt, x, y: f"({x} > {y})",
    "ge": lambda dt, x, y: f"({x} >= {y})",
    "and": lambda dt, x, y: f"({x} & {y})",
    "or": lambda dt, x, y: f"({x} | {y})",
    "xor": lambda dt, x, y: f"({x} ^ {y})",
    "not": _not,
}
"""Primitive → C expression of its operands' elements (``dt``: the first operand's
dtype), ``jax.lax`` semantics as in :data:`search.interpret.RULES`."""

_ALIAS = {"stop_gradient", "copy", "copy_p", "reshape", "squeeze"}
_INLINE = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr",
           "core_call": "call_jaxpr", "remat": "jaxpr", "checkpoint": "jaxpr",
           "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr"}  # fmt: skip


PRIMITIVES = frozenset(
    {*_ELEMENTWISE, *_ALIAS, *_INLINE, "optimization_barrier", "integer_pow", "select_n",
     "clamp", "convert_element_type", "round", "scan", "reduce_sum", "reduce_max",
     "reduce_min", "iota", "dot_general", "broadcast_in_dim", "slice", "transpose",
     "stack", "concatenate"}
)  # fmt: skip
"""Primitives with a C rule (the interpreter's :data:`search.interpret.RULES`, all of
them: ``tests/test_native.py`` checks)."""


class _Emitter:
    """C statements of a jaxpr (see the module docstring)."""

    def __init__(self):
        self.lines: list[str] = []
        self.statics: list[str] = []
        self.count = 0
        self.depth = 1

    def line(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def name(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def new(self, shape, dtype, array: bool = False) -> _Val:
        """A fresh value: a scalar variable for one element (unless ``array``)."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        if not array and int(np.prod(shape, dtype=int)) == 1:
            v = _Val(self.name(), shape, dtype, var=True)
            self.line(f"{_ctype(dtype)} {v.ref};")
            return v
        v = _Val(self.name(), shape, dtype)
        self.line(f"{_ctype(dtype)} {v.ref}[{max(v.size, 1)}];")
        return v

    def const(self, value) -> _Val:
        a = np.asarray(value)
        dt = np.dtype(a.dtype)
        if a.size == 1:
            return _Val("", a.shape, dt, _literal(a.reshape(()), dt))
        v = _Val(self.name(), a.shape, dt)
        body = ", ".join(_literal(x, dt) for x in a.ravel())
        self.statics.append(f"static const {_ctype(dt)} {v.ref}[{max(a.size, 1)}] = {{{body}}};")
        return v

    # ------------------------------------------------------------------ structure

    def jaxpr(self, closed, args: list[_Val]) -> list[_Val]:
        """Emit ``closed``'s equations with its inputs bound to ``args``; its outputs."""
        if isinstance(closed, ClosedJaxpr):
            jaxpr, consts = closed.jaxpr, closed.consts
        else:
            jaxpr, consts = closed, ()
        env: dict = {}
        for v, c in zip(jaxpr.constvars, consts, strict=True):
            env[v] = self.const(c)
        for v, a in zip(jaxpr.invars, args, strict=True):
            env[v] = a

        def read(v):
            if isinstance(v, Literal):
                return self.const(np.asarray(v.val, v.aval.dtype))
            return env[v]

        for e in jaxpr.eqns:
            ins = [read(v) for v in e.invars]
            outs = self.equation(e, ins)
            for v, o in zip(e.outvars, outs, strict=True):
                env[v] = o
        return [read(v) for v in jaxpr.outvars]

    def equation(self, e, ins: list[_Val]) -> list[_Val]:
        name = e.primitive.name
        p = e.params
        avals = [v.aval for v in e.outvars]
        if name in _INLINE:
            return self.jaxpr(p[_INLINE[name]], ins)
        if name in _ALIAS:
            return [ins[0]._replace(shape=tuple(avals[0].shape))]
        if name == "optimization_barrier":
            return list(ins)
        if name in _ELEMENTWISE:
            return [self.elementwise(_ELEMENTWISE[name], ins, avals[0])]
        if name == "integer_pow":
            return [self.integer_pow(ins[0], int(p["y"]), avals[0])]
        if name == "select_n":
            return [self.select(ins, avals[0])]
        if name == "clamp":
            lo, x, hi = ins
            if x.dtype.kind != "f":
                raise Unsupported("search.native: clamp of integers")
            return [self.elementwise(lambda dt, a, b, c: f"NAN_MIN(NAN_MAX({b}, {a}), {c})",
                                     [lo, x, hi], avals[0])]  # fmt: skip
        if name == "convert_element_type":
            return [self.convert(ins[0], avals[0])]
        if name == "round":
            fn = "rint" if int(p["rounding_method"]) == 1 else "round"
            return [self.elementwise(_float_only(_math(fn)), ins, avals[0])]
        if name == "scan":
            return self.scan(p, ins, avals)
        if name in ("reduce_sum", "reduce_max", "reduce_min"):
            return [self.reduce(name, ins[0], tuple(p["axes"]), avals[0])]
        if name == "iota":
            dim, shape = p["dimension"], tuple(p["shape"])
            ramp = np.arange(shape[dim]).reshape([-1 if i == dim else 1 for i in range(len(shape))])
            return [self.const(np.broadcast_to(ramp, shape).astype(p["dtype"]))]
        if name == "dot_general":
            return [self.dot(p, *ins, avals[0])]
        gather = self.index_map(name, p, ins, avals[0])
        return [self.gather(ins, *gather, avals[0])]

    # ------------------------------------------------------------------ elementwise

    def elementwise(self, rule, ins: list[_Val], aval) -> _Val:
        dt = ins[0].dtype
        out = self.new(aval.shape, aval.dtype)
        n = out.size
        if n <= 1:
            self.line(f"{out.at(0)} = {rule(dt, *(v.at(0) for v in ins))};")
        else:
            self.line(f"for (int i = 0; i < {n}; i++) "
                      f"{out.ref}[i] = {rule(dt, *(v.at('i') for v in ins))};")  # fmt: skip
        return out

    def integer_pow(self, x: _Val, y: int, aval) -> _Val:
        """Binary exponentiation with ``*`` (``search.interpret._integer_pow``)."""

        def rule(dt, a):
            if y == 0:
                return _one(dt)
            acc, base, k = None, a, abs(y)
            while k > 0:
                if k & 1:
                    acc = base if acc is None else f"({acc} * {base})"
                k >>= 1
                if k > 0:
                    base = f"({base} * {base})"
            return f"({_one(dt)} / {acc})" if y < 0 else acc

        return self.elementwise(rule, [x], aval)

    def select(self, ins: list[_Val], aval) -> _Val:
        pred, cases = ins[0], ins[1:]
        if len(cases) == 1:
            return cases[0]

        def rule(dt, p, *cs):
            expr = cs[0]
            for i, c in enumerate(cs[1:], 1):
                cond = p if len(cs) == 2 and pred.dtype == np.bool_ else f"{p} == {i}"
                expr = f"({cond} ? {c} : {expr})"
            return expr

        return self.elementwise(rule, ins, aval)

    def convert(self, x: _Val, aval) -> _Val:
        src, dst = x.dtype, np.dtype(aval.dtype)
        ct = _ctype(dst)
        if dst == np.bool_:
            return self.elementwise(lambda dt, a: f"({a} != 0)", [x], aval)
        if dst.kind in "iu" and src.kind == "f":
            info = np.iinfo(dst)
            hi, lo = _literal(float(info.max), src), _literal(float(info.min), src)
            mx, mn = _literal(info.max, dst), _literal(info.min, dst)

            def rule(dt, a):
                return (f"({a} != {a} ? 0 : ({a} >= {hi} ? {mx} : "
                        f"({a} <= {lo} ? {mn} : ({ct}){a})))")  # fmt: skip

            return self.elementwise(rule, [x], aval)
        return self.elementwise(lambda dt, a: f"(({ct}){a})", [x], aval)

    def reduce(self, name, x: _Val, axes: tuple, aval) -> _Val:
        """Sums (extrema) over ``axes`` in index order, ``(x₀ + x₁) + …``."""
        idx = np.arange(x.size).reshape(x.shape)
        keep = [a for a in range(idx.ndim) if a not in axes]
        groups = idx.transpose(keep + list(axes)).reshape(int(np.prod(aval.shape, dtype=int)), -1)
        out = self.new(aval.shape, aval.dtype)
        for i, g in enumerate(groups):
            if len(g) == 0:
                expr = _literal(0, aval.dtype)
            else:
                expr = x.at(int(g[0]))
                for j in g[1:]:
                    if name == "reduce_sum":
                        expr = f"({expr} + {x.at(int(j))})"
                    else:
                        mac = "NAN_MAX" if name == "reduce_max" else "NAN_MIN"
                        expr = f"{mac}({expr}, {x.at(int(j))})"
            self.line(f"{out.at(i)} = {expr};")
        return out

    def dot(self, p, x: _Val, y: _Val, aval) -> _Val:
        """``lax.dot_general``: batch axes first, then ``x``'s free axes, then ``y``'s;
        each element a sum of products in contraction-index order."""
        (cx, cy), (bx, by) = p["dimension_numbers"]
        ix, iy = np.arange(x.size).reshape(x.shape), np.arange(y.size).reshape(y.shape)
        fx = [a for a in range(ix.ndim) if a not in cx and a not in bx]
        fy = [a for a in range(iy.ndim) if a not in cy and a not in by]
        nb = int(np.prod([x.shape[a] for a in bx], dtype=int))
        nc = int(np.prod([x.shape[a] for a in cx], dtype=int))
        lx = ix.transpose([*bx, *fx, *cx]).reshape(nb, -1, nc)
        ly = iy.transpose([*by, *fy, *cy]).reshape(nb, -1, nc)
        out = self.new(aval.shape, aval.dtype)
        ct, k = _ctype(aval.dtype), 0
        for b in range(nb):
            for i in range(lx.shape[1]):
                for j in range(ly.shape[1]):
                    terms = [f"{x.at(int(lx[b, i, c]))} * {y.at(int(ly[b, j, c]))}"
                             for c in range(nc)]  # fmt: skip
                    expr = _literal(0, aval.dtype) if not terms else terms[0]
                    for t in terms[1:]:
                        expr = f"({expr} + {t})"
                    self.line(f"{out.at(k)} = ({ct})({expr});")
                    k += 1
        return out

    # ------------------------------------------------------------------ copies

    def index_map(self, name, p, ins: list[_Val], aval) -> tuple[np.ndarray, np.ndarray]:
        """``(source operand, source flat index)`` of each output element."""
        idx = [np.arange(v.size).reshape(v.shape) for v in ins]
        own = [np.full(v.shape, k) for k, v in enumerate(ins)]
        if name == "broadcast_in_dim":
            if len(ins) != 1:
                raise Unsupported("search.native: broadcast_in_dim with dynamic shapes")
            shape = tuple(p["shape"])
            expanded = [1] * len(shape)
            for i, d in enumerate(p["broadcast_dimensions"]):
                expanded[d] = ins[0].shape[i]
            j = np.broadcast_to(idx[0].reshape(expanded), shape)
            return np.zeros(shape, int), j
        if name == "slice":
            strides = p["strides"] or (1,) * len(p["start_indices"])
            bounds = zip(p["start_indices"], p["limit_indices"], strides, strict=True)
            sl = tuple(slice(a, b, s) for a, b, s in bounds)
            return own[0][sl], idx[0][sl]
        if name == "transpose":
            perm = tuple(p["permutation"])
            return own[0].transpose(perm), idx[0].transpose(perm)
        if name == "stack":
            return np.stack(own, p["axis"]), np.stack(idx, p["axis"])
        if name == "concatenate":
            return np.concatenate(own, p["dimension"]), np.concatenate(idx, p["dimension"])
        raise Unsupported(f"search.native: no C rule for primitive {name!r}")

    def gather(self, ins: list[_Val], src: np.ndarray, j: np.ndarray, aval) -> _Val:
        """``out[i] = ins[src[i]][j[i]]`` as runs of contiguous (or repeated) copies."""
        src, j = src.ravel(), j.ravel()
        out = self.new(aval.shape, aval.dtype)
        i = 0
        while i < len(j):
            k, step = int(src[i]), 1 if i + 1 < len(j) and j[i + 1] == j[i] + 1 else 0
            e = i + 1
            while e < len(j) and src[e] == k and j[e] == j[e - 1] + step:
                e += 1
            v = ins[k]
            if e - i == 1:
                self.line(f"{out.at(i)} = {v.at(int(j[i]))};")
            elif v.lit is not None or v.size == 1:
                self.line(f"for (int t = 0; t < {e - i}; t++) {out.ref}[{i} + t] = {v.at(0)};")
            else:
                at = f"{v.ref}[{int(j[i])} + t]" if step else v.at(int(j[i]))
                self.line(f"for (int t = 0; t < {e - i}; t++) {out.ref}[{i} + t] = {at};")
            i = e
        return out

    # ------------------------------------------------------------------ scan

    def scan(self, p, ins: list[_Val], avals) -> list[_Val]:
        """``lax.scan`` as a loop: ``consts, carry, xs → carry, ys`` (``reverse`` honoured)."""
        nc, nk, length = p["num_consts"], p["num_carry"], int(p["length"])
        body = p["jaxpr"]
        consts, init, seqs = ins[:nc], ins[nc : nc + nk], ins[nc + nk :]
        carry = [self.new(v.shape, v.dtype) for v in init]
        for c, v in zip(carry, init, strict=True):
            self.copy(c, v)
        ys = [self.new(a.shape, a.dtype, array=True) for a in avals[nk:]]
        it = self.name()
        step = f"({length - 1} - {it})" if p["reverse"] else it
        self.line(f"for (int {it} = 0; {it} < {length}; {it}++) {{")
        self.depth += 1
        cur = []
        for s in seqs:
            inner = s.shape[1:]
            size = int(np.prod(inner, dtype=int))
            if s.lit is not None or s.var:  # one element: the sequence has length 1
                cur.append(s._replace(shape=inner))
            else:
                cur.append(_Val(f"({s.ref} + {step} * {size})", inner, s.dtype))
        outs = self.jaxpr(body, [*consts, *carry, *cur])
        fresh = [self.new(v.shape, v.dtype) for v in outs[:nk]]
        for f, v in zip(fresh, outs[:nk], strict=True):
            self.copy(f, v)
        for c, f in zip(carry, fresh, strict=True):
            self.copy(c, f)
        for y, v in zip(ys, outs[nk:], strict=True):
            size = v.size
            self.line(f"for (int t = 0; t < {size}; t++) {y.ref}[{step} * {size} + t] = "
                      f"{v.at('t')};")  # fmt: skip
        self.depth -= 1
        self.line("}")
        return [*carry, *ys]

    def copy(self, dst: _Val, src: _Val) -> None:
        if dst.size <= 1:
            self.line(f"{dst.at(0)} = {src.at(0)};")
        else:
            self.line(f"for (int t = 0; t < {dst.size}; t++) {dst.ref}[t] = {src.at('t')};")


def c_source(closed: ClosedJaxpr, tail: int = 12) -> str:
    """C source of a jaxpr of one input array ``x`` and one output array (``T`` their
    dtype's C type); raises :class:`Unsupported`. It defines

    * ``void tpsopt_row(const T *x, T *out)``: the jaxpr;
    * ``void tpsopt_call(const T *head, const double *numbers, T *out)``: the same with
      ``x = [head…, (T) numbers…]``, ``numbers`` its last ``tail`` entries (the degrees
      and workload of a flat row, as Python floats: one conversion, as NumPy does)."""
    jaxpr = closed.jaxpr
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1:
        raise Unsupported("search.native: one input array and one output array expected")
    a_in, a_out = jaxpr.invars[0].aval, jaxpr.outvars[0].aval
    em = _Emitter()
    x = _Val("x", tuple(a_in.shape), np.dtype(a_in.dtype))
    (res,) = em.jaxpr(closed, [x])
    em.line(f"for (int t = 0; t < {res.size}; t++) out[t] = ({_ctype(a_out.dtype)}){res.at('t')};")
    t_in, t_out, size = _ctype(a_in.dtype), _ctype(a_out.dtype), x.size
    call = f"""void tpsopt_call(const {t_in} *head, const double *numbers, {t_out} *out) {{
  {t_in} x[{size}];
  memcpy(x, head, sizeof(x[0]) * {size - tail});
  for (int t = 0; t < {tail}; t++) x[{size - tail} + t] = ({t_in})numbers[t];
  tpsopt_row(x, out);
}}"""
    head = f"void tpsopt_row(const {t_in} *x, {t_out} *out) {{"
    return "\n".join([_PRELUDE, *em.statics, head, *em.lines, "}", call, ""])


# --------------------------------------------------------------------------- compiling


@functools.cache
def compiler() -> str | None:
    """Path of the C compiler (``$CC``, else ``cc``, ``gcc``, ``clang``), or None."""
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and (path := shutil.which(cand)):
            return path
    return None


@functools.cache
def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else cc
    except (OSError, subprocess.SubprocessError):
        return cc


def _folder() -> Path:
    env = os.environ.get("TPSOPT_CACHE")
    if env == "off":
        user = getattr(os, "getuid", lambda: 0)()
        return Path(tempfile.gettempdir()) / f"tpsopt-native-{user}"
    return Path(env) / "native" if env else Path.home() / ".cache" / "tpsopt" / "native"


_LOCK = threading.Lock()


def library(source: str) -> ctypes.CDLL | None:
    """The shared library of ``source``, compiled once and cached on disk (None when no
    compiler is found or it fails)."""
    cc = compiler()
    if cc is None:
        return None
    key = hashlib.sha256("\0".join([source, _compiler_id(cc), *FLAGS]).encode()).hexdigest()
    folder = _folder()
    so = folder / f"{key[:32]}.so"
    with _LOCK:
        if not so.exists():
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=folder) as tmp:
                    c, lib = Path(tmp) / "row.c", Path(tmp) / "row.so"
                    c.write_text(source)
                    subprocess.run([cc, *FLAGS, str(c), "-o", str(lib), "-lm"], check=True,
                                   capture_output=True, timeout=600)  # fmt: skip
                    os.replace(lib, so)
            except (OSError, subprocess.SubprocessError):
                return None
        return ctypes.CDLL(str(so))


ENABLED = os.environ.get("TPSOPT_NATIVE", "on") != "off"
"""Whether :func:`row_function` builds native code (``TPSOPT_NATIVE=off`` at import
turns it off; tests flip this flag)."""


@functools.cache
def row_function(treedef, n: int, dtype):
    """``call(head_address, numbers) → list`` for one record structure and ``dtype``, or
    None where native code is unavailable (no C compiler, ``ENABLED`` false, a primitive
    without a rule). ``head_address``: address of the records' flat vector ``[n]`` of
    ``dtype`` (kept alive by the caller); ``numbers``: the 12 degrees and workload
    numbers; the list: the packed results ``[N_OUT]`` as Python numbers (what
    :func:`search.evaluate.single_program` returns for ``x = [records, numbers]``).
    Compiled once per structure and dtype (see the module docstring)."""
    if not ENABLED or compiler() is None:
        return None
    from search.interpret import jaxpr_of

    closed = jaxpr_of(treedef, n, np.dtype(dtype))
    try:
        src = c_source(closed)
    except Unsupported:
        return None
    lib = library(src)
    if lib is None:
        return None
    fn = lib.tpsopt_call
    fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    fn.restype = None
    a_out = closed.jaxpr.outvars[0].aval
    out_type = np.ctypeslib.as_ctypes_type(np.dtype(a_out.dtype)) * int(np.prod(a_out.shape))
    numbers_type = ctypes.c_double * 12

    def call(head: int, numbers) -> list:
        out = out_type()
        fn(head, numbers_type(*numbers), out)
        return out[:]

    return call
