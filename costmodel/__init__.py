"""tpsopt cost model: pure JAX functions from spec records to seconds, bytes and joules.

No search, no I/O, no ``jax.jit`` here: write for one configuration, ``vmap`` and ``jit``
at the edge (``search/``). See :mod:`costmodel.specs` for the records and the vocabulary
of letters used in docstrings, :mod:`costmodel.decode` for the step composition.

>>> from costmodel import ModelSpec, Precision, ChipSpec, TierSpec, SystemSpec
>>> from costmodel import Parallelism, Workload, decode_step
>>> m = ModelSpec(n_layers=2.0, d_model=1024.0, vocab_size=1000.0, n_heads=8.0,
...               n_kv_heads=8.0, head_dim_qk=128.0, head_dim_v=128.0,
...               n_full_attn_layers=2.0, n_dense_ffn_layers=2.0, d_ff_dense=4096.0)
>>> chip = ChipSpec(peak_flops_per_s_bf16=1e15, hbm_bw_bytes_per_s=1e12, hbm_capacity_bytes=8e10)
>>> sys1 = SystemSpec(chip=chip, tiers=(TierSpec(1e-6, 1e-6, 1e11, 8.0),), max_chips=8.0)
>>> r = decode_step(m, Precision(), sys1, Parallelism(), Workload(batch=1.0, context_tokens=1.0))
>>> # 2 B x (2 layers x (4·D² + 3·D·F) + V·D) / 1 TB/s = 69.16 µs, plus activations
>>> bool(r.fits), round(float(r.step_time_s) * 1e6, 1)
(True, 69.3)
"""

import importlib

_EXPORTS = {
    "Breakdown": "decode",
    "DecodeResult": "decode",
    "decode_step": "decode",
    "tokens_per_step": "decode",
    "explain": "feasibility",
    **dict.fromkeys(
        (
            "SOL",
            "TOPOLOGIES",
            "ChipSpec",
            "Efficiency",
            "ModelSpec",
            "Parallelism",
            "Precision",
            "SystemSpec",
            "TierSpec",
            "Workload",
            "stack",
            "unstack",
        ),
        "specs",
    ),
}
"""Names this package re-exports, and the submodule each comes from. They are imported on
first use (PEP 562), so ``import costmodel.params`` alone does not import JAX."""


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'costmodel' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"costmodel.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
