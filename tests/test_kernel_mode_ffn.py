"""Feed-forward dense GEMMs (``gemm_ffn``) in the kernel-level calibrated mode: which
operators use the class, its kernel-table prior at the recipe's FFN precision, offsets tied
to ``gemm``'s, bit-identical predictions where the FFN and attention precisions agree, SOL
untouched."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hardware_db as db
from costmodel import kernel_mode as km
from costmodel import kernel_time as kt
from costmodel.decode import decode_step
from costmodel.kernel_time import KernelParams
from costmodel.operators import Op
from costmodel.specs import SOL, Parallelism, Workload
from hardware_db import e2e_calibration as ec
from search.fidelity import e2e_fit as ef

FIELDS = ec.KERNEL_FIELDS


def _records(model, recipe, system, par, batch, ctx):
    spec, _ = db.load_model(model)
    return spec, db.load_precision(recipe), db.load_system(system), par, Workload(batch, ctx)


def _classes_by_tag(rec):
    """``{tag: {kclass}}`` of one decode step's operators (decode's own op list)."""
    from costmodel.decode import op_plan

    spec, prec, _, par, wl = rec
    out: dict = {}
    for op in op_plan(spec, prec, par, wl):
        out.setdefault(op.tag, set()).add(op.kclass)
    return out


def test_ffn_operators_use_gemm_ffn():
    """Dense FFN layers and shared experts are ``gemm_ffn``; attention / MLA projections,
    router, LM head keep ``gemm``."""
    rec = _records("deepseek-v3", "nvfp4-moe", "hgx-b200-8", Parallelism(attn_tp=8, ep=8), 4, 1024)
    got = _classes_by_tag(rec)
    assert got["dense_ffn"] == {"gemm_ffn"} and got["shared_expert"] == {"gemm_ffn"}
    for tag in ("attn_proj", "o_proj", "router", "lm_head"):
        assert got[tag] == {"gemm"}, tag
    assert got["moe_experts"] == {"moe"}


def test_precisions_of_mixed_and_uniform_recipes():
    """``gemm`` follows the attention linears, ``gemm_ffn`` the FFN linears."""
    p = ec.precisions_of(db.load_precision("nvfp4-moe"))
    assert (p["gemm"], p["gemm_ffn"], p["moe"]) == ("bfloat16", "nvfp4", "nvfp4")
    p = ec.precisions_of(db.load_precision("fp8-ffn"))
    assert (p["gemm"], p["gemm_ffn"]) == ("bfloat16", "fp8")
    for recipe in ("bf16", "fp8", "fp8-block"):
        p = ec.precisions_of(db.load_precision(recipe))
        assert p["gemm_ffn"] == p["gemm"]


def test_mixed_recipe_picks_the_ffn_table():
    """fp8-ffn on H100/vLLM: ``gemm_ffn`` holds the stored prior's FP8 GEMM constants,
    ``gemm`` the BF16 ones, and they differ."""
    prec = ec.precisions_of(db.load_precision("fp8-ffn"))
    vals, used = ec.table_values("h100_sxm", "vllm", prec)
    fp8, used8 = ec.table_values("h100_sxm", "vllm", {"gemm": "fp8"})
    bf16, used16 = ec.table_values("h100_sxm", "vllm", {"gemm": "bfloat16"})
    kern, _, _ = ec.kernel_tables()
    names = {e["name"]: e for e in kern}
    assert "/gemm/fp8/" in used8[0] and "/gemm/bfloat16/" in used16[0]
    assert used[ec.CLASSES.index("gemm")] == used16[0]
    assert used[len(ec.CLASSES)] == used8[0]  # gemm_ffn comes after the fitted classes
    for f in FIELDS:
        assert vals[f"gemm_ffn.{f}"] == fp8[f"gemm.{f}"] == float(names[used8[0]][f])
        assert vals[f"gemm.{f}"] == bf16[f"gemm.{f}"] == float(names[used16[0]][f])
    assert any(vals[f"gemm_ffn.{f}"] != vals[f"gemm.{f}"] for f in FIELDS)


def test_offsets_are_tied_to_gemm():
    """θ has the fitted offsets' entries plus ``gemm_ffn``'s, which move with ``gemm``'s:
    the end-to-end fit has no new parameter."""
    assert ec.THETA_NAMES[: len(ec.PARAM_NAMES)] == ec.PARAM_NAMES
    assert not any(k.startswith("gemm_ffn.") for k in ec.PARAM_NAMES)
    delta = np.arange(len(ec.PARAM_NAMES), dtype=float) + 1.0
    tied = ec.tied_offsets(delta)
    assert tied.shape == (len(ec.THETA_NAMES),)
    for i, k in enumerate(ec.THETA_NAMES):
        parent = k.replace("gemm_ffn.", "gemm.") if k.startswith("gemm_ffn.") else k
        assert tied[i] == delta[ec.PARAM_NAMES.index(parent)]


def _decode_pair(rec, hw, sw):
    """Step time with the stored calibration and with ``gemm_ffn`` replaced by ``gemm``."""
    name = {"h100_sxm": "hgx-h100-8", "b200_sxm": "hgx-b200-8"}[hw]
    vals, _, _, _ = ec.kernel_values_for(name, sw, rec[1])
    cal = km.from_values(vals)
    same = cal.replace(gemm_ffn=cal.gemm)
    return (
        cal,
        float(decode_step(*rec, cal).step_time_s),
        float(decode_step(*rec, same).step_time_s),
    )


UNIFORM = [
    ("llama-3.1-70b", "fp8", "hgx-h100-8", Parallelism(attn_tp=4, moe_tp=4), 4, 2048, "h100_sxm", "trtllm"),
    ("deepseek-v3", "fp8-block", "hgx-b200-8", Parallelism(attn_tp=8, ep=8), 8, 5000, "b200_sxm", "sglang"),
    ("qwen3-235b-a22b", "bf16", "hgx-h100-8", Parallelism(attn_tp=8, ep=8), 2, 1000, "h100_sxm", "vllm"),
]  # fmt: skip


@pytest.mark.parametrize("cfg", UNIFORM, ids=[c[0] for c in UNIFORM])
def test_uniform_recipe_is_bit_identical(cfg):
    """FFN precision = attention precision: ``gemm_ffn`` equals ``gemm`` exactly (every
    field), so the step is the one with ``gemm`` everywhere, bit for bit."""
    rec = _records(*cfg[:6])
    cal, t, t_same = _decode_pair(rec, *cfg[6:])
    for f in FIELDS:
        assert getattr(cal.gemm_ffn, f) == getattr(cal.gemm, f)
    assert t == t_same


def test_mixed_recipe_prices_ffn_with_its_own_table():
    """nvfp4-moe on B200 (the README's Kimi-K2.5 example shape) and fp8-ffn on H100: the
    FFN GEMMs' constants differ from the attention GEMMs', and the step changes."""
    rec = _records("kimi-k2.5", "nvfp4-moe", "hgx-b200-8", Parallelism(attn_tp=8, ep=8), 4, 1536)
    cal, t, t_same = _decode_pair(rec, "b200_sxm", "vllm")
    assert any(getattr(cal.gemm_ffn, f) != getattr(cal.gemm, f) for f in FIELDS)
    assert t != t_same
    rec = _records("llama-3.1-405b", "fp8-ffn", "hgx-h100-8", Parallelism(attn_tp=8), 1, 2048)
    cal, t, t_same = _decode_pair(rec, "h100_sxm", "vllm")
    assert any(getattr(cal.gemm_ffn, f) != getattr(cal.gemm, f) for f in FIELDS)
    assert t != t_same


def test_op_of_class_gemm_ffn_uses_its_constants():
    """Closed form: a ``gemm_ffn`` op is priced with ``gemm_ffn``'s constants only."""
    slow = KernelParams(
        t_floor_s=9e-6, eta_c_max=0.5, m_half_rows=8.0, eta_m_max=0.5, b_half_bytes=0.0
    )
    fast = KernelParams(
        t_floor_s=1e-6, eta_c_max=0.9, m_half_rows=8.0, eta_m_max=0.9, b_half_bytes=0.0
    )
    cal = km.KERNEL_SOL_MODE.replace(gemm=slow, gemm_ffn=fast)
    op = Op(0.0, 3e6, 0.0, 0.0, 8.0, 1.0, 1.0, kclass="gemm_ffn", rows=1.0)
    bw = 3e12
    t = float(km.op_time_s(op, cal, False, 1e15, bw)[0])
    assert t == pytest.approx(max(1e-6, 3e6 / (bw * 0.9)), rel=1e-12)
    t_gemm = float(km.op_time_s(op._replace(kclass="gemm"), cal, False, 1e15, bw)[0])
    assert t_gemm == pytest.approx(max(9e-6, 3e6 / (bw * 0.5)), rel=1e-12)


def test_sol_mode_unchanged():
    """``KERNEL_SOL_MODE`` gives ``gemm_ffn`` the SOL constants; the SOL step of a mixed
    recipe is the plain SOL step."""
    assert km.KERNEL_SOL_MODE.gemm_ffn == kt.KERNEL_SOL
    rec = _records("kimi-k2.5", "nvfp4-moe", "hgx-b200-8", Parallelism(attn_tp=8, ep=8), 4, 1536)
    sol = float(decode_step(*rec, SOL).step_time_s)
    assert float(decode_step(*rec, km.KERNEL_SOL_MODE).step_time_s) == pytest.approx(sol, rel=1e-6)


def test_row_theta_ties_gradient_float64():
    """d log t / d δ_gemm collects the FFN GEMMs' sensitivity: on a mixed-recipe row the
    gradient through the tied θ equals the sum of both classes' θ gradients."""
    rec = _records("llama-3.1-405b", "fp8-ffn", "hgx-h100-8", Parallelism(attn_tp=8), 1, 2048)
    theta0 = ec.table_theta("h100_sxm", "vllm", ec.precisions_of(rec[1]))
    with jax.enable_x64(True):

        def f_theta(th):
            return jnp.log(decode_step(*rec, ef.mode_of(th, 1.0)).step_time_s)

        def f_delta(d):
            return f_theta(jnp.asarray(theta0) + ec.tied_offsets(d))

        g_th = jax.grad(f_theta)(jnp.asarray(theta0, jnp.float64))
        g_d = jax.grad(f_delta)(jnp.zeros(len(ec.PARAM_NAMES), jnp.float64))
    assert g_d.dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(g_d)))
    for f in FIELDS:
        i, j = ec.PARAM_NAMES.index(f"gemm.{f}"), ec.THETA_NAMES.index(f"gemm_ffn.{f}")
        assert float(g_d[i]) == pytest.approx(float(g_th[i] + g_th[j]), rel=1e-9, abs=1e-15)
    assert float(jnp.max(jnp.abs(g_th[len(ec.PARAM_NAMES) :]))) > 0  # the FFN's FP8 GEMMs
