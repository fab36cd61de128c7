"""Energy per token with the sourced energies of the database.

``decode_step`` charges bytes moved per memory tier × J/byte, FLOPs × J/FLOP and link bytes
× J/byte per interconnect tier (``costmodel/decode.py``). These tests check that every
shipped system yields a positive, finite energy, one closed form worked by hand
(Llama-3.1-8B on one H100, batch 1: no communication) and that the energy is linear in the
energy fields (so doubling the HBM J/byte at most doubles J/token).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hardware_db as db
from costmodel import params as P
from costmodel.decode import decode_step
from costmodel.specs import Parallelism, SystemSpec, Workload

SMALL = "llama-3.1-8b"
CHIPS_CAP = 64.0  # for systems with a free die count

_step = jax.jit(decode_step)
_sweep = jax.jit(jax.vmap(decode_step, in_axes=(None, None, None, 0, None)))


def _energy(model, prec, system, par, wl) -> float:
    return float(_step(model, prec, system, par, wl).energy_j_per_token)


def _scale_energies(system: SystemSpec, hbm=1.0, sram=1.0, flop=1.0, link=1.0) -> SystemSpec:
    c = system.chip
    chip = c.replace(
        hbm_energy_j_per_byte=c.hbm_energy_j_per_byte * hbm,
        sram_energy_j_per_byte=c.sram_energy_j_per_byte * sram,
        flop_energy_j_per_flop=c.flop_energy_j_per_flop * flop,
    )
    tiers = tuple(t.replace(energy_j_per_byte=t.energy_j_per_byte * link) for t in system.tiers)
    return system.replace(chip=chip, tiers=tiers)


def _generic_tier_names(system: SystemSpec) -> SystemSpec:
    """The same system with tiers after the first renamed ``t1, t2, …``. Only the name
    ``die`` of the first tier enters the model (``t_onchip_s``); names are static pytree
    fields, so generic names let systems with the same topologies share one compilation."""
    tiers = tuple(t if i == 0 else t.replace(name=f"t{i}") for i, t in enumerate(system.tiers))
    return system.replace(tiers=tiers)


# ------------------------------------------------------------- every system has energies


def test_every_chip_and_tier_has_energy_data():
    """Every chip moves bytes at a cost (HBM or, SRAM-only, SRAM) and pays for FLOPs."""
    for name in db.list_names("chips"):
        c = db.load_chip(name)
        assert float(c.flop_energy_j_per_flop) > 0, name
        if float(c.hbm_capacity_bytes) > 0:
            assert float(c.hbm_energy_j_per_byte) > 0, name
        if float(c.sram_capacity_bytes) > 0:
            assert float(c.sram_energy_j_per_byte) > 0, name
    for name in db.list_names("systems"):
        for t in db.load_system(name).tiers[1:]:  # the die tier may be 0 (not modelled)
            assert float(t.energy_j_per_byte) > 0, (name, t.name)


# Llama-3.1-8B splits (attn_tp, attn_dp, kvp, ep, moe_tp, pp): TP over ≤ 8 chips (8 KV
# heads), then pipeline stages; one compiled sweep of fixed length serves every system.
SPLITS = np.array(
    [[1, 1, 1, 1, 1, 1], [2, 1, 1, 1, 2, 1], [4, 1, 1, 1, 4, 1], [8, 1, 1, 1, 8, 1],
     [8, 1, 1, 1, 8, 2], [8, 1, 1, 1, 8, 4], [8, 1, 1, 1, 8, 8]],
    dtype=float,
)  # fmt: skip


@pytest.mark.parametrize("system_name", db.list_names("systems"))
def test_energy_positive_and_finite_for_every_system(system_name):
    """Llama-3.1-8B (BF16), batch 8, 2k context: every split that fits (within the
    system's chips, at most 64) has 0 < J/token < ∞."""
    model, prec = db.load_model(SMALL)
    system = db.load_system(system_name)
    if not math.isfinite(float(system.max_chips)):
        system = db.load_system(system_name, max_chips=CHIPS_CAP)
    wl = Workload(batch=8.0, context_tokens=2048.0)
    chips = SPLITS[:, 0] * SPLITS[:, 5]
    par = Parallelism(*(jnp.asarray(SPLITS[:, i]) for i in range(6)))
    r = _sweep(model, prec, _generic_tier_names(system), par, wl)
    fits = np.asarray(r.fits) & (chips <= float(system.max_chips))
    assert fits.any(), f"{SMALL} fits on no split of {system_name}"
    e = np.asarray(r.energy_j_per_token)[fits]
    assert np.all(np.isfinite(e)) and np.all(e > 0)
    # an 8B model reads 15 GB of weights per step for 8 tokens: between 1 mJ and 10 J each
    assert 1e-3 < e.min() and e.max() < 10.0


# ----------------------------------------------- closed form: Llama-3.1-8B on one H100


def test_llama8b_one_h100_batch1_energy_by_hand():
    """J/token = bytes read × J/byte(HBM) + FLOPs × J/FLOP at batch 1 on one chip.

    By hand, per decode step of one sequence (tp = 1, GQA, untied LM head):
    weights read = 2 B × [L·(W_qkv + W_o + W_ffn) + V·D + D] (the embedding reads one row);
    KV read = 2 B × L·K·(d_qk + d_v)·S; activations (the model's convention: input and
    output vectors of each matmul, q/k/v/o of the attention core, LM-head logits) =
    2 B × [L·((D + W_qkv/D) + H·(d_qk + d_v) + (W_o/D + D) + (2D + 2·W_ffn/D)) + (D + V) + D];
    FLOPs = 2·[L·(W_qkv + W_o + W_ffn) + V·D] + L·H·S·(2·d_qk + 2·d_v).
    One chip, so no collective moves a byte and the tiers' J/byte do not enter.
    """
    m, p = db.load_model(SMALL)
    system = db.load_system("hgx-h100-8")
    chip = system.chip
    s = 4096.0
    wl = Workload(batch=1.0, context_tokens=s)
    assert p.attn_weight_bytes == p.ffn_weight_bytes == p.embed_weight_bytes == 2.0
    assert p.kv_bytes == p.act_bytes == 2.0
    assert m.n_full_attn_layers == m.n_dense_ffn_layers == m.n_layers == 32.0
    assert m.n_moe_layers == 0.0 and m.tied_embeddings == 0.0

    d, L, h, k, v = (
        float(x) for x in (m.d_model, m.n_layers, m.n_heads, m.n_kv_heads, m.vocab_size)
    )
    d_kv = float(P.kv_elems_per_head(m))  # d_qk + d_v = 256
    w_qkv = float(P.attn_q_params(m) + P.attn_kv_params(m))  # D·H·d_qk + D·K·(d_qk + d_v)
    w_o = float(P.attn_o_params(m))
    w_ffn = float(P.dense_ffn_params(m))  # 3·D·F
    w_head = float(P.lm_head_params(m))  # V·D
    assert w_qkv == d * h * 128 + d * k * 256 and w_ffn == 3 * d * 14336 and w_head == v * d

    weights = 2.0 * (L * (w_qkv + w_o + w_ffn) + w_head + d)
    kv = 2.0 * L * k * d_kv * s
    acts = 2.0 * (
        L * ((d + w_qkv / d) + h * d_kv + (w_o / d + d) + (2 * d + 2 * w_ffn / d)) + (d + v) + d
    )
    flops = 2.0 * (L * (w_qkv + w_o + w_ffn) + w_head) + L * h * s * 2.0 * d_kv
    e_byte = float(chip.hbm_energy_j_per_byte)
    e_flop = float(chip.flop_energy_j_per_flop)
    expected = (weights + kv + acts) * e_byte + flops * e_flop

    r = _step(m, p, system, Parallelism(), wl)
    got = float(r.energy_j_per_token)
    assert got == pytest.approx(expected, rel=1e-9)
    # activations are a rounding error: weights + KV + FLOPs alone are within 0.1 %
    assert got == pytest.approx((weights + kv) * e_byte + flops * e_flop, rel=1e-3)
    # magnitudes: 15 GB of weights read (all but the embedding table) at 31.2 pJ/B
    # (3.9 pJ/bit) ≈ 0.47 J, plus 0.54 GB of KV and 17 GFLOP: ≈ 0.5 J per token
    assert weights == pytest.approx(15.01e9, rel=1e-3)
    assert 0.4 < got < 0.7
    # no communication: link energies do not enter
    loud_links = _scale_energies(system, link=1e6)
    assert _energy(m, p, loud_links, Parallelism(), wl) == pytest.approx(got, rel=1e-12)


# ------------------------------------------------------------- linearity in the energies

CASES = {
    "llama8b-h100-b1": (SMALL, "hgx-h100-8", Parallelism(), 1.0, 4096.0),
    "llama8b-h100x8-b64": (
        SMALL, "hgx-h100-8", Parallelism(attn_tp=8.0, moe_tp=8.0), 64.0, 8192.0,
    ),
    "kimi-gb200x64-b256": (
        "kimi-k2.5", "gb200-nvl72",
        Parallelism(attn_tp=1.0, attn_dp=8.0, kvp=8.0, ep=64.0), 256.0, 8192.0,
    ),
    "llama8b-lpu-b8": (
        SMALL, "lpu-rack", Parallelism(attn_tp=8.0, moe_tp=8.0, pp=8.0), 8.0, 2048.0,
    ),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    name, sys_name, par, batch, ctx = CASES[request.param]
    m, p = db.load_model(name)
    return m, p, db.load_system(sys_name), par, Workload(batch=batch, context_tokens=ctx)


def test_doubling_hbm_energy_at_most_doubles_energy_per_token(case):
    m, p, system, par, wl = case
    e1 = _energy(m, p, system, par, wl)
    e2 = _energy(m, p, _scale_energies(system, hbm=2.0), par, wl)
    assert e1 > 0
    assert e1 <= e2 <= 2.0 * e1 * (1 + 1e-12)


def test_energy_is_linear_in_the_energy_fields(case):
    """J/token is a sum of (bytes or FLOPs) × J per unit: the parts add up to the whole,
    and scaling every energy by c scales J/token by c."""
    m, p, system, par, wl = case
    total = _energy(m, p, system, par, wl)
    keys = ("hbm", "sram", "flop", "link")
    only = [{k: float(k == f) for k in keys} for f in keys]
    parts = [_energy(m, p, _scale_energies(system, **o), par, wl) for o in only]
    assert all(x >= 0 for x in parts)
    assert sum(parts) == pytest.approx(total, rel=1e-9)
    assert _energy(
        m, p, _scale_energies(system, hbm=3.0, sram=3.0, flop=3.0, link=3.0), par, wl
    ) == pytest.approx(3.0 * total, rel=1e-12)
