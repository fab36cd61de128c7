"""Shared test configuration and fixtures.

The suite runs with float64 enabled (gradient checks need it); float32 checks build
float32 inputs explicitly. Closed-form fixtures below are built from the numbers in
``docs/references.md`` §4 (primary sources) directly, independent of ``hardware_db``, so that the cost
model's tests derive their expectations by hand.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

from costmodel.specs import (  # noqa: E402
    ChipSpec,
    ModelSpec,
    Precision,
    SystemSpec,
    TierSpec,
)


def llama70b() -> ModelSpec:
    """Llama-3.1-70B (docs/references.md §4): 80 layers, D 8192, 64 Q / 8 KV heads of 128, F 28672."""
    return ModelSpec(
        n_layers=80.0, d_model=8192.0, vocab_size=128256.0, n_heads=64.0, n_kv_heads=8.0,
        head_dim_qk=128.0, head_dim_v=128.0, n_full_attn_layers=80.0,
        n_dense_ffn_layers=80.0, d_ff_dense=28672.0,
    )  # fmt: skip


def kimi_k25() -> ModelSpec:
    """Kimi-K2.5 (docs/references.md §4): 61 layers (1 dense + 60 MoE), MLA, 384 experts top-8."""
    return ModelSpec(
        n_layers=61.0, d_model=7168.0, vocab_size=163840.0, n_heads=64.0, n_kv_heads=64.0,
        head_dim_qk=192.0, head_dim_v=128.0, q_lora_rank=1536.0, kv_lora_rank=512.0,
        qk_rope_head_dim=64.0, n_full_attn_layers=61.0, n_dense_ffn_layers=1.0,
        d_ff_dense=18432.0, n_moe_layers=60.0, n_experts=384.0, top_k=8.0,
        n_shared_experts=1.0, d_ff_expert=2048.0, d_ff_shared=2048.0,
    )  # fmt: skip


def deepseek_v3() -> ModelSpec:
    """DeepSeek-V3 (docs/references.md §4): 128 heads, 3 dense + 58 MoE layers, 256 experts, 1 MTP."""
    return kimi_k25().replace(
        n_heads=128.0, vocab_size=129280.0, n_dense_ffn_layers=3.0, n_moe_layers=58.0,
        n_experts=256.0, n_mtp_layers=1.0,
    )  # fmt: skip


def gpt_oss_like() -> ModelSpec:
    """gpt-oss-120b shape (docs/references.md §4): 36 layers alternating window-128 / full, 128 experts top-4."""
    return ModelSpec(
        n_layers=36.0, d_model=2880.0, vocab_size=201088.0, n_heads=64.0, n_kv_heads=8.0,
        head_dim_qk=64.0, head_dim_v=64.0, n_full_attn_layers=18.0, n_window_attn_layers=18.0,
        window_tokens=128.0, n_moe_layers=36.0, n_experts=128.0, top_k=4.0,
        d_ff_expert=2880.0,
    )  # fmt: skip


def h100() -> ChipSpec:
    """H100 SXM (docs/references.md §4): 989.4 TFLOP/s BF16, 1978.9 FP8, 80 GB, 3.35 TB/s."""
    return ChipSpec(
        peak_flops_per_s_bf16=989.4e12, peak_flops_per_s_fp8=1978.9e12,
        hbm_bw_bytes_per_s=3.35e12, hbm_capacity_bytes=80e9,
    )  # fmt: skip


def gb200() -> ChipSpec:
    """B200 in GB200 (docs/references.md §4): 2.5/5/10 PFLOP/s BF16/FP8/FP4, 192 GB, 8 TB/s."""
    return ChipSpec(
        peak_flops_per_s_bf16=2.5e15, peak_flops_per_s_fp8=5e15, peak_flops_per_s_fp4=10e15,
        hbm_bw_bytes_per_s=8e12, hbm_capacity_bytes=192e9,
    )  # fmt: skip


def switch_system(chip: ChipSpec, n: float, alpha=0.25e-6, overhead=0.25e-6, bw=450e9):
    """One switch tier of ``n`` chips (plus an idle die tier), e.g. NVLink + NVSwitch."""
    tiers = (
        TierSpec(0.0, 0.0, 1e15, 1.0, name="die"),
        TierSpec(alpha, overhead, bw, n, topology="switch", name="scale_up"),
    )
    return SystemSpec(chip=chip, tiers=tiers, max_chips=n)


BF16 = Precision()
INT4_EXPERTS = Precision(expert_weight_bytes=0.5625)


@pytest.fixture
def llama():
    return llama70b()


@pytest.fixture
def kimi():
    return kimi_k25()


# --------------------------------------------------------------------------- hypothesis
# Property tests (tests/test_properties_*.py) run under a bounded, reproducible profile by
# default; ``HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties_*.py`` runs
# the same properties with 20x the examples and fresh random draws.
from hypothesis import HealthCheck, settings  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", max_examples=50, deadline=None, derandomize=True, suppress_health_check=_SLOW_OK
)
settings.register_profile(
    "long", max_examples=1000, deadline=None, derandomize=False, suppress_health_check=_SLOW_OK
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
