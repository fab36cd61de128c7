r"""Published decode measurements as data: ``data/measurements.csv``, validated.

One row per published number (``hardware_db/data/measurements.csv`` D01–D88), normalised
to database names and to the **time of one decode step** of the measured configuration,
``step_time_s``, which is what calibration and validation compare the cost model with.

Columns (:data:`COLUMNS`):

* ``id``; ``model``, ``precision``, ``system`` — database slugs (models also from
  ``data/extra_models``, see :mod:`hardware_db.extra_models`); ``chips`` used;
* ``attn_tp, attn_dp, kvp, ep, moe_tp, pp`` — the parallel split
  (``attn_tp·attn_dp·kvp·pp = chips`` and ``ep·moe_tp = attn_tp·attn_dp·kvp``);
* ``software`` — family slug (:data:`SOFTWARE`); ``batch``; ``input_len``,
  ``output_len`` (tokens); ``context`` — mean KV length over the measured decode steps;
* ``mtp_depth`` (draft tokens per step), ``tokens_per_step`` τ (mean accepted length,
  e.g. "acceptance rate 2.82" for MTP3), ``acceptance`` — the per-position rate ``a``
  with ``Σ_{i=0..k} a^i = τ`` (the cost model's ``Workload.acceptance_rate``);
* ``metric``, ``value``, ``unit`` — the number as published (:data:`METRICS`);
* ``step_time_s`` — derived per-step decode time (seconds; empty when not usable);
* ``usable`` (``yes``/``no``), ``exclusion_reason`` (one line, required for ``no``);
* ``source`` (URL), ``grade`` (``A``/``B``/``C``: the trust tag of ``docs/references.md`` §3),
  ``notes`` (how the step time was derived).

Conversions (checked by the loader for the closed-form metrics, to 0.1 %)::

    tokens_per_s_per_user   step = τ / value          (MTP: τ accepted tokens per step)
    decode_tokens_per_s     step = 1 / value          (one stream, prefill excluded)
    tpot                    step = τ · value          (value in ms or s)
    step_latency            step = value
    e2e_latency, output_throughput
                            prefill separated as written in ``notes``

Every error is one line naming the file, the CSV line, the row id and the column.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
import re
from pathlib import Path
from typing import NamedTuple

from hardware_db import DbError
from hardware_db.extra_models import resolve_model_any
from hardware_db.loader import DATA_ROOT, index, resolve
from hardware_db.textfile import read_text
from hardware_db.validate import where

MEASUREMENTS_CSV = DATA_ROOT / "measurements.csv"
"""The packaged measurements file."""

COLUMNS = (
    "id",
    "model",
    "precision",
    "system",
    "chips",
    "attn_tp",
    "attn_dp",
    "kvp",
    "ep",
    "moe_tp",
    "pp",
    "software",
    "batch",
    "input_len",
    "output_len",
    "context",
    "mtp_depth",
    "tokens_per_step",
    "acceptance",
    "metric",
    "value",
    "unit",
    "step_time_s",
    "usable",
    "exclusion_reason",
    "source",
    "grade",
    "notes",
)
"""Columns of ``measurements.csv``, in order."""

SOFTWARE = {
    "trtllm": "NVIDIA TensorRT-LLM",
    "sglang": "SGLang",
    "vllm": "vLLM (CUDA and ROCm)",
    "mlc": "MLC LLM (TVM)",
    "fastertransformer": "NVIDIA FasterTransformer",
    "deepspeed": "DeepSpeed (incl. Habana)",
    "tgi": "Hugging Face Text Generation Inference",
    "llamacpp": "llama.cpp",
    "jax": "JAX/XLA",
    "neuron": "AWS Neuron (optimum-neuron)",
    "vendor-cloud": "a vendor's hosted service",
}
"""Software family slugs and what they stand for."""

SOFTWARE_ALIASES = {
    "tensorrt-llm": "trtllm",
    "trt-llm": "trtllm",
    "tensorrt_llm": "trtllm",
    "mlc-llm": "mlc",
    "ft": "fastertransformer",
    "faster-transformer": "fastertransformer",
    "llama.cpp": "llamacpp",
    "text-generation-inference": "tgi",
}
"""Other spellings accepted by :func:`software_slug`."""

GRADES = ("A", "B", "C")
"""Trust tags (``docs/references.md`` §3): A primary, clean decode metric at batch 1; B primary but
prefill included, a field missing or batch ≠ 1; C secondary or approximate."""

CLOSED_FORM = ("tokens_per_s_per_user", "decode_tokens_per_s", "tpot", "step_latency")
METRICS = CLOSED_FORM + ("e2e_latency", "output_throughput", "other")
"""Metric kinds; ``other`` only on rows that are not usable."""

UNITS = {"tok/s/user": 1.0, "tok/s": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
"""Units of usable rows and their factor to SI (seconds or tokens/s)."""

_METRIC_UNITS = {
    "tokens_per_s_per_user": ("tok/s/user",),
    "decode_tokens_per_s": ("tok/s",),
    "tpot": ("s", "ms", "us", "µs"),
    "step_latency": ("s", "ms", "us", "µs"),
    "e2e_latency": ("s", "ms"),
    "output_throughput": ("tok/s",),
}

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_INT_COLS = ("chips", "attn_tp", "attn_dp", "kvp", "ep", "moe_tp", "pp", "batch", "mtp_depth")
_NUM_COLS = _INT_COLS + ("input_len", "output_len", "context", "tokens_per_step", "acceptance")
_REL_TOL = 1e-3


class Measurement(NamedTuple):
    """One validated row (numbers as floats; ``None`` where a column is empty)."""

    id: str
    model: str
    precision: str
    system: str
    chips: float | None
    attn_tp: float | None
    attn_dp: float | None
    kvp: float | None
    ep: float | None
    moe_tp: float | None
    pp: float | None
    software: str
    batch: float | None
    input_len: float | None
    output_len: float | None
    context: float | None
    mtp_depth: float | None
    tokens_per_step: float | None
    acceptance: float | None
    metric: str
    value: float | None
    unit: str
    step_time_s: float | None
    usable: bool
    exclusion_reason: str
    source: str
    grade: str
    notes: str
    line: int

    @property
    def hardware(self) -> str:
        """The chip slug of the row's system (the hardware half of its family)."""
        return hardware_of(self.system)

    @property
    def family(self) -> str:
        """Calibration family ``"<chip>/<software>"``."""
        return f"{self.hardware}/{self.software}"


def software_slug(name: str) -> str:
    """Canonical software family slug (aliases accepted, case-insensitive).

    Raises :class:`DbError` with the closest known slug.
    """
    key = str(name).strip().lower()
    if key in SOFTWARE:
        return key
    if key in SOFTWARE_ALIASES:
        return SOFTWARE_ALIASES[key]
    known = list(SOFTWARE) + list(SOFTWARE_ALIASES)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {SOFTWARE_ALIASES.get(close[0], close[0])}?" if close else ""
    raise DbError(f"unknown software {name!r}{hint} (known: {', '.join(SOFTWARE)})")


def hardware_of(system: str) -> str:
    """The chip slug of ``system`` (a system name or alias)."""
    return index("systems").entries[resolve("systems", system)].chip


def tokens_per_step(depth: float, acceptance: float) -> float:
    """Mean accepted tokens per step ``Σ_{i=0..k} a^i`` (k = depth, a = acceptance)."""
    return sum(acceptance**i for i in range(int(depth) + 1))


def acceptance_from_tokens(tau: float, depth: float) -> float:
    """Per-position acceptance ``a`` with ``Σ_{i=0..k} a^i = τ`` (bisection; 0 for k = 0).

    Raises ``ValueError`` if τ is outside ``[1, k + 1]``.
    """
    k = int(depth)
    if k == 0:
        return 0.0
    if not 1.0 <= tau <= k + 1:
        raise ValueError(f"mean accepted length {tau:g} outside [1, {k + 1}] for depth {k}")
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tokens_per_step(k, mid) < tau else (lo, mid)
    return 0.5 * (lo + hi)


def closed_form_step_s(metric: str, value: float, unit: str, tau: float) -> float | None:
    """Step time (s) implied by a closed-form metric, or ``None`` for derived metrics."""
    f = UNITS[unit]
    if metric == "tokens_per_s_per_user":
        return tau / (value * f)
    if metric == "decode_tokens_per_s":
        return 1.0 / (value * f)
    if metric == "tpot":
        return tau * value * f
    if metric == "step_latency":
        return value * f
    return None


# ----------------------------------------------------------------------------- parsing


class _Row:
    """Error context for one CSV row."""

    def __init__(self, path, line: int, raw: dict):
        self.path, self.line, self.raw = path, line, raw
        self.id = (raw.get("id") or "").strip() or "?"

    def fail(self, column: str, msg: str):
        raise DbError(
            f"{where(self.path)}: line {self.line} ({self.id}): {column}: "
            + " ".join(str(msg).split())
        )

    def text(self, col: str) -> str:
        return (self.raw.get(col) or "").strip()

    def number(self, col: str, integer: bool = False, lo: float | None = None):
        s = self.text(col)
        if not s:
            return None
        try:
            x = float(s)
        except ValueError:
            self.fail(col, f"{s!r} is not a number")
        if not math.isfinite(x):
            self.fail(col, f"{s!r} is not finite")
        if integer and x != int(x):
            self.fail(col, f"{s!r} must be an integer")
        if lo is not None and x < lo:
            self.fail(col, f"{s!r} is below the minimum {lo:g}")
        return x


def _read_text(path: Path) -> str:
    return read_text(path, "a .csv file")


def _check_header(path, header) -> None:
    if not header:
        raise DbError(f"{where(path)}: empty file; expected a header line: {','.join(COLUMNS)}")
    cols = [h.strip() for h in header]
    for c in cols:
        if c not in COLUMNS:
            close = difflib.get_close_matches(c, COLUMNS, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise DbError(f"{where(path)}: header: unknown column {c!r}{hint}")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise DbError(f"{where(path)}: header: duplicate column {dup[0]!r}")
    missing = [c for c in COLUMNS if c not in cols]
    if missing:
        raise DbError(f"{where(path)}: header: missing column(s) {', '.join(missing)}")


def _parse_row(r: _Row) -> Measurement:
    mid = r.text("id")
    if not _ID.match(mid):
        r.fail("id", f"{mid!r} is not an id (letters, digits, '.', '_', '-')")
    usable_s = r.text("usable").lower()
    if usable_s not in ("yes", "no"):
        r.fail("usable", f"{r.text('usable')!r}; allowed: yes, no")
    usable = usable_s == "yes"
    grade = r.text("grade")
    if grade not in GRADES:
        r.fail("grade", f"{grade!r}; allowed: {', '.join(GRADES)}")
    if not r.text("source"):
        r.fail("source", "missing; every row needs the address it was read from")
    metric = r.text("metric")
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, METRICS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        r.fail("metric", f"unknown metric {metric!r}{hint} (allowed: {', '.join(METRICS)})")
    nums = {c: r.number(c, integer=c in _INT_COLS, lo=0.0) for c in _NUM_COLS}
    value = r.number("value")
    step = r.number("step_time_s", lo=0.0)
    reason = r.text("exclusion_reason")
    software = r.text("software")
    if software:
        try:
            software = software_slug(software)
        except DbError as e:
            r.fail("software", str(e))
    names = {c: r.text(c) for c in ("model", "precision", "system")}
    if not usable:
        if not reason:
            r.fail("exclusion_reason", "a row that is not usable needs a one-line reason")
    else:
        _check_usable(r, metric, value, step, nums, names, software, reason)
        names["model"] = resolve_model_any(names["model"])
        names["precision"] = resolve("precisions", names["precision"])
        names["system"] = resolve("systems", names["system"])
    return Measurement(
        id=mid,
        model=names["model"],
        precision=names["precision"],
        system=names["system"],
        software=software,
        metric=metric,
        value=value,
        unit=r.text("unit"),
        step_time_s=step,
        usable=usable,
        exclusion_reason=reason,
        source=r.text("source"),
        grade=grade,
        notes=r.text("notes"),
        line=r.line,
        **nums,
    )


def _check_usable(r: _Row, metric, value, step, nums, names, software, reason) -> None:
    """The extra rules of a usable row (see the module docstring)."""
    if reason:
        r.fail("exclusion_reason", "must be empty on a usable row (usable = yes)")
    if metric == "other":
        r.fail("metric", "'other' is only allowed on rows that are not usable")
    for c in ("model", "precision", "system"):
        if not names[c]:
            r.fail(c, "missing on a usable row")
        try:
            if c == "model":
                resolve_model_any(names[c])
            else:
                resolve(c + "s", names[c])
        except DbError as e:
            r.fail(c, str(e))
    if not software:
        r.fail("software", f"missing on a usable row (known: {', '.join(SOFTWARE)})")
    for c in _NUM_COLS:
        if nums[c] is None:
            r.fail(c, "missing on a usable row")
    for c in ("chips", "attn_tp", "attn_dp", "kvp", "ep", "moe_tp", "pp", "batch", "context"):
        if nums[c] < 1:
            r.fail(c, f"{nums[c]:g} must be ≥ 1")
    n_attn = nums["attn_tp"] * nums["attn_dp"] * nums["kvp"]
    if n_attn * nums["pp"] != nums["chips"]:
        r.fail("chips", f"{nums['chips']:g} ≠ attn_tp·attn_dp·kvp·pp = {n_attn * nums['pp']:g}")
    if nums["ep"] * nums["moe_tp"] != n_attn:
        n_ffn = nums["ep"] * nums["moe_tp"]
        r.fail("moe_tp", f"ep·moe_tp = {n_ffn:g} ≠ attn_tp·attn_dp·kvp = {n_attn:g}")
    k, tau, acc = nums["mtp_depth"], nums["tokens_per_step"], nums["acceptance"]
    if not 0 <= acc <= 1:
        r.fail("acceptance", f"{acc:g} outside [0, 1]")
    if not 1 <= tau <= k + 1:
        r.fail("tokens_per_step", f"{tau:g} outside [1, mtp_depth + 1 = {k + 1:g}]")
    if k > 0 and abs(tokens_per_step(k, acc) - tau) > _REL_TOL * tau:
        r.fail(
            "acceptance",
            f"{acc:g} gives {tokens_per_step(k, acc):.4g} tokens per step at depth {k:g}, "
            f"not tokens_per_step = {tau:g}",
        )
    unit = r.text("unit")
    if unit not in _METRIC_UNITS[metric]:
        r.fail("unit", f"{unit!r} for metric {metric}; allowed: {', '.join(_METRIC_UNITS[metric])}")
    if value is None or value <= 0:
        r.fail("value", "a usable row needs a positive value")
    if step is None or step <= 0:
        r.fail("step_time_s", "a usable row needs the derived step time (> 0 s)")
    if step > 10.0:
        r.fail("step_time_s", f"{step:g} s per decode step is implausible (unit error?)")
    expect = closed_form_step_s(metric, value, unit, tau)
    if expect is not None and abs(step - expect) > _REL_TOL * expect:
        got = f"{metric} {value:g} {unit} with τ = {tau:g} gives {expect:.6g} s"
        r.fail("step_time_s", f"{step:g} s but {got}")
    if expect is None and "step" not in r.text("notes"):
        r.fail("notes", f"metric {metric} needs the derivation of the step time in notes")


def parse_measurements(text: str, path="measurements.csv") -> tuple[Measurement, ...]:
    """Validate CSV ``text`` (``path`` names it in errors) into measurements."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise DbError(f"{where(path)}: line 1: malformed CSV: {e}") from None
    _check_header(path, header)
    cols = [h.strip() for h in header]
    out: list[Measurement] = []
    seen: dict[str, int] = {}
    line = reader.line_num
    while True:
        start = line + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DbError(f"{where(path)}: line {start}: malformed CSV: {e}") from None
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        raw = dict(zip(cols, fields, strict=False))
        r = _Row(path, start, raw)
        if len(fields) != len(cols):
            n = len(fields)
            r.fail("row", f"{n} fields, expected {len(cols)} (a truncated or unquoted row?)")
        m = _parse_row(r)
        if m.id in seen:
            r.fail("id", f"duplicate id {m.id!r} (first on line {seen[m.id]})")
        seen[m.id] = start
        out.append(m)
    if not out:
        raise DbError(f"{where(path)}: no data rows")
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> tuple[Measurement, ...]:
    del mtime_ns, size  # cache key only
    p = Path(path)
    return parse_measurements(_read_text(p), p)


def load_measurements(path=None, usable_only: bool = False) -> tuple[Measurement, ...]:
    """The validated measurements of ``path`` (default: the packaged file).

    Raises:
      DbError: one line naming file, CSV line, row id and column.
    """
    p = Path(path) if path is not None else MEASUREMENTS_CSV
    if p.is_dir() or not p.exists():
        _read_text(p)  # raises the one-line error
    st = p.stat()
    rows = _load_cached(str(p), st.st_mtime_ns, st.st_size)
    return tuple(m for m in rows if m.usable) if usable_only else rows


__all__ = [
    "COLUMNS",
    "GRADES",
    "MEASUREMENTS_CSV",
    "METRICS",
    "SOFTWARE",
    "Measurement",
    "acceptance_from_tokens",
    "closed_form_step_s",
    "hardware_of",
    "load_measurements",
    "parse_measurements",
    "software_slug",
    "tokens_per_step",
]
