r"""Map a checkpoint's quantization description onto :class:`costmodel.specs.Precision`.

Sources, in the order they are applied (later ones override earlier ones per module class):

1. ``quantization_config`` in ``config.json`` (top level or under ``text_config``):
   * ``quant_method = "fp8"`` (DeepSeek/Kimi-K2/Qwen/MiniMax/GLM FP8 releases): E4M3 weights;
     with ``weight_block_size = [128, 128]`` one FP32 scale per block →
     ``1 + 4/16384`` B/param, else per-tensor → 1 B; activations FP8 (8-bit compute).
     ``modules_to_not_convert`` keep BF16; the LM head stays BF16. DeepSeek-V4's
     ``expert_dtype = "fp4"`` makes the routed experts MXFP4 (``0.5 + 1/32``) with FP8 activations.
   * ``quant_method = "compressed-tensors"`` (Kimi-K2.5/K2-Thinking, Kimi-K3): per
     ``config_groups`` entry, ``num_bits``/``type``/``group_size`` of the weights, BF16 scales
     for integer groups (INT4 g32: ``0.5 + 2/32 = 0.5625``), one 8-bit scale for FP4 groups
     (MXFP4 g32: ``0.53125``); no ``input_activations`` → weight-only, 16-bit compute.
     ``ignore`` entries keep BF16; ``kv_cache_scheme`` with 8 bits → FP8 KV.
   * ``quant_method = "mxfp4"`` (gpt-oss): routed experts MXFP4 (``0.53125``), BF16 activations.
   * ``quant_method = "modelopt"`` (or a bare ``quant_algo``): as 2.
2. ``hf_quant_config.json`` beside the config (NVIDIA ModelOpt): ``quant_algo`` NVFP4 (E2M1 +
   one FP8 scale per 16: ``0.5 + 1/16 = 0.5625`` B, 4-bit compute), FP8 (1 B, 8-bit), MXFP8
   (``1 + 1/32``), W4A16_NVFP4 (0.5625 B, 16-bit), or MIXED_PRECISION with per-module
   ``quantized_layers``; ``exclude_modules`` keep the base precision; ``kv_cache_quant_algo =
   FP8`` → ``kv_bytes = 1``.

Module classes: ``attn`` (softmax + linear mixers + indexer), ``dense`` (dense FFN layers),
``shared`` (shared experts), ``experts`` (routed experts), ``lm_head``, ``embed``.
``Precision`` has one field per tensor class, so: ``ffn_*`` ← dense FFN (or the shared experts
when the model has no dense layer; the larger of the two by parameters if both exist and
differ), ``expert_*`` ← routed experts, ``embed_weight_bytes`` ← the LM head (the part read
every step; the embedding table is only gathered). Module names in ignore/exclude lists are
classified by keywords (:func:`classify`); per-layer entries are resolved against the layer plan,
and a class whose layers disagree takes its most common format (noted as an approximation).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

from hardware_db import DbError
from hardware_db.hf_families import Arch
from hardware_db.hf_fields import Fields

CLASSES = ("attn", "dense", "shared", "experts", "lm_head", "embed")
LINEAR_CLASSES = ("attn", "dense", "shared", "experts")


@dataclasses.dataclass(frozen=True)
class Fmt:
    """A storage format: bytes per parameter incl. scales, and the compute precision (bits)."""

    name: str
    bytes: float
    bits: float


BF16 = Fmt("bf16", 2.0, 16)
FP8_BLOCK = Fmt("fp8-block128", 1 + 4 / 16384, 8)
FP8 = Fmt("fp8", 1.0, 8)
MXFP8 = Fmt("mxfp8", 1 + 1 / 32, 8)
NVFP4 = Fmt("nvfp4", 0.5 + 1 / 16, 4)
NVFP4_W4A16 = Fmt("nvfp4-w4a16", 0.5 + 1 / 16, 16)
MXFP4_W4A16 = Fmt("mxfp4-w4a16", 0.5 + 1 / 32, 16)
MXFP4_W4A8 = Fmt("mxfp4-w4a8", 0.5 + 1 / 32, 8)
INT8 = Fmt("int8", 1.0, 8)
INT4_AWQ = Fmt("int4-g128-awq", 0.5 + 2.5 / 128, 16)  # FP16 scale + INT4 zero per 128

MODELOPT_ALGOS = {
    "NVFP4": NVFP4,
    "NVFP4_AWQ": NVFP4,
    "W4A16_NVFP4": NVFP4_W4A16,
    "FP8": FP8,
    "FP8_PER_CHANNEL_PER_TOKEN": FP8,
    "FP8_BLOCKWISE": FP8_BLOCK,
    "MXFP8": MXFP8,
    "MXFP4": Fmt("mxfp4", 0.5 + 1 / 32, 4),
    "W4A16_AWQ": INT4_AWQ,
    "W4A8_AWQ": Fmt("int4-g128-awq-w4a8", 0.5 + 2.5 / 128, 8),
    "INT8_SQ": INT8,
    "W8A8_SQ_PER_CHANNEL": INT8,
}
"""ModelOpt ``quant_algo`` values understood (``MIXED_PRECISION`` too, via per-module lists)."""

QUANT_METHODS = ("fp8", "compressed-tensors", "mxfp4", "modelopt")


@dataclasses.dataclass
class Quant:
    """Result of :func:`map_precision`: ``Precision`` field values and a summary."""

    fields: dict
    summary: dict
    approximations: list[str]


# ---------------------------------------------------------------------------------------
# module-name classification
# ---------------------------------------------------------------------------------------
_OTHER = ("vision", "visual", "mm_projector", "multi_modal", "patch_merge", "audio", "mtp")
_ATTN = ("attn", "attention", "kv_a_proj", "kv_b_proj", "q_a_proj", "q_b_proj")


def classify(name: str, family: str = "") -> tuple[frozenset, int | None]:
    """Module classes a module name / glob / ``re:`` pattern refers to, and its layer index.

    An empty class set with a layer index means "the whole layer"; an empty set without one
    means "not a class we model" (norms, router gates, vision tower, MTP head).
    """
    n = name.lower()
    if n.startswith("re:"):
        n = n[3:]
    m = re.search(r"layers?\.(\d+)(?=[.*]|$)", n)
    layer = int(m.group(1)) if m else None
    nothing = frozenset()
    if any(k in n for k in _OTHER) or "eh_proj" in n or "shared_head" in n:
        return nothing, -1
    if "indexer" in n:  # DSA indexer: < 10 % of a layer's attention parameters
        return nothing, -1
    if "lm_head" in n or re.fullmatch(r"(.*\.)?head\*?", n):
        return frozenset({"lm_head"}), None
    if "embed" in n:
        return frozenset({"embed"}), None
    if "norm" in n or "e_score_correction" in n or re.search(r"(^|\.)(gate|router)(\*|\.|$)", n):
        return nothing, -1
    if "shared_expert" in n:
        return frozenset({"shared"}), layer
    if "experts" in n:
        return frozenset({"experts"}), layer
    if any(k in n for k in _ATTN) or re.search(r"mixer\.(q|k|v|o|in|out)_proj|mixer\.conv", n):
        return frozenset({"attn"}), layer
    if re.search(r"(mlp|ffn|feed_forward)\*?$", n):  # the whole FFN module of a layer
        if family == "gemma":
            return frozenset({"shared"}), layer
        return frozenset({"dense", "shared", "experts"}), layer
    if re.search(r"(mlp|ffn|feed_forward|mixer)\W", n) or re.search(r"_proj|\.w[123]\b", n):
        return frozenset({"shared"} if family == "gemma" else {"dense"}), layer
    if layer is not None and re.search(r"layers?\.\d+(\.?\*)?$", n):
        return nothing, layer  # whole layer
    return nothing, -1


class _Instances:
    """Per-instance formats: (class, layer) for every module instance in the model."""

    def __init__(self, arch: Arch):
        self.family = arch.family
        self.L = arch.plan.n_layers
        self.inst: dict[tuple[str, int], Fmt] = {}
        has_shared = arch.fields.get("n_shared_experts", 0) > 0
        for i, (mx, ff) in enumerate(zip(arch.plan.mixers, arch.plan.ffns, strict=True)):
            if mx != "none":
                self.inst[("attn", i)] = BF16
            if ff == "dense":
                self.inst[("dense", i)] = BF16
            if ff == "moe":
                self.inst[("experts", i)] = BF16
                if has_shared:
                    self.inst[("shared", i)] = BF16
        self.inst[("lm_head", -1)] = BF16
        self.inst[("embed", -1)] = BF16

    def keys(self, classes, layer):
        """Instances matching a classified pattern (see :func:`classify`)."""
        if layer == -1 or (not classes and layer is None) or (layer or 0) >= self.L:
            return []  # unmodelled module, or an MTP layer (index ≥ n_layers)
        return [
            (c, i)
            for c, i in self.inst
            if (not classes or c in classes) and (layer is None or i == layer)
        ]

    def set_all(self, fmt: Fmt, classes=LINEAR_CLASSES):
        for c, i in self.inst:
            if c in classes:
                self.inst[(c, i)] = fmt

    def apply(self, patterns, fmt: Fmt | None, approx: list[str] | None = None):
        """Set ``fmt`` (None: keep) on every instance the patterns name; return the keys.

        A pattern naming one projection (``…q_a_proj``) sets the whole class of that layer;
        with ``approx`` given, that approximation is noted once.
        """
        hit = set()
        partial = False
        for p in patterns:
            classes, layer = classify(str(p), self.family)
            partial |= bool(classes) and bool(re.search(r"_proj$|\.w[123]$", str(p)))
            for k in self.keys(classes, layer):
                hit.add(k)
                if fmt is not None:
                    self.inst[k] = fmt
        note = (
            "the exclusion list names single projections; a layer's whole class takes the "
            "excluded format when any of its projections is listed"
        )
        if partial and approx is not None and note not in approx:
            approx.append(note)
        return hit

    def by_class(self, approx: list[str]) -> dict[str, Fmt]:
        out = {}
        for c in CLASSES:
            fmts = Counter(v for (cc, _), v in self.inst.items() if cc == c)
            if not fmts:
                continue
            top = max(fmts.items(), key=lambda kv: (kv[1], kv[0].bytes))[0]
            if len(fmts) > 1:
                detail = ", ".join(f"{n}× {f.name}" for f, n in fmts.most_common())
                approx.append(f"{c} layers mix formats ({detail}); {top.name} used for all")
            out[c] = top
        return out


# ---------------------------------------------------------------------------------------
# per-method readers
# ---------------------------------------------------------------------------------------
def _err(src: str, field: str, msg: str) -> DbError:
    return DbError(f"{src}: field '{field}' {msg}")


def _fp8(q: dict, plan: _Instances, src: str, field: str, approx: list[str], f: Fields) -> str:
    block = q.get("weight_block_size")
    if block is not None:
        if not (
            isinstance(block, list)
            and len(block) == 2
            and all(isinstance(b, int) and b > 0 for b in block)
        ):
            raise _err(src, f"{field}.weight_block_size", f"is {block!r}; expected [rows, cols]")
        fmt = Fmt(f"fp8-block{block[0]}", 1 + 4 / (block[0] * block[1]), 8)
    else:
        fmt = FP8
    plan.set_all(fmt)
    plan.apply(q.get("modules_to_not_convert") or [], BF16, approx)
    ed = f.raw("expert_dtype")
    if isinstance(ed, str) and ed.lower() in ("fp4", "mxfp4"):
        plan.set_all(MXFP4_W4A8, classes=("experts",))
    return fmt.name


def _ct_format(group: dict, src: str, field: str) -> Fmt:
    """Format of one compressed-tensors ``config_groups`` entry."""
    w = group.get("weights") or {}
    bits = w.get("num_bits")
    if not isinstance(bits, int) or bits not in (2, 3, 4, 8, 16):
        raise _err(src, f"{field}.weights.num_bits", f"is {bits!r}; expected 4 or 8")
    kind = w.get("type", "int")
    g = w.get("group_size") if w.get("strategy", "group") in ("group", "tensor_group") else None
    fmt_name = str(group.get("format") or "")
    if kind == "float" and bits == 4:
        mx = g == 32 or "mxfp4" in fmt_name or "uint8" in str(w.get("scale_dtype"))
        scale = 1.0  # E8M0 (MX) or E4M3 (NV) scales
        name = "mxfp4" if mx else "nvfp4"
    else:
        scale = 2.0  # BF16 scales for integer groups
        name = f"{'int' if kind == 'int' else 'fp'}{bits}"
    per = bits / 8 + (scale / g if isinstance(g, int) and g > 0 else 0.0)
    ia = group.get("input_activations")
    act_bits = ia.get("num_bits", 16) if isinstance(ia, dict) else 16
    suffix = f"-g{g}" if isinstance(g, int) and g > 0 else ""
    return Fmt(f"{name}{suffix}-w{bits}a{act_bits}", per, act_bits)


def _compressed_tensors(q: dict, plan: _Instances, src: str, field: str, approx) -> tuple:
    groups = q.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise _err(src, f"{field}.config_groups", "is missing; expected at least one group")
    names = []
    for gname, group in groups.items():
        if not isinstance(group, dict):
            raise _err(src, f"{field}.config_groups.{gname}", "expected an object")
        fmt = _ct_format(group, src, f"{field}.config_groups.{gname}")
        targets = group.get("targets") or ["Linear"]
        if any(t == "Linear" for t in targets):
            plan.set_all(fmt)
        else:
            plan.apply(targets, fmt)
        names.append(fmt.name)
    plan.apply(q.get("ignore") or [], BF16, approx)
    kv = q.get("kv_cache_scheme")
    kv_bytes = kv.get("num_bits", 16) / 8 if isinstance(kv, dict) else 2.0
    return "+".join(names), kv_bytes


def _mxfp4(q: dict, plan: _Instances) -> str:
    plan.set_all(MXFP4_W4A16, classes=("experts",))
    plan.apply(q.get("modules_to_not_convert") or [], BF16)
    return MXFP4_W4A16.name


def _modelopt_algo(a, src: str, field: str) -> Fmt:
    if a not in MODELOPT_ALGOS:
        raise _err(
            src,
            field,
            f"= {a!r} is not supported; supported: {sorted(MODELOPT_ALGOS)} and MIXED_PRECISION",
        )
    return MODELOPT_ALGOS[a]


def _modelopt(q: dict, plan: _Instances, src: str, field: str, approx) -> tuple[str, float | None]:
    """ModelOpt (``hf_quant_config.json`` ``quantization`` or ``quantization_config``)."""
    algo = q.get("quant_algo")
    excl = q.get("exclude_modules") or q.get("ignore") or []
    if algo == "MIXED_PRECISION" or isinstance(q.get("quantized_layers"), dict):
        layers = q.get("quantized_layers") or {}
        if not isinstance(layers, dict):
            raise _err(src, f"{field}.quantized_layers", "expected an object")
        by_algo: dict[str, list[str]] = {}
        for mod, spec in layers.items():
            a = spec.get("quant_algo") if isinstance(spec, dict) else spec
            by_algo.setdefault(a, []).append(mod)
        for a, mods in by_algo.items():
            plan.apply(mods, _modelopt_algo(a, src, f"{field}.quantized_layers.*.quant_algo"))
        name = "mixed(" + ",".join(sorted(str(a) for a in by_algo)) + ")"
    elif algo is None:
        raise _err(src, f"{field}.quant_algo", "is missing; expected e.g. NVFP4 or FP8")
    else:
        fmt = _modelopt_algo(algo, src, f"{field}.quant_algo")
        if not excl:
            approx.append(f"{field} lists no excluded modules: {algo} on every linear layer")
        saved = {k: plan.inst[k] for k in plan.apply(excl, None, approx)}
        plan.set_all(fmt)  # ModelOpt leaves the LM head and routers unquantized by default
        for k in plan.apply(excl, None):
            plan.inst[k] = saved.get(k, BF16)
        name = fmt.name
    kv = q.get("kv_cache_quant_algo")
    scheme = q.get("kv_cache_scheme")
    if kv is None and isinstance(scheme, dict):
        kv = "FP8" if scheme.get("num_bits") == 8 else None
    if kv is None and isinstance(scheme, str):
        kv = scheme
    kv_bytes = {"FP8": 1.0, "NVFP4": 0.5625, "INT8": 1.0}.get(str(kv).upper()) if kv else None
    return name, kv_bytes


# ---------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------
def map_precision(f: Fields, arch: Arch, hf_quant: dict | None, hf_quant_src: str | None):
    """``Precision`` fields for a config (and its optional ``hf_quant_config.json``)."""
    approx: list[str] = []
    plan = _Instances(arch)
    kv_bytes = 2.0
    methods, sources = [], []
    key = "quantization_config"
    q = f.top.get(key)
    if q is None and isinstance(f.nested.get(key), dict):
        q, key = f.nested[key], f"{f.nested_key}.{key}"
    if q is not None:
        if not isinstance(q, dict):
            raise _err(f.src, key, f"is {type(q).__name__}; expected an object")
        qm = q.get("quant_method")
        is_modelopt = qm == "modelopt" or (qm is None and "quant_algo" in q)
        if qm == "fp8":
            methods.append(_fp8(q, plan, f.src, key, approx, f))
            if "quant_algo" in q and hf_quant is None:  # ModelOpt on top of the FP8 base
                name, kvb = _modelopt(q, plan, f.src, key, approx)
                methods.append(name)
                kv_bytes = kvb or kv_bytes
        elif qm == "compressed-tensors":
            name, kv_bytes = _compressed_tensors(q, plan, f.src, key, approx)
            methods.append(name)
        elif qm == "mxfp4":
            methods.append(_mxfp4(q, plan))
        elif is_modelopt:
            if hf_quant is None:
                name, kvb = _modelopt(q, plan, f.src, key, approx)
                methods.append(name)
                kv_bytes = kvb or kv_bytes
        else:
            raise _err(
                f.src,
                f"{key}.quant_method",
                f"= {qm!r} is not supported; supported: {', '.join(QUANT_METHODS)}",
            )
        sources.append(f"{f.src}:{key}")
    if hf_quant is not None:
        body = hf_quant.get("quantization", hf_quant)
        if not isinstance(body, dict):
            raise _err(hf_quant_src, "quantization", "expected an object")
        name, kvb = _modelopt(body, plan, hf_quant_src, "quantization", approx)
        methods.append(name)
        kv_bytes = kvb or kv_bytes
        sources.append(f"{hf_quant_src}:quantization")

    fmt = plan.by_class(approx)
    dense, shared = fmt.get("dense"), fmt.get("shared")
    ffn = dense or shared or fmt.get("experts") or BF16  # no FFN params: follow experts
    if dense and shared and dense != shared:
        fl = arch.fields
        p_dense = fl.get("n_dense_ffn_layers", 0) * fl.get("d_ff_dense", 0)
        p_shared = (
            fl.get("n_moe_layers", 0) * fl.get("n_shared_experts", 0) * fl.get("d_ff_shared", 0)
        )
        ffn = dense if p_dense >= p_shared else shared
        approx.append(
            f"dense FFN ({dense.name}) and shared experts ({shared.name}) differ; "
            f"ffn precision = {ffn.name} (the larger by parameters)"
        )
    experts = fmt.get("experts") or ffn
    if experts == MXFP4_W4A8:
        approx.append("expert_dtype fp4 read as MXFP4 (E2M1, UE8M0 scale per 32) with FP8 inputs")
    attn = fmt.get("attn") or BF16
    head = fmt.get("lm_head", BF16)
    if head != BF16:
        approx.append(f"LM head stored as {head.name}; embed_weight_bytes follows the LM head")
    dtype = str(f.raw("mamba_ssm_cache_dtype", "mamba_ssm_dtype", default="float32")).lower()
    state = 2.0 if any(t in dtype for t in ("bfloat16", "float16", "half")) else 4.0
    fields = dict(
        attn_weight_bytes=attn.bytes,
        ffn_weight_bytes=ffn.bytes,
        expert_weight_bytes=experts.bytes,
        embed_weight_bytes=head.bytes,
        kv_bytes=kv_bytes,
        act_bytes=2.0,
        state_bytes=state,
        attn_compute_bits=attn.bits,
        ffn_compute_bits=ffn.bits,
        expert_compute_bits=experts.bits,
    )
    summary = dict(
        method="+".join(methods) if methods else "none (bf16)",
        formats={c: v.name for c, v in fmt.items()},
        kv_cache={2.0: "bf16", 1.0: "fp8"}.get(kv_bytes, f"{kv_bytes} B"),
        sources=sources,
    )
    summary["recipe"] = recipe_for(summary["formats"], summary["kv_cache"])
    return Quant(
        fields={k: float(v) for k, v in fields.items()}, summary=summary, approximations=approx
    )


def recipe_for(formats: dict, kv_cache: str) -> str:
    """Closest named precision recipe of ``hardware_db/data/precisions.toml``.

    ``bf16`` (no quantization), ``fp8-block`` (FP8 weights with 128×128 block scales),
    ``fp8`` / ``fp8-kv`` (per-tensor FP8, without / with FP8 KV cache), ``int4-experts``
    (INT4 W4A16 routed experts), ``mxfp4-experts`` (MXFP4 routed experts), ``nvfp4-moe`` /
    ``nvfp4-moe-fp8kv`` (NVFP4 FFN and experts, BF16 attention; BF16 / FP8 KV), ``nvfp4``
    (NVFP4 attention too), ``int8``, ``int4-awq``. The choice is driven by the routed
    experts (most of the bytes of an MoE), then by the dense layers.
    """
    body = {c: formats.get(c, "bf16") for c in LINEAR_CLASSES if c in formats}
    experts = body.get("experts") or body.get("dense") or "bf16"
    if all(v == "bf16" for v in body.values()):
        return "bf16"
    if "awq" in experts:
        return "int4-awq"
    if experts.startswith("int4"):
        return "int4-experts"
    if experts.startswith("mxfp4"):
        return "mxfp4-experts"
    if experts.startswith("nvfp4"):
        attn = body.get("attn", "bf16")
        if attn.startswith("nvfp4"):
            return "nvfp4"
        return "nvfp4-moe-fp8kv" if kv_cache == "fp8" else "nvfp4-moe"
    if experts.startswith("fp8-block"):
        return "fp8-block"
    if experts.startswith("fp8") or experts.startswith("mxfp8"):
        return "fp8-kv" if kv_cache == "fp8" else "fp8"
    if experts.startswith("int8"):
        return "int8"
    return "bf16"
