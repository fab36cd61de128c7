r"""Map a Hugging Face ``config.json`` onto the fields of :class:`costmodel.specs.ModelSpec`.

The mapping runs in three steps:

1. **Layer plan** — one mixer and one FFN kind per layer (:mod:`hardware_db.hf_layers`); the
   layer-class counts of the spec are the counts of the plan, so they always add up.
2. **Geometry** — heads and head dims (GQA, or MLA when ``kv_lora_rank > 0``:
   ``head_dim_qk = qk_nope_head_dim + qk_rope_head_dim``, ``head_dim_v = v_head_dim``; GQA
   ``head_dim`` defaults to ``hidden_size / num_attention_heads``), the DSA indexer, the linear /
   state-space mixer (Gated DeltaNet ``linear_*``; Mamba-2 ``n_groups`` → K heads,
   ``ssm_state_size`` → K head dim, ``mamba_num_heads`` → V heads, ``mamba_head_dim`` → V head
   dim, ``conv_kernel``; Kimi KDA ``linear_attn_config``), FFN widths, experts, shared experts,
   latent MoE and MTP depth.
3. **Approximations** — wherever a config has structure ``ModelSpec`` cannot express, the
   closest representation is chosen and a sentence saying so is appended to the list returned
   with the fields (it ends up in ``ImportedModel.meta['approximations']`` and the TOML notes).

Families and their special cases (see the per-family helpers for formulas and sources):
DeepSeek-V3/R1/V3.1/V3.2, Kimi-K2/K2.5 and GLM-5 (MLA + MoE, DSA indexer), DeepSeek-V4
(compressed attention), Kimi-K3 (``kimi_linear``: KDA + MLA, latent MoE), Llama-3.x, DeciLM
NAS (Llama-3.3-Nemotron-Super), Llama-4 (chunked attention, interleaved MoE), Qwen3 / Qwen3-VL /
MiMo, Qwen3.5/3.6 (Gated DeltaNet hybrid), gpt-oss, MiniMax-M2/M3, Mixtral, Gemma-4,
Nemotron-H / Nemotron-3, MiMo-V2, Step-3.7.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from hardware_db import DbError
from hardware_db.hf_fields import Fields
from hardware_db.hf_layers import (
    Plan,
    decilm_plan,
    family_of,
    ffn_kinds,
    mixer_kinds,
    nemotron_plan,
)
from hardware_db.hf_layers import n_layers as count_layers

EXPERT_WIDTH_IS_INTERMEDIATE = ("mistral", "gpt-oss", "minimax", "llama4")
"""Families whose ``intermediate_size`` is the routed-expert width (no separate
``moe_intermediate_size``)."""


@dataclasses.dataclass
class Arch:
    """Result of :func:`map_architecture`."""

    fields: dict
    family: str
    model_type: str
    plan: Plan
    max_context: int | None
    tied: bool
    approximations: list[str]


# ---------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------
def _gqa(f: Fields, fam: str, d: int, plan: Plan, approx: list[str], kv=None) -> dict:
    """GQA/MHA head geometry; ``head_dim`` defaults to ``hidden_size / num_attention_heads``.

    ``kv`` overrides ``num_key_value_heads`` (DeciLM gives it per layer in ``block_configs``).
    """
    h = f.pos("num_attention_heads", "n_heads")
    hk = f.which("head_dim", "attention_head_dim")
    if hk:
        hd = f.pos(hk)
    else:
        if d % h:
            raise DbError(
                f"{f.src}: field '{f.name('num_attention_heads')}' = {h} does not divide "
                f"hidden_size = {d} and 'head_dim' is absent; give head_dim or a divisor"
            )
        hd = d // h
    k = kv if kv is not None else f.pos("num_key_value_heads", "num_kv_heads", default=h)
    hv = f.pos("v_head_dim", default=hd)
    if kv is None and (k > h or h % k):
        raise f.error("num_key_value_heads", f"= {k} must divide num_attention_heads = {h}")
    out = dict(n_heads=h, n_kv_heads=k, head_dim_qk=hd, head_dim_v=hv)
    n_full, n_win = plan.mixers.count("full"), plan.mixers.count("window")
    if fam == "gemma" and f.has("global_head_dim") and n_full:
        gk = f.pos("num_global_key_value_heads", default=k)
        ghd = f.pos("global_head_dim")
        kv_note = " with K = V (attention_k_eq_v)" if f.flag("attention_k_eq_v") else ""
        approx.append(
            f"Gemma full-attention layers use head_dim {ghd} and {gk} KV heads{kv_note}; all "
            f"softmax layers take the sliding-layer geometry (head_dim {hd}, {k} KV heads), so "
            f"the {n_full} full layers' q/o params and KV per token are approximate"
        )
    if fam == "mimo-v2" and n_win:
        sk = f.pos("swa_num_key_value_heads", default=k)
        sh = f.pos("swa_num_attention_heads", default=h)
        if n_win >= n_full:
            out.update(n_heads=sh, n_kv_heads=sk)
            out["head_dim_qk"] = f.pos("swa_head_dim", default=hd)
            out["head_dim_v"] = f.pos("swa_v_head_dim", default=hv)
        if sk != k or sh != h:
            approx.append(
                f"MiMo-V2 window layers have {sh} heads/{sk} KV heads, full layers {h}/{k}; "
                f"all softmax layers take the majority (window) geometry"
            )
    return out


def _mla(f: Fields) -> dict:
    """MLA (DeepSeek-V2/V3): ``head_dim_qk = qk_nope + qk_rope``, ``head_dim_v = v_head_dim``."""
    h = f.pos("num_attention_heads")
    nope = f.pos("qk_nope_head_dim")
    rope = f.pos("qk_rope_head_dim")
    return dict(
        n_heads=h,
        n_kv_heads=f.pos("num_key_value_heads", default=h),
        head_dim_qk=nope + rope,
        head_dim_v=f.pos("v_head_dim"),
        q_lora_rank=f.nonneg("q_lora_rank", default=0),
        kv_lora_rank=f.pos("kv_lora_rank"),
        qk_rope_head_dim=rope,
    )


def _deepseek_v4(f: Fields, d: int, approx: list[str]) -> dict:
    r"""DeepSeek-V4 attention as MLA with an effective value width.

    V4 attends with ``H`` query heads of ``head_dim`` (= nope + rope) over one shared 512-wide
    latent (K = V, MQA), so the cache per token per layer is ``head_dim`` elements: this is MLA
    with ``kv_lora_rank = head_dim - qk_rope_head_dim``. The output projection is grouped
    low-rank, ``P_o = H·head_dim·o_lora_rank + o_groups·o_lora_rank·D`` parameters, which MLA's
    ``H·d_v·D`` (+ the up-projection ``r_kv·H·(d_n + d_v)`` MLA assumes) cannot express; the
    importer solves for the effective value width that conserves the parameters:

    ``d_v = (P_o − r_kv·H·d_n) / (H·(r_kv + D))``.
    """
    h = f.pos("num_attention_heads")
    hd = f.pos("head_dim")
    rope = f.pos("qk_rope_head_dim")
    if rope >= hd:
        raise f.error("qk_rope_head_dim", f"= {rope} must be smaller than head_dim = {hd}")
    r_kv = hd - rope
    o_rank = f.pos("o_lora_rank")
    groups = f.pos("o_groups", default=1)
    p_o = h * hd * o_rank + groups * o_rank * d
    d_v = (p_o - r_kv * h * (hd - rope)) / (h * (r_kv + d))
    if d_v <= 0:
        d_v = float(hd)
    approx.append(
        f"DeepSeek-V4 attention as MLA over the shared {hd}-wide latent (kv_lora_rank {r_kv} "
        f"+ rope {rope}); grouped low-rank output ({groups} groups × rank {o_rank}, "
        f"{p_o / 1e6:.1f} M params/layer) folded into an effective head_dim_v {d_v:.2f} that "
        "conserves attention parameters"
    )
    approx.append(
        "DeepSeek-V4 compressed attention: CSA layers (compress ratio 4) → sparse class "
        "(top-k = index_topk + sliding_window; their KV cache and indexer keys are really S/4 "
        "per layer), HCA layers (ratio 128, ~S/128 + window entries) → window class, ratio-0 "
        "layers → window; KV compressor, hyper-connections (hc_mult) and hash-routing gates "
        "are not modelled"
    )
    return dict(
        n_heads=h,
        n_kv_heads=f.pos("num_key_value_heads", default=1),
        head_dim_qk=hd,
        head_dim_v=d_v,
        q_lora_rank=f.nonneg("q_lora_rank", default=0),
        kv_lora_rank=r_kv,
        qk_rope_head_dim=rope,
    )


def _linear(f: Fields, fam: str, plan: Plan, approx: list[str]) -> dict:
    """Linear-attention / SSM mixer geometry (state = ``Hv·dk·dv`` per sequence per layer)."""
    if "linear" not in plan.mixers:
        return {}
    if f.has("linear_num_value_heads"):  # Gated DeltaNet (Qwen3-Next / Qwen3.5)
        return dict(
            linear_k_heads=f.pos("linear_num_key_heads"),
            linear_v_heads=f.pos("linear_num_value_heads"),
            linear_k_head_dim=f.pos("linear_key_head_dim"),
            linear_v_head_dim=f.pos("linear_value_head_dim"),
            linear_conv_kernel=f.nonneg("linear_conv_kernel_dim", default=4),
        )
    if f.has("ssm_state_size"):  # Mamba-2
        d = f.pos("hidden_size")
        hd = f.pos("mamba_head_dim", default=64)
        if f.has("mamba_num_heads"):
            nh = f.pos("mamba_num_heads")
        else:
            nh = f.pos("expand", default=2) * d // hd
        return dict(
            linear_k_heads=f.pos("n_groups", default=1),
            linear_v_heads=nh,
            linear_k_head_dim=f.pos("ssm_state_size"),
            linear_v_head_dim=hd,
            linear_conv_kernel=f.nonneg("conv_kernel", default=4),
        )
    lac = f.sub("linear_attn_config")
    if lac:  # Kimi Delta Attention
        nh, hd, conv = lac.get("num_heads"), lac.get("head_dim"), lac.get("short_conv_kernel_size")
        for k, v in (("num_heads", nh), ("head_dim", hd)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise f.error("linear_attn_config", f"{k} = {v!r}; expected a positive integer")
        gate = " and a full-rank forget gate" if lac.get("use_full_rank_gate") else ""
        approx.append(
            "KDA layers mapped to the Gated-DeltaNet parameter formula (q, k, v, output gate, "
            f"beta, conv, out); the per-channel decay projection{gate} are not counted"
        )
        return dict(
            linear_k_heads=nh,
            linear_v_heads=nh,
            linear_k_head_dim=hd,
            linear_v_head_dim=hd,
            linear_conv_kernel=conv if isinstance(conv, int) and conv >= 0 else 4,
        )
    # MiniMax lightning attention or unknown: one head per attention head, full head dim.
    h = f.pos("num_attention_heads")
    hd = f.pos("head_dim", default=f.pos("hidden_size") // h)
    approx.append("linear-attention layers without linear_* fields: heads/dims of softmax used")
    return dict(
        linear_k_heads=h,
        linear_v_heads=h,
        linear_k_head_dim=hd,
        linear_v_head_dim=hd,
        linear_conv_kernel=0,
    )


def _experts(f: Fields, fam: str) -> tuple[int, int]:
    """(routed experts, top-k)."""
    n = f.nonneg("n_routed_experts", "num_experts", "num_local_experts", default=0)
    if n == 0:
        return 0, 0
    keys = ("num_experts_per_tok", "experts_per_token", "top_k_experts", "num_experts_per_token")
    k = f.pos(*keys)
    if k > n:
        raise f.error(f.which(*keys), f"= {k} exceeds the number of experts {n}")
    return n, k


def _ffn(f: Fields, fam: str, d: int, plan: Plan, n_exp: int, top_k: int, approx) -> dict:
    """FFN widths, experts, shared experts, latent MoE."""
    act = str(f.raw("mlp_hidden_act", "hidden_act", "hidden_activation", default="silu"))
    gated = act.lower() not in ("relu2", "relu_squared", "squared_relu", "relu^2")
    out = dict(ffn_matrices=3.0 if gated else 2.0)
    n_dense = plan.ffns.count("dense")
    n_moe = plan.ffns.count("moe")
    if n_dense:
        if plan.dense_widths:
            out["d_ff_dense"] = sum(plan.dense_widths) / len(plan.dense_widths)
        else:
            key = {"llama4": "intermediate_size_mlp", "minimax": "dense_intermediate_size"}
            out["d_ff_dense"] = f.pos(key.get(fam, "intermediate_size"), "intermediate_size")
    if not n_moe:
        return out
    if fam in EXPERT_WIDTH_IS_INTERMEDIATE:
        d_e = f.pos("moe_intermediate_size", "intermediate_size")
    else:
        d_e = f.pos("moe_intermediate_size", "expert_intermediate_size", "intermediate_size")
    out.update(n_experts=n_exp, top_k=top_k, d_ff_expert=d_e)
    n_sh = f.nonneg("n_shared_experts", "num_shared_experts", default=0)
    d_sh = 0
    if f.has("shared_expert_intermediate_size"):  # Qwen: one shared expert of this width
        d_sh = f.nonneg("shared_expert_intermediate_size")
        n_sh = 1 if d_sh else 0
    elif f.has("moe_shared_expert_intermediate_size"):  # Nemotron-3: one MLP of this width
        d_sh = f.nonneg("moe_shared_expert_intermediate_size")
        n_sh = 1 if d_sh else 0
    elif f.has("shared_intermediate_size"):  # MiniMax: 0 means none
        d_sh = f.nonneg("shared_intermediate_size")
        n_sh = max(n_sh, 1) if d_sh else 0
    elif f.has("share_expert_dim"):  # Step
        d_sh = f.nonneg("share_expert_dim")
        n_sh = max(n_sh, 1) if d_sh else 0
    elif fam == "llama4":  # one shared expert of the expert width
        n_sh, d_sh = 1, d_e
    elif fam == "gemma" and f.flag("enable_moe_block"):
        # Gemma-4 MoE layers run the dense MLP in parallel with the routed experts: exactly
        # an always-on (shared) expert of width intermediate_size.
        n_sh, d_sh = 1, f.pos("intermediate_size")
        approx.append("Gemma-4 dense MLP that runs beside the experts modelled as a shared expert")
    elif n_sh:
        d_sh = d_e
    if n_sh and d_sh:
        out.update(n_shared_experts=n_sh, d_ff_shared=d_sh)
    latent = f.nonneg("moe_latent_size", "routed_expert_hidden_size", default=0)
    if latent:
        out["moe_latent_dim"] = latent
    return out


def _mtp(f: Fields, fam: str, approx: list[str]) -> int:
    """Multi-token-prediction modules (DeepSeek ``num_nextn_predict_layers``, Qwen
    ``mtp_num_hidden_layers``, MiniMax ``num_mtp_modules × mtp_transformer_layers``)."""
    if fam == "minimax" and f.has("num_mtp_modules") and f.raw("use_mtp") is not False:
        n = f.nonneg("num_mtp_modules") * f.pos("mtp_transformer_layers", default=1)
        other = f.raw("num_nextn_predict_layers")
        if other is not None and other != n:
            approx.append(f"MTP depth from num_mtp_modules ({n}), not num_nextn_predict_layers")
        return n
    return f.nonneg("num_nextn_predict_layers", "mtp_num_hidden_layers", default=0)


def _window(f: Fields, fam: str, plan: Plan, approx: list[str]) -> int:
    if "window" not in plan.mixers:
        return 0
    if fam == "llama4":
        approx.append(
            "Llama-4 chunked attention (chunks of attention_chunk_size) modelled as a sliding "
            "window of that size (worst case)"
        )
        return f.pos("attention_chunk_size")
    return f.pos("sliding_window", "sliding_window_size", "attention_chunk_size")


def _sparse(f: Fields, fam: str, plan: Plan, approx: list[str]) -> dict:
    if "sparse" not in plan.mixers:
        return {}
    sac = f.sub("sparse_attention_config")
    if sac and not f.has("index_topk"):  # MiniMax-M3 block-sparse attention

        def num(key, default):
            v = sac.get(key, default)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise f.error("sparse_attention_config", f"{key} = {v!r}; expected an integer ≥ 0")
            return v

        block = num("sparse_block_size", 128) or 1
        blocks = num("sparse_topk_blocks", 16) + num("sparse_local_block", 0)
        blocks += num("sparse_init_block", 0)
        approx.append(
            f"MiniMax block-sparse attention: top-{num('sparse_topk_blocks', 16)} blocks of "
            f"{block} (+ local/initial blocks) = {blocks * block} tokens per query as the sparse "
            "top-k; block-max index scoring modelled as a per-token indexer"
        )
        return dict(
            sparse_topk_tokens=blocks * block,
            indexer_heads=num("sparse_num_index_heads", 1),
            indexer_head_dim=num("sparse_index_dim", 128),
        )
    topk = f.pos("index_topk")
    if fam == "deepseek-v4":
        topk += f.nonneg("sliding_window", default=0)
    if f.has("indexer_types"):
        types = f.str_list("indexer_types")
        n_shared = types.count("shared")
        if n_shared:
            approx.append(
                f"{n_shared} layers reuse another layer's indexer top-k (indexer_types "
                "'shared'); every sparse layer is given its own indexer"
            )
    return dict(
        sparse_topk_tokens=topk,
        indexer_heads=f.pos("index_n_heads"),
        indexer_head_dim=f.pos("index_head_dim"),
    )


# ---------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------
def map_architecture(f: Fields) -> Arch:
    """All ``ModelSpec`` fields for one config (see the module docstring)."""
    fam, model_type = family_of(f)
    approx: list[str] = []
    if fam == "generic":
        approx.append(f"unknown model_type {model_type!r}: mapped with the generic rules")
    d = f.pos("hidden_size", "d_model", "n_embd")
    vocab = f.pos("vocab_size")
    L = count_layers(f)
    n_exp, top_k = _experts(f, fam)

    kv_decilm = None
    plan = nemotron_plan(f, L) if fam in ("nemotron-h", "generic") else None
    if plan is None and f.has("block_configs"):
        plan, kv_decilm = decilm_plan(f, L, d, approx)
    if plan is None:
        plan = Plan(L, mixer_kinds(f, fam, L, approx), ffn_kinds(f, fam, L, n_exp))

    fields: dict = dict(n_layers=L, d_model=d, vocab_size=vocab)
    c = Counter(plan.mixers)
    fields.update(
        n_full_attn_layers=c["full"],
        n_window_attn_layers=c["window"],
        n_sparse_attn_layers=c["sparse"],
        n_linear_attn_layers=c["linear"],
        n_dense_ffn_layers=plan.ffns.count("dense"),
        n_moe_layers=plan.ffns.count("moe"),
    )
    if c["full"] + c["window"] + c["sparse"]:
        if fam == "deepseek-v4":
            fields.update(_deepseek_v4(f, d, approx))
        elif f.raw("kv_lora_rank"):
            fields.update(_mla(f))
        else:
            fields.update(_gqa(f, fam, d, plan, approx, kv=kv_decilm))
        gate = f.flag("attn_output_gate") or f.flag("attention_output_gate")
        gate = gate or f.flag("mla_use_output_gate")
        fields["attn_output_gate"] = 1.0 if gate else 0.0
        fields["window_tokens"] = _window(f, fam, plan, approx)
        fields.update(_sparse(f, fam, plan, approx))
    fields.update(_linear(f, fam, plan, approx))
    fields.update(_ffn(f, fam, d, plan, n_exp, top_k, approx))
    fields["n_mtp_layers"] = _mtp(f, fam, approx)

    tied = f.raw("tie_word_embeddings")
    if tied is None:
        tied = fam == "gemma"
    fields["tied_embeddings"] = 1.0 if tied else 0.0

    if fam == "kimi-linear" and f.flag("mla_use_nope"):
        approx.append("Kimi-K3 MLA layers use NoPE; qk_rope_head_dim kept as the latent rope part")
    if f.nonneg("hidden_size_per_layer_input", default=0):
        approx.append("Gemma per-layer input embeddings (hidden_size_per_layer_input) not counted")
    if f.nonneg("num_kv_shared_layers", default=0):
        approx.append("cross-layer KV sharing (num_kv_shared_layers) not modelled")
    if f.nonneg("hc_mult", default=1) > 1 and fam != "deepseek-v4":
        approx.append("hyper-connections (hc_mult) not modelled")
    if isinstance(f.top.get("vision_config"), dict):
        approx.append("vision tower not modelled (text backbone only)")

    ctx = f.raw("max_position_embeddings", "max_sequence_length", "seq_length")
    max_ctx = ctx if isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 0 else None
    return Arch(
        fields={k: float(v) for k, v in fields.items()},
        family=fam,
        model_type=model_type,
        plan=plan,
        max_context=max_ctx,
        tied=bool(tied),
        approximations=approx,
    )
