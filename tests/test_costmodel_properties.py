"""Properties of the cost model: monotonicity, loop == vmap == jit, gradients, precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    BF16,
    INT4_EXPERTS,
    deepseek_v3,
    gb200,
    gpt_oss_like,
    h100,
    kimi_k25,
    llama70b,
    switch_system,
)
from jax.test_util import check_grads

from costmodel.decode import decode_step
from costmodel.specs import (
    Parallelism,
    Precision,
    SystemSpec,
    TierSpec,
    Workload,
    stack,
)
from search.paths import scale_system


def two_tier(chip, inner=8.0, outer=1024.0):
    tiers = (
        TierSpec(30e-9, 0.0, 1e14, 1.0, name="die"),
        TierSpec(0.3e-6, 0.4e-6, 450e9, inner, topology="switch", name="scale_up"),
        TierSpec(1.5e-6, 1e-6, 50e9, outer, topology="torus2d", name="scale_out"),
    )
    return SystemSpec(chip=chip, tiers=tiers, max_chips=outer)


# (model, precision, parallelism, workload): mixed models, splits and workloads
CASES = [
    (llama70b(), BF16, Parallelism(attn_tp=8.0, moe_tp=8.0), Workload(batch=1.0, context_tokens=2048.0)),
    (llama70b(), BF16, Parallelism(attn_tp=4.0, attn_dp=4.0, moe_tp=16.0), Workload(batch=16.0, context_tokens=32768.0)),
    (kimi_k25(), INT4_EXPERTS, Parallelism(attn_tp=8.0, ep=8.0), Workload(batch=1.0, context_tokens=4096.0)),
    (kimi_k25(), INT4_EXPERTS, Parallelism(attn_tp=2.0, kvp=4.0, attn_dp=4.0, ep=32.0, pp=2.0), Workload(batch=8.0, context_tokens=131072.0, overlap=1.0)),
    (deepseek_v3(), BF16, Parallelism(attn_dp=16.0, ep=16.0), Workload(batch=64.0, context_tokens=8192.0, mtp_depth=3.0, acceptance_rate=0.8)),
    (deepseek_v3(), BF16, Parallelism(attn_tp=8.0, ep=4.0, moe_tp=2.0, pp=4.0), Workload(batch=2.0, context_tokens=1024.0, mtp_depth=1.0, acceptance_rate=0.9)),
    (gpt_oss_like(), BF16, Parallelism(attn_tp=4.0, ep=4.0), Workload(batch=4.0, context_tokens=65536.0)),
    (gpt_oss_like(), BF16, Parallelism(attn_tp=8.0, kvp=8.0, ep=64.0), Workload(batch=1.0, context_tokens=1e6, moe_imbalance=1.3)),
]  # fmt: skip
SYSTEM = two_tier(gb200())


def _f(case, system=SYSTEM):
    m, p, par, wl = case
    return decode_step(m, p, system, par, wl)


def test_loop_equals_vmap_equals_jit():
    """Eight mixed configurations: a Python loop, ``vmap`` and ``jit(vmap)`` agree."""
    loop = [_f(c) for c in CASES]
    batched = tuple(stack([c[i] for c in CASES]) for i in range(4))
    f = lambda m, p, par, wl: decode_step(m, p, SYSTEM, par, wl)  # noqa: E731
    v = jax.vmap(f)(*batched)
    j = jax.jit(jax.vmap(f))(*batched)
    for i, r in enumerate(loop):
        for a, b, c in zip(jax.tree.leaves(r), jax.tree.leaves(v), jax.tree.leaves(j), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-12)
            np.testing.assert_allclose(np.asarray(a), np.asarray(c)[i], rtol=1e-10)


def _perturb_chip(chip, field, factor):
    return chip.replace(**{field: getattr(chip, field) * factor})


@pytest.mark.parametrize("case", range(len(CASES)))
def test_monotone_in_hardware(case):
    """More bandwidth, FLOP/s or capacity, or lower latency, never slows a configuration."""
    base = float(_f(CASES[case]).step_time_s)
    chip = SYSTEM.chip
    better = [
        SYSTEM.replace(chip=_perturb_chip(chip, "hbm_bw_bytes_per_s", 1.5)),
        SYSTEM.replace(chip=_perturb_chip(chip, "peak_flops_per_s_bf16", 1.5)),
        SYSTEM.replace(chip=_perturb_chip(chip, "peak_flops_per_s_fp8", 1.5)),
        SYSTEM.replace(chip=_perturb_chip(chip, "hbm_capacity_bytes", 1.5)),
        scale_system(SYSTEM, "latency", 0.5),
        SYSTEM.replace(
            tiers=tuple(t.replace(bw_bytes_per_s=t.bw_bytes_per_s * 2) for t in SYSTEM.tiers)
        ),
    ]
    for s in better:
        assert float(_f(CASES[case], s).step_time_s) <= base * (1 + 1e-12)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_more_context_never_helps(case):
    m, p, par, wl = CASES[case]
    t = [
        float(decode_step(m, p, SYSTEM, par, wl.replace(context_tokens=s)).step_time_s)
        for s in (1024.0, 4096.0, 65536.0, 1e6)
    ]
    assert all(a <= b * (1 + 1e-12) for a, b in zip(t, t[1:], strict=False))


def test_sram_placement_speeds_up_when_model_fits():
    """The same chip with enough SRAM to hold everything is faster than HBM-only."""
    m, p, par, wl = CASES[2]
    sram = SYSTEM.replace(
        chip=SYSTEM.chip.replace(sram_capacity_bytes=200e9, sram_bw_bytes_per_s=150e12)
    )
    assert float(_f(CASES[2], sram).step_time_s) < float(_f(CASES[2]).step_time_s)


def _hardware_fn(case):
    """Step time as a function of the (float) hardware numbers, for gradient checks."""
    m, p, par, wl = case

    def f(bw, flops, alpha, over, link):
        chip = SYSTEM.chip.replace(hbm_bw_bytes_per_s=bw, peak_flops_per_s_bf16=flops)
        tiers = (SYSTEM.tiers[0],) + tuple(
            t.replace(hop_latency_s=alpha * (i + 1), overhead_s=over, bw_bytes_per_s=link / (i + 1))
            for i, t in enumerate(SYSTEM.tiers[1:])
        )
        s = SYSTEM.replace(chip=chip, tiers=tiers)
        return decode_step(m, p, s, par, wl).step_time_s * 1e3

    return f


@pytest.mark.parametrize("case", range(len(CASES)))
def test_check_grads_float64_interior(case):
    """Forward- and reverse-mode gradients agree with finite differences in float64."""
    f = _hardware_fn(CASES[case])
    args = (8.1e12, 2.43e15, 0.37e-6, 0.41e-6, 437e9)
    # scale inputs to O(1) so that finite differences are well conditioned
    scales = np.array(args)
    g = lambda *u: f(*(ui * si for ui, si in zip(u, scales, strict=True)))  # noqa: E731
    check_grads(g, tuple(np.ones(5)), order=1, modes=("fwd", "rev"), eps=1e-6, rtol=1e-5, atol=1e-9)


def test_gradients_finite_at_kinks():
    """At degrees of exactly 1 (collective on/off), window == context, and a roofline
    tie, every gradient is finite."""
    m = gpt_oss_like()

    def f(par_vals, context, bw):
        par = Parallelism(*par_vals)
        chip = SYSTEM.chip.replace(hbm_bw_bytes_per_s=bw)
        return decode_step(
            m, BF16, SYSTEM.replace(chip=chip), par, Workload(batch=1.0, context_tokens=context)
        ).step_time_s

    g = jax.grad(f, argnums=(0, 1, 2))(tuple(jnp.ones(6)), 128.0, 8e12)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g))
    # relaxed degrees (non-integers) also have finite gradients
    g2 = jax.grad(f, argnums=0)(tuple(jnp.array([2.5, 1.0, 1.7, 3.2, 1.0, 1.4])), 4096.0, 8e12)
    assert all(np.isfinite(float(x)) for x in g2)


def test_float32_matches_float64():
    """float32 evaluation within 1e-4 relative of float64 on every case and output."""
    for case in CASES:
        r64 = _f(case)
        c32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), case)
        s32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), SYSTEM)
        r32 = decode_step(*c32[:2], s32, *c32[2:])
        assert r32.step_time_s.dtype == jnp.float32
        for name in ("utps", "step_time_s", "memory_per_chip_bytes", "energy_j_per_token"):
            a, b = float(getattr(r64, name)), float(getattr(r32, name))
            assert b == pytest.approx(a, rel=1e-4, abs=1e-30)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_latency_scale_scales_only_latency_terms(case):
    """10x lower latency: communication costs at most 0.1·latency + the old bandwidth term
    (the old algorithms remain available; a faster one may now win) and nothing else moves."""
    r1 = _f(CASES[case])
    r2 = _f(CASES[case], scale_system(SYSTEM, "latency", 0.1))
    b1, b2 = r1.breakdown_s, r2.breakdown_s
    comm2 = float(b2.comm_latency) + float(b2.comm_bandwidth)
    assert comm2 <= 0.1 * float(b1.comm_latency) + float(b1.comm_bandwidth) + 1e-15
    for f in ("compute", "weight_read", "kv_read", "activation", "overhead"):
        assert float(getattr(b2, f)) == pytest.approx(float(getattr(b1, f)), rel=1e-12)


def test_latency_scale_exact_when_algorithm_fixed():
    """All-to-all has one algorithm: with attention-DP + EP (only all-to-alls and tiny
    messages) the latency term scales exactly."""
    m, p, par, wl = CASES[4]
    sysm = switch_system(gb200(), 16.0)
    par = Parallelism(attn_dp=16.0, ep=16.0)
    m = m.replace(n_dense_ffn_layers=0.0, n_moe_layers=61.0)
    r1 = decode_step(m, p, sysm, par, wl)
    r2 = decode_step(m, p, scale_system(sysm, "latency", 0.1), par, wl)
    assert float(r2.breakdown_s.comm_latency) == pytest.approx(
        0.1 * float(r1.breakdown_s.comm_latency), rel=1e-9
    )


def test_one_trace_for_new_values():
    """jit compiles once for a new configuration of the same structure."""
    traces = []

    @jax.jit
    def f(m, p, par, wl):
        traces.append(1)
        return decode_step(m, p, SYSTEM, par, wl).utps

    for case in CASES[:4]:
        f(*case)
    assert len(traces) == 1


def test_pp_adds_hops_but_not_speed():
    """Pipeline parallelism splits capacity, not time: PP4 is never faster at batch 1."""
    m = llama70b()
    sys1 = switch_system(h100(), 64.0)
    wl = Workload(batch=1.0, context_tokens=1024.0)
    r1 = decode_step(m, BF16, sys1, Parallelism(attn_tp=8.0, moe_tp=8.0), wl)
    r4 = decode_step(m, BF16, sys1, Parallelism(attn_tp=8.0, moe_tp=8.0, pp=4.0), wl)
    assert float(r4.step_time_s) > float(r1.step_time_s)
    assert float(r4.memory_per_chip_bytes) < float(r1.memory_per_chip_bytes) / 3


def test_helix_kvp_beats_tp_at_long_context():
    """At 1M tokens of MLA KV, spreading KV with kvp beats pure TP (which duplicates the
    latent on every chip): Helix's point."""
    m = deepseek_v3()
    fp4 = Precision(0.5625, 0.5625, 0.5625, 0.5625, 0.5625, 0.5625, 4.0, 4.0, 4.0, 4.0)
    wl = Workload(batch=8.0, context_tokens=1e6)
    sysm = switch_system(gb200(), 64.0, bw=900e9)
    tp = decode_step(m, fp4, sysm, Parallelism(attn_tp=32.0, ep=32.0), wl)
    kvp = decode_step(m, fp4, sysm, Parallelism(attn_tp=1.0, kvp=32.0, ep=32.0), wl)
    assert float(kvp.utps) > 1.3 * float(tp.utps)
