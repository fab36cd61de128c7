r"""One decode step of a Transformer on a parallel system: time, capacity, energy.

:func:`decode_step` is a pure JAX function of float pytrees, written for one
configuration (``jax.vmap`` it at the edge; ``jax.jit`` it once, outside). It composes:

* the operators of every layer class (:mod:`costmodel.operators`), each combined by a
  **roofline** ``t_op = max(FLOPs / (peak·η_c), bytes / (BW_eff·η_m))`` — exact max in
  value, gradient as documented in :mod:`costmodel.smooth` — plus one on-die all-to-all
  per kernel (:func:`costmodel.collectives.t_onchip_s`) and, in calibrated mode, a fixed
  overhead per kernel;
* the collectives of every layer (:func:`comm_plan`), each
  ``steps·(hops·α + o) + bytes/bw`` over the tiers (:mod:`costmodel.collectives`);
* the draft model when speculating (MTP), the embedding, LM head and pipeline hops.

Step time (one user sees one step per ``τ`` accepted tokens)::

    t_step = Σ_ops count·t_op + Σ_coll count·t_coll + t_onchip + t_overhead − t_hidden
    τ      = Σ_{i=0..k} a^i = (1 − a^{k+1}) / (1 − a)      (depth k, per-position acceptance a)
    UTPS   = τ / t_step ;  TPOT = t_step / τ ;  system tokens/s = B·UTPS

``t_hidden = overlap · min(t_comm·(1 − 1/B_r), t_ops)``: with batch-wise overlap (Helix
HOP-B) the communication of one request hides behind another's work, except for the last
request of the replica (Helix §2.3: ``8·2 + 1.2`` instead of ``8·(2 + 1.2)``).

Memory tiers: bytes resident on a chip fill its SRAM first, then HBM; reads see the
harmonic mix ``1/BW_eff = f/BW_sram + (1 − f)/BW_hbm`` with ``f = min(1, C_sram/M)``
(M = resident bytes per chip). Pipeline stages are sequential for a token (no
micro-batching: in the memory-bound regime micro-batching changes throughput, not the
single user's step time); a stage holds ``ceil(L/pp)`` layers.

Modes: ``mode=SOL`` (default; efficiencies 1, no overheads), an
:class:`~costmodel.specs.Efficiency` record (the older calibrated mode: six scalars), or a
:class:`~costmodel.kernel_mode.KernelCalibration` (kernel-level calibrated mode: every
operator's time from :func:`costmodel.kernel_time.kernel_time_s` with its kernel class's
constants, every collective ``max(SOL, α(n) + bus/β(n))``; see
:mod:`costmodel.kernel_mode`). Fitted values come from ``hardware_db``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from costmodel import operators as O
from costmodel import params as P
from costmodel.collectives import collective, t_onchip_s
from costmodel.feasibility import reason_bits
from costmodel.kernel_mode import KernelCalibration
from costmodel.kernel_mode import collective_time_s as _k_coll_s
from costmodel.kernel_mode import op_time_s as _k_op_s
from costmodel.smooth import active, ceil_st, safe_div, select, stack
from costmodel.specs import (
    SOL,
    ChipSpec,
    Efficiency,
    ModelSpec,
    Parallelism,
    Precision,
    Scalar,
    SystemSpec,
    Workload,
)

TOPK_SAMPLING = 64
"""Candidates per token and vocabulary shard gathered for sampling (value + index, 8 B)."""


@struct.dataclass
class Breakdown:
    """Seconds per step by cause; the fields sum to ``step_time_s``."""

    compute: Scalar
    weight_read: Scalar
    kv_read: Scalar
    activation: Scalar
    comm_latency: Scalar
    comm_bandwidth: Scalar
    overhead: Scalar


@struct.dataclass
class DecodeResult:
    """Outputs of :func:`decode_step` (scalars; arrays under ``vmap``)."""

    utps: Scalar
    tpot_s: Scalar
    step_time_s: Scalar
    tokens_per_step: Scalar
    system_tps: Scalar
    tps_per_chip: Scalar
    chips: Scalar
    memory_per_chip_bytes: Scalar
    weight_bytes_per_chip: Scalar
    kv_bytes_per_chip: Scalar
    capacity_per_chip_bytes: Scalar
    log_capacity_ratio: Scalar
    fits: Scalar
    reason: Scalar
    energy_j_per_token: Scalar
    collectives_per_step: Scalar
    breakdown_s: Breakdown


class Comm(NamedTuple):
    """One collective per occurrence: kind, bytes, group size, stride, occurrences."""

    kind: str
    msg_bytes: Scalar
    group: Scalar
    stride: Scalar
    count: Scalar


# --------------------------------------------------------------------------- plan


def _static_zero(x) -> bool:
    """True if ``x`` is a concrete (not traced) zero, e.g. the count of an absent layer
    class or of the draft model without speculation. Such operators and collectives
    add exactly 0 and are left out of the sums, so XLA does not compute them."""
    if isinstance(x, jax.core.Tracer):
        return False
    try:
        return bool(np.all(np.asarray(x) == 0))
    except (TypeError, ValueError):
        return False


def _live(classes: dict, mult) -> dict:
    """The layer classes whose count (times ``mult``) is not a concrete zero."""
    if _static_zero(mult):
        return {}
    return {k: v for k, v in classes.items() if not _static_zero(v)}


def _layer_ops(m: ModelSpec, p: Precision, c: O.Ctx, mult, classes) -> list[O.Op]:
    """Operators of the layer classes ``{name: count}``, each count times ``mult``
    (classes with a concrete zero count, or a concrete zero ``mult``, are left out)."""
    classes = _live(classes, mult)
    ops: list[O.Op] = []
    for kind in ("full", "window", "sparse"):
        if kind in classes:
            ops += O.softmax_attention_ops(m, p, c, kind, classes[kind] * mult)
    if "linear" in classes:
        ops += O.linear_attention_ops(m, p, c, classes["linear"] * mult)
    if "dense" in classes:
        ops += O.dense_ffn_ops(m, p, c, classes["dense"] * mult)
    if "moe" in classes:
        ops += O.moe_ops(m, p, c, classes["moe"] * mult)
    return ops


def kvp_partial_bytes(m: ModelSpec, p: Precision, c: O.Ctx):
    r"""Bytes of partial attention one chip holds after attending to its KV shard.

    ``n_r·(H/tp)·(d_o·b_act + 8)``: for each of the replica's ``n_r`` query tokens and
    each of the chip's ``H/tp`` heads, the un-normalised output (``d_o`` = latent rank
    ``r_kv`` for MLA with absorbed projections, ``d_v`` otherwise) plus two fp32
    statistics (running max and sum, i.e. the log-sum-exp). Helix §2.1 exchanges them in
    one all-to-all over the query-head axis (each chip keeps ``1/kvp`` of the heads and
    sends the rest: ``·(kvp−1)/kvp``). The shared (Medha) layout needs the full output of
    its ``H/tp`` heads on every KV-parallel rank (Medha, arXiv 2409.17264 §3.3: partial
    outputs combined with online softmax): each rank sends its whole buffer to the
    ``kvp − 1`` others and rescales and sums locally, an all-to-all of ``(kvp−1)·`` this
    buffer — the one-shot all-gather, and the cost of the one-shot all-reduce of the buffer
    in :mod:`costmodel.collectives` (the Medha authors' execution-time predictor, Vidur,
    costs it as an all-reduce over the KV-parallel workers, ``all_reduce_kvp``).
    Independent of the context length S.
    """
    d_out = jnp.where(P.is_mla(m) > 0, m.kv_lora_rank, m.head_dim_v)
    return c.tok_replica * (m.n_heads / c.tp) * (d_out * p.act_bytes + 8.0)


def _layer_comms(m: ModelSpec, p: Precision, c: O.Ctx, mult, classes) -> list[Comm]:
    """Collectives of the layer classes (see :func:`comm_plan`)."""
    classes = _live(classes, mult)
    if not classes:
        return []
    act = p.act_bytes
    hidden_r = c.tok_replica * m.d_model * act
    hidden_s = c.tok_stage * m.d_model * act
    n_soft = sum(classes.get(k, 0.0) for k in ("full", "window", "sparse")) * mult
    comms: list[Comm] = []
    # Helix: (kvp−1)/kvp of the partials; shared layout: all of them to every peer
    a2a = (
        kvp_partial_bytes(m, p, c) * safe_div(c.kvp - 1.0, c.kvp) * (1.0 + c.shared * (c.kvp - 1.0))
    )
    comms += [
        Comm("all_to_all", a2a, c.kvp, c.tp, n_soft),
        Comm("all_reduce", hidden_r, c.n_attn, 1.0, n_soft),
    ]
    if "linear" in classes:
        comms.append(Comm("all_reduce", hidden_r, c.tp, 1.0, classes["linear"] * mult))
    if "dense" in classes:
        n = classes["dense"] * mult
        comms += [
            Comm("all_gather", hidden_s, c.dp, c.n_replica, n),
            Comm("all_reduce", hidden_s, c.n_ffn, 1.0, n),
        ]
    if "moe" in classes:
        n = classes["moe"] * mult
        w = active(c.dp)
        dispatch = (
            safe_div(c.tok_replica, c.n_attn)
            * jnp.minimum(m.top_k, c.ep)
            * c.moe_tp
            * m.d_model
            * act
        )
        has_shared = jnp.minimum(m.n_shared_experts, 1.0)
        comms += [
            Comm("all_reduce", hidden_s, c.n_ffn, 1.0, n * (1.0 - w)),
            Comm("all_to_all", dispatch, c.n_ffn, 1.0, 2.0 * n * w),
            Comm("all_reduce", hidden_r, c.n_attn, 1.0, n * w * has_shared),
        ]
    return comms


def _head_comms(m: ModelSpec, c: O.Ctx, p: Precision, count) -> list[Comm]:
    """Embedding all-reduce and sampling all-gather over the attention replica."""
    sample = c.n_attn * c.tok_replica * TOPK_SAMPLING * 8.0
    return [
        Comm("all_reduce", c.tok_replica * m.d_model * p.act_bytes, c.n_attn, 1.0, count),
        Comm("all_gather", sample, c.n_attn, 1.0, count),
    ]


def layer_classes(m: ModelSpec) -> dict:
    """Layer counts per class of the main model."""
    return {
        "full": m.n_full_attn_layers,
        "window": m.n_window_attn_layers,
        "sparse": m.n_sparse_attn_layers,
        "linear": m.n_linear_attn_layers,
        "dense": m.n_dense_ffn_layers,
        "moe": m.n_moe_layers,
    }


def draft_classes(m: ModelSpec) -> dict:
    """One MTP/draft block: full attention plus MoE (if the model has MoE) or dense FFN."""
    has_moe = jnp.where(jnp.asarray(m.n_moe_layers) > 0, 1.0, 0.0)
    return {"full": 1.0, "moe": has_moe, "dense": 1.0 - has_moe}


def comm_plan(m: ModelSpec, p: Precision, par: Parallelism, wl: Workload) -> list[Comm]:
    """All collectives of one step.

    Per softmax-attention layer: Helix KV-parallel all-to-all of partial outputs and
    log-sum-exp statistics over ``kvp`` (bytes ``n_r·(H/tp)·(d_o·b + 8)·(kvp−1)/kvp``,
    independent of S; ``d_o`` = latent rank for MLA, ``d_v`` otherwise) and the output
    projection's all-reduce over ``N_a = tp·kvp``; in the shared (Medha) layout
    (:func:`costmodel.operators.shared_layout`) the all-to-all sends every rank's whole
    partial output to all ``kvp − 1`` others (:func:`kvp_partial_bytes`), and the output
    projection's all-reduce runs over ``N_a = tp``. Linear layers: all-reduce over ``tp``.
    Dense FFN: all-gather over ``attn_dp`` (tokens of all replicas) and all-reduce over
    ``N_f``. MoE with replicated tokens (``attn_dp = 1``): one all-reduce over ``N_f``
    combines experts and shared experts (TensorRT-LLM min-latency path); with
    attention-DP: dispatch and combine all-to-all over ``N_f`` (each chip sends its
    ``n_r/N_a`` tokens to ``min(k, ep)`` expert groups of ``moe_tp`` chips) plus an
    all-reduce of the shared experts over ``N_a``. Pipeline: ``pp − 1`` point-to-point
    hops. Embedding all-reduce and sampling all-gather once per forward pass. The draft
    model repeats a block's collectives per draft token. Layer classes whose count is a
    concrete (untraced) zero — absent from the model, or the draft model without
    speculation — are omitted: they would add exactly 0.
    """
    c = O.make_ctx(par, wl, 1.0 + wl.mtp_depth)
    act = p.act_bytes
    comms = _layer_comms(m, p, c, 1.0, layer_classes(m))
    comms += _head_comms(m, c, p, 1.0)
    n_send = c.n_attn * c.dp  # chips holding distinct activations (one copy per replica)
    n_total = c.n_replica * c.dp
    comms.append(
        Comm("p2p", safe_div(c.tok_stage * m.d_model * act, n_send), 2.0, n_total, par.pp - 1.0)
    )
    k = wl.mtp_depth
    cd = O.make_ctx(par, wl, 1.0)
    comms += _layer_comms(m, p, cd, k, draft_classes(m))
    comms += _head_comms(m, cd, p, k)
    comms.append(Comm("all_reduce", cd.tok_replica * m.d_model * act, cd.n_attn, 1.0, k))
    return comms


def op_plan(m: ModelSpec, p: Precision, par: Parallelism, wl: Workload) -> list[O.Op]:
    """All operators of one step: the main model verifying ``1 + k`` tokens per sequence,
    embedding and LM head, and ``k`` draft passes (MTP block + projection + LM head).
    Layer classes with a concrete zero count are omitted (see :func:`comm_plan`)."""
    c = O.make_ctx(par, wl, 1.0 + wl.mtp_depth)
    ops = _layer_ops(m, p, c, 1.0, layer_classes(m))
    ops += O.embedding_ops(m, p, c, 1.0) + O.lm_head_ops(m, p, c, 1.0)
    k = wl.mtp_depth
    cd = O.make_ctx(par, wl, 1.0)
    ops += _layer_ops(m, p, cd, k, draft_classes(m))
    ops += O.embedding_ops(m, p, cd, k) + O.mtp_proj_ops(m, p, cd, k) + O.lm_head_ops(m, p, cd, k)
    return ops


# --------------------------------------------------------------------------- memory


def weight_bytes_per_chip(m: ModelSpec, p: Precision, par: Parallelism, wl: Workload):
    """Resident weight bytes on the most loaded chip.

    ``ceil(L/pp)/L`` of the layers' weights (each sharded as in :mod:`costmodel.operators`;
    all ``E/ep`` resident experts), the vocabulary-parallel embedding and LM head
    (``V·D/N_a`` each; with pp ≥ 2 they sit on different stages), and the MTP modules
    when speculating.
    """
    c = O.make_ctx(par, wl, 1.0)
    wb_a, wb_f, wb_e = p.attn_weight_bytes, p.ffn_weight_bytes, p.expert_weight_bytes
    attn = (O.attn_proj_params_per_chip(m, c.tp) + O.o_proj_params_per_chip(m, c.n_attn)) * wb_a
    router = m.d_model * m.n_experts
    moe = (
        m.n_experts / c.ep * P.expert_params(m) / c.moe_tp * wb_e
        + router * wb_a
        + (P.moe_dense_params(m) - router) / c.n_ffn * wb_f
        + P.shared_expert_params(m) / c.n_attn * wb_f
    )
    dense = P.dense_ffn_params(m) / c.n_ffn * wb_f
    layers = (
        P.n_softmax_layers(m) * attn
        + m.n_sparse_attn_layers * P.indexer_params(m) / c.tp * wb_a
        + m.n_linear_attn_layers * P.linear_attn_params(m) / c.tp * wb_a
        + m.n_dense_ffn_layers * dense
        + m.n_moe_layers * moe
    )
    stage = ceil_st(m.n_layers / par.pp) / m.n_layers
    vocab = m.vocab_size * m.d_model / c.n_attn * p.embed_weight_bytes
    emb_head = vocab * (1.0 + (1.0 - m.tied_embeddings) * (1.0 - active(par.pp)))
    has_moe = jnp.where(jnp.asarray(m.n_moe_layers) > 0, 1.0, 0.0)
    mtp_block = attn + has_moe * moe + (1.0 - has_moe) * dense + 2 * m.d_model**2 / c.n_attn * wb_a
    spec = jnp.where(wl.mtp_depth > 0, jnp.maximum(m.n_mtp_layers, 1.0), 0.0)
    return stage * layers + emb_head + spec * mtp_block


def kv_bytes_per_chip(m: ModelSpec, p: Precision, par: Parallelism, wl: Workload):
    """Resident KV-cache (and recurrent-state) bytes per chip.

    ``B_r`` sequences of ``S/kvp`` tokens (window layers: ``min(S, W)``), ``ceil(K/tp)``
    cached heads per chip, DSA index keys, and linear-layer states split over ``tp``.
    """
    c = O.make_ctx(par, wl, 1.0)
    per_tok_head = P.kv_elems_per_head(m) * O.kv_heads_per_chip(m, c.tp) * p.kv_bytes
    s = c.context / c.kvp
    s_win = jnp.minimum(c.context, m.window_tokens) / c.kvp
    softmax = per_tok_head * (
        (m.n_full_attn_layers + m.n_sparse_attn_layers) * s + m.n_window_attn_layers * s_win
    )
    index = m.n_sparse_attn_layers * s * m.indexer_head_dim * p.kv_bytes
    state = m.n_linear_attn_layers * P.linear_state_elems(m) / c.tp * p.state_bytes
    stage = ceil_st(m.n_layers / par.pp) / m.n_layers
    return stage * c.seqs_replica * (softmax + index + state)


def workspace_bytes_per_chip(m: ModelSpec, p: Precision, par: Parallelism, wl: Workload):
    """Activation workspace: ``8·n·D`` activations and fp32 logits of the vocab shard."""
    c = O.make_ctx(par, wl, 1.0 + wl.mtp_depth)
    return 8 * c.tok_stage * m.d_model * p.act_bytes + c.tok_replica * m.vocab_size / c.n_attn * 4


def sram_fraction(chip: ChipSpec, resident_bytes):
    """Fraction of resident bytes held in SRAM (filled first): ``min(1, C_sram / M)``."""
    return jnp.clip(safe_div(chip.sram_capacity_bytes, resident_bytes), 0.0, 1.0)


def read_s_per_byte(chip: ChipSpec, frac_sram, eff: Efficiency):
    """Seconds per byte read: ``(f/BW_sram + (1−f)/BW_hbm) / η_mem``. A missing tier has
    bandwidth 0, so reading from it costs ``1 s/B`` (the configuration does not fit)."""
    sram = jnp.where(frac_sram > 0, frac_sram / jnp.maximum(chip.sram_bw_bytes_per_s, 1.0), 0.0)
    hbm = jnp.where(frac_sram < 1, (1 - frac_sram) / jnp.maximum(chip.hbm_bw_bytes_per_s, 1.0), 0.0)
    return (sram + hbm) / eff.mem_efficiency


def peak_flops_per_s(chip: ChipSpec, bits):
    """Dense peak FLOP/s for arithmetic at ``bits`` (4, 8 or 16); an unsupported narrow
    format falls back to the next wider one."""
    p16 = chip.peak_flops_per_s_bf16
    p8 = jnp.where(chip.peak_flops_per_s_fp8 > 0, chip.peak_flops_per_s_fp8, p16)
    p4 = jnp.where(chip.peak_flops_per_s_fp4 > 0, chip.peak_flops_per_s_fp4, p8)
    return jnp.where(bits <= 4.5, p4, jnp.where(bits <= 8.5, p8, p16))


# --------------------------------------------------------------------------- step


def tokens_per_step(wl: Workload):
    """Mean accepted tokens per step ``Σ_{i=0..k} a^i`` (k = MTP depth, a = per-position
    acceptance); 1 without speculation.

    Closed form ``(1 - a^(k+1)) / (1 - a)`` evaluated as
    ``-expm1((k+1)·log1p(-(1-a))) / (1-a)``: the direct form cancels in float32 for ``a``
    within ~1e-5 of 1 (1.2e-4 relative error at a = 0.99998524, k = 16; found by the
    property suite), this one stays within ~1e-6. ``a = 1`` gives ``k + 1`` and ``a ≤ 0``
    gives 1 (guarded branches, so gradients stay finite)."""
    k, a = wl.mtp_depth, wl.acceptance_rate
    near_one = jnp.abs(1.0 - a) < 1e-9
    none = a <= 0.0
    u = 1.0 - jnp.where(near_one | none, 0.5, a)
    geo = -jnp.expm1((k + 1.0) * jnp.log1p(-u)) / u
    return jnp.where(near_one, k + 1.0, jnp.where(none, 1.0, geo))


def _stack(ops, field):
    return stack([getattr(o, field) for o in ops])


def _roofline(flops, wbytes, kvbytes, abytes, bits, chip, s_per_byte, eff, beta):
    """One operator's roofline: compute time of the winner, memory seconds per
    effective byte of the winner, effective bytes (KV bytes ÷ ``kv_efficiency``) and the
    bytes actually moved."""
    t_c = flops / (peak_flops_per_s(chip, bits) * eff.compute_efficiency)
    kv_eff = kvbytes / eff.kv_efficiency
    eff_bytes = wbytes + kv_eff + abytes
    t_m = eff_bytes * s_per_byte
    _, (c_part, m_part) = select((t_c, t_m), ((t_c, 0.0 * t_m), (0.0 * t_c, t_m)), beta=beta)
    return c_part, safe_div(m_part, eff_bytes), kv_eff, wbytes + kvbytes + abytes


def _op_energy(count, mem_bytes, flops, act_bytes, f_bytes, f_flops, bits, e, chip):
    """Energy of ``count`` occurrences of an operator, summed over one stage's chips ÷ N.

    ``mem_bytes·f_bytes·e_mem + flops·f_flops·e_flop(bits) + act_bytes·e_die``: the
    average chip's bytes (tier mix ``e_mem``) and FLOPs, and the on-die exchange of the
    operator's activations. ``e_flop(bits) = e_flop_bf16 · peak_bf16 / peak(bits)``: the
    database's J/FLOP is power ÷ BF16 peak, so narrower arithmetic at the same power
    costs proportionally less per FLOP.
    """
    e_mem, e_die = e
    e_flop = chip.flop_energy_j_per_flop * safe_div(
        chip.peak_flops_per_s_bf16, peak_flops_per_s(chip, bits)
    )
    return count * (mem_bytes * f_bytes * e_mem + flops * f_flops * e_flop + act_bytes * e_die)


def _one_op_energy(o, mem_bytes, e, chip):
    """:func:`_op_energy` of one operator record ``o`` that moves ``mem_bytes``."""
    return _op_energy(
        o.count, mem_bytes, o.flops, o.act_bytes, o.mean_bytes_fraction,
        o.mean_flops_fraction, o.compute_bits, e, chip,
    )  # fmt: skip


def _op_sums_stacked(ops, chip, s_per_byte, e_byte, eff, beta):
    """``Σ_ops count·(t_compute, t_weight, t_kv, t_act, kernels, energy)``, evaluated on
    ``[ops]`` arrays: a small graph, quick to compile and to differentiate."""
    flops, wbytes, kvbytes, abytes = (
        _stack(ops, f) for f in ("flops", "weight_bytes", "kv_bytes", "act_bytes")
    )
    bits, kernels, count = (_stack(ops, f) for f in ("compute_bits", "kernels", "count"))
    fb, ff = (_stack(ops, f) for f in ("mean_bytes_fraction", "mean_flops_fraction"))
    c_part, s_per_eff_byte, kv_eff, mem_bytes = _roofline(
        flops, wbytes, kvbytes, abytes, bits, chip, s_per_byte, eff, beta
    )
    return (
        jnp.sum(count * c_part),
        jnp.sum(count * s_per_eff_byte * wbytes),
        jnp.sum(count * s_per_eff_byte * kv_eff),
        jnp.sum(count * s_per_eff_byte * abytes),
        jnp.sum(count * kernels),
        jnp.sum(_op_energy(count, mem_bytes, flops, abytes, fb, ff, bits, e_byte, chip)),
    )


def _op_sums_fused(ops, chip, s_per_byte, e_byte, eff, beta):
    """Same sums as :func:`_op_sums_stacked`, as a Python loop of scalar arithmetic:
    under ``vmap`` everything stays elementwise over the batch and XLA fuses it into a
    few loops (no ``[batch, ops]`` intermediates), ~10× faster on CPU, but a larger
    graph that compiles slowly under ``jax.grad``."""
    sums = [0.0] * 6
    for o in ops:
        c_part, s_per_eff_byte, kv_eff, mem_bytes = _roofline(
            o.flops, o.weight_bytes, o.kv_bytes, o.act_bytes, o.compute_bits, chip,
            s_per_byte, eff, beta,
        )  # fmt: skip
        s_per_eff_byte = o.count * s_per_eff_byte
        terms = (
            o.count * c_part,
            s_per_eff_byte * o.weight_bytes,
            s_per_eff_byte * kv_eff,
            s_per_eff_byte * o.act_bytes,
            o.count * o.kernels,
            _one_op_energy(o, mem_bytes, e_byte, chip),
        )
        sums = [s + t for s, t in zip(sums, terms, strict=True)]
    return tuple(sums)


def _op_sums_kernel(ops, chip, s_per_byte, e_byte, cal, is_mla, beta):
    """Sums of :func:`_op_sums_stacked` in the kernel-level mode, plus the floors:
    ``(compute, weight, kv, act, floors, energy)``; the memory time of each op is split
    over its weight / KV / activation bytes in proportion."""
    bw_eff = 1.0 / s_per_byte
    sums = [0.0] * 6
    for o in ops:
        peak = peak_flops_per_s(chip, o.compute_bits)
        _, (f_part, c_part, m_part, aux) = _k_op_s(o, cal, is_mla, peak, bw_eff, beta)
        q = o.weight_bytes + o.kv_bytes + o.act_bytes
        m_per_byte = o.count * safe_div(m_part, q)
        mem_bytes = q
        terms = (
            o.count * c_part,
            m_per_byte * o.weight_bytes,
            m_per_byte * o.kv_bytes,
            m_per_byte * o.act_bytes,
            o.count * (f_part + aux),
            _one_op_energy(o, mem_bytes, e_byte, chip),
        )
        sums = [a + b for a, b in zip(sums, terms, strict=True)]
    return tuple(sums)


def _comm_sums_kernel(plan, system, cal, beta):
    """:func:`_comm_sums_fused` in the kernel-level mode: each collective
    ``max(SOL, α(n) + bus/β(n))`` (:func:`costmodel.kernel_mode.collective_time_s`)."""
    lat = band = e_link = n_coll = 0.0
    for cm in plan:
        s_lat, s_bw, c_e = collective(cm.kind, cm.msg_bytes, cm.group, cm.stride, system, SOL, beta)
        _, (c_lat, c_bw) = _k_coll_s(
            cm.kind, cm.msg_bytes, cm.group, s_lat + s_bw, (s_lat, s_bw), cal, beta
        )
        lat = lat + cm.count * c_lat
        band = band + cm.count * c_bw
        e_link = e_link + cm.count * c_e
        n_coll = n_coll + cm.count * active(cm.group)
    return lat, band, e_link, n_coll


_KINDS = ("all_reduce", "all_gather", "all_to_all", "p2p")


def _comm_sums_stacked(plan, system, eff, beta):
    """``Σ count·(latency, bandwidth time, energy, active)`` over the collectives, one
    vectorised :func:`collective` call per kind."""
    lat = band = e_link = n_coll = 0.0
    for kind in _KINDS:
        cms = [cm for cm in plan if cm.kind == kind]
        if not cms:
            continue
        msg, group, stride, cnt = (
            stack([getattr(cm, f) for cm in cms]) for f in ("msg_bytes", "group", "stride", "count")
        )
        c_lat, c_bw, c_e = collective(kind, msg, group, stride, system, eff, beta)
        lat = lat + jnp.sum(cnt * c_lat)
        band = band + jnp.sum(cnt * c_bw)
        e_link = e_link + jnp.sum(cnt * c_e)
        n_coll = n_coll + jnp.sum(cnt * active(group))
    return lat, band, e_link, n_coll


def _comm_sums_fused(plan, system, eff, beta):
    """Same sums as :func:`_comm_sums_stacked`, one scalar :func:`collective` call per
    collective (see :func:`_op_sums_fused`)."""
    lat = band = e_link = n_coll = 0.0
    for kind in _KINDS:
        for cm in plan:
            if cm.kind != kind:
                continue
            c_lat, c_bw, c_e = collective(
                kind, cm.msg_bytes, cm.group, cm.stride, system, eff, beta
            )
            lat = lat + cm.count * c_lat
            band = band + cm.count * c_bw
            e_link = e_link + cm.count * c_e
            n_coll = n_coll + cm.count * active(cm.group)
    return lat, band, e_link, n_coll


def decode_step(
    model: ModelSpec,
    precision: Precision,
    system: SystemSpec,
    parallelism: Parallelism,
    workload: Workload,
    mode: Efficiency | KernelCalibration = SOL,
    beta: float = math.inf,
    *,
    fused: bool = False,
) -> DecodeResult:
    """Time, capacity and energy of one decode step (see the module docstring).

    *Length:* One traced composition of every term: splitting it would pass a dozen
    intermediate arrays between helpers; each term is already its own function.

    Args:
      model, precision, system, parallelism, workload: spec records (float leaves, SI).
      mode: ``SOL`` (speed of light), a calibrated :class:`Efficiency`, or a
        kernel-level :class:`~costmodel.kernel_mode.KernelCalibration`.
      beta: gradient sharpness at kinks (``inf``: exact subgradients; finite: log-space
        soft-max weights, see :mod:`costmodel.smooth`). Values are exact either way.
      fused: how the sums over operators and collectives are laid out (same values, to
        float rounding). ``False``: on ``[ops]`` arrays, a small graph that compiles
        quickly, also under ``jax.grad``. ``True``: as chains of scalar arithmetic, which
        under ``jax.vmap`` XLA fuses into a few elementwise loops, ~10× more candidates/s
        on CPU, but slow to compile under ``jax.grad``; for value-only sweeps
        (``search.grid``).

    Returns:
      :class:`DecodeResult`; infeasible configurations have ``fits = False`` and the
      violated rules in ``reason`` (:func:`costmodel.feasibility.explain`).
    """
    m, p, par, wl, eff = model, precision, parallelism, workload, mode
    if isinstance(eff, str):
        if eff != "sol":
            raise ValueError(f"mode must be 'sol' or an Efficiency record, got {eff!r}")
        eff = SOL
    chip = system.chip
    kernel_mode = isinstance(eff, KernelCalibration)
    cal, eff = (eff, SOL) if kernel_mode else (None, eff)

    # capacity and placement
    w_chip = weight_bytes_per_chip(m, p, par, wl)
    kv_chip = kv_bytes_per_chip(m, p, par, wl)
    mem = w_chip + kv_chip + workspace_bytes_per_chip(m, p, par, wl)
    cap = chip.sram_capacity_bytes + chip.hbm_capacity_bytes
    f_sram = sram_fraction(chip, mem)
    s_per_byte = read_s_per_byte(chip, f_sram, eff)

    # operators (roofline per op) and collectives, summed over the plan
    e_mem = f_sram * chip.sram_energy_j_per_byte + (1 - f_sram) * chip.hbm_energy_j_per_byte
    die = system.tiers[0] if system.tiers and system.tiers[0].name == "die" else None
    e_byte = (e_mem, die.energy_j_per_byte if die is not None else 0.0)
    ops = [o for o in op_plan(m, p, par, wl) if not _static_zero(o.count)]
    plan = [cm for cm in comm_plan(m, p, par, wl) if not _static_zero(cm.count)]
    n_kernels = sum(o.count * o.kernels for o in ops)
    if kernel_mode:
        is_mla = P.is_mla(m) > 0
        t_compute, t_weight, t_kv, t_act, t_floors, e_ops = _op_sums_kernel(
            ops, chip, s_per_byte, e_byte, cal, is_mla, beta
        )
        t_overhead = t_floors + cal.step_overhead_s
        lat, band, e_link, n_coll = _comm_sums_kernel(plan, system, cal, beta)
    else:
        op_sums = _op_sums_fused if fused else _op_sums_stacked
        t_compute, t_weight, t_kv, t_act, n_kernels, e_ops = op_sums(
            ops, chip, s_per_byte, e_byte, eff, beta
        )
        t_overhead = n_kernels * eff.kernel_overhead_s + eff.step_overhead_s
        comm_sums = _comm_sums_fused if fused else _comm_sums_stacked
        lat, band, e_link, n_coll = comm_sums(plan, system, eff, beta)
    t_onchip = n_kernels * t_onchip_s(system)
    lat = lat + t_onchip

    # overlap (Helix HOP-B): hide communication behind other requests' work
    t_ops = t_compute + t_weight + t_kv + t_act
    t_comm = lat + band
    seqs = wl.batch / par.attn_dp
    hidden = wl.overlap * jnp.minimum(t_comm * jnp.clip(1.0 - safe_div(1.0, seqs), 0.0, 1.0), t_ops)
    keep = 1.0 - safe_div(hidden, t_comm)
    lat, band = lat * keep, band * keep

    step = t_ops + lat + band + t_overhead
    tau = tokens_per_step(wl)
    utps = tau / step
    chips = par.attn_tp * par.kvp * par.attn_dp * par.pp
    n_stage = par.attn_tp * par.kvp * par.attn_dp

    # energy: bytes per memory tier, FLOPs, link bytes; per chip × chips of a stage
    e_step = n_stage * (e_ops + e_link)

    reason = reason_bits(m, system, par, wl, mem, cap)
    return DecodeResult(
        utps=utps,
        tpot_s=step / tau,
        step_time_s=step,
        tokens_per_step=tau,
        system_tps=wl.batch * utps,
        tps_per_chip=wl.batch * utps / chips,
        chips=chips,
        memory_per_chip_bytes=mem,
        weight_bytes_per_chip=w_chip,
        kv_bytes_per_chip=kv_chip,
        capacity_per_chip_bytes=cap,
        log_capacity_ratio=jnp.log(safe_div(mem, cap)),
        fits=reason == 0,
        reason=reason,
        energy_j_per_token=e_step / (wl.batch * tau),
        collectives_per_step=n_coll,
        breakdown_s=Breakdown(
            compute=t_compute,
            weight_read=t_weight,
            kv_read=t_kv,
            activation=t_act,
            comm_latency=lat,
            comm_bandwidth=band,
            overhead=t_overhead,
        ),
    )
