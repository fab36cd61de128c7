r"""Parameter counts and per-token cache sizes derived from a :class:`ModelSpec`.

All functions are pure, take one model and return float scalars (parameters or elements);
bytes follow by multiplying with the matching :class:`Precision` field. Norm weights and
biases are ignored (< 0.01 % of any model here).

Formulas (D = d_model, H heads, K KV heads, d_qk/d_v head dims, r_q/r_kv MLA ranks,
d_r rope dim, d_n = d_qk - d_r):

* GQA/MHA attention per layer: ``D·H·d_qk·(1+g) + D·K·(d_qk+d_v) + H·d_v·D`` where g is
  the output-gate flag (Qwen3.5/Kimi gated attention project a gate the size of Q).
* MLA per layer (DeepSeek-V3 §2.1.1, arXiv 2412.19437): ``q``: ``D·r_q + r_q·H·d_qk``
  (or ``D·H·d_qk`` without q compression); ``kv``: ``D·(r_kv + d_r) + r_kv·H·(d_n + d_v)``;
  ``o``: ``H·d_v·D``.
* DSA indexer per sparse layer (DeepSeek-V3.2): ``r_q·I·d_I + D·d_I + D·I`` (query
  up-projection, key projection, head weights), I = indexer heads, d_I = indexer head dim.
* Linear attention / SSM per layer (Gated DeltaNet, Mamba-2 have the same shape):
  ``D·(2·Hk·dk + 2·Hv·dv + 2·Hv) + (2·Hk·dk + Hv·dv)·conv + Hv·dv·D``.
* FFN: ``m·D·F`` with m = 3 (gated) or 2; routed experts ``E·m·D_e·F_e`` with D_e the
  latent width when latent MoE is used (plus ``2·D·D_e`` projections); router ``D·E``.
* MTP module: one block (attention + MoE if the model has MoE, else dense) plus ``2D·D``.
"""

from __future__ import annotations

import sys
from struct import pack as _pack
from struct import unpack as _unpack
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costmodel.specs import ModelSpec


def _f32(x) -> float:
    """``x`` rounded to the nearest float32 (as a Python float)."""
    return _unpack("f", _pack("f", x))[0]


class F32(float):
    """A float32 number as a Python float: every ``+ - * /`` (also with a plain ``int`` or
    ``float``, which JAX treats as weakly typed and rounds to float32 first) is computed in
    float64 and rounded to float32, which is the correctly rounded float32 result (float64
    has more than twice float32's precision). So a record of Python floats gives the same
    numbers as under ``jax.numpy`` in float32, without importing JAX or NumPy."""

    __slots__ = ()

    def _op(self, other, fn):
        if not isinstance(other, int | float):
            return NotImplemented
        return F32(_f32(fn(float(self), _f32(other))))

    def __add__(self, o):
        return self._op(o, lambda a, b: a + b)

    def __radd__(self, o):
        return self._op(o, lambda a, b: b + a)

    def __sub__(self, o):
        return self._op(o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._op(o, lambda a, b: b - a)

    def __mul__(self, o):
        return self._op(o, lambda a, b: a * b)

    def __rmul__(self, o):
        return self._op(o, lambda a, b: b * a)

    def __truediv__(self, o):
        return self._op(o, lambda a, b: a / b)

    def __rtruediv__(self, o):
        return self._op(o, lambda a, b: b / a)

    def __neg__(self):
        return F32(-float(self))


def _scalars(*xs) -> bool:
    return all(isinstance(x, int | float) for x in xs)


class _Float32:
    """The four ``jax.numpy`` functions used here on Python scalars, in float32
    (:class:`F32`); anything else (arrays) goes to ``jax.numpy``."""

    @staticmethod
    def asarray(x):
        return F32(_f32(x)) if _scalars(x) else _jnp().asarray(x)

    @staticmethod
    def where(c, a, b):
        if _scalars(c, a, b):
            return F32(_f32(a if c else b))
        return _jnp().where(c, a, b)

    @staticmethod
    def maximum(a, b):
        return F32(_f32(max(a, b))) if _scalars(a, b) else _jnp().maximum(a, b)

    @staticmethod
    def minimum(a, b):
        return F32(_f32(min(a, b))) if _scalars(a, b) else _jnp().minimum(a, b)


def _jnp():
    import jax.numpy as jnp

    return jnp


def _xp():
    """``jax.numpy`` once JAX is imported (always the case under ``jit``/``vmap``/``grad``,
    and whenever a cost model runs); :class:`_Float32` before that, e.g. for
    ``tpsopt list models``, which must not pay for importing JAX. Both give the same
    float32 results (checked in ``tests/test_lazy_imports.py``)."""
    if "jax" in sys.modules:
        return _jnp()
    return _Float32


def is_mla(m: ModelSpec):
    """1.0 if softmax attention is MLA (``kv_lora_rank > 0``), else 0.0."""
    jnp = _xp()
    return jnp.where(jnp.asarray(m.kv_lora_rank) > 0, 1.0, 0.0)


def attn_q_params(m: ModelSpec):
    """Query projection parameters per softmax-attention layer (incl. output gate)."""
    jnp = _xp()
    hq = m.n_heads * m.head_dim_qk
    q_direct = m.d_model * hq
    q_lora = m.d_model * m.q_lora_rank + m.q_lora_rank * hq
    q = jnp.where(jnp.asarray(m.q_lora_rank) > 0, q_lora, q_direct)
    return q + m.attn_output_gate * m.d_model * hq


def attn_kv_params(m: ModelSpec):
    """Key/value projection parameters per softmax-attention layer."""
    jnp = _xp()
    gqa = m.d_model * m.n_kv_heads * (m.head_dim_qk + m.head_dim_v)
    d_nope = m.head_dim_qk - m.qk_rope_head_dim
    mla = m.d_model * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * m.n_heads * (
        d_nope + m.head_dim_v
    )
    return jnp.where(is_mla(m) > 0, mla, gqa)


def attn_o_params(m: ModelSpec):
    """Output projection parameters per softmax-attention layer: ``H·d_v·D``."""
    return m.n_heads * m.head_dim_v * m.d_model


def attn_params(m: ModelSpec):
    """All projection parameters of one softmax-attention layer."""
    return attn_q_params(m) + attn_kv_params(m) + attn_o_params(m)


def indexer_params(m: ModelSpec):
    """DSA lightning-indexer parameters per sparse layer: ``r_q·I·d_I + D·d_I + D·I``."""
    jnp = _xp()
    q_in = jnp.where(jnp.asarray(m.q_lora_rank) > 0, m.q_lora_rank, m.d_model)
    return q_in * m.indexer_heads * m.indexer_head_dim + m.d_model * (
        m.indexer_head_dim + m.indexer_heads
    )


def linear_attn_params(m: ModelSpec):
    """Parameters of one linear-attention / SSM mixer layer (see module docstring)."""
    k = m.linear_k_heads * m.linear_k_head_dim
    v = m.linear_v_heads * m.linear_v_head_dim
    in_proj = m.d_model * (2 * k + 2 * v + 2 * m.linear_v_heads)
    conv = (2 * k + v) * m.linear_conv_kernel
    return in_proj + conv + v * m.d_model


def linear_state_elems(m: ModelSpec):
    """Recurrent state elements per sequence per linear layer: ``Hv·dk·dv`` (+ conv)."""
    jnp = _xp()
    k = m.linear_k_heads * m.linear_k_head_dim
    v = m.linear_v_heads * m.linear_v_head_dim
    rec = m.linear_v_heads * m.linear_k_head_dim * m.linear_v_head_dim
    conv = (2 * k + v) * jnp.maximum(m.linear_conv_kernel - 1, 0.0)
    return rec + conv


def dense_ffn_params(m: ModelSpec):
    """Parameters of one dense FFN: ``m·D·F``."""
    return m.ffn_matrices * m.d_model * m.d_ff_dense


def expert_width(m: ModelSpec):
    """Width the routed experts operate in: the latent width if set, else d_model."""
    jnp = _xp()
    return jnp.where(jnp.asarray(m.moe_latent_dim) > 0, m.moe_latent_dim, m.d_model)


def expert_params(m: ModelSpec):
    """Parameters of one routed expert: ``m·D_e·F_e``."""
    return m.ffn_matrices * expert_width(m) * m.d_ff_expert


def shared_expert_params(m: ModelSpec):
    """Parameters of all shared experts of one MoE layer: ``n_shared·m·D·F_shared``."""
    return m.n_shared_experts * m.ffn_matrices * m.d_model * m.d_ff_shared


def moe_dense_params(m: ModelSpec):
    """Always-active parameters of one MoE layer besides shared experts: router and, for
    latent MoE, the ``2·D·D_e`` down/up projections."""
    jnp = _xp()
    latent = jnp.where(jnp.asarray(m.moe_latent_dim) > 0, 2 * m.d_model * m.moe_latent_dim, 0.0)
    return m.d_model * m.n_experts + latent


def embed_params(m: ModelSpec):
    """Input embedding ``V·D``."""
    return m.vocab_size * m.d_model


def lm_head_params(m: ModelSpec):
    """Output projection ``V·D`` (zero extra storage if tied, but always read)."""
    return m.vocab_size * m.d_model


def n_softmax_layers(m: ModelSpec):
    """Softmax-attention layers (full + window + sparse)."""
    return m.n_full_attn_layers + m.n_window_attn_layers + m.n_sparse_attn_layers


def mtp_block_params(m: ModelSpec):
    """Parameters of one MTP module: a block (attention + MoE or dense FFN) + ``2D·D``."""
    jnp = _xp()
    has_moe = jnp.where(jnp.asarray(m.n_moe_layers) > 0, 1.0, 0.0)
    ffn = has_moe * (
        m.n_experts * expert_params(m) + shared_expert_params(m) + moe_dense_params(m)
    ) + (1 - has_moe) * dense_ffn_params(m)
    return attn_params(m) + ffn + 2 * m.d_model * m.d_model


def mtp_block_active_params(m: ModelSpec):
    """Parameters one token touches in one MTP module."""
    jnp = _xp()
    has_moe = jnp.where(jnp.asarray(m.n_moe_layers) > 0, 1.0, 0.0)
    ffn = has_moe * (m.top_k * expert_params(m) + shared_expert_params(m) + moe_dense_params(m)) + (
        1 - has_moe
    ) * dense_ffn_params(m)
    return attn_params(m) + ffn + 2 * m.d_model * m.d_model


def param_breakdown(m: ModelSpec, include_mtp: bool = False) -> dict:
    """Total parameters per component (dict of scalars)."""
    out = {
        "attention": n_softmax_layers(m) * attn_params(m)
        + m.n_sparse_attn_layers * indexer_params(m)
        + m.n_linear_attn_layers * linear_attn_params(m),
        "dense_ffn": m.n_dense_ffn_layers * dense_ffn_params(m),
        "routed_experts": m.n_moe_layers * m.n_experts * expert_params(m),
        "shared_experts": m.n_moe_layers * shared_expert_params(m),
        "router": m.n_moe_layers * moe_dense_params(m),
        "embedding": embed_params(m),
        "lm_head": (1 - m.tied_embeddings) * lm_head_params(m),
    }
    if include_mtp:
        out["mtp"] = m.n_mtp_layers * mtp_block_params(m)
    return out


def total_params(m: ModelSpec, include_mtp: bool = False):
    """All stored parameters (embedding counted once if tied)."""
    return sum(param_breakdown(m, include_mtp).values())


def active_params(m: ModelSpec, include_embedding: bool = True, include_mtp: bool = False):
    """Parameters touched per token: all non-expert weights plus ``top_k`` routed experts.

    Conventions differ between publishers: Moonshot and DeepSeek count the embedding in
    "activated parameters", OpenAI (gpt-oss) does not; hence ``include_embedding``. The LM
    head is always counted (every token multiplies it), also when tied.
    """
    p = param_breakdown(m)
    act = (
        p["attention"]
        + p["dense_ffn"]
        + m.n_moe_layers * m.top_k * expert_params(m)
        + p["shared_experts"]
        + p["router"]
        + lm_head_params(m)
    )
    if include_embedding:
        act = act + embed_params(m) * (1 - m.tied_embeddings)
    if include_mtp:
        act = act + m.n_mtp_layers * mtp_block_active_params(m)
    return act


def kv_cache_heads(m: ModelSpec):
    """Cached K/V heads per softmax layer: 1 shared latent for MLA, ``K`` for GQA."""
    jnp = _xp()
    return jnp.where(is_mla(m) > 0, 1.0, m.n_kv_heads)


def kv_elems_per_head(m: ModelSpec):
    """Cached elements per token per cached head: ``r_kv + d_r`` (MLA) or ``d_qk + d_v``."""
    jnp = _xp()
    return jnp.where(
        is_mla(m) > 0, m.kv_lora_rank + m.qk_rope_head_dim, m.head_dim_qk + m.head_dim_v
    )


def kv_elems_per_token_layer(m: ModelSpec):
    """KV-cache elements per token per softmax layer (all heads, one copy)."""
    return kv_cache_heads(m) * kv_elems_per_head(m)


def kv_elems_per_token(m: ModelSpec, context_tokens=None):
    """KV-cache elements per token over all layers (main model, no MTP).

    Window layers hold at most ``window_tokens`` tokens, so when ``context_tokens`` is
    given the per-token figure is the average over that context. Sparse (DSA) layers also
    cache ``indexer_head_dim`` index-key elements per token. Linear layers hold a fixed
    state (see :func:`linear_state_elems`), not counted per token.
    """
    jnp = _xp()
    per_layer = kv_elems_per_token_layer(m)
    full = m.n_full_attn_layers * per_layer
    sparse = m.n_sparse_attn_layers * (per_layer + m.indexer_head_dim)
    if context_tokens is None:
        window = m.n_window_attn_layers * per_layer
    else:
        frac = jnp.minimum(m.window_tokens, context_tokens) / jnp.maximum(context_tokens, 1.0)
        window = m.n_window_attn_layers * per_layer * frac
    return full + sparse + window
