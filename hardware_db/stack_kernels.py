r"""Kernels each serving stack launches per operator at decode: the stacks' launch tables.

One row per operator of :mod:`costmodel.operators` (``Op.tag``), four counts
``(aux_gqa, gemm_gqa, aux_mla, gemm_mla)``: kernels **beside** the operator's main kernel
(whose class, bytes and FLOPs the operator carries) — auxiliary small kernels (norms,
rotary, KV-cache writes, activation, quantisation, top-k, sampling) and extra GEMM-class
launches (a second projection, MLA's absorbed BMMs, the indexer's projections) — for a
GQA/MHA model and for an MLA model. :mod:`costmodel.kernel_mode` charges each auxiliary
kernel the small class's empty-kernel time and each extra GEMM the GEMM class's
(``max(t_floor, b_half/(W·η_m))``).

Counted for decode under CUDA-graph replay from the frameworks' public model code (paths
below, 2025–2026 main branches; ``docs/calibration.md`` §3 is the same table in prose):

* **TensorRT-LLM** (PyTorch backend): ``tensorrt_llm/_torch/models/modeling_llama.py``,
  ``modeling_qwen3.py`` and ``modeling_deepseekv3.py`` fuse the residual add and the next
  RMSNorm into the tensor-parallel all-reduce (``AllReduceFusionOp.RESIDUAL_RMS_NORM``),
  so the pre-attention and pre-FFN norms cost no kernel; ``GatedMLP`` fuses SwiGLU (and
  the FP8/FP4 quantisation) into the gate/up epilogue; ``tensorrt_llm/_torch/modules/
  attention.py`` (``MLA``): fused ``q_a``/``kv_a`` GEMM, the two latent norms in one
  kernel, ``q_b`` GEMM, ``k_b_proj``/``v_b_proj`` BMMs around the MLA core, rope +
  quantisation in one kernel (``mla_rope_generation``); GQA attention: one QKV
  pre-processing kernel (rope + KV-cache write) before XQA/trtllm-gen; DeepSeek routing
  is one kernel (``DeepseekV3Gate`` / ``routing`` op); the fused MoE op (permute, both
  grouped GEMMs, SwiGLU, finalize) is what the kernel tables time; the shared expert runs
  on an auxiliary stream, overlapped with the routed experts;
  ``tensorrt_llm/_torch/attention_backend/sparse/dsa.py`` (``Indexer``): ``wq_b``,
  ``wk``, ``weights_proj`` GEMMs, ``k_norm`` LayerNorm, rope, FP8 quantisation of q and
  k, the k-cache scatter, the head-weight scaling, ``fp8_paged_mqa_logits`` and top-k.
* **vLLM** (V1, ``torch.compile`` + CUDA graphs): ``vllm/model_executor/models/llama.py``
  / ``qwen3.py``: ``fused_add_rms_norm`` before attention and FFN, ``rotary_embedding``,
  ``reshape_and_cache_flash``, the attention kernel, ``silu_and_mul``; the all-reduce is
  not fused with the norm. ``deepseek_v2.py``: three norms for MLA (pre-attention and the
  ``q_a``/``kv_a`` latent norms), ``q_b`` GEMM, ``W_UK``/``W_UV`` BMMs, rotary and
  ``concat_and_cache_mla``; ``grouped_topk`` routing; ``SharedFusedMoE`` runs the shared
  expert's gate/up GEMM, ``silu_and_mul`` and down GEMM in the step; ``Indexer``: ``wq_b``
  and the fused ``wk_weights_proj`` GEMMs, ``k_norm``, the fused rope + quantise + cache
  insert of k, the rope + quantisation of q, ``fp8_paged_mqa_logits``, top-k.
  ``vllm/model_executor/layers/fused_moe/fused_moe.py`` (``fused_experts``: block align,
  two grouped GEMMs, activation, sum) is what the kernel tables time.
* **SGLang**: ``python/sglang/srt/models/llama.py`` / ``qwen3.py``: ``fused_add_rmsnorm``
  before attention and FFN, rope, KV-buffer write, attention (FlashInfer / FA3),
  ``silu_and_mul``; ``deepseek_v2.py``: pre-norm and the latent norms, ``q_b``, the
  absorbed BMMs, rope + KV write, ``biased_grouped_topk`` routing, the shared expert fused
  into the routed experts (``num_fused_shared_experts``);
  ``python/sglang/srt/layers/attention/nsa/nsa_indexer.py`` (``Indexer``, GLM-5 and
  DeepSeek-V3.2): ``wq_b`` and ``wk_weights_proj`` GEMMs, ``k_norm``, rope, the Hadamard
  rotation of q and of k, FP8 quantisation of q and of k, the index-k buffer store,
  ``fp8_paged_mqa_logits``, top-k.

Everything not listed launches nothing beyond its main kernel (``o_proj``, ``embedding``,
``mtp_proj``); ``lm_head`` is the final norm and the sampling kernel beside the LM-head
GEMM on every stack. Linear-attention layers (no serving rows) keep the operators' own
count: the pre-norm plus the second projection.
"""

from __future__ import annotations

_COMMON = {
    "o_proj": (0, 0, 0, 0),
    "embedding": (0, 0, 0, 0),
    "mtp_proj": (0, 0, 0, 0),
    "lm_head": (2, 0, 2, 0),  # final norm, sampling
    "linear_proj": (1, 1, 1, 1),  # pre-norm; out-projection
    "linear_core": (0, 0, 0, 0),
    "moe_experts": (0, 0, 0, 0),  # the fused-MoE op as the kernel tables time it
}

LAUNCHES: dict[str, dict[str, tuple]] = {
    "trtllm": _COMMON | {
        "attn_proj": (0, 0, 1, 1),  # norm fused in all-reduce | latent norms; q_b
        "attn_core": (1, 0, 1, 2),  # rope + KV write | rope + quant; W_UK, W_UV BMMs
        "indexer": (0, 0, 7, 3),  # k_norm, rope, quant q, quant k, scatter, scale, top-k
        "dense_ffn": (0, 1, 0, 1),  # SwiGLU in the gate/up epilogue; down GEMM
        "router": (1, 0, 1, 0),  # routing / top-k kernel
        "shared_expert": (0, 0, 0, 0),  # auxiliary stream, overlapped
    },
    "vllm": _COMMON | {
        "attn_proj": (1, 0, 3, 1),  # fused add-norm | + q_a/kv_a norms; q_b
        "attn_core": (2, 0, 2, 2),  # rotary, cache write; W_UK, W_UV BMMs
        "indexer": (0, 0, 4, 2),  # k_norm, rope+quant+insert k, rope+quant q, top-k
        "dense_ffn": (2, 1, 2, 1),  # fused add-norm, silu_and_mul; down GEMM
        "router": (2, 0, 2, 0),  # fused add-norm, top-k
        "shared_expert": (1, 2, 1, 2),  # silu_and_mul; gate/up and down GEMMs
    },
    "sglang": _COMMON | {
        "attn_proj": (1, 0, 2, 1),  # fused add-norm | + latent norms; q_b
        "attn_core": (2, 0, 2, 2),  # rope, KV write; W_UK, W_UV BMMs
        "indexer": (0, 0, 8, 2),  # k_norm, rope, 2 rotations, 2 quants, store, top-k
        "dense_ffn": (2, 1, 2, 1),  # fused add-norm, silu_and_mul; down GEMM
        "router": (2, 0, 2, 0),  # fused add-norm, biased grouped top-k
        "shared_expert": (0, 0, 0, 0),  # fused into the routed experts
    },
}  # fmt: skip
"""Launch table per software stack: ``{tag: (aux_gqa, gemm_gqa, aux_mla, gemm_mla)}``
(module docstring for the sources)."""


def launch_table(software: str | None) -> dict | None:
    """The stack's launch table, or ``None`` for a stack not counted (the operators'
    generic counts then apply, scaled by ``hardware_db.e2e_calibration.AUX_KERNELS``)."""
    return LAUNCHES.get(software or "")
