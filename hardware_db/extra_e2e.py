r"""More end-to-end measurements as data: ``data/extra_measurements.csv``.

Offline-batch benchmarks of older stacks and other hardware (Argonne LLM-Inference-Bench
on A100 / H100 / GH200 / MI250 / MI300X / Gaudi2 / Intel GPUs, ROCm vLLM on 8×MI300X);
origin and licence: ``data/extra_measurements_SOURCES.md``. Evidence grade B.

:func:`load_extra` turns each row into database names and cost-model inputs
(:class:`ExtraRow`):

* **model**: the Hugging Face id through the database's aliases
  (:func:`hardware_db.extra_models.resolve_model_any`), plus :data:`MODEL_IDS` — Llama-3
  8B / 70B have the architecture of Llama-3.1 8B / 70B (same layers, widths, GQA heads,
  vocabulary; only the RoPE scaling and the context limit differ, which a decode step at
  ≤ 4k tokens does not see);
* **system**: :data:`SYSTEMS` (the database has no MI250 or Intel GPU system: those rows
  are skipped; the MI250 rows keep a chip, :data:`CHIP_ONLY`, for the build floor of
  :data:`BUILDS`); ``num_gpus`` above the system's chips → skipped. Argonne's A100 is the
  **40 GB** SXM4 part of an ALCF Polaris node (``polaris-a100-4``: 1,555 GB/s, 40 GiB), not
  the 80 GB HGX part: the A100 scripts of the benchmark's repository are PBS jobs on
  Polaris (queue ``preemptable``, file systems ``home:eagle:grand``, paths under
  ``/lus/grand``) with at most 4 GPUs, and the 70B rows on 4 GPUs run out of KV cache
  exactly where 40 GiB minus a quarter of the FP16 weights says they should;
* **software**: :data:`SOFTWARE` (``vllm-rocm`` is vLLM, ``deepspeed-mii`` DeepSpeed);
* **precision**: :data:`RECIPES` (FP16 runs as ``bf16``: same bytes and peak);
* **split**: ``attn_tp = moe_tp = tp`` (= ``num_gpus`` in Argonne), ``ep = dp = pp = 1``;
* **workload**: ``batch = concurrency``, ``context = isl + osl/2`` (mean KV length over
  the decode);
* **time**: ``tpot_s`` = ``tpot_ms``·10⁻³ — end-to-end latency ÷ ``osl`` of an offline batch,
  prefill included (``includes_prefill``, from ``tpot_kind`` in ``notes``).

What the Argonne columns are (LLM-Inference-Bench, arXiv:2411.00136; its scripts on
GitHub): one call generates for ``Batch Size`` prompts of exactly ``Input Output Length``
tokens each and as many output tokens (``isl = osl``), submitted together (an offline
batch: ``concurrency`` = the batch); ``Latency`` is the wall time of that call (vLLM:
``LLM.generate`` on random-token prompts; the mean of 30 timed runs after 10 warm-ups on
H100 / MI300X, one after 3 on A100), ``Throughput`` = batch·(isl + osl) / latency, so
``tpot_ms`` = latency / osl; ``Num of Hardware`` is the tensor-parallel size
(``--tensor-parallel-size`` / ``--tp_size``); FP16 weights; 2024 stacks (vLLM 0.5–0.6.1,
TensorRT-LLM 0.10–0.12). Whether every request decodes ``osl`` tokens: :data:`FULL_LENGTH`.

A row that cannot be mapped is kept with ``usable = False`` and a one-line ``reason``.
Errors in the file itself (missing column, non-numeric or non-positive field, unknown
``tpot_kind``) are one line naming file, CSV line and column (:class:`hardware_db.DbError`).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

from hardware_db import DbError
from hardware_db.loader import DATA_ROOT
from hardware_db.textfile import csv_rows, read_text
from hardware_db.validate import where

EXTRA_CSV = DATA_ROOT / "extra_measurements.csv"
"""The packaged extra measurements."""

COLUMNS = (
    "source_id", "model", "hardware", "num_gpus", "framework", "precision", "tp", "ep",
    "dp", "pp", "concurrency", "isl", "osl", "tpot_ms", "notes",
)  # fmt: skip
"""Columns the file must have."""

SOURCES = ("argonne_llm_inference_bench", "rocm_vllm_devdocker")
"""Known ``source_id`` values."""

SYSTEMS = {
    "a100": "polaris-a100-4",
    "h100": "hgx-h100-8",
    "gh200": "gh200-1",
    "mi300x": "mi300x-8",
    "gaudi2": "hls-gaudi2-8",
}
"""Source hardware → database system (MI250, PVC, Max 1550: no system entry)."""

CHIP_ONLY = {"mi250": "mi250-gcd"}
"""Source hardware with a database chip but no system: its rows are not evaluated by the
cost model (``usable`` False), but their one-user time per layer can be measured against
the chip's bandwidth — the floor of their software build (:data:`BUILDS`). A "GPU" of the
MI250 rows is one GCD (the runtime exposes each die as a device)."""

BUILDS = {
    ("argonne_llm_inference_bench", "mi250", "vllm"): "vllm-0.6.1-rocm",
    ("argonne_llm_inference_bench", "mi300x", "vllm"): "vllm-0.6.1-rocm",
    # the published set (measurements.csv): (primary source, system, software)
    ("argonne-lcf/LLM-Inference-Bench", "mi300x-8", "vllm"): "vllm-0.6.1-rocm",
}
"""(source, hardware, framework) → the software build the rows ran, where two families
share one: LLM-Inference-Bench's ``vLLM/MI300X/README.md`` and ``vLLM/MI250/README.md``
both check out vLLM ``v0.6.1`` and build its ``Dockerfile.rocm`` (ROCm PyTorch base
image, Triton and ROCm flash-attention); the runs call the same ``benchmark_throughput.py``
(MI250: an earlier copy of it). Rows of other families have no shared build ("").

The published set's rows are keyed by their primary source as
:func:`search.fidelity.levels.source_label` names it, database system and software slug:
D37–D40, D51, D57 and D58 of ``measurements.csv`` are the "AMD MI300X" vLLM rows of the
same benchmark's ``Plots/All_results.csv``
(https://github.com/argonne-lcf/LLM-Inference-Bench/blob/main/Plots/All_results.csv),
the build of the ``argonne_llm_inference_bench`` MI300X rows above (their step floor:
:func:`search.fidelity.build_floor.published_step_floors`). No other published row gets a
build: dstack's MI300X vLLM rows ran vLLM 0.6.3.dev116 built from upstream source on ROCm
6.1 (D62, D63) and 0.6.3.dev109 on ROCm 6.2 (D67, D68), Oracle's (D61) do not state a
version — none is this build, and no family of the extra set ran theirs."""

SOFTWARE = {
    "vllm": "vllm",
    "vllm-rocm": "vllm",
    "tensorrt-llm": "trtllm",
    "deepspeed": "deepspeed",
    "deepspeed-mii": "deepspeed",
}
"""Source framework → software family slug."""

RECIPES = {"fp16": "bf16", "bf16/fp16": "bf16", "fp8": "fp8-kv"}
"""Source precision → precision recipe (``fp8``: the ROCm FP8 checkpoints with FP8 KV)."""

MODEL_IDS = {
    "meta-llama/Meta-Llama-3-8B": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3-70B": "llama-3.1-70b",
}
"""Ids the aliases do not list, mapped to a model of the same architecture (module doc)."""

FULL_LENGTH = {
    ("argonne_llm_inference_bench", "vllm"): True,
    ("rocm_vllm_devdocker", "vllm-rocm"): True,
}
"""(source, framework) → whether every request decodes exactly ``osl`` tokens: the
benchmark's vLLM scripts pass ``SamplingParams(ignore_eos=True, max_tokens=output_len)``
(``vLLM/*/benchmark_throughput.py`` of LLM-Inference-Bench; vLLM's own
``benchmarks/benchmark_latency.py`` used by the ROCm dev-docker tables). Its
TensorRT-LLM runs (``run.py``: greedy ``top_k = 1``, ``end_id`` = the tokenizer's EOS) and
DeepSpeed-MII runs (``mii.pipeline(...)(prompts, max_new_tokens=…)``) stop at the
end-of-sequence token, and send ``batch`` copies of one prompt (``"France " × isl``), so
they may decode fewer than ``osl`` steps (others: False)."""

SAME_TOKENS = {("argonne_llm_inference_bench", "tensorrt-llm"): True}
"""(source, framework) → whether every request of the batch decodes the same tokens:
LLM-Inference-Bench's TensorRT-LLM ``run.py`` sends ``batch`` copies of one prompt
(``generate_input``: ``"France " × isl``) and decodes greedily (``--top_k`` default 1 in
its ``utils.py``), so all sequences pick the same experts at every MoE layer and step
(others: False; its vLLM runs send random distinct prompts and sample)."""

TPOT_KINDS = {"e2e_latency_div_osl_offline_batch": True}
"""``tpot_kind`` in ``notes`` → whether the TPOT includes the batch's prefill."""


class ExtraRow(NamedTuple):
    """One row, mapped to database names and cost-model inputs (SI units)."""

    source_id: str
    hf_model: str
    model: str | None
    hardware: str
    system: str | None
    chips: int
    framework: str
    software: str | None
    recipe: str | None
    tp: int
    concurrency: int
    isl: int
    osl: int
    batch: float
    context: float
    tpot_s: float
    includes_prefill: bool
    full_length: bool
    same_tokens: bool
    build: str
    usable: bool
    reason: str
    notes: str
    line: int

    @property
    def id(self) -> str:
        """``"<source>:<CSV line>"`` (the file has no id column)."""
        return f"{self.source_id}:{self.line}"

    @property
    def family(self) -> str:
        """``"<hardware>/<framework>"`` as the source names them (a family of this set)."""
        return f"{self.hardware}/{self.framework}"


def _num(r: dict, col: str, ctx: str, integer: bool) -> float:
    v = (r.get(col) or "").strip()
    try:
        f = float(v)
    except ValueError:
        raise DbError(f"{ctx}: {col}: expected a number, got {v!r}") from None
    if not math.isfinite(f) or f <= 0 or (integer and f != int(f)):
        kind = "a positive integer" if integer else "a positive number"
        raise DbError(f"{ctx}: {col}: expected {kind}, got {v!r}")
    return f


def _note(notes: str, key: str) -> str | None:
    for part in notes.split(";"):
        k, _, v = part.partition("=")
        if k.strip() == key:
            return v.strip()
    return None


@functools.cache
def _model_of(hf: str) -> str | None:
    from hardware_db.extra_models import resolve_model_any

    if hf in MODEL_IDS:
        return MODEL_IDS[hf]
    try:
        return resolve_model_any(hf)
    except DbError as e:
        if "unknown model" in str(e):
            return None
        raise


@functools.cache
def _system_chips(name: str) -> int:
    from hardware_db.loader import index

    return int(index("systems").entries[name].max_chips.value)


def _row(r: dict, line: int, path) -> ExtraRow:
    ctx = f"{where(path)}:{line}"
    src = (r["source_id"] or "").strip()
    if src not in SOURCES:
        raise DbError(f"{ctx}: source_id: unknown {src!r}; known: {', '.join(SOURCES)}")
    n_gpu = int(_num(r, "num_gpus", ctx, True))
    tp = int(_num(r, "tp", ctx, True))
    conc = int(_num(r, "concurrency", ctx, True))
    isl, osl = int(_num(r, "isl", ctx, True)), int(_num(r, "osl", ctx, True))
    for col in ("ep", "dp", "pp"):
        if int(_num(r, col, ctx, True)) != 1:
            raise DbError(f"{ctx}: {col}: only 1 is supported, got {r[col]!r}")
    tpot = _num(r, "tpot_ms", ctx, False) * 1e-3
    notes = (r.get("notes") or "").strip()
    kind = _note(notes, "tpot_kind")
    if kind not in TPOT_KINDS:
        raise DbError(f"{ctx}: notes: tpot_kind {kind!r} unknown; known: {', '.join(TPOT_KINDS)}")
    hf, hw = r["model"].strip(), r["hardware"].strip()
    fw, prec = r["framework"].strip(), r["precision"].strip()
    model, system = _model_of(hf), SYSTEMS.get(hw)
    sw, recipe = SOFTWARE.get(fw), RECIPES.get(prec)
    reason = ""
    if model is None:
        reason = f"model {hf!r} not in the database"
    elif system is None:
        reason = f"hardware {hw!r} not in the database"
    elif sw is None:
        reason = f"framework {fw!r} not mapped (known: {', '.join(SOFTWARE)})"
    elif recipe is None:
        reason = f"precision {prec!r} not mapped (known: {', '.join(RECIPES)})"
    elif tp != n_gpu:
        reason = f"tp {tp} ≠ num_gpus {n_gpu}"
    elif n_gpu > _system_chips(system):
        reason = f"{n_gpu} GPUs > {_system_chips(system)} chips of {system}"
    return ExtraRow(
        source_id=src,
        hf_model=hf,
        model=model,
        hardware=hw,
        system=system,
        chips=n_gpu,
        framework=fw,
        software=sw,
        recipe=recipe,
        tp=tp,
        concurrency=conc,
        isl=isl,
        osl=osl,
        batch=float(conc),
        context=isl + osl / 2.0,
        tpot_s=tpot,
        includes_prefill=TPOT_KINDS[kind],
        full_length=FULL_LENGTH.get((src, fw), False),
        same_tokens=SAME_TOKENS.get((src, fw), False),
        build=BUILDS.get((src, hw, fw), ""),
        usable=not reason,
        reason=reason,
        notes=notes,
        line=line,
    )


def parse_extra(text: str, path="extra_measurements.csv") -> tuple[ExtraRow, ...]:
    """Rows of an extra-measurements CSV text (see :func:`load_extra`)."""
    reader = csv_rows(text, path, COLUMNS)
    return tuple(_row(r, i, path) for i, r in enumerate(reader, start=2))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> tuple[ExtraRow, ...]:
    del mtime_ns
    return parse_extra(read_text(Path(path), "a .csv file"), path)


def load_extra(path=None, usable_only: bool = False) -> tuple[ExtraRow, ...]:
    """The extra rows (default :data:`EXTRA_CSV`), validated and mapped; ``usable_only``
    drops the rows that could not be mapped (their ``reason`` says why)."""
    p = Path(path) if path is not None else EXTRA_CSV
    if not p.is_file():
        raise DbError(f"{where(p)}: no such file")
    rows = _load_cached(str(p), p.stat().st_mtime_ns)
    return tuple(r for r in rows if r.usable) if usable_only else rows
