"""Kernel-level calibrated mode: closed form of one operator, SOL unchanged and below every
calibrated step, float64 gradients in the calibration parameters, serving loader errors,
leave-one-model-out bookkeeping."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hardware_db as db
from costmodel import kernel_mode as km
from costmodel.decode import decode_step
from costmodel.kernel_time import CollectiveParams, KernelParams
from costmodel.operators import Op
from costmodel.specs import SOL, Parallelism, Workload
from hardware_db import e2e_calibration as ec
from hardware_db.serving import load_serving, parse_serving

GEMM = KernelParams(
    t_floor_s=3e-6, eta_c_max=0.6, m_half_rows=16.0, eta_m_max=0.8, b_half_bytes=2e6
)
SMALL = KernelParams(
    t_floor_s=2e-6, eta_c_max=0.3, m_half_rows=1.0, eta_m_max=0.5, b_half_bytes=1e5
)


def _cal(**kw):
    coll = CollectiveParams(alpha0_s=5e-6, alpha1_s=1e-6, beta_max_bytes_per_s=2e11, gamma=0.1)
    base = dict(
        gemm=GEMM, gemm_ffn=GEMM, attention=GEMM, mla=GEMM, moe=GEMM, small=SMALL,
        all_reduce=coll, all_gather=coll, all_to_all=coll, step_overhead_s=1e-4, aux_kernels=0.5,
    )  # fmt: skip
    return km.KernelCalibration(**{**base, **kw})


def test_one_op_closed_form():
    """A GEMV-like op by hand: 4 tokens, 50 MB of weights, 3 kernels (2 auxiliary)."""
    flops, q, m, peak, bw = 4e8, 5e7, 4.0, 1e15, 3e12
    op = Op(flops, q, 0.0, 0.0, 16.0, 3.0, 1.0, rows=m)
    t, (f, c, mem, aux) = km.op_time_s(op, _cal(), False, peak, bw)
    t_c = flops * (m + 16.0) / (m * peak * 0.6)  # 4e8·20/(4·6e14) = 3.33 µs
    t_m = (q + 2e6) / (bw * 0.8)  # 21.67 µs
    t_aux = 0.5 * 2 * max(2e-6, 1e5 / (bw * 0.5))  # 2 µs
    assert math.isclose(t_c, 3.3333e-6, rel_tol=1e-4) and math.isclose(t_m, 2.1667e-5, rel_tol=1e-4)
    assert float(t) == pytest.approx(max(3e-6, t_c, t_m) + t_aux, rel=1e-12)
    assert float(mem) == pytest.approx(t_m) and float(c) == 0.0 and float(f) == 0.0
    assert float(aux) == pytest.approx(2e-6)
    # a fused op (kernels = 0) pays no floor and no latency half-point
    fused = op._replace(kernels=0.0, flops=0.0, weight_bytes=1e3)
    assert float(km.op_time_s(fused, _cal(), False, peak, bw)[0]) == pytest.approx(1e3 / 2.4e12)


def test_collective_closed_form():
    """α(n) + bus/β(n) for an 8-rank all-reduce of 64 KB, above its SOL."""
    msg, n = 65536.0, 8.0
    t, (lat, band) = km.collective_time_s("all_reduce", msg, n, 1e-6, (1e-6, 0.0), _cal())
    bus = 2 * 7 / 8 * msg
    expect_lat = 5e-6 + 1e-6 * 3
    expect_band = bus / (2e11 * (2 / 8) ** 0.1)
    assert float(lat) == pytest.approx(expect_lat) and float(band) == pytest.approx(expect_band)
    assert float(t) == pytest.approx(expect_lat + expect_band)
    assert float(km.collective_time_s("all_reduce", msg, 1.0, 0.0, (0.0, 0.0), _cal())[0]) == 0


def test_collector_launches_removed_from_trtllm_fp8_gemm():
    """The TensorRT-LLM per-tensor FP8 GEMM table times 3 dynamic-quantisation launches the
    served step does not run: floor and memory intercept b_half/(W·η_m,max) each lose
    3 × 2.5 µs (floored at 0); other tables are used as fitted."""
    kern, _, _ = ec.kernel_tables()
    raw = next(e for e in kern if e["name"] == "h100_sxm/trtllm/gemm/fp8/torch_flow")
    got, used = ec.table_values("h100_sxm", "trtllm", {"gemm": "fp8"})
    t_x = 3 * ec.SMALL_PRIOR["t_floor_s"]
    wm = float(db.load_system("hgx-h100-8").chip.hbm_bw_bytes_per_s) * raw["eta_m_max"]
    assert "less 3 collector launches" in used[0]
    assert got["gemm.t_floor_s"] == pytest.approx(max(raw["t_floor_s"] - t_x, 0.0))
    assert got["gemm.b_half_bytes"] == pytest.approx(max(raw["b_half_bytes"] / wm - t_x, 0) * wm)
    assert got["gemm.eta_m_max"] == raw["eta_m_max"]
    vraw = next(e for e in kern if e["name"].startswith("h100_sxm/vllm/gemm/fp8/"))
    vgot, _ = ec.table_values("h100_sxm", "vllm", {"gemm": "fp8"})
    assert vgot["gemm.t_floor_s"] == vraw["t_floor_s"]
    assert vgot["gemm.b_half_bytes"] == vraw["b_half_bytes"]


CONFIGS = [
    ("llama-3.1-70b", "fp8", "hgx-h200-8", Parallelism(attn_tp=4, moe_tp=4), 4, 2048),
    ("llama-3.1-8b", "bf16", "hgx-h100-8", Parallelism(), 1, 1500),
    ("deepseek-v3", "fp8-block", "hgx-b200-8", Parallelism(attn_tp=8, ep=8), 8, 5000),
    ("qwen3-235b-a22b", "fp8-block", "hgx-h100-8", Parallelism(attn_tp=4, ep=4), 2, 1000),
    ("glm-5", "nvfp4-moe-fp8kv", "hgx-b200-8", Parallelism(attn_tp=8, moe_tp=8), 4, 8000),
    ("kimi-k2.5", "int4-experts", "gb200-nvl72", Parallelism(attn_tp=8, attn_dp=2, ep=16), 8, 9000),
]


def _records(name, recipe, system, par, batch, ctx):
    spec, _ = db.load_model(name)
    return spec, db.load_precision(recipe), db.load_system(system), par, Workload(batch, ctx)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_sol_unchanged_and_below_calibrated(cfg):
    rec = _records(*cfg)
    sol = decode_step(*rec, SOL)
    # the kernel-level mode at its SOL constants is SOL
    ksol = decode_step(*rec, km.KERNEL_SOL_MODE)
    assert float(ksol.step_time_s) == pytest.approx(float(sol.step_time_s), rel=1e-6)
    # any admissible calibration, and the kernel-table prior of each stack, is above SOL
    cals = [_cal()]
    for hw, sw in (("h200_sxm", "vllm"), ("b200_sxm", "trtllm"), ("h100_sxm", "sglang")):
        vals = ec.values_of(jnp.asarray(ec.table_theta(hw, sw, ec.precisions_of(rec[1]))))
        cals.append(km.from_values(ec.nested(vals, ec.AUX_KERNELS[sw])))
    for cal in cals:
        r = decode_step(*rec, cal)
        assert float(r.step_time_s) >= float(sol.step_time_s)
        parts = r.breakdown_s
        total = sum(float(getattr(parts, f)) for f in parts.__dataclass_fields__)
        assert total == pytest.approx(float(r.step_time_s), rel=1e-9)


def test_gradients_finite_float64():
    rec = _records(*CONFIGS[2])
    theta0 = ec.table_theta("b200_sxm", "trtllm", ec.precisions_of(rec[1]))
    with jax.enable_x64(True):

        def f(th):
            cal = km.from_values(ec.nested(ec.values_of(th), 0.5))
            return jnp.log(decode_step(*rec, cal).step_time_s)

        g = jax.grad(f)(jnp.asarray(theta0, jnp.float64))
    assert g.dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(g)))
    assert float(jnp.max(jnp.abs(g))) > 0


HEADER = (
    "id,backend,backend_version,model_path,system,precision,gemm_quant_mode,moe_quant_mode,"
    "isl,osl,concurrency,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,"
    "moe_ep_size,silicon_tpot_ms,silicon_ttft_ms,source_note"
)
ROW = "r1,vllm,0.1,meta-llama/Llama-3.1-70B,h200_sxm,fp8,fp8,fp8,1024,1024,4,4,4,1,,1,1,9.5,50,x"


def test_block_scaled_checkpoint_runs_block_kernels():
    """An ``fp8`` row of a checkpoint with 128×128 block scales (Qwen3-235B-A22B-FP8,
    DeepSeek-V3) runs the block-scaled recipe and kernel tables; Llama's does not."""
    row = ROW.replace("meta-llama/Llama-3.1-70B", "Qwen/Qwen3-235B-A22B-FP8")
    row = row.replace(",4,1,,1,1,", ",4,1,,4,1,")
    (r,) = parse_serving(HEADER + "\n" + row + "\n")
    assert r.recipe == "fp8-block" and r.kernel_precision["gemm"] == "fp8_block"
    assert r.kernel_precision["moe"] == "fp8_block"
    (r,) = parse_serving(HEADER + "\n" + ROW + "\n")
    assert r.recipe == "fp8" and r.kernel_precision["gemm"] == "fp8"


def test_serving_loader_maps_a_row():
    (r,) = parse_serving(HEADER + "\n" + ROW + "\n")
    assert (r.model, r.system, r.recipe, r.software) == (
        "llama-3.1-70b",
        "hgx-h200-8",
        "fp8",
        "vllm",
    )
    assert (r.attn_tp, r.attn_dp, r.ep, r.moe_tp, r.batch, r.context) == (4, 1, 1, 4, 4.0, 1536.0)
    assert r.tpot_s == pytest.approx(9.5e-3) and r.usable


@pytest.mark.parametrize(
    "text, match",
    [
        (HEADER.replace(",osl", "") + "\n", "missing column"),
        (HEADER + "\n" + ROW.replace(",4,4,4,1,", ",4,x,4,1,") + "\n", "batch_size"),
        (HEADER + "\n" + ROW.replace("9.5", "-1") + "\n", "silicon_tpot_ms"),
        (HEADER + "\n" + ROW.replace("vllm", "ollama", 1) + "\n", "backend"),
        (HEADER + "\n" + ROW + "\n" + ROW + "\n", "duplicate"),
    ],
)
def test_serving_loader_errors_one_line(text, match):
    with pytest.raises(db.DbError, match=match) as e:
        parse_serving(text, "serving.csv")
    assert "\n" not in str(e.value) and str(e.value).startswith("serving.csv:")


def test_lomo_bookkeeping(monkeypatch):
    """A row's leave-one-model-out prediction does not move when only its own measurement
    changes (its model's rows have weight 0 in the fit that predicts it). The model is
    replaced by a cheap linear one (the bookkeeping does not depend on it; gradients
    through ``decode_step`` are checked above)."""
    from search.fidelity import e2e_fit as E

    def cheap(params, pb, with_prefill=True):
        return pb.prior[:, 0] + params["s"][pb.sw, 0] + params["f"][pb.fam, 0] + params["p"][pb.sw]

    monkeypatch.setattr(E, "predict_log", cheap)
    rows = load_serving(usable_only=True, max_users=8)
    pick = []
    for m in ("llama-3.1-8b", "qwen3-32b"):
        pick += [r for r in rows if r.model == m and r.stack == "h100_sxm/trtllm"][:2]
    pb = E.build_problem(pick)
    w = E.lomo_weights(pb)
    assert w.shape == (3, 4) and np.all(w[1 + pb.model, np.arange(4)] == 0)
    y = pb.log_t.copy()
    loo_a = E.lomo(pb, y, iterations=3, scales=(1.0,)).loo
    y[0] += 0.5
    lo_b = E.lomo(pb, y, iterations=3, scales=(1.0,))
    ins_b, loo_b = lo_b.insample, lo_b.loo
    assert loo_b[0] == pytest.approx(loo_a[0], abs=1e-12)
    assert np.all(np.isfinite(ins_b)) and abs(ins_b[0] - loo_a[0]) > 1e-6  # in-sample moves


def test_nested_prior_scale_bookkeeping(monkeypatch):
    """With several prior scales, each held-out model's λ is chosen on fits without it
    (pairs left out together): its rows' predictions, and its λ, do not move when only
    its own measurements change."""
    from search.fidelity import e2e_fit as E

    def cheap(params, pb, with_prefill=True):
        return pb.prior[:, 0] + params["s"][pb.sw, 0] + params["f"][pb.fam, 0] + params["p"][pb.sw]

    monkeypatch.setattr(E, "predict_log", cheap)
    rows = load_serving(usable_only=True, max_users=8)
    pick = []
    for m in ("llama-3.1-8b", "qwen3-32b", "qwen3-235b-a22b"):
        pick += [r for r in rows if r.model == m and r.stack == "h100_sxm/trtllm"][:2]
    pb = E.build_problem(pick)
    assert E.lomo_weights(pb, pairs=True).shape == (1 + 3 + 3, 6)
    y = pb.log_t.copy()
    a = E.lomo(pb, y, iterations=3, scales=(0.01, 1.0))
    own = pb.model == pb.model[0]
    y[own] += np.array([0.7, -0.4])
    b = E.lomo(pb, y, iterations=3, scales=(0.01, 1.0))
    assert np.allclose(b.loo[own], a.loo[own], atol=1e-12)
    name = pb.model_names[pb.model[0]]
    assert b.scale_by_model[name] == a.scale_by_model[name]
    assert set(a.scale_by_model) == set(pb.model_names) and len(a.mape_by_scale) == 2


def test_calibrated_mode_lookup_and_transfer():
    """``--mode calibrated`` picks the kernel-level record for a fitted stack, transfers it
    to hardware never measured, and falls back to the six scalars for other software."""
    from costmodel.specs import Efficiency
    from search.scenario import scenario

    sc = scenario("llama-3.1-8b", "hgx-h100-8", mode="calibrated", software="trtllm")
    assert isinstance(sc.mode, km.KernelCalibration) and sc.mode_name == "kernel:h100_sxm/trtllm"
    lo, hi = sc.interval
    assert lo < 0 < hi
    sc = scenario("llama-3.1-70b", "mi300x-8", mode="calibrated", software="vllm")
    assert isinstance(sc.mode, km.KernelCalibration)
    assert sc.mode_name.startswith("transferred:") and "never measured" in sc.notes[0]
    sc = scenario("llama-3.1-8b", "hgx-h100-8", mode="calibrated", software="mlc")
    assert isinstance(sc.mode, Efficiency) and sc.interval == ()


# ----------------------------------------------------------------------------- launch tables


def test_launch_table_closed_form():
    """With a stack's launch table an op pays its row's auxiliary kernels (small class) and
    extra GEMM launches (GEMM floor) instead of ``(kernels − 1)·aux_kernels``; an absent
    operator (``present = 0``) pays nothing beyond its own (zero) bytes."""
    peak, bw = 1e15, 3e12
    op = Op(4e8, 5e7, 0.0, 0.0, 16.0, 3.0, 1.0, rows=4.0, tag="dense_ffn")
    table = {"dense_ffn": (2.0, 1.0, 5.0, 3.0)}
    cal = _cal(launches=km.launch_array(table))
    t_plain, _ = km.op_time_s(op, _cal(), False, peak, bw)
    t, (_, _, _, aux) = km.op_time_s(op, cal, False, peak, bw)
    small = max(2e-6, 1e5 / (bw * 0.5))
    gemm = max(3e-6, 2e6 / (bw * 0.8))  # an empty GEMM: max(floor, b_half/(W·η_m))
    assert float(aux) == pytest.approx(2 * small + 1 * gemm)
    main = float(t_plain) - 0.5 * 2 * small  # the legacy op: main + (3 − 1)·0.5 aux
    assert float(t) == pytest.approx(main + 2 * small + gemm)
    # the MLA column
    t_mla, (_, _, _, aux_mla) = km.op_time_s(op, cal, True, peak, bw)
    assert float(aux_mla) == pytest.approx(5 * small + 3 * gemm)
    # absent operator: no launches
    gone = op._replace(present=0.0, kernels=0.0, flops=0.0, weight_bytes=0.0)
    assert float(km.op_time_s(gone, cal, False, peak, bw)[1][3]) == 0.0
    # a tag the table does not list launches nothing beyond its main kernel
    other = op._replace(tag="o_proj")
    assert float(km.op_time_s(other, cal, False, peak, bw)[1][3]) == 0.0


def test_launch_tables_cover_every_operator():
    """Every stack's table has a row per operator tag, non-negative counts; every operator
    of a decode step carries a tag the tables know."""
    from costmodel.decode import op_plan
    from hardware_db.stack_kernels import LAUNCHES

    for sw, table in LAUNCHES.items():
        assert set(table) == set(km.OP_TAGS), sw
        assert all(len(v) == 4 and min(v) >= 0 for v in table.values()), sw
    for cfg in CONFIGS:
        spec, prec, system, par, wl = _records(*cfg)
        assert {o.tag for o in op_plan(spec, prec, par, wl)} <= set(km.OP_TAGS)


def test_indexer_launches_raise_dsa_models_only():
    """GLM-5's DSA indexer kernels are charged on an MLA + sparse model; a GQA model's step is
    unchanged by the indexer row."""
    from hardware_db.stack_kernels import LAUNCHES

    vals = ec.values_of(jnp.asarray(ec.table_theta("b200_sxm", "sglang", ec.precisions_of(
        db.load_precision("fp8-block")))))  # fmt: skip
    base = dict(LAUNCHES["sglang"])
    no_idx = dict(base, indexer=(0, 0, 0, 0))
    glm = _records("glm-5", "fp8-block", "hgx-b200-8", Parallelism(attn_tp=8, ep=8), 4, 2000)
    llama = _records("llama-3.1-70b", "fp8", "hgx-b200-8", Parallelism(attn_tp=8), 4, 2000)
    step = {}
    for name, rec in (("glm", glm), ("llama", llama)):
        for key, table in (("with", base), ("without", no_idx)):
            cal = km.from_values(ec.nested(vals, 1.0, launches=table))
            step[name, key] = float(decode_step(*rec, cal).step_time_s)
    assert step["glm", "with"] > step["glm", "without"]
    assert step["llama", "with"] == pytest.approx(step["llama", "without"], rel=1e-12)
    # 78 sparse layers (the MTP layer does not run without speculation) × 8 aux kernels
    assert step["glm", "with"] - step["glm", "without"] > 78 * 8 * 1e-6
