"""Field names and defaults of the ``costmodel.specs`` records, as plain Python.

The loaders, the schema checks, ``describe`` and ``config.json`` import need the field
names of the records (and their defaults) but not the records themselves; reading them
from this table keeps ``tpsopt list/show/import-model`` free of JAX and Flax, which the
record classes import. Records are built only when one is asked for
(:func:`hardware_db.load_model`, :func:`hardware_db.load_system`, ...).

``tests/test_import_hygiene.py`` checks that this table equals the records' fields
(``dataclasses.fields``, pytree leaves only), so a field added to ``costmodel.specs`` must be
added here too.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

REQUIRED = None
"""Default of a field the record requires (no default value)."""

TOPOLOGIES = ("switch", "full", "ring", "torus2d", "torus3d", "mesh2d")
"""``costmodel.specs.TOPOLOGIES``: topology kinds a tier may have."""

RECORDS: dict[str, tuple[tuple[str, float | None], ...]] = {
    "ModelSpec": (
        ("n_layers", REQUIRED),
        ("d_model", REQUIRED),
        ("vocab_size", REQUIRED),
        ("tied_embeddings", 0.0),
        ("n_heads", 0.0),
        ("n_kv_heads", 0.0),
        ("head_dim_qk", 0.0),
        ("head_dim_v", 0.0),
        ("q_lora_rank", 0.0),
        ("kv_lora_rank", 0.0),
        ("qk_rope_head_dim", 0.0),
        ("attn_output_gate", 0.0),
        ("n_full_attn_layers", 0.0),
        ("n_window_attn_layers", 0.0),
        ("window_tokens", 0.0),
        ("n_sparse_attn_layers", 0.0),
        ("sparse_topk_tokens", 0.0),
        ("indexer_heads", 0.0),
        ("indexer_head_dim", 0.0),
        ("n_linear_attn_layers", 0.0),
        ("linear_k_heads", 0.0),
        ("linear_v_heads", 0.0),
        ("linear_k_head_dim", 0.0),
        ("linear_v_head_dim", 0.0),
        ("linear_conv_kernel", 0.0),
        ("ffn_matrices", 3.0),
        ("n_dense_ffn_layers", 0.0),
        ("d_ff_dense", 0.0),
        ("n_moe_layers", 0.0),
        ("n_experts", 0.0),
        ("top_k", 0.0),
        ("n_shared_experts", 0.0),
        ("d_ff_expert", 0.0),
        ("d_ff_shared", 0.0),
        ("moe_latent_dim", 0.0),
        ("n_mtp_layers", 0.0),
    ),
    "Precision": (
        ("attn_weight_bytes", 2.0),
        ("ffn_weight_bytes", 2.0),
        ("expert_weight_bytes", 2.0),
        ("embed_weight_bytes", 2.0),
        ("kv_bytes", 2.0),
        ("act_bytes", 2.0),
        ("state_bytes", 4.0),
        ("attn_compute_bits", 16.0),
        ("ffn_compute_bits", 16.0),
        ("expert_compute_bits", 16.0),
    ),
    "ChipSpec": (
        ("peak_flops_per_s_bf16", REQUIRED),
        ("hbm_bw_bytes_per_s", 0.0),
        ("hbm_capacity_bytes", 0.0),
        ("peak_flops_per_s_fp8", 0.0),
        ("peak_flops_per_s_fp4", 0.0),
        ("sram_bw_bytes_per_s", 0.0),
        ("sram_capacity_bytes", 0.0),
        ("hbm_energy_j_per_byte", 0.0),
        ("sram_energy_j_per_byte", 0.0),
        ("flop_energy_j_per_flop", 0.0),
        ("tdp_w", 0.0),
    ),
    "TierSpec": (
        ("hop_latency_s", REQUIRED),
        ("overhead_s", REQUIRED),
        ("bw_bytes_per_s", REQUIRED),
        ("domain_chips", REQUIRED),
        ("energy_j_per_byte", 0.0),
    ),
    "SystemSpec": (
        ("chip", REQUIRED),
        ("tiers", REQUIRED),
        ("max_chips", math.inf),
    ),
}
"""Per record class: ``(field, default)`` of every pytree leaf, in field order
(:data:`REQUIRED` for fields without a default). Static fields (a tier's ``topology`` and
``name``) are not listed."""


def record_fields(cls) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(all field names, required field names)`` of a record class or its name."""
    table = RECORDS[cls if isinstance(cls, str) else cls.__name__]
    return tuple(k for k, _ in table), tuple(k for k, d in table if d is REQUIRED)


def plain_record(cls: str, values: dict) -> SimpleNamespace:
    """A stand-in for record ``cls`` (a name of :data:`RECORDS`) with the same attributes,
    in field order: ``values`` plus the defaults of the fields it lacks. For code that only
    reads numbers (e.g. :mod:`costmodel.params`) without importing JAX."""
    out = {}
    for k, d in RECORDS[cls]:
        if k in values:
            out[k] = values[k]
        elif d is REQUIRED:
            raise KeyError(f"{cls}: field {k!r} is required")
        else:
            out[k] = d
    return SimpleNamespace(**out)
