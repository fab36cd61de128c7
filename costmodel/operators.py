r"""Per-chip work of every operator of a decode step: FLOPs and bytes.

Each function describes one operator (or a short fixed sequence of kernels) for **one
chip of a pipeline stage and one layer**, and returns an :class:`Op`: FLOPs, bytes of
weights, KV-cache (or recurrent state) and activations it moves, the precision its
arithmetic runs at, how many kernels it takes, and how many times per step it runs
(``count``: layers of that class, times draft steps for the draft model).

Shorthands (per chip): ``tp = attn_tp``; ``N_a`` chips over which one attention replica's
post-attention work (output projection, shared experts, embedding, LM head) is split:
``attn_tp·kvp`` in the Helix layout, ``attn_tp`` in the shared (Medha) layout
(:func:`shared_layout`); ``N_f = ep·moe_tp`` chips of the stage on the FFN side; ``B_r = B/attn_dp``
sequences per attention replica; ``T`` tokens per sequence per step (1 + MTP depth when
verifying); ``n_r = B_r·T`` query tokens per replica; ``n = B·T`` tokens of the stage.

Sharding (Helix, arXiv 2507.07120 §2; DeepSeek-V3 inference §3.4; TensorRT-LLM):

* QKV / latent projections: head-wise matrices split over ``attn_tp``; MLA's small
  down-projections (``W_DQ``, ``W_DKV``) are replicated (TensorRT-LLM "Fuse_A GEMM DP");
  GQA K/V projections hold ``max(K/tp, 1)`` heads per chip (duplicated once tp > K).
* Attention core: each chip reads its ``ceil(K/tp)`` KV heads (MLA: the one shared
  latent) for ``S_eff/kvp`` tokens of each of its ``B_r`` sequences (Helix App. A:
  ``T_KV = B·2·⌈K/TPA⌉·Hsz·(S/KVP)·bytes/BW``).
* Output projection: over ``N_a = tp·kvp`` chips (Helix: after the all-to-all each chip
  owns ``H/(KVP·TPA)`` heads of the whole batch); shared layout: over ``N_a = tp``,
  replicated on every KV-parallel rank.
* Dense FFN: tensor-parallel over all ``N_f`` chips of the stage, all ``n`` tokens
  (Helix: TPF = N).
* MoE: ``E/ep`` experts per chip, each split ``moe_tp`` ways; the stage's ``n`` tokens
  select ``top_k`` experts each; shared experts and the LM head are split over the
  attention replica ``N_a`` and see its ``n_r`` tokens.

Expected distinct experts (uniform routing): each expert is missed by one token with
probability ``1 − k/E``; a chip holding ``E/ep`` experts touches ``(E/ep)·(1 − (1 −
k/E)^n)`` of them on average, and the step waits for the busiest of the ``ep`` chips
(:func:`expected_experts_per_chip`), times the load-imbalance factor λ.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri

from costmodel import params as P
from costmodel.smooth import safe_div
from costmodel.specs import ModelSpec, Parallelism, Precision, Scalar, Workload


class Op(NamedTuple):
    """One operator on one chip, per occurrence.

    Time follows the busiest chip (the step waits for it); energy follows the average
    chip: ``mean_bytes_fraction`` and ``mean_flops_fraction`` are the average chip's bytes
    and FLOPs relative to this one's (1 except for load-imbalanced routed experts).

    For the kernel-level calibrated mode (:mod:`costmodel.kernel_mode`): ``kclass`` (static)
    is the class of the operator's main kernel (``gemm``; ``gemm_ffn`` for the dense FFN
    layers and shared experts, whose GEMMs run at the FFN linears' precision;
    ``attention`` — MLA or GQA by the model —, ``moe``, ``small``) and ``rows`` its reuse
    factor ``m`` (tokens of a GEMM, query heads per KV head of attention, MLA heads, tokens
    per active expert). ``tag``
    (static) names the operator (:data:`costmodel.kernel_mode.OP_TAGS`: the row of a
    stack's launch table) and ``present`` (1 or 0) says whether the model has it at all
    (0: a shared expert of a model without one), so a stack's fixed launches are not
    charged for an absent operator.
    """

    flops: Scalar
    weight_bytes: Scalar
    kv_bytes: Scalar
    act_bytes: Scalar
    compute_bits: Scalar
    kernels: Scalar
    count: Scalar
    mean_bytes_fraction: object = 1.0
    mean_flops_fraction: object = 1.0
    kclass: str = "gemm"
    rows: object = 1.0
    tag: str = ""
    present: object = 1.0


class Ctx(NamedTuple):
    """Derived per-step quantities shared by the operators (all float scalars)."""

    batch: object  # B
    tokens_per_seq: object  # T
    context: object  # S
    tp: Scalar
    dp: Scalar
    kvp: Scalar
    ep: Scalar
    moe_tp: Scalar
    n_attn: object  # N_a: tp·kvp (Helix layout) or tp (shared layout)
    n_replica: object  # tp·kvp chips of one attention replica (both layouts)
    shared: object  # 1 in the shared (Medha) layout, 0 in the Helix layout
    n_ffn: object  # N_f = ep·moe_tp
    seqs_replica: object  # B_r
    tok_replica: object  # n_r = B_r·T
    tok_stage: object  # n = B·T
    imbalance: Scalar


def shared_layout(par: Parallelism):
    r"""1 where the split is in the *shared* (Medha-style) layout, 0 otherwise.

    Two layouts put the FFN on the ``N = attn_tp·kvp·attn_dp`` chips of a stage:

    * **Helix** (arXiv 2507.07120 §2.2): the FFN/MoE grid is re-provisioned over all N
      chips, ``ep·moe_tp = N``; the output projection, shared experts, embedding and LM
      head are split over the ``attn_tp·kvp`` chips of the attention replica.
    * **shared** (Medha, arXiv 2409.17264 §3.3; Helix §1 and §3.2: "gather the attention
      outputs onto a fixed group of TP GPUs for all subsequent FFN computations", "tying
      TP between FFNs and attention"): attention and FFN keep one layout, the attention
      TP group; the FFN grid is ``ep·moe_tp = attn_tp·attn_dp = N/kvp`` chips, and every
      one of the ``kvp`` KV-parallel ranks holds the same post-attention weights and
      computes the same tokens (a replica: same time per chip, kvp copies of the weights).

    The layout is read off the split: shared iff ``kvp > 1`` and
    ``ep·moe_tp·kvp = attn_tp·kvp·attn_dp`` (relative tolerance 1e-6). At ``kvp = 1`` the
    two layouts are the same split and this is 0. Returns a float 0/1 (piecewise
    constant: no gradient flows through it): a Python float when every degree is a host
    number, so that host evaluations keep their arithmetic unchanged; a JAX array otherwise.
    """
    n = par.attn_tp * par.kvp * par.attn_dp
    n_ffn = par.ep * par.moe_tp
    if not any(isinstance(d, jax.Array) for d in (n, n_ffn, par.kvp)):
        host = np.asarray(n_ffn * par.kvp), np.asarray(n), np.asarray(par.kvp)
        flag = np.where(
            (host[2] > 1.0 + 1e-9) & (np.abs(host[0] - host[1]) <= 1e-6 * host[1]), 1.0, 0.0
        )
        return float(flag) if flag.ndim == 0 else flag
    same = jnp.abs(n_ffn * par.kvp - n) <= 1e-6 * n
    return jnp.where((par.kvp > 1.0 + 1e-9) & same, 1.0, 0.0)


def _pick(flag, if_one, if_zero):
    """``if_one`` where the 0/1 ``flag`` is 1, else ``if_zero`` (host floats stay host)."""
    if isinstance(flag, float):
        return if_one if flag else if_zero
    if isinstance(flag, np.ndarray):
        return np.where(flag > 0, if_one, if_zero)
    return jnp.where(flag > 0, if_one, if_zero)


def make_ctx(par: Parallelism, wl: Workload, tokens_per_seq) -> Ctx:
    """Derived quantities for a step that processes ``tokens_per_seq`` tokens/sequence."""
    seqs = wl.batch / par.attn_dp
    shared = shared_layout(par)
    n_replica = par.attn_tp * par.kvp
    return Ctx(
        batch=wl.batch,
        tokens_per_seq=tokens_per_seq,
        context=wl.context_tokens,
        tp=par.attn_tp,
        dp=par.attn_dp,
        kvp=par.kvp,
        ep=par.ep,
        moe_tp=par.moe_tp,
        n_attn=_pick(shared, par.attn_tp, n_replica),
        n_replica=n_replica,
        shared=shared,
        n_ffn=par.ep * par.moe_tp,
        seqs_replica=seqs,
        tok_replica=seqs * tokens_per_seq,
        tok_stage=wl.batch * tokens_per_seq,
        imbalance=wl.moe_imbalance,
    )


def kv_heads_per_chip(m: ModelSpec, tp):
    """Cached KV heads a chip reads: ``max(K/tp, 1)``; MLA: the 1 shared latent.

    Equals ``ceil(K/tp)`` whenever tp divides K or K divides tp, which feasibility requires
    (:mod:`costmodel.feasibility`), and is smooth in relaxed ``tp`` elsewhere.
    """
    return jnp.maximum(P.kv_cache_heads(m) / tp, 1.0)


def attn_proj_params_per_chip(m: ModelSpec, tp):
    """Q/K/V (or latent) projection parameters held by one chip (output proj. excluded)."""
    mla = P.is_mla(m) > 0
    q_down = jnp.where(jnp.asarray(m.q_lora_rank) > 0, m.d_model * m.q_lora_rank, 0.0)
    q_up = P.attn_q_params(m) - q_down
    kv_down = jnp.where(mla, m.d_model * (m.kv_lora_rank + m.qk_rope_head_dim), 0.0)
    d_nope = m.head_dim_qk - m.qk_rope_head_dim
    kv_up = jnp.where(
        mla,
        m.kv_lora_rank * m.n_heads * (d_nope + m.head_dim_v) / tp,
        m.d_model * kv_heads_per_chip(m, tp) * (m.head_dim_qk + m.head_dim_v),
    )
    return q_down + kv_down + q_up / tp + kv_up


def o_proj_params_per_chip(m: ModelSpec, n_attn):
    """Output projection parameters per chip: ``H·d_v·D / (tp·kvp)``."""
    return P.attn_o_params(m) / n_attn


def attended_tokens(m: ModelSpec, kind: str, context):
    """KV tokens each query attends to: S (full), min(S, W) (window), min(S, top-k)
    (DSA sparse)."""
    if kind == "full":
        return context
    if kind == "window":
        return jnp.minimum(context, m.window_tokens)
    if kind == "sparse":
        return jnp.minimum(context, m.sparse_topk_tokens)
    raise ValueError(kind)


def softmax_attention_ops(m: ModelSpec, p: Precision, c: Ctx, kind: str, count) -> list[Op]:
    """Projections, attention core (and DSA indexer) and output projection of one
    softmax-attention layer of class ``kind`` in {"full", "window", "sparse"}.

    *Length:* One operator list per attention variant (GQA/MLA/sparse, absorbed or not)
    whose FLOP and byte formulas share their intermediate sizes; splitting would duplicate
    them.

    Attention core FLOPs per query token per head per KV token: GQA ``2·d_qk + 2·d_v``;
    MLA with absorbed projections ``2·(r_kv + d_r) + 2·r_kv`` (scores over the latent, then
    the latent-weighted sum). Kernels: the pre-attention RMSNorm, then MLA: fused
    down-projection, the q/kv latent norms, q up-projection, ``W_UK`` absorption,
    attention, ``W_UV`` absorption, output projection (9); GQA: norm, QKV, attention,
    output (4). A norm is a reduction over the hidden vector: a kernel on a GPU, an
    on-chip all-to-all on a die whose SRAM is spread over tiles.
    """
    mla = P.is_mla(m) > 0
    act = p.act_bytes
    w_proj = attn_proj_params_per_chip(m, c.tp)
    heads = m.n_heads / c.tp
    s_eff = attended_tokens(m, kind, c.context) / c.kvp
    flops_per_kv = jnp.where(
        mla,
        2 * (m.kv_lora_rank + m.qk_rope_head_dim) + 2 * m.kv_lora_rank,
        2 * m.head_dim_qk + 2 * m.head_dim_v,
    )
    kv_read = (
        c.seqs_replica * kv_heads_per_chip(m, c.tp) * P.kv_elems_per_head(m) * s_eff * p.kv_bytes
    )
    w_o = o_proj_params_per_chip(m, c.n_attn)
    ops = [
        Op(
            tag="attn_proj",
            flops=2 * w_proj * c.tok_replica,
            weight_bytes=w_proj * p.attn_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * (m.d_model + w_proj / m.d_model) * act,
            compute_bits=p.attn_compute_bits,
            kernels=jnp.where(mla, 6.0, 2.0),  # norm (+ 2 latent norms) + projections
            count=count,
            rows=c.tok_replica,
        ),
        Op(
            tag="attn_core",
            flops=c.tok_replica * heads * s_eff * flops_per_kv,
            weight_bytes=0.0,
            kv_bytes=kv_read,
            act_bytes=c.tok_replica * heads * (m.head_dim_qk + m.head_dim_v) * act,
            compute_bits=p.attn_compute_bits,
            kernels=jnp.where(mla, 2.0, 1.0),
            count=count,
            kclass="attention",
            rows=jnp.where(mla, heads, heads / kv_heads_per_chip(m, c.tp)),
        ),
        Op(
            tag="o_proj",
            flops=2 * w_o * c.tok_replica,
            weight_bytes=w_o * p.attn_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * (w_o / m.d_model + m.d_model) * act,
            compute_bits=p.attn_compute_bits,
            kernels=1.0,
            count=count,
            rows=c.tok_replica,
        ),
    ]
    if kind == "sparse":
        # DSA lightning indexer: I heads of d_I score every cached index key (one key
        # head), split over tp; keys read by every chip of the replica.
        s_all = c.context / c.kvp
        w_idx = P.indexer_params(m) / c.tp
        ops.append(
            Op(
                tag="indexer",
                flops=2 * w_idx * c.tok_replica
                + 2 * c.tok_replica * (m.indexer_heads / c.tp) * m.indexer_head_dim * s_all,
                weight_bytes=w_idx * p.attn_weight_bytes,
                kv_bytes=c.seqs_replica * s_all * m.indexer_head_dim * p.kv_bytes,
                act_bytes=c.tok_replica * m.d_model * act,
                compute_bits=p.attn_compute_bits,
                kernels=2.0,
                count=count,
                kclass="attention",
                rows=jnp.maximum(m.indexer_heads / c.tp, 1.0),
            )
        )
    return ops


def linear_attention_ops(m: ModelSpec, p: Precision, c: Ctx, count) -> list[Op]:
    """One linear-attention / SSM mixer layer: projections and the recurrent update.

    Heads split over ``attn_tp`` (replicated over kvp: a recurrent state cannot be split
    along the sequence). The state ``Hv·dk·dv`` per sequence is read and written once per
    step (``2·state·bytes``); the delta-rule/SSM update costs ≈ 6 FLOPs per state element
    per token (rank-1 update, decay and readout; Yang et al., Gated DeltaNet, 2024).
    """
    act = p.act_bytes
    w = P.linear_attn_params(m) / c.tp
    state = P.linear_state_elems(m) / c.tp
    rec = m.linear_v_heads * m.linear_k_head_dim * m.linear_v_head_dim / c.tp
    return [
        Op(
            tag="linear_proj",
            flops=2 * w * c.tok_replica,
            weight_bytes=w * p.attn_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * 2 * (m.d_model + w / m.d_model) * act,
            compute_bits=p.attn_compute_bits,
            kernels=3.0,  # pre-norm, in-projection, out-projection
            count=count,
            rows=c.tok_replica,
        ),
        Op(
            tag="linear_core",
            flops=6 * rec * c.tok_replica,
            weight_bytes=0.0,
            kv_bytes=2 * c.seqs_replica * state * p.state_bytes,
            act_bytes=0.0,
            compute_bits=16.0,
            kernels=1.0,
            count=count,
            kclass="small",
        ),
    ]


def dense_ffn_ops(m: ModelSpec, p: Precision, c: Ctx, count) -> list[Op]:
    """A dense FFN over all ``N_f`` chips of the stage: ``m·D·F/N_f`` weights per chip."""
    w = P.dense_ffn_params(m) / c.n_ffn
    return [
        Op(
            tag="dense_ffn",
            flops=2 * w * c.tok_stage,
            weight_bytes=w * p.ffn_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_stage * (2 * m.d_model + 2 * w / m.d_model) * p.act_bytes,
            compute_bits=p.ffn_compute_bits,
            kernels=3.0,  # pre-FFN norm, gate/up, down
            count=count,
            kclass="gemm_ffn",
            rows=c.tok_stage,
        )
    ]


def expected_max_load(mean, var, n_bins):
    """Expected maximum over ``n_bins`` i.i.d. loads of the given mean and variance.

    The larger of two estimates, each accurate in its regime (both underestimate in the
    other's): a Gaussian extreme value ``mean + sd·z(n)`` with Blom's expected maximum of
    n standard normals ``z(n) = Φ⁻¹((n − 0.375)/(n + 0.25))`` (0 for n = 1, smooth), and,
    for small means, the Poisson tail sum ``Σ_{j=1..4} 1 − F(j−1)^n`` with F the
    Poisson(mean) CDF (``E[max] = Σ_j P(max ≥ j)``, truncated at 4).
    """
    n = jnp.maximum(n_bins, 1.0)
    z = ndtri(jnp.clip((n - 0.375) / (n + 0.25), 0.5, 1.0 - 1e-7))
    gauss = mean + jnp.sqrt(jnp.maximum(var, 1e-30)) * z  # floor: finite gradient at var = 0
    e = jnp.exp(-mean)
    term, cdf, tail = e, 0.0, 0.0
    for j in range(1, 5):
        cdf = cdf + term  # F(j - 1)
        tail = tail + 1.0 - jnp.exp(n * jnp.log(jnp.clip(cdf, 1e-30, 1.0)))
        term = term * mean / j
    return jnp.maximum(gauss, tail)


def expected_experts_per_chip(m: ModelSpec, c: Ctx):
    """Distinct routed experts the **busiest** chip reads (the step waits for it).

    Each expert is touched by at least one of the stage's ``n`` tokens with probability
    ``φ = 1 − (1 − k/E)^n`` (uniform routing). A chip holds ``E/ep`` experts, so its count
    is Binomial(E/ep, φ) with mean ``(E/ep)·φ``; the busiest of ``ep`` chips reads
    :func:`expected_max_load` of it, times the load-imbalance factor λ (routing skew
    beyond chance, default 1), capped at ``E/ep``. At ep = 1 this is the mean
    ``E·φ`` (= k for one token); at batch 1 with EP ≫ k it is ≈ 1–2 whole experts, not the
    mean ``k/ep``: an expert's weights are on one chip (split only by ``moe_tp``).
    """
    per_chip = m.n_experts / c.ep
    miss = jnp.clip(1.0 - m.top_k / jnp.maximum(m.n_experts, 1.0), 0.0, 1.0)
    phi = 1.0 - miss**c.tok_stage
    load = expected_max_load(per_chip * phi, per_chip * phi * (1.0 - phi), c.ep)
    return jnp.minimum(c.imbalance * load, per_chip)


def busiest_chip_pairs(m: ModelSpec, c: Ctx):
    """(token, expert) pairs the busiest EP rank computes: ``n·k`` pairs spread
    multinomially over ``ep`` ranks (mean ``n·k/ep``, variance ``n·k·(1/ep)(1 − 1/ep)``),
    maximum by :func:`expected_max_load`, times λ."""
    pairs = c.tok_stage * m.top_k
    p = 1.0 / c.ep
    return c.imbalance * expected_max_load(pairs * p, pairs * p * (1.0 - p), c.ep)


def moe_ops(m: ModelSpec, p: Precision, c: Ctx, count) -> list[Op]:
    """Router, routed experts (+ latent projections) and shared experts of a MoE layer."""
    act = p.act_bytes
    d_e = P.expert_width(m)
    router = m.d_model * m.n_experts
    latent = (P.moe_dense_params(m) - router) / c.n_ffn
    w_routed = expected_experts_per_chip(m, c) * P.expert_params(m) / c.moe_tp
    pairs = busiest_chip_pairs(m, c)
    routed_flops = 2 * pairs * P.expert_params(m) / c.moe_tp
    # the average chip, for energy: mean distinct experts (E/ep)·φ and n·k/ep pairs
    miss = jnp.clip(1.0 - m.top_k / jnp.maximum(m.n_experts, 1.0), 0.0, 1.0)
    mean_experts = m.n_experts / c.ep * (1.0 - miss**c.tok_stage)
    mean_pairs = c.tok_stage * m.top_k / c.ep
    eb, fb = p.expert_weight_bytes, p.ffn_weight_bytes
    busy_bytes = w_routed * eb + latent * fb + pairs * 2 * d_e * act
    mean_bytes = mean_experts * P.expert_params(m) / c.moe_tp * eb + latent * fb
    mean_bytes = mean_bytes + mean_pairs * 2 * d_e * act
    busy_flops = routed_flops + 2 * latent * c.tok_stage
    mean_flops = 2 * mean_pairs * P.expert_params(m) / c.moe_tp + 2 * latent * c.tok_stage
    w_shared = P.shared_expert_params(m) / c.n_attn
    has_latent = jnp.where(jnp.asarray(m.moe_latent_dim) > 0, 1.0, 0.0)
    return [
        Op(
            tag="router",
            flops=2 * router * c.tok_replica,
            weight_bytes=router * p.attn_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * (m.d_model + m.n_experts) * act,
            compute_bits=16.0,
            kernels=2.0,  # pre-FFN norm, router
            count=count,
            rows=c.tok_replica,
        ),
        Op(
            tag="moe_experts",
            flops=busy_flops,
            weight_bytes=w_routed * eb + latent * fb,
            kv_bytes=0.0,
            act_bytes=pairs * 2 * d_e * act,
            compute_bits=p.expert_compute_bits,
            kernels=2.0 + 2.0 * has_latent,
            count=count,
            mean_bytes_fraction=safe_div(mean_bytes, busy_bytes),
            mean_flops_fraction=safe_div(mean_flops, busy_flops),
            kclass="moe",
            rows=jnp.maximum(safe_div(pairs, expected_experts_per_chip(m, c)), 1.0),
        ),
        Op(
            tag="shared_expert",
            present=jnp.minimum(m.n_shared_experts, 1.0),
            flops=2 * w_shared * c.tok_replica,
            weight_bytes=w_shared * p.ffn_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * 2 * m.d_model * act * jnp.minimum(m.n_shared_experts, 1.0),
            compute_bits=p.ffn_compute_bits,
            kernels=0.0,  # fused with the routed experts' grouped GEMM
            count=count,
            kclass="gemm_ffn",
            rows=c.tok_replica,
        ),
    ]


def lm_head_ops(m: ModelSpec, p: Precision, c: Ctx, count) -> list[Op]:
    """Vocabulary-parallel LM head over the attention replica: ``V·D/N_a`` per chip."""
    w = P.lm_head_params(m) / c.n_attn
    return [
        Op(
            tag="lm_head",
            flops=2 * w * c.tok_replica,
            weight_bytes=w * p.embed_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * (m.d_model + m.vocab_size / c.n_attn) * p.act_bytes,
            compute_bits=p.attn_compute_bits,
            kernels=3.0,  # final norm, LM head, sampling
            count=count,
            rows=c.tok_replica,
        )
    ]


def embedding_ops(m: ModelSpec, p: Precision, c: Ctx, count) -> list[Op]:
    """Vocabulary-parallel embedding lookup: each chip reads the rows in its shard."""
    return [
        Op(
            tag="embedding",
            flops=0.0,
            weight_bytes=c.tok_replica * m.d_model / c.n_attn * p.embed_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * m.d_model * p.act_bytes,
            compute_bits=16.0,
            kernels=1.0,
            count=count,
            kclass="small",
        )
    ]


def mtp_proj_ops(m: ModelSpec, p: Precision, c: Ctx, count) -> list[Op]:
    """MTP module input projection ``[h; e] → h`` (``2D×D``), split over ``N_a``."""
    w = 2 * m.d_model * m.d_model / c.n_attn
    return [
        Op(
            tag="mtp_proj",
            flops=2 * w * c.tok_replica,
            weight_bytes=w * p.attn_weight_bytes,
            kv_bytes=0.0,
            act_bytes=c.tok_replica * 3 * m.d_model * p.act_bytes,
            compute_bits=p.attn_compute_bits,
            kernels=1.0,
            count=count,
            rows=c.tok_replica,
        )
    ]
