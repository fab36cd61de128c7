"""Every Hugging Face config copy imports into a consistent ModelSpec and Precision.

Parametrised over all ``tests/data/hf_configs/*_config.json`` (the ``*_hf_quant_config.json``
files are read alongside their config). Then closed-form checks of the mapping for one
representative of each family, numbers taken from the config files themselves.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from costmodel.specs import ModelSpec, Precision
from hardware_db.hf_import import from_hf_config, hf_quant_path

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
FILES = sorted(
    p for p in CONFIGS.glob("*_config.json") if not p.name.endswith("_hf_quant_config.json")
)
MIXERS = ("full", "window", "sparse", "linear")


def load(stem: str):
    return from_hf_config(CONFIGS / f"{stem}_config.json")


def test_all_config_files_found():
    assert len(FILES) >= 89
    assert len(list(CONFIGS.glob("*_hf_quant_config.json"))) >= 28


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name.removesuffix("_config.json"))
def test_imports_consistently(path):
    m = from_hf_config(path)
    s, p = m.spec, m.precision
    assert isinstance(s, ModelSpec) and isinstance(p, Precision)
    for rec in (s, p):
        for f in dataclasses.fields(rec):
            v = float(getattr(rec, f.name))
            assert math.isfinite(v) and v >= 0, (f.name, v)
    assert s.n_layers >= 1 and s.d_model >= 1 and s.vocab_size >= 1
    # layer classes = the per-layer plan's counts, and they add up
    plan = m.meta["layer_plan"]
    mix = plan["mixers"]
    ffn = plan["ffn"]
    assert plan["n_layers"] == s.n_layers
    assert s.n_full_attn_layers == mix.get("full", 0)
    assert s.n_window_attn_layers == mix.get("window", 0)
    assert s.n_sparse_attn_layers == mix.get("sparse", 0)
    assert s.n_linear_attn_layers == mix.get("linear", 0)
    assert s.n_dense_ffn_layers == ffn.get("dense", 0)
    assert s.n_moe_layers == ffn.get("moe", 0)
    assert sum(mix.values()) == s.n_layers and sum(ffn.values()) == s.n_layers
    n_mix = sum(mix.get(k, 0) for k in MIXERS)
    n_ffn = s.n_dense_ffn_layers + s.n_moe_layers
    assert 1 <= n_mix <= s.n_layers and 1 <= n_ffn <= s.n_layers
    assert s.n_layers <= n_mix + n_ffn
    if m.meta["family"] == "nemotron-h":  # one sub-layer per block
        assert n_mix + n_ffn == s.n_layers
    # geometry present where its layer class is
    if s.n_full_attn_layers + s.n_window_attn_layers + s.n_sparse_attn_layers:
        assert s.n_heads > 0 and s.head_dim_qk > 0 and s.head_dim_v > 0
        assert s.n_kv_heads > 0 or s.kv_lora_rank > 0
    if s.n_window_attn_layers:
        assert s.window_tokens > 0
    if s.n_sparse_attn_layers:
        assert s.sparse_topk_tokens > 0 and s.indexer_heads > 0 and s.indexer_head_dim > 0
    if s.n_linear_attn_layers:
        assert min(s.linear_k_heads, s.linear_v_heads, s.linear_k_head_dim) > 0
        assert s.linear_v_head_dim > 0
    if s.n_moe_layers:
        assert 0 < s.top_k <= s.n_experts and s.d_ff_expert > 0
        assert (s.n_shared_experts > 0) == (s.d_ff_shared > 0)
    if s.n_dense_ffn_layers:
        assert s.d_ff_dense > 0
    assert s.ffn_matrices in (2.0, 3.0)
    # precision: bytes within the known formats, compute bits 4/8/16
    for f in ("attn", "ffn", "expert", "embed"):
        assert 0.5 <= getattr(p, f"{f}_weight_bytes") <= 2.0
    for f in ("attn", "ffn", "expert"):
        assert getattr(p, f"{f}_compute_bits") in (4.0, 8.0, 16.0)
    assert p.kv_bytes in (1.0, 2.0) and p.state_bytes in (2.0, 4.0)
    q = m.meta["quantization"]
    assert q["recipe"]
    if hf_quant_path(path):
        assert any("hf_quant_config" in src for src in q["sources"])
    assert isinstance(m.meta["approximations"], list)
    assert m.meta["max_context_tokens"] and m.meta["max_context_tokens"] > 0


# ----------------------------------------------------------------------- closed form
def test_kimi_k25_mla_moe_and_int4_experts():
    m = load("moonshotai--Kimi-K2.5")
    s, p = m.spec, m.precision
    assert (s.n_layers, s.d_model, s.vocab_size) == (61, 7168, 163840)
    assert (s.n_heads, s.head_dim_qk, s.head_dim_v) == (64, 128 + 64, 128)
    assert (s.q_lora_rank, s.kv_lora_rank, s.qk_rope_head_dim) == (1536, 512, 64)
    assert (s.n_dense_ffn_layers, s.n_moe_layers, s.d_ff_dense) == (1, 60, 18432)
    assert (s.n_experts, s.top_k, s.n_shared_experts, s.d_ff_shared) == (384, 8, 1, 2048)
    assert s.n_mtp_layers == 0 and s.tied_embeddings == 0
    # compressed-tensors INT4 group 32, BF16 scale: 0.5 + 2/32; W4A16 → 16-bit compute
    assert p.expert_weight_bytes == 0.5625 and p.expert_compute_bits == 16
    assert p.attn_weight_bytes == p.ffn_weight_bytes == p.embed_weight_bytes == 2.0
    assert m.meta["quantization"]["recipe"] == "int4-experts"
    assert m.meta["max_context_tokens"] == 262144


def test_deepseek_v3_fp8_block_and_mtp():
    m = load("deepseek-ai--DeepSeek-V3")
    s, p = m.spec, m.precision
    assert (s.n_heads, s.n_dense_ffn_layers, s.n_moe_layers, s.n_mtp_layers) == (128, 3, 58, 1)
    assert p.attn_weight_bytes == p.expert_weight_bytes == 1 + 4 / 16384
    assert p.expert_compute_bits == 8 and p.embed_weight_bytes == 2.0


def test_deepseek_v32_and_glm5_sparse_indexer():
    s = load("deepseek-ai--DeepSeek-V3.2").spec
    assert s.n_sparse_attn_layers == 61 and s.n_full_attn_layers == 0
    assert (s.sparse_topk_tokens, s.indexer_heads, s.indexer_head_dim) == (2048, 64, 128)
    g = load("zai-org--GLM-5").spec
    assert (g.n_layers, g.n_sparse_attn_layers, g.n_dense_ffn_layers, g.n_moe_layers) == (
        78,
        78,
        3,
        75,
    )
    assert (g.head_dim_qk, g.head_dim_v, g.q_lora_rank) == (192 + 64, 256, 2048)


def test_llama_gqa_head_dim_default():
    s = load("meta-llama--Meta-Llama-3.1-70B").spec
    assert (s.n_heads, s.n_kv_heads, s.head_dim_qk) == (64, 8, 8192 // 64)
    assert (s.n_full_attn_layers, s.n_dense_ffn_layers, s.d_ff_dense) == (80, 80, 28672)


def test_llama4_interleaved_moe_and_chunked_attention():
    mav = load("meta-llama--Llama-4-Maverick-17B-128E-Instruct").spec
    assert (mav.n_moe_layers, mav.n_dense_ffn_layers, mav.d_ff_dense) == (24, 24, 16384)
    assert (mav.n_experts, mav.top_k, mav.n_shared_experts, mav.d_ff_expert) == (128, 1, 1, 8192)
    # every 4th layer NoPE / global, the others chunked-local (window = chunk size)
    assert (mav.n_full_attn_layers, mav.n_window_attn_layers, mav.window_tokens) == (12, 36, 8192)
    scout = load("meta-llama--Llama-4-Scout-17B-16E-Instruct").spec
    assert (scout.n_moe_layers, scout.n_dense_ffn_layers, scout.n_experts) == (48, 0, 16)


def test_qwen35_gated_deltanet_hybrid():
    m = load("Qwen--Qwen3.5-397B-A17B")
    s = m.spec
    assert (s.n_full_attn_layers, s.n_linear_attn_layers) == (15, 45)
    assert (s.linear_k_heads, s.linear_v_heads, s.linear_k_head_dim) == (16, 64, 128)
    assert (s.linear_v_head_dim, s.linear_conv_kernel, s.attn_output_gate) == (128, 4, 1)
    assert (s.n_shared_experts, s.d_ff_shared, s.n_mtp_layers) == (1, 1024, 1)
    assert m.precision.state_bytes == 4.0  # mamba_ssm_dtype float32


def test_gpt_oss_alternating_window_and_mxfp4():
    m = load("openai--gpt-oss-120b")
    s, p = m.spec, m.precision
    assert (s.n_window_attn_layers, s.n_full_attn_layers, s.window_tokens) == (18, 18, 128)
    assert (s.n_experts, s.top_k, s.d_ff_expert, s.head_dim_qk) == (128, 4, 2880, 64)
    assert p.expert_weight_bytes == 0.5 + 1 / 32 and p.attn_weight_bytes == 2.0


def test_nemotron_h_pattern_relu2_and_latent_moe():
    m = load("nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-FP8")
    s, p = m.spec, m.precision
    pat = "MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME"
    assert s.n_layers == len(pat) == 88
    assert (s.n_linear_attn_layers, s.n_full_attn_layers) == (pat.count("M"), pat.count("*"))
    assert s.n_moe_layers == pat.count("E") and s.n_dense_ffn_layers == 0
    assert s.ffn_matrices == 2  # relu² MLP: up and down only
    # Mamba-2: n_groups → K heads, ssm_state_size → K dim, heads/head_dim → V
    assert (s.linear_k_heads, s.linear_k_head_dim) == (8, 128)
    assert (s.linear_v_heads, s.linear_v_head_dim, s.linear_conv_kernel) == (128, 64, 4)
    assert (s.moe_latent_dim, s.d_ff_shared, s.top_k, s.n_mtp_layers) == (1024, 5376, 22, 1)
    assert p.kv_bytes == 1.0 and p.attn_weight_bytes == 1.0 and p.state_bytes == 4.0


def test_nemotron_missing_layer_count_uses_pattern():
    m = load("nvidia--NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16")
    assert m.spec.n_layers == 108
    assert m.spec.n_linear_attn_layers + m.spec.n_full_attn_layers + m.spec.n_moe_layers == 108


def test_gemma4_parallel_dense_as_shared_expert_and_tied():
    m = load("google--gemma-4-26B-A4B")
    s = m.spec
    assert (s.n_window_attn_layers, s.n_full_attn_layers, s.window_tokens) == (25, 5, 1024)
    assert (s.n_experts, s.top_k, s.n_shared_experts, s.d_ff_shared) == (128, 8, 1, 2112)
    assert s.tied_embeddings == 1
    assert any("Gemma full-attention" in a for a in m.meta["approximations"])


def test_decilm_block_configs_summed():
    m = load("nvidia--Llama-3_3-Nemotron-Super-49B-v1")
    s = m.spec
    assert (s.n_full_attn_layers, s.n_dense_ffn_layers, s.n_kv_heads) == (49, 80, 8)
    # width = int(2·ffn_mult·8192/3) rounded up to 256: 5.25 → 28672 (49 layers),
    # 1.3125 → 7168 (10), 1.0 → 5632 (8), 0.5 → 2816 (6), 2.625 → 14336 (6), 3.28125 → 17920
    widths = 49 * 28672 + 10 * 7168 + 8 * 5632 + 6 * 2816 + 6 * 14336 + 17920
    assert s.d_ff_dense == widths / 80  # mean width: total FFN parameters exact
    assert any("DeciLM" in a for a in m.meta["approximations"])


def test_deepseek_v4_compressed_attention_approximated():
    m = load("deepseek-ai--DeepSeek-V4-Pro")
    s, p = m.spec, m.precision
    assert (s.n_sparse_attn_layers, s.n_window_attn_layers) == (30, 31)  # CSA / HCA
    assert (s.kv_lora_rank, s.qk_rope_head_dim, s.head_dim_qk) == (448, 64, 512)
    assert s.sparse_topk_tokens == 1024 + 128
    # effective d_v conserves the grouped low-rank output projection's parameters
    h, d, r = 128, 7168, 448
    p_o = h * 512 * 1024 + 16 * 1024 * d
    assert r * h * (r + s.head_dim_v) + h * s.head_dim_v * d == pytest.approx(p_o)
    assert p.expert_weight_bytes == 0.53125 and p.attn_weight_bytes == 1 + 4 / 16384


def test_modelopt_nvfp4_sidecar_with_exclusions():
    m = load("nvidia--DeepSeek-V3.1-NVFP4")
    p = m.precision
    assert p.expert_weight_bytes == p.ffn_weight_bytes == 0.5625
    assert p.expert_compute_bits == 4 and p.kv_bytes == 1.0
    assert p.attn_weight_bytes == 2.0  # q_a/q_b/kv_a/kv_b excluded
    assert m.meta["quantization"]["recipe"] == "nvfp4-moe-fp8kv"


def test_kimi_k3_linear_mla_hybrid():
    s = load("moonshotai--Kimi-K3").spec
    assert (s.n_full_attn_layers, s.n_linear_attn_layers, s.n_layers) == (24, 69, 93)
    assert (s.kv_lora_rank, s.attn_output_gate, s.moe_latent_dim) == (512, 1, 3584)
    assert (s.n_experts, s.top_k, s.n_shared_experts) == (896, 16, 2)


def test_small_excluded_submodules_do_not_flip_a_class():
    # GLM-5-FP8 keeps the DSA indexer's head-weight projection in BF16; attention stays FP8
    p = load("zai-org--GLM-5-FP8").precision
    assert p.attn_weight_bytes == 1 + 4 / 16384 and p.attn_compute_bits == 8


def test_modelopt_mixed_precision_per_module():
    m = load("nvidia--Qwen3.6-35B-A3B-NVFP4")
    p = m.precision
    assert (p.attn_weight_bytes, p.attn_compute_bits) == (1.0, 8)  # FP8 attention + GDN
    assert (p.expert_weight_bytes, p.expert_compute_bits) == (0.5625, 16)  # W4A16 NVFP4
    assert p.kv_bytes == 1.0
