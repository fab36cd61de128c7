"""Property tests of the cost model over the whole valid domain of specs (hypothesis).

Inputs are drawn from

* **models**: every model of the database, and random :class:`ModelSpec`\\ s within sane
  ranges (GQA or MLA; full / window / DSA-sparse / linear layer classes; dense and MoE
  FFNs, latent MoE, shared experts, MTP modules, tied embeddings);
* **systems**: a database system's chip and tier numbers, each multiplied by a random
  factor in [1/4, 4], laid onto one of :data:`STRUCTURES` (1–3 tiers covering every
  topology: switch, full, ring, torus2d, torus3d, mesh2d) with a random chip budget;
* **precision**: database recipes and random byte widths / compute bits;
* **workload**: batch, context, MTP depth and acceptance, overlap, MoE imbalance;
* **degrees**: a valid split of the drawn model from :func:`search.splits.valid_splits`
  (or, for gradients, relaxed non-integer degrees ≥ 1);
* **mode**: SOL or one of the calibrated efficiencies (every hardware × software level
  that :func:`hardware_db.calibration.efficiency_for` returns for the database systems).

Compile counts stay low: every record leaf is passed as a traced float64 (or float32)
array, so one program per (function, tier structure) serves every example; there are
five structures. The CI profile (``tests/conftest.py``) runs 50 examples per property,
``HYPOTHESIS_PROFILE=long`` 1000.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, note, target
from hypothesis import strategies as st

import hardware_db as db
from costmodel.decode import decode_step
from costmodel.feasibility import CAPACITY, explain
from costmodel.specs import (
    SOL,
    ChipSpec,
    Efficiency,
    ModelSpec,
    Parallelism,
    Precision,
    SystemSpec,
    Workload,
)
from search.jit import jit_fast_compile
from search.splits import valid_splits

STRUCTURES = (
    ("switch",),
    ("switch", "full"),
    ("switch", "torus2d", "ring"),
    ("switch", "torus3d", "mesh2d"),
    ("switch", "switch", "switch"),
)
"""Tier topologies, innermost first (the first of several tiers is the ``die``)."""

MODELS = {n: db.load_model(n) for n in db.list_names("models")}
PRECISIONS = {n: db.load_precision(n) for n in db.list_names("precisions")}
SYSTEMS = {n: db.load_system(n) for n in db.list_names("systems") if n != "reticle-die"}
SYSTEMS["reticle-die"] = db.load_system("reticle-die", max_chips=4096)
CHIPS = {n: db.load_chip(n) for n in db.list_names("chips")}

REL = 1e-9
"""Slack for comparisons of float64 times that should be ordered."""


@functools.cache
def calibrated_modes() -> tuple[tuple[str, Efficiency], ...]:
    """Every calibrated efficiency the database systems can get (all software levels)."""
    from hardware_db.calibration import efficiency_for, load_calibration

    cal = load_calibration()
    out = {}
    for system in db.list_names("systems"):
        for software in (None, *sorted(cal.software)):
            eff, name, _ = efficiency_for(system, software)
            out.setdefault(name, eff)
    return tuple(sorted(out.items()))


# --------------------------------------------------------------------------- strategies


def _factor(lo=0.25, hi=4.0):
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


@st.composite
def random_models(draw) -> ModelSpec:
    """A consistent random decoder: layer classes sum to the layer count, KV heads divide
    the query heads, MoE fields only when there are MoE layers."""
    i = st.integers
    L = draw(i(1, 128))
    D = 64 * draw(i(2, 256))
    H = draw(st.sampled_from([1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64, 96, 128]))
    f = {
        "n_layers": L,
        "d_model": D,
        "vocab_size": draw(i(256, 300_000)),
        "tied_embeddings": draw(i(0, 1)),
        "n_heads": H,
        "attn_output_gate": draw(i(0, 1)),
        "ffn_matrices": draw(st.sampled_from([2, 3])),
        "n_mtp_layers": draw(i(0, 2)),
    }
    if draw(st.booleans()):  # MLA
        rope = draw(st.sampled_from([0, 32, 64]))
        f |= {
            "n_kv_heads": H,
            "kv_lora_rank": draw(i(1, 16)) * 64,
            "qk_rope_head_dim": rope,
            "head_dim_qk": rope + draw(i(1, 4)) * 32,
            "head_dim_v": draw(i(1, 4)) * 32,
            "q_lora_rank": draw(st.sampled_from([0, 768, 1536])),
        }
    else:
        hd = draw(st.sampled_from([32, 64, 80, 96, 128, 192, 256]))
        divs = [k for k in range(1, H + 1) if H % k == 0]
        f |= {"n_kv_heads": draw(st.sampled_from(divs)), "head_dim_qk": hd, "head_dim_v": hd}
    n_linear = draw(i(0, L)) if draw(st.booleans()) else 0
    n_window = draw(i(0, L - n_linear))
    n_sparse = draw(i(0, L - n_linear - n_window)) if draw(st.booleans()) else 0
    f |= {
        "n_linear_attn_layers": n_linear,
        "n_window_attn_layers": n_window,
        "n_sparse_attn_layers": n_sparse,
        "n_full_attn_layers": L - n_linear - n_window - n_sparse,
    }
    if n_window:
        f["window_tokens"] = draw(i(16, 16384))
    if n_sparse:
        f |= {
            "sparse_topk_tokens": draw(i(64, 4096)),
            "indexer_heads": draw(i(1, 64)),
            "indexer_head_dim": draw(st.sampled_from([32, 64, 128])),
        }
    if n_linear:
        lv = draw(st.sampled_from([h for h in (4, 8, 16, 32, 48, 64) if h % 4 == 0]))
        f |= {
            "linear_k_heads": draw(st.sampled_from([lv // 4, lv // 2, lv])),
            "linear_v_heads": lv,
            "linear_k_head_dim": draw(st.sampled_from([64, 128])),
            "linear_v_head_dim": draw(st.sampled_from([64, 128])),
            "linear_conv_kernel": draw(i(0, 4)),
        }
    n_moe = draw(i(0, L))
    f |= {"n_moe_layers": n_moe, "n_dense_ffn_layers": L - n_moe}
    if n_moe < L or f["n_mtp_layers"]:
        f["d_ff_dense"] = draw(i(2, 1024)) * 64
    if n_moe:
        E = draw(i(2, 512))
        f |= {
            "n_experts": E,
            "top_k": draw(i(1, min(E, 16))),
            "n_shared_experts": draw(i(0, 2)),
            "d_ff_expert": draw(i(1, 128)) * 64,
            "moe_latent_dim": draw(st.sampled_from([0, 0, 1024, 2048])),
        }
        f["d_ff_shared"] = f["d_ff_expert"] * draw(i(1, 4)) if f["n_shared_experts"] else 0
    return ModelSpec(**{k: float(v) for k, v in f.items()})


def models():
    return st.one_of(st.sampled_from(sorted(MODELS)).map(lambda n: MODELS[n][0]), random_models())


@st.composite
def precisions(draw) -> Precision:
    if draw(st.booleans()):
        return PRECISIONS[draw(st.sampled_from(sorted(PRECISIONS)))]
    width = st.sampled_from([0.53125, 0.5625, 1.0, 1.0 + 4 / 16384, 2.0, 4.0])
    bits = st.sampled_from([4.0, 8.0, 16.0])
    return Precision(
        attn_weight_bytes=draw(width),
        ffn_weight_bytes=draw(width),
        expert_weight_bytes=draw(width),
        embed_weight_bytes=draw(width),
        kv_bytes=draw(width),
        act_bytes=draw(st.sampled_from([1.0, 2.0, 4.0])),
        state_bytes=draw(st.sampled_from([2.0, 4.0])),
        attn_compute_bits=draw(bits),
        ffn_compute_bits=draw(bits),
        expert_compute_bits=draw(bits),
    )


def _scaled(draw, rec, fields):
    """``rec`` with each of ``fields`` multiplied by its own random factor in [1/4, 4]."""
    return rec.replace(**{k: getattr(rec, k) * draw(_factor()) for k in fields})


CHIP_FIELDS = tuple(f for f in ChipSpec.__dataclass_fields__)
TIER_FIELDS = ("hop_latency_s", "overhead_s", "bw_bytes_per_s", "energy_j_per_byte")


@st.composite
def systems(draw, structure: int | None = None) -> SystemSpec:
    """A database system's numbers (perturbed) on one of :data:`STRUCTURES`."""
    s_idx = draw(st.integers(0, len(STRUCTURES) - 1)) if structure is None else structure
    topo = STRUCTURES[s_idx]
    base = SYSTEMS[draw(st.sampled_from(sorted(SYSTEMS)))]
    chip = base.chip if draw(st.booleans()) else CHIPS[draw(st.sampled_from(sorted(CHIPS)))]
    chip = _scaled(draw, chip, CHIP_FIELDS)
    budget = float(base.max_chips)
    if draw(st.booleans()) or not math.isfinite(budget):
        budget = float(2 ** draw(st.integers(0, 12)))
    inter = [t for t in base.tiers if t.name != "die"] or list(base.tiers)
    tiers = []
    if len(topo) == 1:
        src = _scaled(draw, inter[0], TIER_FIELDS)
        tiers.append(src.replace(domain_chips=budget, topology=topo[0], name="scale_up"))
    else:
        die = _scaled(draw, base.tiers[0], TIER_FIELDS)
        tiers.append(die.replace(domain_chips=1.0, topology=topo[0], name="die"))
        domain = 1.0
        for j, kind in enumerate(topo[1:], start=1):
            src = _scaled(draw, inter[min(j - 1, len(inter) - 1)], TIER_FIELDS)
            last = j == len(topo) - 1
            if last:
                domain = max(domain, budget)
            else:
                domain = float(2 ** draw(st.integers(1, 8)))
            tiers.append(src.replace(domain_chips=domain, topology=kind, name=f"t{j}"))
    return SystemSpec(chip=chip, tiers=tuple(tiers), max_chips=budget)


def _edgy(lo, hi, *edges):
    """Floats in [lo, hi], with the ends and ``edges`` drawn often."""
    return st.one_of(st.sampled_from([lo, hi, *edges]), st.floats(lo, hi))


@st.composite
def workloads(draw) -> Workload:
    """Every workload the CLI accepts (``search.scenario.make_workload``'s ranges)."""
    mtp = draw(st.one_of(st.integers(0, 4), st.integers(0, 16)))
    batch = st.one_of(st.sampled_from([1, 1, 2, 3, 4, 8, 64, 1024]), st.integers(1, 10**9))
    context = st.one_of(st.integers(1, 1 << 20), st.integers(1, 10**9))
    return Workload(
        batch=float(draw(batch)),
        context_tokens=float(draw(context)),
        mtp_depth=float(mtp),
        acceptance_rate=draw(_edgy(0.0, 1.0, 0.5, 0.99999, 1 - 1e-9)) if mtp else 0.0,
        overlap=draw(_edgy(0.0, 1.0)),
        moe_imbalance=draw(_edgy(1.0, 100.0)),
    )


@st.composite
def modes(draw) -> Efficiency:
    cal = calibrated_modes()
    if draw(st.booleans()):
        return SOL
    return cal[draw(st.integers(0, len(cal) - 1))][1]


def valid_split(draw, model: ModelSpec, system: SystemSpec, wl: Workload) -> Parallelism:
    rows = valid_splits(model, float(system.max_chips), float(wl.batch), float(wl.context_tokens))
    assert len(rows), "the all-ones split is always valid"
    row = rows[draw(st.integers(0, len(rows) - 1))]
    return Parallelism(*(float(x) for x in row))


@st.composite
def configs(draw, structure: int | None = None):
    """``(model, precision, system, parallelism, workload, mode)`` with a valid split."""
    m = draw(models())
    system = draw(systems(structure))
    wl = draw(workloads())
    par = valid_split(draw, m, system, wl)
    cfg = (m, draw(precisions()), system, par, wl, draw(modes()))
    note(f"config: {cfg}")
    return cfg


# --------------------------------------------------------------------------- compiled


def as_dtype(tree, dtype=np.float64):
    """Every leaf as a NumPy array of ``dtype``: traced under jit (one program per
    structure), never a weak-typed Python float."""
    return jax.tree.map(lambda x: np.asarray(x, dtype), tree)


def _step(m, p, s, par, wl, mode):
    return decode_step(m, p, s, par, wl, mode)


_value = jax.jit(_step)


def value(cfg, dtype=np.float64):
    """Host DecodeResult of a configuration (one compiled program per structure)."""
    return jax.tree.map(np.asarray, _value(*as_dtype(cfg, dtype)))


def _log_utps(system, par, m, p, wl, mode):
    return jnp.log(decode_step(m, p, system, par, wl, mode).utps)


_grad = jit_fast_compile(jax.grad(_log_utps, argnums=(0, 1)))


def grad_log_utps(cfg):
    m, p, s, par, wl, mode = as_dtype(cfg)
    return _grad(s, par, m, p, wl, mode)


def _finite(tree) -> list[str]:
    """Paths of the leaves of ``tree`` that are not finite."""
    bad = []
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        if not np.all(np.isfinite(np.asarray(x))):
            bad.append(f"{jax.tree_util.keystr(path)}={np.asarray(x)}")
    return bad


OUTPUTS = ("utps", "tpot_s", "step_time_s", "tokens_per_step", "system_tps", "tps_per_chip")
OUTPUTS += ("memory_per_chip_bytes", "weight_bytes_per_chip", "kv_bytes_per_chip")
OUTPUTS += ("energy_j_per_token", "collectives_per_step")

# --------------------------------------------------------------------------- values


@given(configs())
def test_values_finite_and_positive(cfg):
    """Every output is finite; times, rates and bytes are positive; the breakdown sums
    to the step; ``fits`` is exactly "no reason bit set"; a split from ``valid_splits``
    breaks none of the model's rules (only capacity may fail)."""
    r = value(cfg)
    assert int(r.reason) & ~CAPACITY == 0, explain(int(r.reason))
    assert not _finite([getattr(r, k) for k in OUTPUTS] + [r.breakdown_s]), _finite(r)
    assert r.step_time_s > 0 and r.utps > 0 and r.memory_per_chip_bytes > 0
    parts = [float(x) for x in jax.tree.leaves(r.breakdown_s)]
    assert min(parts) >= 0
    assert sum(parts) == pytest.approx(float(r.step_time_s), rel=1e-9)
    assert bool(r.fits) == (int(r.reason) == 0)
    assert 1.0 <= float(r.tokens_per_step) <= 1.0 + float(cfg[4].mtp_depth) + 1e-12


@given(st.data())
def test_gradients_finite_at_valid_splits(data):
    """d log UTPS / d (system, parallelism) is finite at integer (kink) splits."""
    cfg = data.draw(configs())
    g = grad_log_utps(cfg)
    assert not _finite(g), _finite(g)


@st.composite
def relaxed_degrees(draw) -> Parallelism:
    d = st.one_of(st.just(1.0), st.floats(1.0, 64.0))
    return Parallelism(*(draw(d) for _ in range(6)))


@given(configs(), relaxed_degrees())
def test_gradients_finite_at_relaxed_degrees(cfg, par):
    """Non-integer degrees ≥ 1 (the gradient search's relaxation) keep every value and
    every gradient finite."""
    cfg = (*cfg[:3], par, *cfg[4:])
    r = value(cfg)
    assert not _finite([getattr(r, k) for k in OUTPUTS]), _finite(r)
    g = grad_log_utps(cfg)
    assert not _finite(g), _finite(g)


# --------------------------------------------------------------------------- monotone


def _better_system(draw, s: SystemSpec, capacity: bool) -> SystemSpec:
    up = _factor(1.0, 8.0)
    chip = s.chip
    ch = {}
    for f in ("hbm_bw_bytes_per_s", "sram_bw_bytes_per_s", "peak_flops_per_s_bf16"):
        ch[f] = getattr(chip, f) * draw(up)
    for f in ("peak_flops_per_s_fp8", "peak_flops_per_s_fp4"):
        ch[f] = getattr(chip, f) * draw(up)
    if capacity:
        ch["hbm_capacity_bytes"] = chip.hbm_capacity_bytes * draw(up)
        if chip.sram_bw_bytes_per_s >= chip.hbm_bw_bytes_per_s * 8.0:  # SRAM stays faster
            ch["sram_capacity_bytes"] = chip.sram_capacity_bytes * draw(up)
    # each field improves or stays (a random subset of the fields moves)
    keep = draw(st.lists(st.booleans(), min_size=len(ch), max_size=len(ch)))
    ch = {k: (getattr(chip, k) if kp else v) for (k, v), kp in zip(ch.items(), keep, strict=True)}
    tiers = []
    for t in s.tiers:
        tiers.append(
            t.replace(
                hop_latency_s=t.hop_latency_s / draw(up),
                overhead_s=t.overhead_s / draw(up),
                bw_bytes_per_s=t.bw_bytes_per_s * draw(up),
            )
        )
    return s.replace(chip=chip.replace(**ch), tiers=tuple(tiers))


@given(st.data())
def test_better_hardware_never_hurts(data):
    """More memory bandwidth, FLOP/s, link bandwidth or capacity, or lower per-hop latency
    or per-step overhead (any subset, any tier) never lengthens the step, and never turns
    a fitting configuration into one that does not fit."""
    cfg = data.draw(configs())
    m, p, s, par, wl, mode = cfg
    better = _better_system(data.draw, s, capacity=True)
    r0, r1 = value(cfg), value((m, p, better, par, wl, mode))
    assert r1.step_time_s <= r0.step_time_s * (1 + REL)
    assert r1.utps >= r0.utps * (1 - REL)
    assert bool(r1.fits) or not bool(r0.fits)


@given(st.data())
def test_more_context_never_helps(data):
    """A longer context never shortens the step nor shrinks the memory per chip."""
    cfg = data.draw(configs())
    m, p, s, par, wl, mode = cfg
    longer = wl.replace(context_tokens=wl.context_tokens * data.draw(_factor(1.0, 64.0)))
    r0, r1 = value(cfg), value((m, p, s, par, longer, mode))
    assert r1.step_time_s >= r0.step_time_s * (1 - REL)
    assert r1.memory_per_chip_bytes >= r0.memory_per_chip_bytes * (1 - REL)


def test_calibrated_efficiencies_are_bounded():
    """The sufficient condition for SOL ≤ calibrated: every calibrated efficiency is in
    (0, 1] and every overhead ≥ 0, for every level ``efficiency_for`` can return."""
    modes_ = calibrated_modes()
    assert len(modes_) >= 10
    for name, eff in modes_:
        for f, v in eff.__dict__.items():
            if f.endswith("_efficiency"):
                assert 0 < v <= 1, (name, f, v)
            else:
                assert v >= 0, (name, f, v)


@given(configs())
def test_sol_is_a_lower_bound_of_every_calibrated_family(cfg):
    """SOL step time ≤ calibrated step time, for every calibrated hardware × software
    level (the drawn mode is replaced by each of them in turn)."""
    m, p, s, par, wl, _ = cfg
    sol = value((m, p, s, par, wl, SOL))
    for name, eff in calibrated_modes():
        cal = value((m, p, s, par, wl, eff))
        assert sol.step_time_s <= cal.step_time_s * (1 + REL), name


# --------------------------------------------------------------------------- capacity


@given(configs())
def test_fits_agrees_with_memory_and_capacity(cfg):
    """The capacity bit is exactly ``memory per chip > capacity``, memory per chip is
    weights + KV + workspace, and capacity is SRAM + HBM."""
    r = value(cfg)
    chip = cfg[2].chip
    assert float(r.capacity_per_chip_bytes) == chip.sram_capacity_bytes + chip.hbm_capacity_bytes
    over = float(r.memory_per_chip_bytes) > float(r.capacity_per_chip_bytes)
    assert bool(int(r.reason) & CAPACITY) == over
    assert float(r.memory_per_chip_bytes) >= float(r.weight_bytes_per_chip) + float(
        r.kv_bytes_per_chip
    ) * (1 - 1e-12)
    # halving the capacity below the memory makes it not fit; doubling it above does
    s = cfg[2]
    mem = float(r.memory_per_chip_bytes)
    for cap, fits in ((mem * 0.999, False), (mem * 1.001, None)):
        small = s.replace(chip=s.chip.replace(sram_capacity_bytes=0.0, hbm_capacity_bytes=cap))
        r2 = value((cfg[0], cfg[1], small, *cfg[3:]))
        assert bool(int(r2.reason) & CAPACITY) == (fits is False)


@st.composite
def simple_configs(draw):
    """Dense or MoE GQA models (no MTP, no linear/sparse layers) with a valid split, for
    the independent byte count."""
    i = st.integers
    L = draw(i(1, 96))
    H = draw(st.sampled_from([4, 8, 16, 32, 64]))
    K = draw(st.sampled_from([k for k in (1, 2, 4, 8, 16, 32, 64) if H % k == 0]))
    n_window = draw(i(0, L))
    n_moe = draw(i(0, L))
    m = ModelSpec(
        n_layers=float(L),
        d_model=64.0 * draw(i(2, 128)),
        vocab_size=float(draw(i(1000, 200_000))),
        tied_embeddings=float(draw(i(0, 1))),
        n_heads=float(H),
        n_kv_heads=float(K),
        head_dim_qk=128.0,
        head_dim_v=float(draw(st.sampled_from([64, 128]))),
        attn_output_gate=float(draw(i(0, 1))),
        n_full_attn_layers=float(L - n_window),
        n_window_attn_layers=float(n_window),
        window_tokens=float(draw(i(64, 8192))),
        ffn_matrices=float(draw(st.sampled_from([2, 3]))),
        n_dense_ffn_layers=float(L - n_moe),
        d_ff_dense=64.0 * draw(i(4, 512)),
        n_moe_layers=float(n_moe),
        n_experts=float(draw(st.sampled_from([8, 16, 64, 128]))) if n_moe else 0.0,
        top_k=float(draw(i(1, 8))) if n_moe else 0.0,
        n_shared_experts=float(draw(i(0, 1))) if n_moe else 0.0,
        d_ff_expert=2048.0 if n_moe else 0.0,
        d_ff_shared=2048.0 if n_moe else 0.0,
    )
    wl = draw(workloads()).replace(mtp_depth=0.0, acceptance_rate=0.0)
    s = draw(systems())
    return m, draw(precisions()), s, valid_split(draw, m, s, wl), wl, SOL


@given(simple_configs())
def test_weight_and_kv_bytes_match_an_independent_count(cfg):
    """Weights and KV bytes per chip of GQA models, counted by hand: heads split over
    ``attn_tp`` (KV heads duplicated once ``attn_tp`` > K), the output projection over
    ``attn_tp·kvp``, dense FFNs over all ``N`` chips of a stage, ``E/ep`` experts each
    split ``moe_tp`` ways, the router replicated, shared experts over ``attn_tp·kvp``,
    ``⌈L/pp⌉`` layers per stage and the vocabulary over ``attn_tp·kvp``."""
    m, p, s, par, wl, _ = cfg
    L, D, H, K = m.n_layers, m.d_model, m.n_heads, m.n_kv_heads
    dqk, dv, tp, kvp, pp = m.head_dim_qk, m.head_dim_v, par.attn_tp, par.kvp, par.pp
    n_a, n = tp * kvp, tp * kvp * par.attn_dp
    kv_heads = max(K / tp, 1.0)  # valid splits: tp | K or K | tp
    attn = (D * H * dqk * (1 + m.attn_output_gate) / tp + D * kv_heads * (dqk + dv)) * (
        p.attn_weight_bytes
    ) + H * dv * D / n_a * p.attn_weight_bytes
    dense = m.ffn_matrices * D * m.d_ff_dense / n * p.ffn_weight_bytes
    moe = (
        m.n_experts / par.ep * m.ffn_matrices * D * m.d_ff_expert / par.moe_tp
    ) * p.expert_weight_bytes + D * m.n_experts * p.attn_weight_bytes
    moe += m.n_shared_experts * m.ffn_matrices * D * m.d_ff_shared / n_a * p.ffn_weight_bytes
    per_stage = math.ceil(L / pp)
    layers = L * attn + m.n_dense_ffn_layers * dense + m.n_moe_layers * moe
    copies = 1 if (m.tied_embeddings or pp > 1) else 2
    vocab = copies * m.vocab_size * D / n_a * p.embed_weight_bytes
    weights = per_stage / L * layers + vocab
    S = wl.context_tokens
    tokens = m.n_full_attn_layers * S + m.n_window_attn_layers * min(S, m.window_tokens)
    kv = wl.batch / par.attn_dp * tokens / kvp * kv_heads * (dqk + dv) * p.kv_bytes
    kv *= per_stage / L
    r = value(cfg)
    assert float(r.weight_bytes_per_chip) == pytest.approx(weights, rel=1e-9)
    assert float(r.kv_bytes_per_chip) == pytest.approx(kv, rel=1e-9)
    assert float(r.memory_per_chip_bytes) >= weights + kv


# --------------------------------------------------------------------------- float32


@given(configs())
def test_float32_agrees_with_float64(cfg):
    """The float32 program (the grid's sweep precision) agrees with float64 within
    1e-4 relative on UTPS, step time and memory per chip."""
    r64, r32 = value(cfg), value(cfg, np.float32)
    assert r32.utps.dtype == np.float32
    keys = ("utps", "step_time_s", "memory_per_chip_bytes", "weight_bytes_per_chip")
    err = {k: abs(float(getattr(r32, k)) / float(getattr(r64, k)) - 1) for k in keys}
    target(max(err.values()), label="float32 relative error")
    assert max(err.values()) <= 1e-4, err


def test_float32_tokens_per_step_near_full_acceptance():
    """Regression: found by scanning a over (1 - 1e-1, 1 - 1e-9) for k = 1..16; the
    direct geometric sum cancelled in float32 (1.2e-4 relative error here), fixed by the
    expm1/log1p form in :func:`costmodel.decode.tokens_per_step`."""
    m, p = MODELS["llama-3.1-8b"]
    wl = Workload(
        batch=1.0, context_tokens=1024.0, mtp_depth=16.0, acceptance_rate=0.9999852414986088
    )
    cfg = (m, p, SYSTEMS["hgx-h100-8"], Parallelism(attn_tp=8.0, moe_tp=8.0), wl, SOL)
    r64, r32 = value(cfg), value(cfg, np.float32)
    assert float(r32.utps) == pytest.approx(float(r64.utps), rel=1e-4)
