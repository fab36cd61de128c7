"""search.evaluate: a loop of evaluate == evaluate_many == jitted decode_step.

Through the XLA program (native code off) exactly (compiled with the same options,
search.jit.jit_fast_compile: XLA's fusion choices can move the last bit of a sum);
through native code (search.native, where a C compiler is found) to float rounding
(its own exp/log/pow), ``fits`` and ``reason`` exactly."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from costmodel.decode import decode_step
from costmodel.specs import Parallelism
from search import native
from search.evaluate import (
    SEQUENTIAL_BYTES,
    Result,
    degrees_of,
    evaluate,
    evaluate_many,
    float_dtype,
    input_parts,
    packed_rows,
    resolve,
)
from search.jit import jit_fast_compile
from search.scenario import scenario

NATIVE = [False, True] if native.compiler() is not None else [False]
"""Both single-call paths where a C compiler is found."""


def _same(got, want, exact: bool, rtol: float = 1e-13, what=""):
    if exact:
        assert got == want, what
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, err_msg=what)


TINY = "tests/data/db/models/tiny-moe.toml"
CASES = [
    ("deepseek-v3", "gb200-nvl72", (8, 1, 1, 8, 1, 1), 1, 4096),
    ("llama-3.1-70b", "hgx-h100-8", (8, 1, 1, 1, 8, 1), 4, 2048),
    (TINY, "hgx-h100-8", (2, 1, 2, 4, 1, 1), 8, 512),
    ("kimi-k2.5", "reticle-die", (16, 1, 4, 64, 1, 2), 1, 8192),
]


def _jitted(model, system, split, batch, context, chips=None):
    sc = scenario(model, system, batch=batch, context=context, chips=chips)
    par = Parallelism(*map(float, split))
    return jit_fast_compile(decode_step)(
        sc.model, sc.precision, sc.system, par, sc.workload, sc.mode
    )


@pytest.mark.parametrize("use_native", NATIVE, ids=lambda v: "native" if v else "xla")
@pytest.mark.parametrize("case", CASES, ids=[c[0].rsplit("/", 1)[-1] for c in CASES])
def test_loop_equals_list_equals_decode_step(case, use_native, monkeypatch):
    monkeypatch.setattr(native, "ENABLED", use_native)
    model, system, split, batch, context = case
    chips = 4096 if system == "reticle-die" else None
    ref = _jitted(model, system, split, batch, context, chips)
    one = evaluate(model, system, split, batch=batch, context=context, chips=chips)
    many = evaluate_many(
        [
            dict(
                model=model,
                system=system,
                parallelism=split,
                batch=batch,
                context=context,
                chips=chips,
            )
        ]
        * 3  # fmt: skip
    )
    cols = evaluate_many(
        model=model, system=system, parallelism=[split] * 5, batch=batch, context=context,
        chips=chips,
    )  # fmt: skip
    assert isinstance(one, Result)
    for f in Result._fields[:-1]:
        want = np.asarray(getattr(ref, f))
        if f == "energy_j_per_token":  # a sum whose order XLA may change: 1 ulp seen
            np.testing.assert_allclose(getattr(one, f), want, rtol=1e-13)
        else:
            _same(getattr(one, f), want, not use_native or f in ("fits", "reason"), what=f)
        # vmapped: XLA may order a reduction differently (seen: 1 ulp in energy)
        np.testing.assert_allclose(getattr(many, f), want, rtol=1e-14, err_msg=f)
        np.testing.assert_allclose(getattr(cols, f), want, rtol=1e-14, err_msg=f)
        if f not in ("fits", "reason"):
            assert getattr(many, f).dtype == want.dtype, f
    for f in one.breakdown._fields:
        want = np.asarray(getattr(ref.breakdown_s, f))
        _same(getattr(one.breakdown, f), want, not use_native, what=f)
        np.testing.assert_allclose(getattr(many.breakdown, f), want, rtol=1e-14)
    assert (one.fits, one.reason) == (bool(ref.fits), int(ref.reason))


def test_mixed_list_in_input_order_and_row():
    cfgs = [
        dict(model=m, system=s, parallelism=p, batch=b, context=c)
        for m, s, p, b, c in CASES[:3]
        for _ in range(2)
    ]
    res = evaluate_many(cfgs)
    assert len(res) == 6
    for i, c in enumerate(cfgs):
        one = evaluate(c["model"], c["system"], c["parallelism"], batch=c["batch"],
                       context=c["context"])  # fmt: skip
        _rows_close(res.row(i), one)


def _rows_close(a: Result, b: Result) -> None:
    """Equal to float rounding (a list runs XLA's vmapped program, a call native code);
    ``fits`` and ``reason`` exactly."""
    assert (a.fits, a.reason) == (b.fits, b.reason)
    for f in Result._fields[:-1]:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-13, err_msg=f)
    np.testing.assert_allclose(a.breakdown, b.breakdown, rtol=1e-13)


def test_rows_program_equals_single_program():
    flat = resolve("deepseek-v3", "gb200-nvl72")
    splits = [(t, 1, 1, e, t // e, p) for t in (4, 8) for e in (1, 2, 4) for p in (1, 2)]
    rows = np.asarray([[*s, b, 4096, 0, 0, 0, 1] for s in splits for b in (1, 8)], float)
    loop = packed_rows([flat] * len(rows), rows)
    import search.evaluate as E

    old, E.LOOP_ROWS = E.LOOP_ROWS, 0
    try:
        vec = packed_rows([flat] * len(rows), rows)
    finally:
        E.LOOP_ROWS = old
    np.testing.assert_allclose(loop, vec, rtol=1e-14)  # energy: 1 ulp (reduction order)


@pytest.mark.parametrize("itemsize", [4, 8])
def test_input_parts_cover_the_row_in_small_buffers(itemsize):
    for size in (1, 12, 64, 65, 92, 128, 129, 300):
        parts = input_parts(size, itemsize)
        assert parts[0][0] == 0 and parts[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert all(0 < (hi - lo) * itemsize <= SEQUENTIAL_BYTES for lo, hi in parts)
        assert len(parts) == math.ceil(size * itemsize / SEQUENTIAL_BYTES)


@pytest.mark.parametrize("use_native", NATIVE, ids=lambda v: "native" if v else "xla")
def test_float32_call_equals_decode_step(use_native, monkeypatch):
    """Without x64 (JAX's default, one input part): the same values as the jitted
    ``decode_step`` in float32 (native code: to float32 rounding); ``float_dtype``
    follows the setting."""
    monkeypatch.setattr(native, "ENABLED", use_native)
    model, system, split, batch, context = CASES[1]
    with jax.enable_x64(False):
        assert float_dtype() == np.float32
        ref = _jitted(model, system, split, batch, context)
        one = evaluate(model, system, split, batch=batch, context=context)
    assert float_dtype() == np.float64
    assert np.asarray(ref.utps).dtype == np.float32
    for f in Result._fields[:-1]:
        want = np.asarray(getattr(ref, f))
        if f == "energy_j_per_token":  # a sum whose order XLA may change
            np.testing.assert_allclose(getattr(one, f), want, rtol=2e-6)
        else:
            _same(getattr(one, f), want, not use_native or f in ("fits", "reason"), 2e-6, f)


def test_list_of_dicts_every_form_of_arguments():
    """Names or records, degrees as a tuple, list, mapping or record, workload as keywords
    or a record: the same configuration four ways gives the same row, equal to
    ``evaluate``; bad rows are named."""
    from search.errors import UserError

    sc = scenario("deepseek-v3", "gb200-nvl72", batch=8, context=4096)
    names = dict(model="deepseek-v3", system="gb200-nvl72")
    cfgs = [
        dict(**names, parallelism=(8, 1, 1, 8, 1, 1), batch=8, context=4096),
        dict(**names, parallelism={"tp": 8, "ep": 8}, batch=8, context=4096),
        dict(**names, parallelism=Parallelism(8.0, 1.0, 1.0, 8.0, 1.0, 1.0), workload=sc.workload),
        dict(
            model=sc.model,
            precision=sc.precision,
            system=sc.system,
            mode=sc.mode,
            parallelism=[8, 1, 1, 8, 1, 1],
            batch=8,
            context=4096,
        ),  # fmt: skip
        dict(**names, parallelism=(8, 1, 1, 8, 1, 1), batch=1, context=4096),
    ]
    res = evaluate_many(cfgs)
    for i in (1, 2, 3):
        assert res.row(i) == res.row(0), i
    assert res.row(4) != res.row(0)
    one = evaluate("deepseek-v3", "gb200-nvl72", (8, 1, 1, 8, 1, 1), batch=1, context=4096)
    _rows_close(res.row(4), one)
    with pytest.raises(UserError, match="configuration 1 has no parallelism"):
        evaluate_many([cfgs[0], dict(names)])
    with pytest.raises(UserError, match="batch"):
        evaluate_many([cfgs[0], dict(cfgs[0], batch=0)])
    with pytest.raises(UserError, match="parallelism"):
        evaluate_many([dict(cfgs[0], parallelism=(8, 1, 1, 8, 1))])
    assert len(evaluate_many([])) == 0


def test_long_list_in_chunks_over_devices_equals_one_device(monkeypatch):
    """A list longer than MAX_ROWS: chunks dispatched round-robin to every local device
    (2+ when ``search`` split the CPU) and read back in order equal the same chunks run
    on one device (same program and shape: bit-identical); the fused layout of long
    lists equals the short-list (stacked) values to float rounding."""
    import jax

    import search.evaluate as E

    monkeypatch.setattr(E, "MAX_ROWS", 8)
    monkeypatch.setattr(E, "FUSED_ROWS", 8)
    splits = [(t, 1, 1, e, t // e, p) for t in (4, 8) for e in (1, 2, 4) for p in (1, 2)]
    par = np.asarray([*splits, *splits, *splits, splits[0], splits[5]], float)  # 38 rows
    batch = np.arange(len(par)) % 3 + 1
    kw = dict(model="deepseek-v3", system="gb200-nvl72", context=4096)
    whole = evaluate_many(parallelism=par, batch=batch, **kw)
    devices = jax.local_devices()
    monkeypatch.setattr(jax, "local_devices", lambda: devices[:1])
    one_device = evaluate_many(parallelism=par, batch=batch, **kw)
    rtol = 1e-12 if E.float_dtype() == np.float64 else 2e-6
    for lo in range(0, len(par), 8):
        part = evaluate_many(parallelism=par[lo : lo + 8], batch=batch[lo : lo + 8], **kw)
        for f in Result._fields[:-1]:
            np.testing.assert_array_equal(getattr(whole, f), getattr(one_device, f))
            got, want = getattr(whole, f)[lo : lo + 8], getattr(part, f)
            np.testing.assert_allclose(got, want, rtol=rtol, err_msg=f)


def test_arguments():
    assert degrees_of({"tp": 8, "ep": 4, "moe_tp": 2}) == (8.0, 1.0, 1.0, 4.0, 2.0, 1.0)
    assert degrees_of(Parallelism(2.0, 1.0, 1.0, 2.0, 1.0, 1.0))[0] == 2.0
    from search.errors import UserError

    with pytest.raises(UserError, match="parallelism"):
        degrees_of((1, 2))
    with pytest.raises(UserError, match="batch"):
        evaluate("deepseek-v3", "gb200-nvl72", (8, 1, 1, 8, 1, 1), batch=0)
    r = evaluate("deepseek-v3", "gb200-nvl72")  # default split
    assert r.fits and r.utps > 0


@pytest.mark.parametrize("use_native", NATIVE, ids=lambda v: "native" if v else "xla")
def test_new_model_of_same_structure_compiles_nothing(use_native, monkeypatch):
    """A model or system never seen, of a structure already evaluated, reuses its
    program: the XLA program's cache (native off), or the native library (no build)."""
    from search.evaluate import single_program

    monkeypatch.setattr(native, "ENABLED", use_native)
    evaluate(TINY, "hgx-h100-8", (2, 1, 1, 2, 1, 1))
    built = native.row_function.cache_info().currsize
    f = resolve(TINY, "hgx-h100-8")
    dt = float_dtype()
    assert (f.call(dt)[3] is not None) == use_native
    before = single_program.cache_info().currsize
    sizes = [single_program(*k)._cache_size() for k in _keys()]
    evaluate("llama-3.1-70b", "hgx-h100-8", (2, 1, 1, 1, 2, 1))
    evaluate("deepseek-v3", "hgx-h100-8", (2, 1, 1, 2, 1, 1))
    assert single_program.cache_info().currsize == before
    assert [single_program(*k)._cache_size() for k in _keys()] == sizes
    assert native.row_function.cache_info().currsize == built


def _keys():
    f = resolve(TINY, "hgx-h100-8")
    return [(f.treedef, f.n)]


SMALL = [
    (TINY, "hgx-h100-8", {"batch": [1, 2, 4], "tiers.nvlink.hop_latency_s": [1e-7, 1e-6]}),
    (TINY, "hgx-h100-8", {"overlap": [0.0, 0.5, 1.0]}),
    ("deepseek-v3", "gb200-nvl72", {"pp": [1, 2], "batch": [1, 8]}),
    (TINY, "hgx-h100-8", {"chip.hbm_capacity_bytes": [3e5, 8e10], "context": [512, 4096]}),
]


def test_kernel_level_calibrated_records_with_a_table_leaf():
    """The kernel-level calibrated mode carries a launch table (a matrix leaf): the flat
    row holds it raveled (``Layout`` shapes) and the call equals the jitted
    ``decode_step`` on the same records; a list equals the loop."""
    kw = dict(batch=4, context=8192, mode="calibrated", software="vllm")
    sc = scenario("llama-3.1-70b", "hgx-h100-8", **kw)
    assert any(np.ndim(x) > 0 for x in jax.tree.leaves(sc.mode))
    par = Parallelism(8.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    ref = jit_fast_compile(decode_step)(
        sc.model, sc.precision, sc.system, par, sc.workload, sc.mode
    )
    one = evaluate("llama-3.1-70b", "hgx-h100-8", {"tp": 8}, **kw)
    np.testing.assert_allclose(one.tpot_s, float(ref.tpot_s), rtol=1e-12)
    flat = resolve("llama-3.1-70b", "hgx-h100-8", mode="calibrated", software="vllm")
    if native.compiler() is not None:  # the table leaf compiles natively too
        assert flat.call(float_dtype())[3] is not None
    many = evaluate_many(
        model="llama-3.1-70b", system="hgx-h100-8", parallelism=[[8, 1, 1, 1, 1, 1]] * 2,
        batch=[4, 4], context=8192, mode="calibrated", software="vllm",
    )  # fmt: skip
    np.testing.assert_allclose(many.tpot_s, [one.tpot_s] * 2, rtol=1e-12)
