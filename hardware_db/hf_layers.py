r"""Layer plan of a Hugging Face config: which mixer and which FFN each layer has.

One mixer kind per layer (``full``, ``window``, ``sparse``, ``linear`` or ``none``) and one FFN
kind per layer (``dense``, ``moe`` or ``none``), read from whichever per-layer description the
family uses. Mixers: ``hybrid_override_pattern`` / ``layers_block_type`` (Nemotron-H),
``compress_ratios`` (DeepSeek-V4), ``linear_attn_config`` (Kimi linear), ``layer_types``,
``attn_type_list`` (MiniMax), ``hybrid_layer_pattern`` (MiMo-V2), ``sparse_attention_config``
(MiniMax-M3), ``no_rope_layers``/``attention_chunk_size`` (Llama-4), ``index_topk`` (DSA: all
layers sparse), ``full_attention_interval`` (Qwen3-Next), ``sliding_window`` +
``use_sliding_window``/``max_window_layers`` (Mistral/Qwen2). FFNs: ``mlp_layer_types``, a
per-layer ``moe_layer_freq`` list, ``interleave_moe_layer_step`` (Llama-4: layer i is MoE when
``(i+1) % step == 0``), ``decoder_sparse_step``/``mlp_only_layers`` (Qwen MoE), and
``first_k_dense_replace``/``moe_layer_freq`` (DeepSeek: MoE when ``i ≥ k and i % freq == 0``).
DeciLM NAS models give both per layer in ``block_configs``.

The layer-class counts of the imported ``ModelSpec`` are the counts of this plan, so they add
up by construction: attention classes = mixer sub-layers of each kind, FFN classes = FFN
sub-layers of each kind. Nemotron-H blocks hold *either* a mixer or an FFN, so there the two
sums add to ``n_layers``.
"""

from __future__ import annotations

import dataclasses

from hardware_db import DbError
from hardware_db.hf_fields import Fields

FAMILIES = {
    "deepseek_v2": "deepseek-v3",
    "deepseek_v3": "deepseek-v3",
    "deepseek_v32": "deepseek-v3",
    "kimi_k2": "deepseek-v3",
    "kimi_k25": "deepseek-v3",
    "glm_moe_dsa": "glm-5",
    "deepseek_v4": "deepseek-v4",
    "deepseek_ref": "deepseek-v4",
    "kimi_linear": "kimi-linear",
    "kimi_k3": "kimi-linear",
    "llama": "llama",
    "nemotron-nas": "decilm",
    "llama4_text": "llama4",
    "llama4": "llama4",
    "qwen2": "qwen3",
    "qwen2_moe": "qwen3",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3",
    "qwen3_vl_text": "qwen3",
    "qwen3_vl_moe_text": "qwen3",
    "mimo": "qwen3",
    "qwen3_next": "qwen3.5",
    "qwen3_5_text": "qwen3.5",
    "qwen3_5_moe_text": "qwen3.5",
    "qwen3_5": "qwen3.5",
    "qwen3_5_moe": "qwen3.5",
    "gpt_oss": "gpt-oss",
    "minimax_m2": "minimax",
    "minimax_m3": "minimax",
    "minimax_m3_vl": "minimax",
    "mistral": "mistral",
    "mixtral": "mistral",
    "gemma4_text": "gemma",
    "gemma4": "gemma",
    "gemma3_text": "gemma",
    "nemotron_h": "nemotron-h",
    "mimo_v2_flash": "mimo-v2",
    "step3p7": "step3",
}
"""``model_type`` (of the text model when nested) → family label used in ``meta``."""

MAX_LAYERS = 100_000
"""Most layers a config may declare (per-layer tables are built in memory)."""

MIXERS = ("full", "window", "sparse", "linear", "none")
FFNS = ("dense", "moe", "none")

_LAYER_TYPES = {
    "full_attention": "full",
    "attention": "full",
    "global_attention": "full",
    "sliding_attention": "window",
    "chunked_attention": "window",
    "local_attention": "window",
    "deepseek_sparse_attention": "sparse",
    "sparse_attention": "sparse",
    "linear_attention": "linear",
    "mamba": "linear",
    "kda": "linear",
}
"""Values of ``layer_types`` → mixer kind."""

_NEMOTRON_PATTERN = {"M": ("linear", "none"), "*": ("full", "none"), "-": ("none", "dense")}
_NEMOTRON_PATTERN["E"] = ("none", "moe")
_NEMOTRON_BLOCKS = {
    "mamba": ("linear", "none"),
    "attention": ("full", "none"),
    "mlp": ("none", "dense"),
    "moe": ("none", "moe"),
}


@dataclasses.dataclass
class Plan:
    """Per-layer mixer and FFN kinds (see module docstring) and per-layer dense widths."""

    n_layers: int
    mixers: list[str]
    ffns: list[str]
    dense_widths: list[int] | None = None

    def count(self, kind: str) -> int:
        return self.mixers.count(kind) + self.ffns.count(kind)


# ---------------------------------------------------------------------------------------
# family and layer plan
# ---------------------------------------------------------------------------------------
def family_of(f: Fields) -> tuple[str, str]:
    """(family label, model_type); unknown model types map to ``generic``."""
    mt = f.nested.get("model_type") or f.top.get("model_type") or ""
    if not isinstance(mt, str):
        raise f.error("model_type", f"is {mt!r}; expected a string")
    fam = FAMILIES.get(mt) or FAMILIES.get(str(f.top.get("model_type", "")))
    return fam or "generic", mt


def n_layers(f: Fields) -> int:
    """``num_hidden_layers``, or the length of a per-layer pattern when it is missing."""
    if f.which("num_hidden_layers", "n_layers", "num_layers"):
        L = f.pos("num_hidden_layers", "n_layers", "num_layers")
        if L > MAX_LAYERS:
            key = f.which("num_hidden_layers", "n_layers", "num_layers")
            raise f.error(key, f"is {L}; expected at most {MAX_LAYERS} layers")
        return L
    for key in ("hybrid_override_pattern", "layers_block_type", "layer_types", "block_configs"):
        v = f.raw(key)
        if isinstance(v, str | list) and len(v) > 0:
            return len(v)
    raise DbError(
        f"{f.src}: field 'num_hidden_layers' is missing and no per-layer pattern "
        "(hybrid_override_pattern, layers_block_type, layer_types, block_configs) gives the "
        "layer count; expected a positive integer"
    )


def nemotron_plan(f: Fields, L: int) -> Plan | None:
    """Nemotron-H: one block per pattern entry, holding a mixer *or* an FFN."""
    key = f.which("hybrid_override_pattern", "layers_block_type")
    if key is None:
        return None
    v = f.raw(key)
    if key == "hybrid_override_pattern":
        if not isinstance(v, str):
            raise f.error(key, f"is {v!r}; expected a string of M, *, -, E")
        table, entries = _NEMOTRON_PATTERN, list(v)
        allowed = "M (Mamba-2), * (attention), - (MLP), E (MoE)"
    else:
        table, entries = _NEMOTRON_BLOCKS, f.str_list(key)
        allowed = "mamba, attention, mlp, moe"
    if len(entries) != L:
        raise f.error(key, f"has {len(entries)} entries but num_hidden_layers is {L}")
    bad = sorted({e for e in entries if e not in table})
    if bad:
        raise f.error(key, f"has unknown layer kind(s) {bad}; allowed: {allowed}")
    mixers = [table[e][0] for e in entries]
    ffns = [table[e][1] for e in entries]
    return Plan(L, mixers, ffns)


def mixer_kinds(f: Fields, fam: str, L: int, approx: list[str]) -> list[str]:
    """Mixer kind per layer (precedence: the most specific per-layer description wins)."""
    if fam == "deepseek-v4" and f.has("compress_ratios"):
        ratios = f.int_list("compress_ratios")
        if len(ratios) < L:
            raise f.error("compress_ratios", f"has {len(ratios)} entries; expected ≥ {L}")
        # ratio 0: sliding window only; 4: CSA (compressed + indexer top-k) → sparse;
        # 128: HCA (heavily compressed, attends all S/128 entries) → window (see deepseek_v4).
        kinds = {0: "window", 4: "sparse"}
        return [kinds.get(r, "sparse" if 1 < r < 16 else "window") for r in ratios[:L]]
    lac = f.sub("linear_attn_config")
    if lac:
        full = lac.get("full_attn_layers") or []
        lin = lac.get("kda_layers") or []
        if not all(isinstance(i, int) and 1 <= i <= L for i in list(full) + list(lin)):
            raise f.error("linear_attn_config", f"layer indices must be integers in 1..{L}")
        if sorted(list(full) + list(lin)) != list(range(1, L + 1)):
            raise f.error(
                "linear_attn_config",
                f"full_attn_layers and kda_layers must cover layers 1..{L} exactly once",
            )
        fs = set(full)
        return ["full" if i + 1 in fs else "linear" for i in range(L)]
    if f.has("layer_types"):
        types = f.str_list("layer_types")
        if len(types) < L:
            raise f.error("layer_types", f"has {len(types)} entries; expected {L}")
        bad = sorted({t for t in types[:L] if t not in _LAYER_TYPES})
        if bad:
            raise f.error(
                "layer_types", f"has unknown kind(s) {bad}; allowed: {sorted(_LAYER_TYPES)}"
            )
        return [_LAYER_TYPES[t] for t in types[:L]]
    if f.has("attn_type_list"):  # MiniMax: 1 softmax, 0 lightning (linear) attention
        return ["full" if t else "linear" for t in f.int_list("attn_type_list", L)]
    if f.has("hybrid_layer_pattern"):  # MiMo-V2: 1 sliding window, 0 full
        return ["window" if t else "full" for t in f.int_list("hybrid_layer_pattern", L)]
    sac = f.sub("sparse_attention_config")
    if sac and sac.get("use_sparse_attention", True) and sac.get("sparse_attention_freq"):
        freq = sac["sparse_attention_freq"]
        if not isinstance(freq, list) or len(freq) != L:
            raise f.error("sparse_attention_config", f"sparse_attention_freq needs {L} entries")
        return ["sparse" if t else "full" for t in freq]
    if fam == "llama4" and f.has("attention_chunk_size"):
        if f.has("no_rope_layers"):
            rope = f.int_list("no_rope_layers", L)
        else:  # HF Llama4TextConfig default: every 4th layer is NoPE (global attention)
            rope = [int((i + 1) % 4 != 0) for i in range(L)]
        return ["window" if r else "full" for r in rope]
    if f.has("index_topk"):
        return ["sparse"] * L
    if fam == "qwen3.5" and f.has("full_attention_interval"):
        k = f.pos("full_attention_interval")
        return ["full" if (i + 1) % k == 0 else "linear" for i in range(L)]
    if f.has("sliding_window"):
        use = f.raw("use_sliding_window")
        if use is None and fam in ("mistral", "generic"):
            return ["window"] * L
        if use is True:
            first = f.nonneg("max_window_layers", default=0)
            return ["window" if i >= first else "full" for i in range(L)]
    return ["full"] * L


def ffn_kinds(f: Fields, fam: str, L: int, n_experts: int) -> list[str]:
    """FFN kind per layer."""
    if f.has("mlp_layer_types"):
        kinds = {"dense": "dense", "mlp": "dense", "sparse": "moe", "moe": "moe"}
        types = f.str_list("mlp_layer_types", L)
        bad = sorted({t for t in types if t not in kinds})
        if bad:
            raise f.error("mlp_layer_types", f"has unknown kind(s) {bad}; allowed {sorted(kinds)}")
        return [kinds[t] for t in types]
    if n_experts == 0:
        return ["dense"] * L
    freq = f.raw("moe_layer_freq")
    if isinstance(freq, list):
        return ["moe" if t else "dense" for t in f.int_list("moe_layer_freq", L)]
    if fam == "llama4" or f.has("interleave_moe_layer_step"):
        step = f.pos("interleave_moe_layer_step", default=1)
        return ["moe" if (i + 1) % step == 0 else "dense" for i in range(L)]
    if f.has("decoder_sparse_step") or f.has("mlp_only_layers"):
        step = f.pos("decoder_sparse_step", default=1)
        only = set(f.int_list("mlp_only_layers")) if f.has("mlp_only_layers") else set()
        return ["moe" if i not in only and (i + 1) % step == 0 else "dense" for i in range(L)]
    k = f.nonneg("first_k_dense_replace", default=0)
    every = f.pos("moe_layer_freq", default=1)
    return ["moe" if i >= k and i % every == 0 else "dense" for i in range(L)]


def _ffn_mult_to_width(mult: float, d: int) -> int:
    """DeciLM ``_ffn_mult_to_intermediate_size``: ``int(2·mult·D/3)`` rounded up to 256."""
    w = int(2 * mult * d / 3)
    return w + (-w) % 256


def decilm_plan(f: Fields, L: int, d: int, approx: list[str]) -> tuple[Plan, int | None]:
    """DeciLM NAS (Llama-3.3-Nemotron-Super): per-layer attention/FFN from ``block_configs``.

    Returns the plan (with per-layer FFN widths) and the KV-head count (from
    ``n_heads_in_group``; the mean if it varies).
    """
    blocks = f.raw("block_configs")
    if (
        not isinstance(blocks, list)
        or len(blocks) != L
        or not all(isinstance(b, dict) for b in blocks)
    ):
        raise f.error("block_configs", f"must be a list of {L} objects (one per layer)")
    h = f.pos("num_attention_heads")
    mixers, ffns, widths, kv = [], [], [], []
    for i, b in enumerate(blocks):
        att, ffn = b.get("attention") or {}, b.get("ffn") or {}
        if att.get("no_op") or att.get("replace_with_linear"):
            mixers.append("none")
            if att.get("replace_with_linear"):
                approx.append(f"layer {i}: attention replaced by a linear layer, not modelled")
        else:
            g = att.get("n_heads_in_group")
            if not isinstance(g, int) or g <= 0 or h % g:
                raise f.error("block_configs", f"layer {i}: n_heads_in_group must divide {h}")
            kv.append(h // g)
            mixers.append("window" if att.get("window_length") else "full")
        if ffn.get("no_op") or ffn.get("replace_with_linear"):
            ffns.append("none")
            if ffn.get("replace_with_linear"):
                approx.append(f"layer {i}: FFN replaced by a linear layer, not modelled")
        else:
            mult = ffn.get("ffn_mult")
            if isinstance(mult, bool) or not isinstance(mult, int | float) or mult <= 0:
                raise f.error("block_configs", f"layer {i}: ffn_mult must be a positive number")
            ffns.append("dense")
            widths.append(_ffn_mult_to_width(mult, d))
    if widths and len(set(widths)) > 1:
        approx.append(
            f"DeciLM per-layer FFN widths {min(widths)}..{max(widths)} replaced by their mean "
            f"{sum(widths) / len(widths):.1f} (total FFN parameters exact, per-layer cost averaged)"
        )
    n_att = L - mixers.count("none")
    if n_att < L:
        approx.append(f"{L - n_att} of {L} layers have no attention (DeciLM no-op blocks)")
    k = None
    if kv:
        k = sum(kv) / len(kv)
        if len(set(kv)) > 1:
            approx.append(f"KV heads vary per layer ({sorted(set(kv))}); mean {k:.2f} used")
    return Plan(L, mixers, ffns, widths), k
