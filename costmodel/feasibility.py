"""Why a configuration is infeasible: a bitmask computed inside the model, decoded on host.

Infeasible configurations are results, not errors: :func:`costmodel.decode.decode_step`
always returns numbers, with ``fits = False`` and ``reason`` naming every violated rule.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from costmodel import params as P
from costmodel.operators import shared_layout
from costmodel.specs import ModelSpec, Parallelism, SystemSpec, Workload

CAPACITY = 1
CHIPS = 2
GROUPS = 4
HEADS = 8
EXPERTS = 16
BATCH = 32
INTEGER = 64
LAYERS = 128
CONTEXT = 256

MESSAGES = {
    CAPACITY: "memory per chip exceeds capacity",
    CHIPS: "more chips than the system has",
    GROUPS: "MoE chips ep·moe_tp differ from the attention chips attn_tp·kvp·attn_dp "
    "(Helix layout) and from attn_tp·attn_dp (shared layout)",
    HEADS: "attn_tp does not divide the attention heads",
    EXPERTS: "ep does not divide the experts (or moe_tp the expert width; or ep>1 without experts)",
    BATCH: "attn_dp does not divide the batch",
    INTEGER: "a parallel degree is below 1 or not an integer",
    LAYERS: "pp exceeds the number of layers",
    CONTEXT: "kvp exceeds the context length",
}


def _not_multiple(a, b):
    """True where ``a`` is not an integer multiple of ``b`` (relative tolerance 1e-6)."""
    q = a / jnp.maximum(b, 1e-30)
    return jnp.abs(q - jnp.round(q)) > 1e-6 * jnp.maximum(1.0, jnp.abs(q))


def _divides(d, n):
    """True where degree ``d`` divides ``n`` or ``n`` divides ``d`` (KV-head duplication)."""
    return ~_not_multiple(n, d) | ~_not_multiple(d, n)


def reason_bits(
    m: ModelSpec, system: SystemSpec, par: Parallelism, wl: Workload, memory_bytes, capacity_bytes
):
    """Bitmask (int32) of violated rules; 0 means feasible.

    The group rule accepts both layouts of :func:`costmodel.operators.shared_layout`:
    ``ep·moe_tp = attn_tp·kvp·attn_dp`` (Helix) or ``ep·moe_tp = attn_tp·attn_dp`` with
    ``kvp > 1`` (shared, Medha-style).
    """
    degrees = (par.attn_tp, par.attn_dp, par.kvp, par.ep, par.moe_tp, par.pp)
    not_integer = False  # an or-chain, not stack + any: stays elementwise under vmap
    for d in degrees:
        not_integer = not_integer | (d < 1 - 1e-9) | (jnp.abs(d - jnp.round(d)) > 1e-6)
    n_attn = par.attn_tp * par.kvp * par.attn_dp
    n_ffn = par.ep * par.moe_tp
    chips = n_attn * par.pp
    has_softmax = P.n_softmax_layers(m) > 0
    has_linear = m.n_linear_attn_layers > 0
    has_moe = m.n_moe_layers > 0
    heads_bad = (
        has_softmax
        & (_not_multiple(m.n_heads, par.attn_tp) | ~_divides(par.attn_tp, P.kv_cache_heads(m)))
    ) | (has_linear & _not_multiple(m.linear_v_heads, par.attn_tp))
    experts_bad = jnp.where(
        has_moe,
        _not_multiple(m.n_experts, par.ep) | _not_multiple(m.d_ff_expert, par.moe_tp),
        par.ep > 1,
    )
    checks = [
        (CAPACITY, memory_bytes > capacity_bytes),
        (CHIPS, chips > system.max_chips * (1 + 1e-9)),
        (GROUPS, (jnp.abs(n_attn - n_ffn) > 1e-6 * n_attn) & (shared_layout(par) < 0.5)),
        (HEADS, heads_bad),
        (EXPERTS, experts_bad),
        (BATCH, (par.attn_dp > wl.batch) | _not_multiple(wl.batch, par.attn_dp)),
        (INTEGER, not_integer),
        (LAYERS, par.pp > m.n_layers),
        (CONTEXT, par.kvp > wl.context_tokens),
    ]
    bits = jnp.zeros((), jnp.int32)
    for bit, bad in checks:
        bits = bits | jnp.where(bad, bit, 0).astype(jnp.int32)
    return bits


def explain(reason) -> str:
    """Human-readable reasons for a (host) bitmask; '' when feasible."""
    r = int(np.asarray(reason))
    return "; ".join(msg for bit, msg in MESSAGES.items() if r & bit)
