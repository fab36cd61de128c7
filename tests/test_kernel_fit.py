"""Kernel-level calibration: functional forms, table loader, reproducibility of the fit."""

from __future__ import annotations

import math
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from costmodel import kernel_mode as kmode
from costmodel import kernel_time as kt
from hardware_db import DbError
from hardware_db.kernel_tables import SCHEMAS, KernelTable, load_all, load_table
from search.fidelity import kernel_fit as kf

P = kt.KernelParams(
    t_floor_s=3e-6, eta_c_max=0.7, m_half_rows=16.0, eta_m_max=0.8, b_half_bytes=2e6
)
PEAK, BW = 1e15, 4e12


def test_efficiencies_saturate_and_are_monotone():
    with jax.enable_x64(True):
        qs = jnp.logspace(0, 14, 50)
        em = jax.vmap(lambda q: kt.eta_memory(q, P))(qs)
        assert np.all(np.diff(np.asarray(em)) > 0)
        assert float(kt.eta_memory(1e30, P)) == pytest.approx(0.8, rel=1e-12)
        assert float(kt.eta_memory(2e6, P)) == pytest.approx(0.4, rel=1e-12)
        ms = jnp.logspace(0, 8, 30)
        ec = jax.vmap(lambda m: kt.eta_compute(m, P))(ms)
        assert np.all(np.diff(np.asarray(ec)) > 0)
        assert float(kt.eta_compute(1e30, P)) == pytest.approx(0.7, rel=1e-12)


def test_sol_is_the_roofline_and_a_lower_bound():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        for _ in range(50):
            f, q, m = 10 ** rng.uniform(3, 13), 10 ** rng.uniform(2, 10), 10 ** rng.uniform(0, 3)
            sol = float(kt.kernel_sol_s(f, q, PEAK, BW))
            assert sol == pytest.approx(max(f / PEAK, q / BW), rel=1e-12)
            assert float(kt.kernel_time_s(f, q, m, PEAK, BW, kt.KERNEL_SOL)) == pytest.approx(
                sol, rel=1e-14
            )
            assert float(kt.kernel_time_s(f, q, m, PEAK, BW, P)) >= sol
        # collectives: alpha = 0, beta = link bandwidth
        c = kt.CollectiveParams(alpha0_s=0.0, alpha1_s=0.0, beta_max_bytes_per_s=4e11)
        assert float(kt.collective_time_s(8e6, 2.0, c)) == pytest.approx(2e-5)
        assert float(kt.collective_sol_s(8e6, 4e11)) == pytest.approx(2e-5)


def test_kernel_time_closed_form_and_monotone_in_bytes():
    with jax.enable_x64(True):
        # memory bound: t_floor + (Q + b_half)/(W·eta_m_max)
        t = float(kt.kernel_time_s(1.0, 1e8, 1.0, PEAK, BW, P))
        assert t == pytest.approx(3e-6 + (1e8 + 2e6) / (BW * 0.8), rel=1e-12)
        # tiny kernel: the floor
        assert float(kt.kernel_time_s(1.0, 1.0, 1.0, PEAK, 1e30, P)) == pytest.approx(3e-6)
        qs = jnp.logspace(2, 11, 40)
        ts = jax.vmap(lambda q: kt.kernel_time_s(1e6, q, 8.0, PEAK, BW, P))(qs)
        assert np.all(np.diff(np.asarray(ts)) >= 0)


@pytest.mark.parametrize("beta", [np.inf, 8.0])
def test_gradients_finite_at_and_around_kinks(beta):
    with jax.enable_x64(True):
        # the bytes at which the memory term equals the floor: Q* = t_floor·W·eta - b_half
        q_star = 3e-6 * BW * 0.8 - 2e6
        # the FLOPs at which compute equals memory at Q = 1e8
        tm = (1e8 + 2e6) / (BW * 0.8)
        f_star = tm * PEAK * 0.7 * 8.0 / (8.0 + 16.0)

        def t(params, f, q):
            return kt.kernel_time_s(f, q, 8.0, PEAK, BW, params, beta=beta)

        for f, q in [(1.0, q_star), (1.0, q_star * 1.001), (f_star, 1e8), (f_star * 0.999, 1e8)]:
            g = jax.grad(t)(P, f, q)
            leaves = np.array([float(x) for x in jax.tree.leaves(g)])
            assert np.all(np.isfinite(leaves))
            gq = jax.grad(t, argnums=2)(P, f, q)
            assert np.isfinite(float(gq)) and float(gq) >= 0


Q = P.replace(x_half_units=64.0, t_item_s=1e-9, p_overlap=2.0)


def test_p_norm_fill_factor_and_items():
    with jax.enable_x64(True):
        # p-norm: between the maximum (p = inf) and the sum (p = 1), exact at both ends
        v = (jnp.asarray(3.0), jnp.asarray(4.0), jnp.asarray(0.0))
        assert float(kt.p_norm(v, 2.0)) == pytest.approx(5.0, rel=1e-12)
        assert float(kt.p_norm(v, 1.0)) == pytest.approx(7.0, rel=1e-12)
        assert float(kt.p_norm(v, math.inf)) == 4.0
        assert float(kt.p_norm(v, jnp.inf)) == 4.0
        # fill factor 1 + x_half/x: memory term doubles at x = x_half
        t_full = float(kt.memory_time_s(1e8, BW, Q))
        assert float(kt.memory_time_s(1e8, BW, Q, units=64.0)) == pytest.approx(2 * t_full)
        # items: N·t_item; closed form with p = 2
        t = float(kt.kernel_time_s(1.0, 1.0, 1.0, PEAK, 1e30, Q, items=1e4))
        tc = 1.0 * 17.0 / (PEAK * 0.7)
        tm = (1.0 + 2e6) / (1e30 * 0.8)
        assert t == pytest.approx(3e-6 + math.sqrt(tc**2 + tm**2 + 1e-5**2), rel=1e-9)
        # monotone: more items, fewer units, more bytes -> not faster; >= SOL
        ts = jax.vmap(lambda n: kt.kernel_time_s(1e9, 1e7, 8.0, PEAK, BW, Q, items=n))(
            jnp.logspace(0, 7, 30)
        )
        assert np.all(np.diff(np.asarray(ts)) >= 0)
        tu = jax.vmap(lambda u: kt.kernel_time_s(1e9, 1e7, 8.0, PEAK, BW, Q, units=u))(
            jnp.logspace(0, 6, 30)
        )
        assert np.all(np.diff(np.asarray(tu)) <= 0)
        assert float(tu[-1]) >= float(kt.kernel_sol_s(1e9, 1e7, PEAK, BW))
        g = jax.grad(lambda p: kt.kernel_time_s(1e9, 1e7, 8.0, PEAK, BW, p, units=32.0))(Q)
        assert np.all(np.isfinite([float(x) for x in jax.tree.leaves(g)]))


R = Q.replace(t_row_s=2e-10, t_depth_s=1e-9, d_split=2048.0, p_overlap=1.0)


def test_depth_term_closed_form_and_limits():
    """Serial loop ``t_depth·D·D_s/(D + D_s)``: linear for D ≪ D_s, capped at t_depth·D_s,
    increasing and concave; with p = 1 every term adds."""
    with jax.enable_x64(True):
        assert float(kt.depth_time_s(2048.0, R)) == pytest.approx(1e-9 * 1024.0, rel=1e-12)
        assert float(kt.depth_time_s(1.0, R)) == pytest.approx(1e-9 * 2048 / 2049, rel=1e-12)
        assert float(kt.depth_time_s(1e12, R)) == pytest.approx(1e-9 * 2048.0, rel=1e-6)
        lin = R.replace(d_split=math.inf)
        assert float(kt.depth_time_s(5e5, lin)) == pytest.approx(5e-4, rel=1e-12)
        assert float(kt.depth_time_s(5e5, kt.KERNEL_SOL)) == 0.0
        ds = jnp.logspace(0, 7, 60)
        td = np.asarray(jax.vmap(lambda d: kt.depth_time_s(d, R))(ds))
        assert np.all(np.diff(td) > 0)
        slope = np.diff(td) / np.diff(np.asarray(ds))
        assert np.all(np.diff(slope) < 0)  # concave: the split caps the serial part
        # p = 1: t_floor + t_c + t_m + (N·t_item + R·t_row) + t_depth(D), all closed form
        f, q, m, u, n, r, d = 1e9, 1e7, 8.0, 32.0, 100.0, 400.0, 4096.0
        t = float(kt.kernel_time_s(f, q, m, PEAK, BW, R, units=u, items=n, rows=r, depth=d))
        fill = 1.0 + 64.0 / u
        tc = f * (1 + 16.0 / m) * fill / (PEAK * 0.7)
        tm = (q + 2e6) * fill / (BW * 0.8)
        want = 3e-6 + tc + tm + (n * 1e-9 + r * 2e-10) + 1e-9 * d * 2048 / (d + 2048)
        assert t == pytest.approx(want, rel=1e-12)


def test_depth_and_rows_keep_sol_a_bound_and_gradients_finite():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        for _ in range(30):
            f, q = 10 ** rng.uniform(3, 13), 10 ** rng.uniform(2, 10)
            r, d = 10 ** rng.uniform(0, 5), 10 ** rng.uniform(0, 6)
            t = kt.kernel_time_s(f, q, 4.0, PEAK, BW, R.replace(p_overlap=3.0), rows=r, depth=d)
            assert float(t) >= float(kt.kernel_sol_s(f, q, PEAK, BW))
            # SOL carries no row or depth cost
            sol = kt.kernel_time_s(f, q, 1.0, PEAK, BW, kt.KERNEL_SOL, rows=r, depth=d)
            assert float(sol) == pytest.approx(max(f / PEAK, q / BW), rel=1e-12)
        ts = jax.vmap(lambda d: kt.kernel_time_s(1e6, 1e5, 8.0, PEAK, BW, R, depth=d))(
            jnp.logspace(0, 7, 30)
        )
        assert np.all(np.diff(np.asarray(ts)) >= 0)

        def t(p, d):
            return kt.kernel_time_s(1e6, 1e5, 8.0, PEAK, BW, p, beta=8.0, rows=50.0, depth=d)

        for p_exp in (2.5, math.inf):
            g = jax.grad(t)(R.replace(p_overlap=p_exp), 3000.0)
            assert np.all(np.isfinite([float(x) for x in jax.tree.leaves(g)]))
            assert float(jax.grad(t, argnums=1)(R.replace(p_overlap=p_exp), 3000.0)) >= 0


def test_collective_two_regimes():
    with jax.enable_x64(True):
        c = kt.CollectiveParams(
            alpha0_s=2e-5, beta_max_bytes_per_s=4e11, alpha0_small_s=5e-6, beta_frac_small=0.5
        )
        # small messages: the latency regime; large: the bandwidth regime
        assert float(kt.collective_time_s(1e3, 2.0, c)) == pytest.approx(5e-6 + 1e3 / 2e11)
        assert float(kt.collective_time_s(1e9, 2.0, c)) == pytest.approx(2e-5 + 1e9 / 4e11)
        qs = jnp.logspace(2, 10, 40)
        ts = np.asarray(jax.vmap(lambda q: kt.collective_time_s(q, 8.0, c))(qs))
        assert np.all(np.diff(ts) > 0)
        assert np.all(ts >= np.asarray(qs) / 4e11)
        g = jax.grad(lambda p: kt.collective_time_s(1e6, 8.0, p, beta=8.0))(c)
        assert np.all(np.isfinite([float(x) for x in jax.tree.leaves(g)]))


def test_bus_bytes():
    assert kt.bus_bytes("all_reduce", 8.0, 4.0) == pytest.approx(12.0)
    assert kt.bus_bytes("all_gather", 8.0, 4.0) == pytest.approx(6.0)


def test_all_reduce_sol_bytes_with_and_without_in_switch_reduction():
    """NVLS systems: M per direction; A100 (no in-switch compute): the ring's 2(n−1)/n·M;
    equal at 2 ranks; the SOL of a collective group uses them, the fit's bus bytes do not."""
    m, n = np.array([8.0, 8.0, 8.0]), np.array([2.0, 4.0, 8.0])
    assert np.allclose(kf.all_reduce_sol_bytes("h200_sxm", m, n), [8.0, 8.0, 8.0])
    assert np.allclose(kf.all_reduce_sol_bytes("a100_sxm", m, n), [8.0, 12.0, 14.0])
    assert np.all(kf.all_reduce_sol_bytes("gb200", m, n) <= kt.bus_bytes("all_reduce", m, n))
    tabs = load_all()
    comm = tabs["comm"].select(np.isin(tabs["comm"]["system"], ["h200_sxm", "a100_sxm"]))
    for g in kf.collective_groups({"comm": comm}):
        link = kf.hardware(g["system"])["link"]
        if g["cls"] == "comm:all_reduce" and g["system"] == "h200_sxm":
            msg = g["bus"] * g["ranks"] / (2.0 * (g["ranks"] - 1.0))
            assert np.allclose(g["sol"], msg / link, rtol=1e-12)
        else:
            assert np.allclose(g["sol"], g["bus"] / link, rtol=1e-12)


def _write(tmp_path, text):
    p = tmp_path / "gemm.csv"
    p.write_text(text, encoding="utf-8")
    return p


HEADER = ",".join(c for c, _ in SCHEMAS["gemm"])


@pytest.mark.parametrize(
    "body, message",
    [
        ("", "empty file"),
        ("system,framework\n", "missing column(s) framework_version"),
        (HEADER + ",extra\n", "unexpected column(s) extra"),
        (
            HEADER + "\nh200_sxm,trtllm,1.0,tf,bfloat16,x,8,8,1e-5\n",
            "line 2: m: 'x' is not a number",
        ),
        (HEADER + "\nh200_sxm,trtllm,1.0,tf,bfloat16,0,8,8,1e-5\n", "m: '0' is not a positive"),
        (HEADER + "\nh200_sxm,trtllm,1.0,tf,bfloat16,1,8,8,-1\n", "latency_s: '-1' must be > 0"),
        (HEADER + "\nh200_sxm,trtllm,1.0,tf,,1,8,8,1e-5\n", "line 2: dtype: empty"),
        (HEADER + "\nh200_sxm,trtllm\n", "line 2: 2 fields; expected 9"),
        (HEADER + "\n", "no data rows"),
    ],
)
def test_loader_errors_are_one_line(tmp_path, body, message):
    p = _write(tmp_path, body)
    with pytest.raises(DbError) as e:
        load_table("gemm", p)
    msg = str(e.value)
    assert "\n" not in msg and "gemm.csv" in msg and message in msg, msg


def test_loader_missing_file_and_unknown_table(tmp_path):
    with pytest.raises(DbError, match="no such file"):
        load_table("gemm", tmp_path / "nope.csv")
    with pytest.raises(DbError, match="unknown kernel table"):
        load_table("conv")


def test_packaged_tables_load():
    tabs = load_all()
    assert set(tabs) == set(SCHEMAS)
    for t in tabs.values():
        assert t["latency_s"].dtype == np.float64 and len(t) > 1000


def test_committed_fit_reproduces_toml():
    """Refit a few groups; their MAPEs (in-sample, held out) match the committed TOML."""
    doc = tomllib.loads(kf.CALIBRATION_TOML.read_text(encoding="utf-8"))
    assert doc["source"]["package"] == "aiconfigurator-core"
    saved = {e["name"]: e for e in doc["kernel"] + doc["collective"]}
    tabs = load_all()
    want = {"h200_sxm/trtllm/gemm/bfloat16/torch_flow", "b200_sxm/vllm/comm:all_reduce/bfloat16"}
    groups = [g for g in kf.kernel_groups({"gemm": tabs["gemm"]}) if kf.group_name(g) in want]
    groups += [
        g
        for g in kf.collective_groups({"comm": tabs["comm"]})
        if g["system"] == "h200_sxm" and g["implementation"] == "trtllm"
    ]
    assert len(groups) == 2
    fitted = kf.fit_groups(groups)
    summary = kf.report(fitted)["held_out_mape"]
    assert summary["h200_sxm"]["gemm"]["groups"] == 1
    for g in fitted:
        s = saved[kf.group_name(g)]
        assert round(g["mape_in"], 3) == pytest.approx(s["mape_in_pct"], abs=0.02)
        assert round(g["mape_holdout"], 3) == pytest.approx(s["mape_holdout_pct"], abs=0.02)
        dec = g["mape_holdout_decode"]
        assert round(dec, 3) == pytest.approx(s["mape_holdout_decode_pct"], abs=0.02)
        assert s["n_holdout_decode"] == int((g["hold"] & g["decode"]).sum())
        assert g["sol_violations"] == s["sol_violations"]
        assert g["sol_violations_l2"] == s["sol_violations_l2"]
        assert s["n_holdout"] == int(g["hold"].sum()) > 0


def test_committed_fit_reproduces_padded_plugin_group():
    """The A100 weight-only INT8 CUTLASS group with the padded rows of the p-norm dispatch
    (:func:`kf.trtllm_plugin_padded_rows`) refits to the committed TOML's MAPEs."""
    doc = tomllib.loads(kf.CALIBRATION_TOML.read_text(encoding="utf-8"))
    saved = {e["name"]: e for e in doc["kernel"]}
    tab = load_all()["gemm"]
    tab = tab.select((tab["system"] == "a100_sxm") & (tab["dtype"] == "int8_wo"))
    name = (
        "a100_sxm/trtllm/gemm/int8_wo/trt_flow_/weight_only_quant_matmul_L257/"
        "PLUGIN_V2_WeightOnlyQuantMatmul_0"
    )
    groups = [g for g in kf.kernel_groups({"gemm": tab}, dispatch=True) if kf.group_name(g) == name]
    assert len(groups) == 1  # every CUTLASS row computes a power of two or whole 128-row tiles
    assert set(groups[0]["m"]) <= {8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 384.0, 512.0}
    (g,) = kf.fit_groups(groups)
    s = saved[name]
    assert round(g["mape_in"], 3) == pytest.approx(s["mape_in_pct"], abs=0.02)
    assert round(g["mape_holdout_decode"], 3) == pytest.approx(
        s["mape_holdout_decode_pct"], abs=0.02
    )
    assert g["sol_violations"] == s["sol_violations"] == 0


def _moe_table(rows):
    cols = ("system", "framework", "framework_version", "kernel_source", "dtype", "tokens",
            "hidden", "inter", "topk", "experts", "moe_tp", "moe_ep")  # fmt: skip
    c = {k: np.array([r[i] for r in rows]) for i, k in enumerate(cols)}
    c["latency_s"] = np.full(len(rows), 1e-4)
    return KernelTable("moe", None, c)


def test_moe_counts_closed_form():
    """Balanced routing, rank tokens per framework, 2 matrices for Nemotron-3 shapes."""
    h, inter = 7168, 2048
    rows = [
        ("h200_sxm", "sglang", "0", "sglang_fused_moe_triton", "bfloat16", 4, h, inter, 8, 256,
         1, 2),
        ("h200_sxm", "vllm", "0", "triton", "bfloat16", 4, h, inter, 8, 256, 1, 2),
        ("h200_sxm", "vllm", "0", "triton", "bfloat16", 64, h, inter, 8, 256, 2, 1),
        ("h200_sxm", "vllm", "0", "triton", "bfloat16", 1, 2688, 1856, 6, 128, 1, 1),
        ("h200_sxm", "trtllm", "0", "moe_torch_flow_nongated", "bfloat16", 1, h, inter, 8, 256,
         1, 1),
    ]  # fmt: skip
    w = kf.work(_moe_table(rows))
    # row 0: T·k = 32 < E: 32 experts, 16 local, 16 pairs; sglang: T(1 − 2^−8) rank tokens
    t_r = 4 * (1 - 0.5**8)
    per_expert = 3 * h * inter
    assert w["flops"][0] == pytest.approx(2 * 16 * per_expert)
    assert w["bytes"][0] == pytest.approx(16 * per_expert * 2 + 16 * h * 2 + t_r * h * 2)
    # items: SGLang's Triton rank-0 workload under balanced routing — every token has a
    # local expert while ep <= k, so all 4 tokens with their 8 slots
    assert w["m"][0] == pytest.approx(1.0) and w["items"][0] == pytest.approx(4 * 8)
    # rows: the experts active on the rank; depth: the two expert GEMMs' reductions
    assert w["rows"][0] == pytest.approx(16.0) and w["depth"][0] == pytest.approx(h + inter)
    assert w["rows"][2] == pytest.approx(128.0) and w["depth"][2] == pytest.approx(h + inter / 2)
    # row 1: vLLM passes all T tokens to the rank; its grouped router (DeepSeek-V3 shape)
    # reaches 4·4 hot + 4 tied experts, 10 of them local
    assert w["items"][1] == pytest.approx(4 * 8) and w["rows"][1] == pytest.approx(10.0)
    assert w["bytes"][1] == pytest.approx(10 * per_expert * 2 + 16 * h * 2 + 4 * h * 2)
    # row 2: T·k = 512 > E, grouped: the 128 experts of the 4 winning groups, tp halves each
    assert w["bytes"][2] == pytest.approx(128 * per_expert / 2 * 2 + 512 * h * 2 + 64 * h * 2)
    assert w["m"][2] == pytest.approx(4.0)
    # rows 3-4: non-gated (Nemotron-3 Nano shape; a kernel named *nongated*)
    assert list(kf.gated_matrices(_moe_table(rows).columns)) == [3, 3, 3, 2, 2]
    assert w["flops"][3] == pytest.approx(2 * 6 * 2 * 2688 * 1856)


def test_balanced_rank0_tokens_and_routed_slots():
    """Balanced routing, E = 256, k = 8 (stride 32): rank 0 of ep = 64 holds experts 0-3, hit
    by tokens i with i mod 32 < 4 — 8 of 64; every token while ep <= k; a single token 1."""
    assert kf.balanced_rank0_tokens(64, 8, 256, 64) == 8
    assert kf.balanced_rank0_tokens(64, 8, 256, 8) == 64
    assert kf.balanced_rank0_tokens(1, 8, 256, 256) == 1
    assert kf.balanced_rank0_tokens(40, 8, 256, 256) == 2  # tokens 0 and 32 hit expert 0
    h, inter = 2048, 768
    rows = [
        ("h200_sxm", "sglang", "0.5.14", "sglang_fused_moe_triton", "fp8_block", 64, h, inter, 8, 256,
         1, 64),
        ("h200_sxm", "sglang", "0.5.14", "sglang_marlin_moe", "int4_wo", 64, h, inter, 8, 256, 1, 64),
        ("h200_sxm", "vllm", "0", "triton", "bfloat16", 64, h, inter, 8, 256, 1, 64),
        ("h200_sxm", "sglang", "0.5.14", "sglang_fused_moe_triton", "bfloat16", 64, h, inter, 8, 256,
         1, 1),
    ]  # fmt: skip
    slots = kf.moe_routed_slots(_moe_table(rows).columns)
    assert list(slots) == [8 * 8, 64 * 8, 64 * 8, 64 * 8]


def test_sglang_collector_before_0_5_14_rank0_every_lane_and_gated():
    """SGLang collector of the 0.5.10 tables: rank-0 workload for every lane with ep > 1
    (Marlin too), Nemotron-3 shapes benchmarked gated; the p-norm dispatch counts every
    routed slot's FLOPs (remote slots computed on expert 0) and the third matrix."""
    assert list(kf.sglang_collector_rank0_every_lane(["0.5.10", "0.5.14", "0.5.6.post1", "0.6"])) == [
        True, False, True, False]  # fmt: skip
    h, inter = 2048, 768
    rows = [
        ("a100_sxm", "sglang", "0.5.10", "sglang_marlin_moe", "int4_wo", 64, h, inter, 8, 256,
         1, 64),
        ("h200_sxm", "sglang", "0.5.14", "sglang_marlin_moe", "int4_wo", 64, h, inter, 8, 256,
         1, 64),
        ("a100_sxm", "sglang", "0.5.10", "sglang_fused_moe_triton", "bfloat16", 64, 4096, 2688,
         22, 512, 1, 1),  # Nemotron-3 Super: non-gated model, gated benchmark
        ("h200_sxm", "sglang", "0.5.14", "sglang_fused_moe_triton", "bfloat16", 64, 4096, 2688,
         22, 512, 1, 1),
    ]  # fmt: skip
    tab = _moe_table(rows)
    c = tab.columns
    assert list(kf.sglang_rank0_lane(c)) == [True, False, False, False]
    assert list(kf.moe_routed_slots(c)) == [8 * 8, 64 * 8, 64 * 22, 64 * 22]
    assert list(kf.sglang_collector_gated_only(c)) == [False, False, True, False]
    w = kf.work(tab)
    before = {k: np.array(v, copy=True) for k, v in w.items()}
    kf.pnorm_dispatch("moe", c, w)
    # rank-0 Marlin row: 8 tokens × 8 slots computed against 64·8/64 = 8 local pairs
    assert w["flops"][0] == pytest.approx(before["flops"][0] * 64 / 8)
    assert w["m"][0] == pytest.approx(before["m"][0] * 64 / 8)
    assert w["flops"][1] == before["flops"][1] and w["bytes"][1] == before["bytes"][1]
    # gated benchmark of a non-gated shape: 3/2 of the FLOPs, one more matrix per expert read
    e = before["rows"][2]
    assert w["flops"][2] == pytest.approx(before["flops"][2] * 1.5)
    assert w["bytes"][2] == pytest.approx(before["bytes"][2] + e * 4096 * 2688 * 2.0)
    assert w["bytes"][3] == before["bytes"][3]


def test_moe_rank_tokens():
    fw = np.array(["sglang", "vllm", "trtllm", "sglang"])
    t = kf.moe_rank_tokens(fw, np.array([64.0, 64.0, 64.0, 1.0]), 8.0, np.array([4, 4, 4, 64]))
    assert t[0] == pytest.approx(64 * (1 - 0.75**8)) and t[1] == t[2] == 64.0
    assert t[3] == 1.0  # at least one token reaches the rank


def test_attention_items_per_kv_head_and_decode_mask():
    cols = {"batch": np.array([2, 300]), "heads": np.array([32, 8]),
            "kv_heads": np.array([8, 8]), "head_dim": np.array([128, 64]),
            "context": np.array([100, 5]), "kv_dtype": np.array(["bfloat16", "fp8"])}  # fmt: skip
    w = kf.work(KernelTable("attention", None, {**cols, "latency_s": np.ones(2)}))
    assert list(w["items"]) == [16.0, 2400.0] and list(w["units"]) == [16.0, 2400.0]
    # rows and serial loop scale with the head dimension (d/128: 1 and 0.5 here)
    assert list(w["rows"]) == [64.0, 1200.0] and list(w["depth"]) == [100.0, 2.5]
    assert list(w["m"]) == [4.0, 1.0]
    assert w["flops"][0] == pytest.approx(4 * 2 * 32 * 100 * 128)
    assert w["bytes"][1] == pytest.approx(300 * 5 * 8 * 128 * 1.0 + 300 * 8 * 128 * 2.0)
    assert list(kf.decode_mask("attention", cols)) == [True, False]
    assert list(kf.decode_mask("gemm", {"m": np.array([256, 257])})) == [True, False]


def _attn_table(rows):
    cols = ("system", "framework", "kernel_source", "kv_dtype", "batch", "heads", "kv_heads",
            "head_dim", "context")  # fmt: skip
    c = {k: np.array([r[i] for r in rows]) for i, k in enumerate(cols)}
    c["framework_version"] = np.array(["1.0"] * len(rows))
    c["latency_s"] = np.full(len(rows), 1e-4)
    return KernelTable("attention", None, c)


def test_trtllm_attention_dispatch_and_k_only_cache():
    """TensorRT-LLM: MMHA for query groups > 32 everywhere and for vanilla MHA on SM80 /
    SM90 (B·H items, m = 1); XQA / trtllm-gen otherwise; K-only cache bytes for every
    TensorRT-LLM row; other frameworks untouched."""
    rows = [
        ("h200_sxm", "trtllm", "torch_flow", "fp8", 4, 32, 4, 128, 1000),  # G = 8: XQA
        ("h200_sxm", "trtllm", "torch_flow", "fp8", 4, 16, 16, 128, 1000),  # MHA on SM90
        ("b200_sxm", "trtllm", "torch_flow", "fp8", 4, 16, 16, 128, 1000),  # MHA: trtllm-gen
        ("b200_sxm", "trtllm", "torch_flow", "bfloat16", 4, 64, 1, 128, 1000),  # G = 64
        ("a100_sxm", "trtllm", "torch_flow", "bfloat16", 4, 32, 1, 128, 1000),  # G = 32: XQA
        ("h200_sxm", "sglang", "fa3", "bfloat16", 4, 64, 1, 128, 1000),
    ]  # fmt: skip
    tab = _attn_table(rows)
    w = kf.work(tab)
    before = {k: np.array(v, copy=True) for k, v in w.items()}
    var = kf.pnorm_dispatch("attention", tab.columns, w)
    assert list(var) == ["torch_flow", "torch_flow:mmha", "torch_flow", "torch_flow:mmha",
                         "torch_flow", "fa3"]  # fmt: skip
    assert list(w["items"]) == [16.0, 64.0, 64.0, 256.0, 4.0, 4.0]
    assert list(w["m"]) == [8.0, 1.0, 1.0, 1.0, 32.0, 64.0]
    b, s, d = 4, 1000, 128
    bkv = [1.0, 1.0, 1.0, 2.0, 2.0]
    for i, (h, k) in enumerate([(32, 4), (16, 16), (16, 16), (64, 1), (32, 1)]):
        assert w["bytes"][i] == pytest.approx(b * s * k * d * bkv[i] + b * h * 2 * d * 2.0)
        assert w["bytes"][i] < before["bytes"][i]  # K only: at most the K + V count
    assert w["bytes"][5] == before["bytes"][5]  # SGLang: K and V
    for k in ("flops", "units", "rows", "depth"):
        assert np.array_equal(w[k], before[k])
    assert list(kf.trtllm_mmha(np.array(["h100_sxm", "gb200"]), [40, 40], [40, 40])) == [
        True, False]  # fmt: skip


def test_kernel_groups_dispatch_only_for_the_pnorm_form():
    """The max form (end-to-end prior) keeps the table's variants and counts."""
    rows = [("h200_sxm", "trtllm", "torch_flow", "fp8", 4, 16, 16, 128, 1000),
            ("h200_sxm", "trtllm", "torch_flow", "fp8", 4, 32, 4, 128, 1000)]  # fmt: skip
    plain = kf.kernel_groups({"attention": _attn_table(rows)})
    assert [g["variant"] for g in plain] == ["torch_flow"] and len(plain[0]["t"]) == 2
    w = kf.work(_attn_table(rows))
    assert np.array_equal(plain[0]["bytes"], w["bytes"])
    split = kf.kernel_groups({"attention": _attn_table(rows)}, dispatch=True)
    assert sorted(g["variant"] for g in split) == ["torch_flow", "torch_flow:mmha"]


def test_trtllm_plugin_cuda_core_path_for_four_rows_or_fewer():
    """TensorRT-LLM's weight-only and SmoothQuant plugins: m ≤ 4 is the CUDA-core variant,
    m ≥ 5 the CUTLASS one; other kernels (and the max form) keep the table's variant."""
    wo = "trt_flow_/weight_only_quant_matmul_L257/PLUGIN_V2_WeightOnlyQuantMatmul_0"
    sq = "trt_flow_/smooth_quant_gemm_L96/PLUGIN_V2_SmoothQuantGemm_0"
    rows = [(wo, "int4_wo", 1), (wo, "int8_wo", 4), (wo, "int4_wo", 5), (sq, "sq", 4),
            (sq, "sq", 8), ("torch_flow", "bfloat16", 1)]  # fmt: skip
    c = {
        "system": np.array(["a100_sxm"] * len(rows)), "framework": np.array(["trtllm"] * len(rows)),
        "framework_version": np.array(["1.0.0"] * len(rows)),
        "kernel_source": np.array([r[0] for r in rows]), "dtype": np.array([r[1] for r in rows]),
        "m": np.array([r[2] for r in rows]), "n": np.full(len(rows), 4096),
        "k": np.full(len(rows), 4096), "latency_s": np.full(len(rows), 1e-5),
    }  # fmt: skip
    tab = KernelTable("gemm", None, c)
    w = kf.work(tab)
    before = {k: np.array(v, copy=True) for k, v in w.items()}
    var = kf.pnorm_dispatch("gemm", tab.columns, w)
    cc = kf.PLUGIN_CUDA_CORE_SUFFIX
    assert list(var) == [wo + cc, wo + cc, wo, sq + cc, sq, "torch_flow"]
    for k in before:  # only the CUTLASS row at m = 5 is padded (to 8, the tactic's rows)
        if k not in ("flops", "m"):
            assert np.array_equal(w[k], before[k])
    assert list(w["m"]) == [1, 4, 8, 4, 8, 1]
    assert list(w["flops"] / before["flops"]) == [1, 1, 8 / 5, 1, 1, 1]
    assert np.array_equal(w["sol_flops"], before["flops"])
    assert len({g["variant"] for g in kf.kernel_groups({"gemm": tab})}) == 3
    assert len({g["variant"] for g in kf.kernel_groups({"gemm": tab}, dispatch=True)}) == 5


def _plugin_gemm_table(rows, n=4096, k=4096):
    """GEMM table of ``(framework, kernel_source, dtype, m)`` rows on A100."""
    c = {
        "system": np.array(["a100_sxm"] * len(rows)),
        "framework": np.array([r[0] for r in rows]),
        "framework_version": np.array(["1.0.0"] * len(rows)),
        "kernel_source": np.array([r[1] for r in rows]), "dtype": np.array([r[2] for r in rows]),
        "m": np.array([r[3] for r in rows]), "n": np.full(len(rows), n),
        "k": np.full(len(rows), k), "latency_s": np.full(len(rows), 1e-4),
    }  # fmt: skip
    return KernelTable("gemm", None, c)


def test_trtllm_plugin_padded_rows_closed_form():
    """The plugins run the tactic profiled at m_r = nextPowerOfTwo(m): the tile of height
    min(m_r, T_max) pads m to ⌈m/T⌉·T (T_max 128 weight-only, 256 SmoothQuant); the CUDA-core
    rows (m ≤ 4), cuBLAS rows and other frameworks keep m."""
    wo = "trt_flow_/weight_only_quant_matmul_L257/PLUGIN_V2_WeightOnlyQuantMatmul_0"
    sq = "trt_flow_/smooth_quant_gemm_L96/PLUGIN_V2_SmoothQuantGemm_0"
    ms_wo = [3, 5, 8, 48, 64, 65, 80, 128, 129, 160, 192, 256, 384, 512]
    pad_wo = [3, 8, 8, 64, 64, 128, 128, 128, 256, 256, 256, 256, 384, 512]
    ms_sq = [4, 6, 80, 160, 256, 257, 384]
    pad_sq = [4, 8, 128, 256, 256, 512, 512]
    rows = [("trtllm", wo, "int8_wo", m) for m in ms_wo]
    rows += [("trtllm", sq, "sq", m) for m in ms_sq]
    rows += [("trtllm", "torch_flow", "bfloat16", 80), ("vllm", wo, "int8_wo", 80)]
    tab = _plugin_gemm_table(rows)
    assert list(kf.trtllm_plugin_padded_rows(tab.columns)) == pad_wo + pad_sq + [80, 80]


def test_plugin_padding_moves_the_compute_term_not_sol():
    """Dispatch scales the FLOPs by m_pad/m (reuse m_pad) for the p-norm form only; SOL of
    every group is the roofline of the unpadded FLOPs and bytes."""
    wo = "trt_flow_/weight_only_quant_matmul_L257/PLUGIN_V2_WeightOnlyQuantMatmul_0"
    tab = _plugin_gemm_table([("trtllm", wo, "int4_wo", m) for m in (80, 128, 160)], 8192, 8192)
    w = kf.work(tab)
    peak = kf.hardware("a100_sxm")["peak"][16]
    sol, _ = kf.kernel_sol("a100_sxm", w["flops"], w["bytes"], peak)
    (plain,) = kf.kernel_groups({"gemm": tab})
    (disp,) = kf.kernel_groups({"gemm": tab}, dispatch=True)
    assert np.array_equal(plain["sol"], sol) and np.array_equal(disp["sol"], sol)
    assert list(disp["m"]) == [128, 128, 256] and list(plain["m"]) == [80, 128, 160]
    assert list(disp["flops"] / plain["flops"]) == pytest.approx([128 / 80, 1, 256 / 160])
    assert np.array_equal(disp["bytes"], plain["bytes"])
    # the compute term at m = 80 is the one at m = 128: same FLOPs, same reuse
    p = kt.KernelParams(eta_c_max=0.8, m_half_rows=16.0)
    tc = [kt.compute_time_s(f, m, peak, p) for f, m in zip(disp["flops"], disp["m"], strict=True)]
    assert float(tc[0]) == pytest.approx(float(tc[1]), rel=1e-12)


def test_triton_moe_block_m_switch():
    """SGLang Triton fused MoE: 16-row tiles while the kernel's tokens M ≤ E/ep (not for
    block-quantised FP8), 64 otherwise; the reuse m scales by 16/BLOCK_M."""
    h, inter = 2048, 768
    rows = [
        ("h200_sxm", "sglang", "0", "sglang_fused_moe_triton", "bfloat16", 64, h, inter, 8, 128,
         1, 1),  # M = 64 ≤ 128: 16
        ("h200_sxm", "sglang", "0", "sglang_fused_moe_triton", "bfloat16", 256, h, inter, 8,
         128, 1, 1),  # 256 > 128: 64
        ("h200_sxm", "sglang", "0", "sglang_fused_moe_triton", "bfloat16", 64, h, inter, 8, 128,
         1, 2),  # rank-0 lane, E/ep = 64: all 64 tokens local (ep ≤ k), 64 ≤ 64: 16
        ("h200_sxm", "sglang", "0", "sglang_fused_moe_triton", "fp8_block", 4, h, inter, 8, 128,
         1, 1),  # block FP8: 64
        ("h200_sxm", "vllm", "0", "vllm_triton", "bfloat16", 256, h, inter, 8, 128, 1, 1),
    ]  # fmt: skip
    tab = _moe_table(rows)
    w = kf.work(tab)
    bm = kf.triton_moe_block_m(tab.columns, w["items"])
    assert list(bm) == [16.0, 64.0, 16.0, 64.0, 64.0]
    m0 = np.array(w["m"], copy=True)
    kf.pnorm_dispatch("moe", tab.columns, w)
    # row 2 (rank-0 lane): all 512 slots computed, against 256 local pairs — m × 2
    assert list(w["m"]) == pytest.approx([m0[0], m0[1] / 4, m0[2] * 2, m0[3] / 4, m0[4]])


def test_pseudo_huber_loss_closed_form():
    """Quadratic e²/2 for |e| ≪ δ, δ|e| − δ² for |e| ≫ δ; weights select points."""
    x = {"t": jnp.array([1.0, 1.0, 1.0]), "w": jnp.array([1.0, 1.0, 0.0])}
    d = kf.LOSS_DELTA

    def pred(theta, _):
        return jnp.array([1.0 + theta[0], 1.0 - theta[0], 5.0])

    with jax.enable_x64(True):
        small = float(kf._loss(jnp.array([1e-4]), x, pred))
        big = float(kf._loss(jnp.array([0.5]), x, pred))
    assert small == pytest.approx(1e-8 / 2, rel=1e-3)
    assert big == pytest.approx(d * d * (math.sqrt(1 + (0.5 / d) ** 2) - 1), rel=1e-9)
    assert big == pytest.approx(d * 0.5 - d * d, rel=0.05)


def test_table_select_and_systems_filter():
    tab = load_all()["gemm"]
    sub = tab.select(tab["system"] == "h200_sxm")
    assert sub.name == "gemm" and 0 < len(sub) < len(tab)
    assert set(sub["system"]) == {"h200_sxm"}


def test_grouped_routing_distinct_experts_and_kv_bits():
    """DeepSeek-V3 grouped top-k under tied balanced logits: 4 of 8 groups, 4 hot experts
    per token there plus 4 shared tied ones, at most 128; plain balanced elsewhere."""
    h, inter = 7168, 2048
    rows = [
        ("b200_sxm", "vllm", "0", "triton", "fp8_block", 1, h, inter, 8, 256, 1, 1),
        ("b200_sxm", "vllm", "0", "triton", "fp8_block", 4, h, inter, 8, 256, 1, 1),
        ("b200_sxm", "vllm", "0", "triton", "fp8_block", 64, h, inter, 8, 256, 1, 1),
        ("b200_sxm", "sglang", "0", "sglang_flashinfer_trtllm_moe", "nvfp4", 4, h, inter, 8,
         256, 1, 1),
        ("b200_sxm", "sglang", "0", "sglang_fused_moe_triton", "bfloat16", 4, h, inter, 8, 256,
         1, 1),
        ("b200_sxm", "vllm", "0", "triton", "bfloat16", 4, h, inter, 8, 384, 1, 1),
    ]  # fmt: skip
    e = kf.moe_distinct_experts(_moe_table(rows).columns)
    assert list(e) == [8.0, 20.0, 128.0, 20.0, 32.0, 32.0]
    assert list(kf.kv_compute_bits(np.array(["bfloat16", "fp8"]))) == [16, 8]


def test_gemm_counts_and_split_k_units():
    cols = {"m": np.array([4, 300]), "n": np.array([512, 64]), "k": np.array([5120, 256]),
            "dtype": np.array(["bfloat16", "fp8"])}  # fmt: skip
    w = kf.work(KernelTable("gemm", None, {**cols, "latency_s": np.ones(2)}))
    assert list(w["units"]) == [512 + 5120 / 256, 64 + 1.0]
    assert w["flops"][0] == 2 * 4 * 512 * 5120
    assert w["bytes"][1] == pytest.approx(256 * 64 * 1.0 + 300 * 256 * 1.0 + 300 * 64 * 2.0)
    assert list(w["bits"]) == [16, 8] and list(w["m"]) == [4.0, 300.0]
    assert list(w["depth"]) == [5120.0, 256.0] and list(w["rows"]) == [0.0, 0.0]
    assert list(kf.decode_mask("gemm", cols)) == [True, False]


def test_mla_depth_is_context_and_bmm_depth_the_contraction():
    mla = {"batch": np.array([4]), "heads": np.array([16]), "context": np.array([3000]),
           "kv_dtype": np.array(["fp8"])}  # fmt: skip
    w = kf.work(KernelTable("mla", None, {**mla, "latency_s": np.ones(1)}))
    assert list(w["depth"]) == [3000.0] and list(w["rows"]) == [0.0]
    bmm = {"tokens": np.array([8, 8]), "heads": np.array([16, 16]),
           "op": np.array(["mla_gen_pre", "mla_gen_post"]),
           "dtype": np.array(["bfloat16", "fp8"])}  # fmt: skip
    w = kf.work(KernelTable("mla_bmm", None, {**bmm, "latency_s": np.ones(2)}))
    assert list(w["depth"]) == [float(kf.MLA_NOPE), float(kf.MLA_LATENT)]


def test_sol_uses_l2_bandwidth_for_resident_working_sets():
    """A working set that fits in L2 (H100: 50 MB) gets the roofline on the L2 bandwidth;
    a larger one, or a system without the rule, the HBM roofline."""
    q = np.array([3e7, 6e7])
    f = np.array([1.0, 1.0])
    sol, hbm = kf.kernel_sol("h100_sxm", f, q, np.ones(2) * 1e15)
    w_hbm = kf.hardware("h100_sxm")["hbm"]
    assert list(hbm) == pytest.approx(list(q / w_hbm))
    assert sol[0] == pytest.approx(3e7 / (132 * 128 * 1.98e9)) and sol[0] < hbm[0]
    assert sol[1] == hbm[1]
    saved = dict(kf.L2_BYTES)
    try:
        del kf.L2_BYTES["h100_sxm"]
        sol, hbm = kf.kernel_sol("h100_sxm", f, q, np.ones(2) * 1e15)
        assert np.array_equal(sol, hbm)
    finally:
        kf.L2_BYTES.clear()
        kf.L2_BYTES.update(saved)


@pytest.mark.parametrize("system", ["b200_sxm", "b300_sxm", "gb200", "gb300"])
def test_blackwell_l2_rule_closed_form(system):
    """Blackwell: capacity 126 MB (a lower bound of the 126.5 MiB CUDA reports), bandwidth
    the SM-side upper bound 160 SMs × 128 B/clk × 2.032 GHz = 41.6 TB/s. A 100 MB working
    set gets the L2 roofline, a 130 MB one the HBM roofline; a compute-bound point keeps F/P."""
    assert kf.L2_BYTES[system] == 126e6 < 132_644_864
    w_l2 = 160 * 128 * 2.032e9
    assert kf.L2_BW_BYTES_PER_S[system] == pytest.approx(w_l2) == pytest.approx(41.61e12, rel=1e-3)
    q = np.array([1e8, 1.3e8, 1e8])
    f = np.array([1.0, 1.0, 1e12])
    sol, hbm = kf.kernel_sol(system, f, q, np.ones(3) * 1e15)
    w_hbm = kf.hardware(system)["hbm"]
    assert sol[0] == pytest.approx(1e8 / w_l2) and hbm[0] == pytest.approx(1e8 / w_hbm)
    assert sol[1] == hbm[1] == pytest.approx(1.3e8 / w_hbm)
    assert sol[2] == pytest.approx(1e-3)  # F/P above Q/W_L2


def test_l2_bandwidth_exceeds_hbm_everywhere():
    """The L2 rule only ever lowers SOL: every listed L2 bandwidth is above the system's HBM
    bandwidth, every capacity under 1 GB, and every system of the kernel tables is listed."""
    assert set(kf.L2_BYTES) == set(kf.L2_BW_BYTES_PER_S) == set(kf.SYSTEMS)
    for system, w in kf.L2_BW_BYTES_PER_S.items():
        assert w > kf.hardware(system)["hbm"], system
        assert 1e6 < kf.L2_BYTES[system] < 1e9, system


def test_sglang_qk192_rows_count_a_v_head_of_128():
    """SGLang's d = 192 rows (MiMo-V2-Flash: QK 192, V 128, the only d = 192 cases of the
    0.5.14 collector) count F = 2·B·H·S·(192 + 128) and Q = B·S·K·320·b_kv + B·H·320·2, on
    FA3 and Triton alike; SGLang d = 128, vLLM and TensorRT-LLM d = 192 stay symmetric; the
    serial loop and rows keep d; the max form (kernel_groups without dispatch) keeps 2·d."""
    rows = [
        ("h100_sxm", "sglang", "fa3", "bfloat16", 512, 1, 1, 192, 4096),
        ("h100_sxm", "sglang", "fa3", "fp8", 4, 64, 4, 192, 4096),
        ("b200_sxm", "sglang", "triton", "bfloat16", 8, 16, 1, 192, 512),
        ("h100_sxm", "sglang", "fa3", "bfloat16", 512, 1, 1, 128, 4096),
        ("h100_sxm", "vllm", "vllm_flash_attn_fa3", "bfloat16", 512, 1, 1, 192, 4096),
    ]  # fmt: skip
    tab = _attn_table(rows)
    assert list(kf.sglang_v_head_dim(tab.columns)) == [128.0, 128.0, 128.0, 128.0, 192.0]
    w = kf.work(tab)
    depth, items = np.array(w["depth"], copy=True), np.array(w["items"], copy=True)
    kf.pnorm_dispatch("attention", tab.columns, w)
    for i, (_, _, _, kv, b, h, k, d, s) in enumerate(rows):
        bkv = 1.0 if kv == "fp8" else 2.0
        dv = 128.0 if i < 3 else float(d)
        assert w["flops"][i] == pytest.approx(2.0 * b * h * s * (d + dv))
        assert w["bytes"][i] == pytest.approx(b * s * k * (d + dv) * bkv + b * h * (d + dv) * 2)
    assert np.array_equal(w["depth"], depth) and np.array_equal(w["items"], items)
    # the H100 point that ran at 0.97x the K-and-V-of-192 roofline: 1.34 GB, not 1.61 GB
    assert w["bytes"][0] == pytest.approx(512 * 4096 * 320 * 2 + 512 * 320 * 2)
    (g,) = [g for g in kf.kernel_groups({"attention": _attn_table(rows[:1])})]
    assert g["bytes"][0] == pytest.approx(512 * 4096 * 384 * 2 + 512 * 384 * 2)


SERIAL_TRUE = kt.KernelParams(
    t_floor_s=2e-6, eta_c_max=0.7, m_half_rows=8.0, eta_m_max=0.8, b_half_bytes=1e6,
    x_half_units=0.0, t_depth_s=1.5e-9, d_split=3000.0, p_overlap=4.0,
)  # fmt: skip


def test_pnorm_fit_reproduces_a_serial_loop():
    """GEMM-like points whose time carries the split-capped serial loop (small n, long k):
    the p-norm fit predicts them within 2 % and finds the loop's latency and cap."""
    m = np.tile([1.0, 8.0, 64.0], 40)
    n = np.repeat(np.tile([32.0, 256.0, 4096.0, 16384.0], 10), 3)
    k = np.repeat(2.0 ** np.arange(6, 16), 12)
    flops, q = 2.0 * m * n * k, 2.0 * n * k + 2.0 * m * (k + n)
    with jax.enable_x64(True):
        t = np.asarray(jax.vmap(
            lambda f, b, mm, d: kt.kernel_time_s(f, b, mm, PEAK, BW, SERIAL_TRUE, depth=d)
        )(flops, q, m, k))  # fmt: skip
    hold = kf.holdout_mask(np.stack([m, n, k], 1))
    g = dict(
        kind="kernel", cls="gemm", system="h200_sxm", framework="fw", framework_version="0",
        precision="bfloat16", variant="v", decode=np.ones(len(m), bool), t=t, flops=flops,
        bytes=q, m=m, units=np.full(len(m), 1e9), items=np.zeros(len(m)),
        depth=k, peak=np.full(len(m), PEAK), hbm=np.full(len(m), BW), hold=hold,
        sol=np.maximum(flops / PEAK, q / BW), w=(~hold).astype(float),
    )  # fmt: skip
    (g,) = kf.fit_groups([g])
    assert g["mape_in"] < 2.0 and g["mape_holdout"] < 2.0
    assert g["params"]["t_row_s"] == 0.0 and g["params"]["t_item_s"] == 0.0
    assert g["params"]["t_depth_s"] == pytest.approx(1.5e-9, rel=0.3)
    assert g["params"]["d_split"] == pytest.approx(3000.0, rel=0.5)
    assert g["sol_violations"] == 0


def _row_group(cls, system, fw, n_fit, rows=1.0):
    n = n_fit + 1
    hold = np.zeros(n, bool)
    hold[-1] = True
    return dict(cls=cls, system=system, framework=fw, hold=hold, rows=np.full(n, rows))


def test_row_tie_reference_closed_form():
    """Under-determined MoE groups (fitting points ≤ 11 constants) get the median t_row of
    the same hardware × framework's other MoE groups, else of the hardware's; other classes,
    groups without rows and well-determined groups are not tied."""
    nk = len(kf.KERNEL_FIELDS)
    gs = [
        _row_group("moe", "b200_sxm", "vllm", 40),  # 0: reference 1e-7
        _row_group("moe", "b200_sxm", "vllm", 12),  # 1: reference 3e-7
        _row_group("moe", "b200_sxm", "vllm", 30),  # 2: reference 2e-7
        _row_group("moe", "b200_sxm", "vllm", nk),  # 3: tied → median(1, 3, 2)e-7
        _row_group("moe", "b200_sxm", "sglang", 5),  # 4: no sglang reference → hardware's
        _row_group("moe", "gb200", "vllm", 5),  # 5: no reference on gb200 → untied
        _row_group("attention", "b200_sxm", "vllm", 5),  # 6: not a tied class
        _row_group("moe", "b200_sxm", "vllm", 5, rows=0.0),  # 7: no row term
        _row_group("moe", "b200_sxm", "vllm", 50),  # 8: reference 1e-3
    ]
    theta = np.zeros((len(gs), nk))
    for i, v in ((0, 1e-7), (1, 3e-7), (2, 2e-7), (8, 1e-3)):
        theta[i, kf.KERNEL_FIELDS.index("t_row_s")] = math.log(v)
    ties = kf.row_tie_reference(gs, theta)
    assert sorted(ties) == [3, 4]
    assert ties[3] == pytest.approx(np.median([1e-7, 3e-7, 2e-7, 1e-3]), rel=1e-12)
    assert ties[4] == ties[3]


def test_fit_holds_a_tied_row_constant():
    """A MoE-like group of 10 fitting points keeps t_row at its siblings' median exactly;
    the siblings' fit is the one they get alone (the tie is a second pass)."""
    rng = np.random.default_rng(0)
    true = kt.KernelParams(t_floor_s=5e-6, eta_c_max=0.6, m_half_rows=16.0, eta_m_max=0.7,
                           b_half_bytes=1e6, t_row_s=2e-7)  # fmt: skip

    def group(n, seed_rows):
        rows = rng.permutation(np.geomspace(1.0, 128.0, n)) * seed_rows
        q = rows * 3e7
        flops, m = 2.0 * rows * 8 * 3e7, np.full(n, 8.0)
        with jax.enable_x64(True):
            t = np.asarray(jax.vmap(
                lambda f, b, r: kt.kernel_time_s(f, b, 8.0, PEAK, BW, true, rows=r)
            )(flops, q, rows))  # fmt: skip
        hold = kf.holdout_mask(np.stack([rows, rows], 1))
        return dict(
            kind="kernel", cls="moe", system="b200_sxm", framework="vllm",
            framework_version="0", precision="nvfp4", variant="v", decode=np.ones(n, bool),
            t=t, flops=flops, bytes=q, m=m, units=np.full(n, 1e9), items=np.zeros(n),
            rows=rows, depth=np.zeros(n), peak=np.full(n, PEAK), hbm=np.full(n, BW),
            hold=hold, sol=np.maximum(flops / PEAK, q / BW), w=(~hold).astype(float),
        )  # fmt: skip

    big, small = group(30, 1.0), group(12, 1.0)
    assert int((~small["hold"]).sum()) <= len(kf.KERNEL_FIELDS) < int((~big["hold"]).sum())
    (alone,) = kf.fit_groups([dict(big)], iterations=300)
    big_fit, small_fit = kf.fit_groups([big, small], iterations=300)
    assert big_fit["params"] == alone["params"]
    assert small_fit["params"]["t_row_s"] == pytest.approx(alone["params"]["t_row_s"], rel=1e-9)
    assert small_fit["mape_in"] < 5.0


# ------------------------------------------------------------------ max form (e2e prior)

MAX_TRUE = {"t_floor_s": 4e-6, "eta_c_max": 0.6, "m_half_rows": 24.0, "eta_m_max": 0.75,
            "b_half_bytes": 3e6}  # fmt: skip


def _max_form_group(variant="v", n_decode=None):
    """A synthetic GEMM-like group timed by the closed max form at :data:`MAX_TRUE`."""
    p = MAX_TRUE
    peak, hbm = 1e15, 4e12
    # GEMMs [m×4096]·[4096×n]: memory bound below m ≈ P·η_c/(W·η_m) − m_half ≈ 176 rows,
    # compute bound above, the floor for the smallest weights
    m = np.tile(2.0 ** np.arange(12), 6)
    n = np.repeat(16.0 * 10.0 ** np.arange(6) / 4, 12)
    flops = 2.0 * m * n * 4096
    q = 2.0 * n * 4096 + 2.0 * m * (4096 + n)
    t = np.maximum.reduce([
        np.full(len(m), p["t_floor_s"]),
        flops * (1 + p["m_half_rows"] / m) / (peak * p["eta_c_max"]),
        (q + p["b_half_bytes"]) / (hbm * p["eta_m_max"]),
    ])  # fmt: skip
    hold = kf.holdout_mask(np.stack([m, n], 1))
    dec = m <= kf.DECODE_MAX_ROWS if n_decode is None else np.arange(len(m)) < n_decode
    return dict(
        kind="kernel", cls="gemm", system="h200_sxm", framework="fw", framework_version="0",
        precision="bfloat16", variant=variant, decode=dec, t=t, flops=flops, bytes=q, m=m,
        units=np.ones(len(m)), items=np.zeros(len(m)), weight_bytes=np.full(len(m), np.inf),
        peak=np.full(len(m), peak), hbm=np.full(len(m), hbm), hold=hold,
        sol=np.maximum(flops / peak, q / hbm), w=(~hold).astype(float),
    )  # fmt: skip


def test_max_form_fit_recovers_known_parameters():
    """Noise-free points of the closed max form over the floor-, compute- and memory-bound
    regimes: the max-form fit returns the five constants and predicts every point."""
    (g,) = kf.fit_groups([_max_form_group()], form="max")
    assert set(g["params"]) == set(kf.MAX_KERNEL_FIELDS)
    for k, v in MAX_TRUE.items():
        assert g["params"][k] == pytest.approx(v, rel=0.03), k
    assert g["mape_in"] < 0.3 and g["mape_holdout"] < 0.3
    assert g["sol_violations"] == 0
    # the fitted form is the kernel-level mode's main kernel, exactly
    with jax.enable_x64(True):
        p = kt.KernelParams(**g["params"])
        for i in (0, 17, 71):
            t = kmode.main_kernel_s(g["flops"][i], g["bytes"][i], g["m"][i], g["peak"][i],
                                    g["hbm"][i], p, math.inf)[0]  # fmt: skip
            assert float(t) == pytest.approx(g["pred"][i], rel=1e-9)
        sol = kmode.main_kernel_s(1e9, 1e6, 1.0, 1e15, 4e12, kt.KERNEL_SOL, math.inf)[0]
        assert float(sol) == pytest.approx(max(1e9 / 1e15, 1e6 / 4e12), rel=1e-14)


def test_max_form_collective_one_regime():
    """The max-form collective fit is the one-regime law α0 + α1·log2 n + Q/(β(n))."""
    n = np.repeat([2.0, 4.0, 8.0], 12)
    bus = np.tile(10.0 ** np.linspace(3, 9, 12), 3)
    t = 5e-6 + 1e-6 * np.log2(n) + bus / (3e11 * (2.0 / n) ** 0.2)
    hold = kf.holdout_mask(np.stack([n, bus], 1))
    g = dict(kind="collective", cls="comm:all_reduce", system="h200_sxm", framework="fw",
             framework_version="0", precision="half", implementation="x", t=t,
             decode=np.ones(len(t), bool), bus=bus, ranks=n, hold=hold,
             w=(~hold).astype(float), sol=bus / 9e11)  # fmt: skip
    (g,) = kf.fit_groups([g], form="max")
    assert set(g["params"]) == set(kf.MAX_COLL_FIELDS)
    assert g["params"]["alpha0_s"] == pytest.approx(5e-6, rel=0.05)
    assert g["params"]["beta_max_bytes_per_s"] == pytest.approx(3e11, rel=0.05)
    assert g["params"]["gamma"] == pytest.approx(0.2, abs=0.03)
    assert g["mape_in"] < 0.5


def test_decode_variants_and_decode_only():
    """One variant per stack and class (most decode points); decode-only keeps the decode
    points and their held-out flags, drops groups with too few."""
    a, b = _max_form_group("a", n_decode=30), _max_form_group("b", n_decode=40)
    c = _max_form_group("c", n_decode=3)
    c["precision"] = "fp8"
    chosen = kf.decode_variants([a, b, c])
    assert [g["variant"] for g in chosen] == ["b", "c"]
    kept = kf.decode_only(chosen)
    assert [g["variant"] for g in kept] == ["b"]
    assert len(kept[0]["t"]) == 40 and np.array_equal(kept[0]["hold"], b["hold"][:40])
    assert np.array_equal(kept[0]["m"], b["m"][:40])


@pytest.mark.parametrize(
    "argv", [["--write-prior"], ["--write-prior", "--form", "max"],
             ["--write", "--form", "max"], ["--form", "cubic"], ["--only", "conv"],
             ["--only", "gemm", "--write"]],
)  # fmt: skip
def test_prior_cli_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        kf.main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_committed_prior_reproduces():
    """The committed end-to-end prior is the max-form decode fit: refit one group, its
    stored constants and MAPE come back; the header names the command."""
    text = kf.PRIOR_TOML.read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    assert doc["source"]["regenerate"] == kf.PRIOR_REGENERATE
    assert kf.PRIOR_REGENERATE in text and "max form" in text
    saved = {e["name"]: e for e in doc["kernel"]}
    tabs = load_all()
    groups = kf.kernel_groups({"gemm": tabs["gemm"].select(tabs["gemm"]["system"] == "h200_sxm")})
    groups = kf.decode_only(kf.decode_variants(groups))
    (g,) = [g for g in groups if kf.group_name(g) == "h200_sxm/trtllm/gemm/bfloat16/torch_flow"]
    (g,) = kf.fit_groups([g], form="max")
    s = saved[kf.group_name(g)]
    for k in kf.MAX_KERNEL_FIELDS:
        assert g["params"][k] == pytest.approx(s[k], rel=1e-3), k
    assert round(g["mape_holdout"], 3) == pytest.approx(s["mape_holdout_pct"], abs=0.02)
    assert g["sol_violations"] == s["sol_violations"]


def test_sglang_fa3_head_dim_192_variant():
    """SGLang's FlashAttention-3 rows at d = 192 are variant fa3:hd192 (FA3 compiles one
    kernel per head-dimension bucket); d = 128 / 256, vLLM's FA3 fork and other kernels keep
    the table's variant; counts unchanged but the FLOPs and bytes of SGLang's d = 192 rows
    (V head 128, test_sglang_qk192_rows_count_a_v_head_of_128); the max form keeps one
    group."""
    rows = [
        ("h200_sxm", "sglang", "fa3", "bfloat16", 4, 16, 1, 192, 1000),
        ("h200_sxm", "sglang", "fa3", "fp8", 4, 16, 1, 192, 1000),
        ("h200_sxm", "sglang", "fa3", "bfloat16", 4, 16, 1, 128, 1000),
        ("h200_sxm", "sglang", "fa3", "bfloat16", 4, 16, 1, 256, 1000),
        ("h200_sxm", "vllm", "vllm_flash_attn_fa3", "bfloat16", 4, 16, 1, 192, 1000),
        ("h200_sxm", "sglang", "triton", "bfloat16", 4, 16, 1, 192, 1000),
    ]  # fmt: skip
    tab = _attn_table(rows)
    w = kf.work(tab)
    before = {k: np.array(v, copy=True) for k, v in w.items()}
    var = kf.pnorm_dispatch("attention", tab.columns, w)
    hd = kf.FA3_HEAD_DIM_SUFFIX
    assert list(var) == ["fa3" + hd, "fa3" + hd, "fa3", "fa3", "vllm_flash_attn_fa3", "triton"]
    qk192 = np.array([True, True, False, False, False, True])
    for k in before:
        if k in ("flops", "bytes"):
            assert np.array_equal(w[k][~qk192], before[k][~qk192])
            assert np.all(w[k][qk192] < before[k][qk192])
        else:
            assert np.array_equal(w[k], before[k])
    bf16 = [r for r in rows if r[3] == "bfloat16" and r[1] == "sglang" and r[2] == "fa3"]
    assert len(kf.kernel_groups({"attention": _attn_table(bf16)})) == 1
    split = kf.kernel_groups({"attention": _attn_table(bf16)}, dispatch=True)
    assert sorted((g["variant"], len(g["t"])) for g in split) == [("fa3", 2), ("fa3" + hd, 1)]


def test_vllm_fa2_gqa_copy_variant():
    """vLLM's FlashAttention-2: the swapped-group reshapes of q and out copy exactly when
    B ≥ 2, K ≥ 2 and H > K (variant vllm_flash_attn:gqacopy); B = 1, K = 1, MHA, FA3 and
    other frameworks keep the table's variant; counts unchanged."""
    rows = [
        ("a100_sxm", "vllm", "vllm_flash_attn", "bfloat16", 2, 24, 2, 128, 64),  # copy
        ("a100_sxm", "vllm", "vllm_flash_attn", "bfloat16", 8, 64, 8, 128, 64),  # copy
        ("a100_sxm", "vllm", "vllm_flash_attn", "bfloat16", 1, 64, 8, 128, 64),  # B = 1: view
        ("a100_sxm", "vllm", "vllm_flash_attn", "bfloat16", 8, 64, 1, 128, 64),  # K = 1: view
        ("a100_sxm", "vllm", "vllm_flash_attn", "bfloat16", 8, 8, 8, 128, 64),  # MHA: no swap
        ("h200_sxm", "vllm", "vllm_flash_attn_fa3", "bfloat16", 8, 64, 8, 128, 64),  # pack_gqa
        ("a100_sxm", "sglang", "flash_attention", "bfloat16", 8, 64, 8, 128, 64),
    ]  # fmt: skip
    tab = _attn_table(rows)
    w = kf.work(tab)
    before = {k: np.array(v, copy=True) for k, v in w.items()}
    var = kf.pnorm_dispatch("attention", tab.columns, w)
    cp = "vllm_flash_attn" + kf.FA2_GQA_COPY_SUFFIX
    assert list(var) == [cp, cp, "vllm_flash_attn", "vllm_flash_attn", "vllm_flash_attn",
                         "vllm_flash_attn_fa3", "flash_attention"]  # fmt: skip
    for k in before:
        assert np.array_equal(w[k], before[k])
    assert len(kf.kernel_groups({"attention": _attn_table(rows[:5])})) == 1
    assert len(kf.kernel_groups({"attention": _attn_table(rows[:5])}, dispatch=True)) == 2


def _bf16_reference(v: float) -> float:
    """BF16 rounding (8 significant bits, round half to even) of a non-negative value."""
    if v == 0.0:
        return 0.0
    q = 2.0 ** (math.floor(math.log2(v)) - 7)
    return round(v / q) * q


def test_vllm_balanced_logits_in_bf16_merge_experts():
    """vLLM's MoE collector builds ``balanced_logits`` under a BF16 default dtype: for
    ``T < ⌈E/k⌉`` the hot ids ``i·s/T + j·s`` are rounded to BF16 (spacing 2 above 256, 4
    above 512) and tokens share experts. Kimi-K3's shape (E = 896, k = 16, s = 56)."""
    t, e, k = 32, 896, 16
    # reference: i·56/32 = 1.75·i is exact in BF16; the sum j·56 + 1.75·i is rounded, truncated
    ref = {int(_bf16_reference(56 * j + 1.75 * i)) % e for i in range(t) for j in range(k)}
    hot = kf.balanced_hot_experts(t, e, k, bf16=True)
    assert set(np.unique(hot)) == ref and len(ref) == 370
    assert np.all(hot[:, 10:] % 4 == 0)  # columns above 512: multiples of 4
    exact = kf.balanced_hot_experts(t, e, k, bf16=False)
    assert len(np.unique(exact)) == t * k == 512
    assert len(np.unique(kf.balanced_hot_experts(48, e, k, bf16=True))) == 443
    # T >= s: integer ids, no rounding; E = 256, k = 8 (values < 256): exact in BF16
    assert np.array_equal(
        kf.balanced_hot_experts(96, e, k, True), kf.balanced_hot_experts(96, e, k, False)
    )
    assert len(np.unique(kf.balanced_hot_experts(16, 256, 8, bf16=True))) == 128


def test_vllm_bf16_routing_counts_and_h100_marlin_sol():
    """The p-norm dispatch counts the BF16-merged experts of vLLM rows (weights, columns,
    reuse); SGLang rows keep the exact count. The three H100 Marlin W4A16 points (Kimi-K3
    shape) that ran below the HBM roofline with 512 / 768 experts are above it with 370 /
    443."""
    src = "vllm_compressedtensorsw4a4mxfp4moe_marlin_marlinexperts_situ_as_silu"
    rows = [
        ("h100_sxm", "vllm", "0.24.0", src, "w4a16_mxfp4", 32, 3584, 3072, 16, 896, 1, 1),
        ("h100_sxm", "vllm", "0.24.0", src, "w4a16_mxfp4", 48, 3584, 3072, 16, 896, 1, 1),
        ("h100_sxm", "vllm", "0.24.0", src, "w4a16_mxfp4", 48, 3584, 3072, 16, 896, 8, 1),
        ("h100_sxm", "vllm", "0.24.0", src, "w4a16_mxfp4", 32, 3584, 3072, 16, 896, 1, 2),
        ("h100_sxm", "sglang", "0.5.14", "sglang_marlin_moe_situ_as_silu", "w4a16_mxfp4", 32,
         3584, 3072, 16, 896, 1, 1),
    ]  # fmt: skip
    tab = _moe_table(rows)
    c = tab.columns
    # ep = 2: rank 0 holds experts 0-447 (columns j < 8): 8·32 exact; in BF16 28 even ids
    # per 56-wide column in [280, 448) (spacing 2), 30 in column 4 (224-279: 256 crossed)
    local = np.unique(kf.balanced_hot_experts(32, 896, 16, True))
    ref = {int(_bf16_reference(56 * j + 1.75 * i)) for i in range(32) for j in range(8)}
    assert np.sum(local < 448) == len(ref) == 4 * 32 + 30 + 3 * 28
    scale = kf.collector_bf16_expert_scale(c)
    assert list(scale) == pytest.approx([370 / 512, 443 / 768, 443 / 768, 242 / 256, 1.0])
    w = kf.work(tab)
    before = {k_: np.array(v, copy=True) for k_, v in w.items()}
    kf.pnorm_dispatch("moe", c, w)
    per_expert = 3 * 3584 * 3072 * (4.25 / 8)  # MXFP4: 4 bits + an 8-bit scale per 32
    for i, (n_old, n_new, tp) in enumerate([(512, 370, 1), (768, 443, 1), (768, 443, 8)]):
        assert w["rows"][i] == pytest.approx(n_new)
        assert before["bytes"][i] - w["bytes"][i] == pytest.approx(
            (n_old - n_new) * per_expert / tp
        )
        assert w["m"][i] == pytest.approx(rows[i][5] * 16 / n_new)
        assert w["units"][i] == pytest.approx(n_new * 3072 / tp)
    assert w["rows"][3] == pytest.approx(242.0)
    assert w["bytes"][4] == before["bytes"][4] and w["rows"][4] == before["rows"][4]
    for k_ in ("flops", "items", "depth"):
        assert np.array_equal(w[k_], before[k_])
    # measured H100 latencies (hardware_db/data/kernels/moe.csv): now at or above HBM SOL
    lat = np.array([2.42998e-3, 2.91268e-3, 4.59691e-4])
    c3 = {k_: v[:3] for k_, v in c.items()}
    c3["latency_s"] = lat
    (g,) = kf.kernel_groups({"moe": KernelTable("moe", None, c3)}, dispatch=True)
    assert np.all(g["t"] >= g["sol"])
    (g0,) = kf.kernel_groups({"moe": KernelTable("moe", None, c3)}, dispatch=False)
    assert np.all(g0["t"] < g0["sol"])  # the exact count: 0.72-0.91x of SOL
