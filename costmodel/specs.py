r"""Spec records: the inputs of the cost model, as ``flax.struct.dataclass`` pytrees.

Every number is a float leaf in SI units (seconds, bytes, bytes/s, FLOP/s, joules), so a
record can be differentiated with respect to any field and stacked along a leading axis
for ``jax.vmap``. Only structure is static: the topology kind and name of each interconnect
tier, and the number of tiers (the length of ``SystemSpec.tiers``).

Attention kinds are *not* static. A model is described by how many layers it has of each
attention class (full softmax, sliding/chunked window, DeepSeek sparse, linear/state-space)
and whether its softmax attention is MLA (``kv_lora_rank > 0``) or GQA/MHA. Counts and
dimensions are floats, so one compiled program serves every model and models can be
stacked and swept like any other axis.

Identity (names, sources) lives outside these records: ``hardware_db`` returns records
keyed by name and keeps the provenance in its own tables.

Vocabulary (letters used in docstrings across ``costmodel``):

======  =============================================================
B       batch (concurrent sequences)
T       tokens per sequence per step (1 + MTP/speculative depth)
S       context (KV) length in tokens
D       d_model
H, K    query heads, KV heads
L       transformer blocks
E, k    routed experts, experts per token (top-k)
V       vocabulary size
N       chips per pipeline stage (attn_tp·kvp·attn_dp = ep·moe_tp; shared layout: N/kvp)
======  =============================================================
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct

TOPOLOGIES = ("switch", "full", "ring", "torus2d", "torus3d", "mesh2d")
"""Topology kinds a tier may have. ``switch``: single-stage switch, every pair one hop.
``full``: fully connected point-to-point links (the chip's bandwidth split over its peers).
``ring``: bidirectional 1D ring. ``torus2d``/``torus3d``: wraparound torus. ``mesh2d``:
2D mesh without wraparound."""


Scalar = jax.typing.ArrayLike
"""A number of the cost model: a Python float, a NumPy or JAX scalar, or (batched under
``jax.vmap``, traced under ``jax.jit``/``grad``) an array; units are in the field's name."""


@struct.dataclass
class ModelSpec:
    """Architecture of a decoder-only Transformer, as float leaves.

    Parameter counts are derived (``costmodel.params``), never stored.

    Softmax attention (used by the full, window and sparse layer classes):
      * GQA/MHA when ``kv_lora_rank == 0``: ``n_heads`` query heads of ``head_dim_qk``,
        ``n_kv_heads`` K/V heads; the KV cache holds ``n_kv_heads·(head_dim_qk+head_dim_v)``
        elements per token per layer.
      * MLA when ``kv_lora_rank > 0`` (DeepSeek-V2/V3 style): the cache holds the shared
        latent ``kv_lora_rank + qk_rope_head_dim`` elements per token per layer; at decode
        the up-projections are absorbed, so every head attends over the shared latent.
        ``head_dim_qk = qk_nope + qk_rope``; ``head_dim_v`` is the value head size.

    Layer classes (counts may be fractional only under relaxation; they sum to the number
    of attention sub-layers, which for hybrid models can differ from ``n_layers``):
      * ``n_full_attn_layers``: attend to all S tokens.
      * ``n_window_attn_layers``: attend to ``min(S, window_tokens)`` tokens (sliding window
        or chunked-local attention; for chunked attention this is the worst case).
      * ``n_sparse_attn_layers``: DeepSeek sparse attention (DSA): a lightning indexer with
        ``indexer_heads × indexer_head_dim`` scores all S cached index keys, then the main
        attention reads ``min(S, sparse_topk_tokens)`` tokens.
      * ``n_linear_attn_layers``: linear attention / state-space mixers (Gated DeltaNet,
        KDA, Mamba-2): a per-sequence state of ``linear_v_heads·linear_k_head_dim·
        linear_v_head_dim`` elements replaces the KV cache.

    FFN sub-layers:
      * ``n_dense_ffn_layers`` dense FFNs of width ``d_ff_dense``;
      * ``n_moe_layers`` MoE FFNs: ``n_experts`` routed experts of width ``d_ff_expert``,
        ``top_k`` per token, plus ``n_shared_experts`` always-on experts of width
        ``d_ff_shared``. ``moe_latent_dim > 0`` means experts run in a latent space of that
        width (Nemotron-3 latent MoE) behind a down and an up projection.
      * ``ffn_matrices``: 3 for gated FFNs (SwiGLU/GeGLU), 2 for plain (ReLU²/GELU).

    ``n_mtp_layers`` multi-token-prediction modules (DeepSeek-V3 style: one block plus a
    ``2D × D`` projection, sharing embedding and LM head) serve as the draft model.
    """

    n_layers: float
    d_model: float
    vocab_size: float
    tied_embeddings: float = 0.0
    # softmax attention
    n_heads: float = 0.0
    n_kv_heads: float = 0.0
    head_dim_qk: float = 0.0
    head_dim_v: float = 0.0
    q_lora_rank: float = 0.0
    kv_lora_rank: float = 0.0
    qk_rope_head_dim: float = 0.0
    attn_output_gate: float = 0.0
    # attention layer classes
    n_full_attn_layers: float = 0.0
    n_window_attn_layers: float = 0.0
    window_tokens: float = 0.0
    n_sparse_attn_layers: float = 0.0
    sparse_topk_tokens: float = 0.0
    indexer_heads: float = 0.0
    indexer_head_dim: float = 0.0
    n_linear_attn_layers: float = 0.0
    linear_k_heads: float = 0.0
    linear_v_heads: float = 0.0
    linear_k_head_dim: float = 0.0
    linear_v_head_dim: float = 0.0
    linear_conv_kernel: float = 0.0
    # FFN
    ffn_matrices: float = 3.0
    n_dense_ffn_layers: float = 0.0
    d_ff_dense: float = 0.0
    n_moe_layers: float = 0.0
    n_experts: float = 0.0
    top_k: float = 0.0
    n_shared_experts: float = 0.0
    d_ff_expert: float = 0.0
    d_ff_shared: float = 0.0
    moe_latent_dim: float = 0.0
    # speculative
    n_mtp_layers: float = 0.0


@struct.dataclass
class Precision:
    """Storage and arithmetic precision per tensor class.

    ``*_weight_bytes`` are bytes per parameter *including* quantisation scale overhead,
    e.g. INT4 with one BF16 scale per 32 weights: ``0.5 + 2/32 = 0.5625``; NVFP4 (E2M1 with
    one FP8 scale per 16): ``0.5 + 1/16 = 0.5625``; MXFP4 (one E8M0 scale per 32):
    ``0.5 + 1/32 = 0.53125``; FP8 with 128×128 FP32 block scales: ``1 + 4/16384``.

    ``*_compute_bits`` choose the chip's peak FLOP/s: 4 → FP4 peak, 8 → FP8 peak,
    16 → BF16 peak (a chip without the narrower unit falls back to the next wider one).
    Weight-only quantisation (W4A16) stores 0.5625 bytes but computes at 16 bits.
    """

    attn_weight_bytes: float = 2.0
    ffn_weight_bytes: float = 2.0
    expert_weight_bytes: float = 2.0
    embed_weight_bytes: float = 2.0
    kv_bytes: float = 2.0
    act_bytes: float = 2.0
    state_bytes: float = 4.0
    attn_compute_bits: float = 16.0
    ffn_compute_bits: float = 16.0
    expert_compute_bits: float = 16.0


@struct.dataclass
class ChipSpec:
    """One accelerator (a GPU package, a TPU chip, an SRAM die).

    Peaks are dense (no 2:4 sparsity). A zero peak means the precision is not supported.
    Memory tiers: on-chip SRAM usable as a placement tier (weights/KV resident in it, as on
    SRAM inference chips; zero for GPUs, whose L2 is a cache and not modelled as
    placement) and HBM/DRAM. Data fills SRAM first, then HBM (``costmodel.memory``).
    Energies are per byte read and per FLOP; zero means "not modelled".
    """

    peak_flops_per_s_bf16: float
    hbm_bw_bytes_per_s: float = 0.0
    hbm_capacity_bytes: float = 0.0
    peak_flops_per_s_fp8: float = 0.0
    peak_flops_per_s_fp4: float = 0.0
    sram_bw_bytes_per_s: float = 0.0
    sram_capacity_bytes: float = 0.0
    hbm_energy_j_per_byte: float = 0.0
    sram_energy_j_per_byte: float = 0.0
    flop_energy_j_per_flop: float = 0.0
    tdp_w: float = 0.0


@struct.dataclass
class TierSpec:
    """One interconnect tier.

    A collective step on this tier costs ``hops·hop_latency_s + overhead_s`` plus its bytes
    over ``bw_bytes_per_s`` (one-way injection bandwidth per chip, all of the chip's links
    on this tier together). ``domain_chips`` is how many chips this tier connects
    (cumulative: a scale-up tier of an NVL72 rack has 72; a tier of a single die has 1).

    The first tier conventionally describes the on-die / on-package network (``domain_chips
    = 1``): every distributed operator pays one on-chip all-to-all on it
    (``costmodel.collectives.t_onchip_s``). Later tiers carry inter-chip collectives.
    """

    hop_latency_s: float
    overhead_s: float
    bw_bytes_per_s: float
    domain_chips: float
    energy_j_per_byte: float = 0.0
    topology: str = struct.field(pytree_node=False, default="switch")
    name: str = struct.field(pytree_node=False, default="tier")


@struct.dataclass
class SystemSpec:
    """A system: one chip type and its ordered interconnect tiers (innermost first)."""

    chip: ChipSpec
    tiers: tuple[TierSpec, ...]
    max_chips: float = math.inf


@struct.dataclass
class Parallelism:
    """Parallel degrees, as floats (relaxed for gradients; integers in grid search).

    Per pipeline stage the attention side uses ``attn_tp·kvp·attn_dp`` chips and the FFN/MoE
    side ``ep·moe_tp`` chips; they must be the same chips (equal products). Dense FFNs run
    tensor-parallel over all N chips of the stage (Helix: TPF = N). The one exception is the
    shared (Medha-style) layout, ``ep·moe_tp = attn_tp·attn_dp`` with ``kvp > 1``: the FFN on
    the attention TP(×DP) group, replicated over the kvp ranks
    (:func:`costmodel.operators.shared_layout`). Groups are placed
    innermost-first: attention ``attn_tp`` (stride 1), ``kvp`` (stride attn_tp), ``attn_dp``;
    MoE ``moe_tp`` (stride 1), ``ep``; ``pp`` outermost (stride N).
    """

    attn_tp: float = 1.0
    attn_dp: float = 1.0
    kvp: float = 1.0
    ep: float = 1.0
    moe_tp: float = 1.0
    pp: float = 1.0


DEGREES = tuple(f.name for f in dataclasses.fields(Parallelism))
"""The six parallel degrees, in :class:`Parallelism` field order: the one list every split
table, report and file column uses."""


@struct.dataclass
class Workload:
    """What is decoded.

    ``acceptance_rate`` is the per-position probability that a draft token is accepted
    given all earlier ones were (so the mean accepted length of depth k is
    ``(1 - a^(k+1)) / (1 - a)``). ``overlap`` in [0, 1] is the fraction of the hideable
    communication overlapped with other requests' work (Helix HOP-B); at batch 1 nothing is
    hideable. ``moe_imbalance`` ≥ 1 multiplies the expert load of the busiest chip.
    """

    batch: float = 1.0
    context_tokens: float = 1024.0
    mtp_depth: float = 0.0
    acceptance_rate: float = 0.0
    overlap: float = 0.0
    moe_imbalance: float = 1.0


@struct.dataclass
class Efficiency:
    """Achieved fraction of peak, and fixed software overheads (the calibrated mode).

    ``SOL`` (all efficiencies 1, overheads 0) gives the speed-of-light bound.
    ``mem_efficiency`` scales memory bandwidth for weight and activation reads;
    ``kv_efficiency`` additionally for KV-cache / recurrent-state reads (attention kernels
    over paged caches reach less of the bandwidth than weight GEMVs);
    ``kernel_overhead_s`` is paid once per kernel (launch / pipeline bubble);
    ``collective_overhead_s`` once per collective on top of the tier's own overhead;
    ``step_overhead_s`` once per decode step (scheduling, sampling, host work).
    """

    mem_efficiency: float = 1.0
    compute_efficiency: float = 1.0
    link_efficiency: float = 1.0
    kernel_overhead_s: float = 0.0
    collective_overhead_s: float = 0.0
    kv_efficiency: float = 1.0
    step_overhead_s: float = 0.0


SOL = Efficiency()
"""Speed-of-light mode: efficiencies 1, no software overheads."""


def stack(records):
    """Stack equal-structure records along a new leading axis (for ``jax.vmap``)."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *records)


def unstack(record, n: int):
    """Inverse of :func:`stack`: the ``n`` records along the leading axis."""
    return [jax.tree.map(lambda x, i=i: x[i], record) for i in range(n)]
