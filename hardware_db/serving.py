r"""Measured serving runs of 2026 stacks as data: ``data/serving_measurements.csv``.

Rows of aggregated serving (vLLM, SGLang, TensorRT-LLM) of six model families on NVIDIA
H100/H200/B200/B300/GB200, each with its parallel split, batch, request lengths and the
measured mean time per output token (TPOT). Origin and licence:
``data/serving_measurements_SOURCES.md``.

:func:`load_serving` turns each row into database names and cost-model inputs
(:class:`ServingRow`):

* **model**: the Hugging Face id resolved through the database's aliases
  (:data:`MODEL_IDS` adds checkpoint ids that only differ by quantisation);
* **system**: :data:`SYSTEMS` (``gb200`` → ``gb200-nvl72`` with ``chips = tp·dp·pp``);
* **precision recipe** from the GEMM / MoE quantisation modes (:func:`recipe_of`), and the
  kernel-table precisions of each kernel class (``kernel_precisions``);
* **split**: ``attn_tp = tp_size``, ``attn_dp = attention_dp_size`` (empty or 0 → 1),
  ``kvp = 1``, ``ep = moe_ep_size``, ``moe_tp = moe_tp_size``, ``pp = pp_size``;
* **workload**: global ``batch = batch_size × max(1, attention_dp_size)`` (the source's
  batch is per attention-DP rank), ``context = isl + osl/2`` (mean KV length over the
  decode), no speculation;
* **time**: ``tpot_s`` (the measured TPOT, seconds), taken as one decode step.

**Repairs** (recorded in ``notes``): some SGLang rows give degrees whose products are
``ep²`` times the GPUs used (``tp 64, moe_tp 8, ep 8`` on an 8-GPU board): the chips are
``ep``, attention TP (or DP) is divided by ``ep`` and ``moe_tp`` becomes 1. Rows with an
empty attention-DP size but ``moe_tp·ep ≠ tp`` get ``attn_dp = moe_tp·ep / tp``; their
global batch is the concurrency. Dense models, and MoE rows with degrees 0, get
``ep = 1, moe_tp = tp·dp``. A row that cannot be mapped (unknown model, system or
quantisation) is kept with ``usable = False`` and a one-line ``reason``.

Errors in the file itself (missing column, non-numeric field) are one line naming file,
CSV line, row id and column (:class:`hardware_db.DbError`).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

from hardware_db import DbError
from hardware_db.loader import DATA_ROOT, resolve
from hardware_db.textfile import csv_rows, read_text
from hardware_db.validate import where

SERVING_CSV = DATA_ROOT / "serving_measurements.csv"
"""The packaged serving measurements."""

COLUMNS = (
    "id", "backend", "backend_version", "model_path", "system", "precision",
    "gemm_quant_mode", "moe_quant_mode", "isl", "osl", "concurrency", "batch_size",
    "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size",
    "silicon_tpot_ms", "silicon_ttft_ms", "source_note",
)  # fmt: skip
"""Columns the file must have (in this order)."""

SYSTEMS = {
    "h100_sxm": "hgx-h100-8",
    "h200_sxm": "hgx-h200-8",
    "b200_sxm": "hgx-b200-8",
    "b300_sxm": "hgx-b300-8",
    "gb200": "gb200-nvl72",
}
"""Source system slug → database system (``gb200``: as many chips as the split uses)."""

NODE_GPUS = {"h100_sxm": 8, "h200_sxm": 8, "b200_sxm": 8, "b300_sxm": 8}
"""GPUs of one board: splits whose degrees multiply to more are repaired (module doc)."""

MODEL_IDS = {
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "nvidia/Qwen3-32B-NVFP4": "qwen3-32b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    "zhipuai/GLM-5": "glm-5",
}
"""Checkpoint ids the database's aliases do not list (quantised releases of a model)."""

SOFTWARE = {"trtllm": "trtllm", "vllm": "vllm", "sglang": "sglang"}
"""Source backend → software family slug."""

MOE_MODELS = ("qwen3-235b-a22b", "deepseek-v3", "glm-5")

BLOCK_FP8_CHECKPOINTS = ("Qwen/Qwen3-235B-A22B-FP8", "deepseek-ai/DeepSeek-V3")
"""Checkpoints whose FP8 weights carry one scale per 128×128 block (their Hugging Face
``quantization_config``: ``quant_method = "fp8"``, ``weight_block_size = [128, 128]``).
A serving stack runs the checkpoint's own quantisation, so an ``fp8`` row of one of them
runs the block-scaled kernels: vLLM's ``Fp8Config`` with ``weight_block_size`` selects
``W8A8BlockFp8LinearOp`` and the block-quantised ``Fp8MoEMethod``
(``vllm/model_executor/layers/quantization/fp8.py``); TensorRT-LLM's
``ModelConfig.load_hf_quant_config`` maps ``weight_block_size [128, 128]`` to
``QuantAlgo.FP8_BLOCK_SCALES`` (``tensorrt_llm/_torch/model_config.py``). Neither
re-quantises a block-scaled checkpoint per tensor."""


def recipe_of(gemm: str, moe: str, model: str, checkpoint: str = "") -> str | None:
    """Precision recipe (``data/precisions.toml``) of a row's quantisation modes, or None.

    Empty modes → ``bf16``; ``fp8``/``fp8`` → ``fp8``; any ``fp8_block`` → ``fp8-block``
    (DeepSeek-style block scales; GLM-5 and DeepSeek FP8 checkpoints); ``nvfp4`` →
    ``nvfp4-moe-fp8kv`` for MoE models (NVIDIA's FP4 MoE checkpoints: attention BF16,
    FP8 KV) and ``nvfp4-fp8kv`` for dense ones (all linear layers NVFP4, FP8 KV).
    """
    modes = {gemm, moe} - {""}
    if not modes:
        return "bf16"
    if "nvfp4" in modes:
        return "nvfp4-moe-fp8kv" if model in MOE_MODELS else "nvfp4-fp8kv"
    if "fp8_block" in modes or (modes == {"fp8"} and checkpoint in BLOCK_FP8_CHECKPOINTS):
        return "fp8-block"
    if modes == {"fp8"}:
        return "fp8"
    return None


def kernel_precisions(gemm: str, moe: str, recipe: str) -> dict:
    """Kernel-table precision (``data/kernel_calibration.toml``) per kernel class."""
    kv = "fp8" if recipe.endswith("fp8kv") else "bfloat16"
    g = gemm or "bfloat16"
    if recipe == "nvfp4-moe-fp8kv":
        g = "bfloat16"  # attention projections stay BF16 in the FP4 MoE checkpoints
    m = moe or "bfloat16"
    if recipe == "fp8-block":  # a block-scaled checkpoint runs block-scaled kernels
        g, m = ("fp8_block" if x == "fp8" else x for x in (g, m))
    bmm = "fp8" if g.startswith("fp8") else "bfloat16"
    return {"gemm": g, "moe": m, "attention": kv, "mla": kv, "mla_bmm": bmm}


class ServingRow(NamedTuple):
    """One row, mapped to database names and cost-model inputs (SI units)."""

    id: str
    software: str
    software_version: str
    hf_model: str
    model: str | None
    source_system: str
    system: str | None
    chips: int
    recipe: str | None
    kernel_precision: dict
    attn_tp: int
    attn_dp: int
    kvp: int
    ep: int
    moe_tp: int
    pp: int
    concurrency: int | None
    batch: float
    isl: int
    osl: int
    context: float
    tpot_s: float
    usable: bool
    reason: str
    notes: str
    line: int

    @property
    def hardware(self) -> str:
        """Source hardware slug (``h100_sxm`` …), the hardware half of a stack family."""
        return self.source_system

    @property
    def stack(self) -> str:
        """``"<hardware>/<software>"``."""
        return f"{self.source_system}/{self.software}"


def _int(r: dict, col: str, ctx: str, empty=None) -> int | None:
    v = r[col].strip()
    if v == "":
        return empty
    try:
        f = float(v)
    except ValueError:
        raise DbError(f"{ctx}: {col}: expected a number, got {v!r}") from None
    if not math.isfinite(f) or f != int(f) or f < 0:
        raise DbError(f"{ctx}: {col}: expected a non-negative integer, got {v!r}")
    return int(f)


def _float(r: dict, col: str, ctx: str) -> float:
    v = r[col].strip()
    try:
        f = float(v)
    except ValueError:
        raise DbError(f"{ctx}: {col}: expected a number, got {v!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise DbError(f"{ctx}: {col}: expected a positive number, got {v!r}")
    return f


def _model_of(hf: str) -> str | None:
    if hf in MODEL_IDS:
        return MODEL_IDS[hf]
    try:
        return resolve("models", hf)
    except DbError as e:
        if "unknown model" in str(e):
            return None
        raise


def _split(r: dict, ctx: str, src_system: str, model: str | None):
    """``(tp, dp, ep, moe_tp, pp, batch, notes)`` with the repairs of the module doc."""
    tp, pp = _int(r, "tp_size", ctx, 1) or 1, _int(r, "pp_size", ctx, 1) or 1
    dp_raw = _int(r, "attention_dp_size", ctx, None)
    ep, mtp = _int(r, "moe_ep_size", ctx, 1), _int(r, "moe_tp_size", ctx, 1)
    bs = _int(r, "batch_size", ctx, None)
    conc = _int(r, "concurrency", ctx, None)
    if bs is None:
        raise DbError(f"{ctx}: batch_size: expected a number, got ''")
    notes = []
    dp = dp_raw or 1
    batch = float(bs * dp)
    if model not in MOE_MODELS:
        ep, mtp = 1, tp * dp  # dense model: the MoE degrees carry no meaning
    elif not ep or not mtp:
        ep, mtp = 1, tp * dp
        notes.append("MoE degrees 0: moe_tp·ep set to tp·dp")
    node = NODE_GPUS.get(src_system)
    if node and tp * dp * pp > node and ep > 1 and tp * dp == mtp * ep and mtp == ep:
        if dp > 1:
            dp //= ep
        else:
            tp //= ep
        mtp = 1
        notes.append(f"degrees multiply to ep² = {ep * ep}: chips = ep = {ep}, moe_tp = 1")
    if mtp * ep != tp * dp:
        if dp_raw in (None, 0) and (mtp * ep) % tp == 0:
            dp = mtp * ep // tp
            batch = float(conc if conc is not None else bs)
            notes.append(f"attention DP inferred from moe_tp·ep/tp = {dp}; batch = concurrency")
        else:
            return None
    return tp, dp, ep, mtp, pp, batch, "; ".join(notes)


def _row(r: dict, line: int, path) -> ServingRow:
    rid = r["id"].strip()
    ctx = f"{where(path)}:{line}: {rid}"
    sw = SOFTWARE.get(r["backend"].strip())
    if sw is None:
        raise DbError(f"{ctx}: backend: unknown {r['backend']!r}; known: {', '.join(SOFTWARE)}")
    src = r["system"].strip()
    isl, osl = _int(r, "isl", ctx), _int(r, "osl", ctx)
    if isl is None or osl is None:
        raise DbError(f"{ctx}: isl/osl: expected numbers")
    tpot = _float(r, "silicon_tpot_ms", ctx) * 1e-3
    model = _model_of(r["model_path"].strip())
    gemm, moe = r["gemm_quant_mode"].strip(), r["moe_quant_mode"].strip()
    recipe = recipe_of(gemm, moe, model or "", r["model_path"].strip())
    split = _split(r, ctx, src, model)
    reason = ""
    if model is None:
        reason = f"model {r['model_path']!r} not in the database"
    elif src not in SYSTEMS:
        reason = f"system {src!r} not mapped (known: {', '.join(SYSTEMS)})"
    elif recipe is None:
        reason = f"quantisation {gemm!r}/{moe!r} not mapped to a recipe"
    elif split is None:
        reason = "parallel degrees inconsistent (moe_tp·ep ≠ tp·dp)"
    tp, dp, ep, mtp, pp, batch, notes = split or (1, 1, 1, 1, 1, float(r["batch_size"] or 1), "")
    return ServingRow(
        id=rid,
        software=sw,
        software_version=r["backend_version"].strip(),
        hf_model=r["model_path"].strip(),
        model=model,
        source_system=src,
        system=SYSTEMS.get(src),
        chips=tp * dp * pp,
        recipe=recipe,
        kernel_precision=kernel_precisions(gemm, moe, recipe or "bf16"),
        attn_tp=tp,
        attn_dp=dp,
        kvp=1,
        ep=ep,
        moe_tp=mtp,
        pp=pp,
        concurrency=_int(r, "concurrency", ctx, None),
        batch=batch,
        isl=isl,
        osl=osl,
        context=isl + osl / 2.0,
        tpot_s=tpot,
        usable=not reason,
        reason=reason,
        notes=notes,
        line=line,
    )


def parse_serving(text: str, path="serving_measurements.csv") -> tuple[ServingRow, ...]:
    """Rows of a serving-measurements CSV text (see :func:`load_serving`)."""
    reader = csv_rows(text, path, COLUMNS)
    rows, seen = [], set()
    for i, r in enumerate(reader, start=2):
        row = _row(r, i, path)
        if row.id in seen:
            raise DbError(f"{where(path)}:{i}: {row.id}: id: duplicate")
        seen.add(row.id)
        rows.append(row)
    return tuple(rows)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> tuple[ServingRow, ...]:
    del mtime_ns
    return parse_serving(read_text(Path(path), "a .csv file"), path)


def load_serving(path=None, usable_only: bool = False, max_users: int | None = None):
    """The serving rows (default :data:`SERVING_CSV`), validated and mapped.

    ``usable_only`` drops rows that could not be mapped; ``max_users`` keeps rows whose
    concurrency is known and at most that (the decode-dominated ones)."""
    p = Path(path) if path is not None else SERVING_CSV
    if not p.is_file():
        raise DbError(f"{where(p)}: no such file")
    rows = _load_cached(str(p), p.stat().st_mtime_ns)
    if usable_only:
        rows = tuple(r for r in rows if r.usable)
    if max_users is not None:
        rows = tuple(r for r in rows if r.concurrency is not None and r.concurrency <= max_users)
    return rows
