r"""``tpsopt eval --cases FILE.csv [--out FILE.csv]``: evaluate a file of configurations.

Each row of the input CSV is one configuration. Columns (any order; :data:`COLUMNS`):

    model, system, precision, batch, context, tp, ep, pp, attn_dp, kvp, moe_tp,
    mtp, acceptance, software, mode          (+ optional chips, overlap, imbalance,
                                              latency_scale; pass-through id, label, notes)

A missing column, or an empty cell, takes the value of the matching ``tpsopt eval`` flag
(``--model``, ``--system``, …, whose defaults are the usual ones); missing parallel
degrees are completed by the default rule of :func:`search.defaults.complete_parallelism`
(tensor/expert split from the model and system; pipeline stages doubled until weights and
KV fit — evaluated for all rows at once). ``model`` may be a database name, a Hugging
Face id, a ``config.json`` path or a hand-written model (``hardware_db/extra_models``).

The output has the input columns unchanged, then ``utps, tpot_s, step_time_s, fits,
reason``, the breakdown ``<term>_s`` columns, ``chips``, the ``split`` used and the
``mode_used``. A row that cannot be evaluated (unknown model, bad number, …) gets
``reason = "error: …"`` and empty results; the other rows still complete. A file that
cannot be read as such a table (missing, a directory, not UTF-8, truncated or ragged
rows, an unknown column) is a one-line error, exit status 2, and nothing is written.

Evaluation is vectorised (:mod:`search.stacking`): rows are grouped by system structure
and each group runs through one ``jax.jit(jax.vmap(decode_step))``.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
import re
import sys
from pathlib import Path

import numpy as np

import hardware_db as db
from costmodel.decode import Breakdown
from costmodel.feasibility import explain
from costmodel.specs import DEGREES, Parallelism
from hardware_db.extra_models import extra_lookup
from hardware_db.loader import load_model_file
from hardware_db.textfile import read_text
from search.cli.io import atomic_write, check_output_path
from search.defaults import check_degrees, complete_parallelism
from search.errors import UserError
from search.jit import enable_cache
from search.scenario import Scenario, make_workload, scenario
from search.stacking import Config, evaluate

COLUMNS = (
    "model", "system", "precision", "batch", "context", "tp", "ep", "pp", "attn_dp", "kvp",
    "moe_tp", "mtp", "acceptance", "software", "mode", "chips", "overlap", "imbalance",
    "latency_scale",
)  # fmt: skip
"""Input columns the evaluation reads."""

PASS_THROUGH = ("id", "label", "notes")
"""Columns copied to the output and otherwise ignored."""

ALIASES = {
    "attn_tp": "tp",
    "mtp_depth": "mtp",
    "context_tokens": "context",
    "acceptance_rate": "acceptance",
}
"""Other accepted spellings of input columns."""

RESULTS = ("utps", "tpot_s", "step_time_s", "fits", "reason")
BREAKDOWN = tuple(f"{k}_s" for k in Breakdown.__dataclass_fields__)
EXTRA_OUT = ("chips_used", "split", "mode_used")
DEGREE_COLUMNS = tuple(ALIASES.get(d, d) for d in DEGREES)
"""Input columns of the parallel degrees (``tp`` for ``attn_tp``)."""
_FLAG = re.compile(r"^--([a-z-]+)")  # "--moe-tp '0': …" → "moe_tp '0': …"


# ----------------------------------------------------------------------------- reading


def read_table(path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file; one-line :class:`UserError` for an unreadable file."""
    p = Path(path)
    text = read_text(p, "a .csv file", name=f"--cases {p}", error=UserError)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as e:
        raise UserError(
            f"--cases {p}: line {reader.line_num}: malformed CSV ({e}); truncated file?"
        ) from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"--cases {p}: empty file; expected a header line ({', '.join(COLUMNS)})")
    header = [h.strip() for h in rows[0]]
    _check_header(p, header)
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise UserError(
                f"--cases {p}: row {i}: {len(r)} fields, the header has {len(header)} "
                "(truncated or unquoted row?)"
            )
    return header, rows[1:]


def _check_header(p, header: list[str]) -> None:
    known = COLUMNS + PASS_THROUGH + tuple(ALIASES)
    for h in header:
        if h not in known:
            close = difflib.get_close_matches(h, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UserError(
                f"--cases {p}: unknown column {h!r}{hint} (allowed: {', '.join(COLUMNS)}; "
                f"passed through: {', '.join(PASS_THROUGH)})"
            )
    canon = [ALIASES.get(h, h) for h in header]
    dup = sorted({c for c in canon if canon.count(c) > 1})
    if dup:
        raise UserError(f"--cases {p}: column {dup[0]!r} appears twice")
    outs = set(RESULTS + BREAKDOWN + EXTRA_OUT) & set(header)
    if outs:
        raise UserError(f"--cases {p}: column {sorted(outs)[0]!r} is an output column")


# ----------------------------------------------------------------------------- rows


def _defaults(args) -> dict:
    """Per-column defaults from the ``tpsopt eval`` flags."""
    g = lambda k, d=None: getattr(args, k, d)  # noqa: E731
    return {
        "model": g("model", db.DEFAULT_MODEL),
        "system": g("system", db.DEFAULT_SYSTEM),
        "precision": g("precision"),
        "batch": g("batch", "1"),
        "context": g("context", "8192"),
        "mtp": g("mtp", "0"),
        "acceptance": g("acceptance", "0.0"),
        "software": g("software"),
        "mode": g("mode", "sol"),
        "chips": g("chips"),
        "overlap": g("overlap", "0.0"),
        "imbalance": g("imbalance", "1.0"),
        "latency_scale": g("latency_scale", "1.0"),
        "tp": g("tp"),
        "ep": g("ep"),
        "pp": g("pp"),
        "attn_dp": g("attn_dp"),
        "kvp": g("kvp"),
        "moe_tp": g("moe_tp"),
    }


@functools.lru_cache(maxsize=4096)
def _scenario(model, system, precision, chips, mode, software, latency_scale) -> Scenario:
    """A scenario without workload (batch 1), cached: rows share it."""
    look = extra_lookup()
    key = str(model).strip().lower()
    try:
        return scenario(model, system, precision, chips, mode=mode, software=software,
                        latency_scale=latency_scale)  # fmt: skip
    except db.DbError:
        if key not in look:
            raise
    # a hand-written model (hardware_db/extra_models): same scenario, that model swapped in
    path = look[key]
    spec, native = db.load_model(path)
    entry = load_model_file(path)
    prec = precision or entry.precision
    sc = scenario(db.DEFAULT_MODEL, system, prec, chips, mode=mode, software=software,
                  latency_scale=latency_scale)  # fmt: skip
    return sc.replace(model=spec, model_name=path.stem, precision_name=prec)


def _cell(row: dict, defaults: dict, col: str):
    v = row.get(col)
    v = v.strip() if isinstance(v, str) else v
    if v in (None, ""):
        v = defaults.get(col)
    return None if v in (None, "") else v


def _prepare(row: dict, defaults: dict):
    """``(scenario, workload, degrees dict)`` of one row; raises on bad input."""
    get = lambda c: _cell(row, defaults, c)  # noqa: E731
    mode = str(get("mode") or "sol").lower()
    sc = _scenario(
        get("model"), get("system"), get("precision"), get("chips"), mode,
        get("software"), get("latency_scale") or "1.0",
    )  # fmt: skip
    wl = make_workload(
        get("batch") or 1, get("context") or 8192, get("mtp") or 0, get("acceptance") or 0.0,
        get("overlap") or 0.0, get("imbalance") or 1.0,
    )  # fmt: skip
    deg = check_degrees(**{d: get(d) for d in DEGREE_COLUMNS})
    return sc, wl, deg


def _pp_candidates(sc: Scenario, n: int) -> list[int]:
    """Pipeline depths :func:`complete_parallelism` tries, in order (1, 2, 4, …)."""
    out, pp = [1], 1
    while not (n * pp * 2 > float(sc.system.max_chips) or pp * 2 > float(sc.model.n_layers)):
        pp *= 2
        out.append(pp)
    return out


def _complete(sc: Scenario, wl, deg: dict):
    """Completed degrees, or ``(partial Parallelism, pp candidates)`` when pp is free.

    The tensor/expert split is :func:`complete_parallelism`'s (with ``pp`` fixed it does
    not evaluate); the pipeline depth is then chosen for all rows at once
    (:func:`_choose_pp`), by the same rule: the first doubling that fits, else the last.
    """
    s = sc.replace(workload=wl)
    if deg["pp"] is not None:
        return complete_parallelism(s, **deg), None
    par = complete_parallelism(s, **{**deg, "pp": 1})
    return par, _pp_candidates(sc, int(par.attn_tp * par.kvp * par.attn_dp))


def _choose_pp(configs: list[Config], cands: list) -> list[Config]:
    """Resolve free pipeline depths: evaluate every candidate of every row at once."""
    todo = [(i, c, cand) for i, (c, cand) in enumerate(zip(configs, cands, strict=True)) if cand]
    if not todo:
        return configs
    flat = [
        c._replace(parallelism=c.parallelism.replace(pp=float(pp))) for _, c, cand in todo
        for pp in cand
    ]  # fmt: skip
    r = evaluate(flat)
    fits = np.asarray(r.memory_per_chip_bytes) <= np.asarray(r.capacity_per_chip_bytes)
    out, k = list(configs), 0
    for i, c, cand in todo:
        f = fits[k : k + len(cand)]
        j = int(np.argmax(f)) if f.any() else len(cand) - 1
        out[i] = c._replace(parallelism=c.parallelism.replace(pp=float(cand[j])))
        k += len(cand)
    return out


_INTERN: dict = {}


def _intern(rec):
    """One shared object per distinct small record (stacking dedupes by identity)."""
    key = (type(rec).__name__,) + tuple(float(getattr(rec, f)) for f in rec.__dataclass_fields__)
    return _INTERN.setdefault(key, rec)


def run_table(header: list[str], rows: list[list[str]], args=None) -> list[dict]:
    """Evaluate parsed rows; return output dicts (input columns + results), in order."""
    defaults = _defaults(args)
    canon = [ALIASES.get(h, h) for h in header]
    configs, cands, meta, errors = [], [], [], {}
    for i, fields in enumerate(rows):
        row = dict(zip(canon, fields, strict=True))
        try:
            sc, wl, deg = _prepare(row, defaults)
            par, cand = _complete(sc, wl, deg)
        except (UserError, db.DbError, ValueError) as e:
            msg = " ".join(str(e).split()) or type(e).__name__
            errors[i] = _FLAG.sub(lambda m: m.group(1).replace("-", "_"), msg)
            continue
        configs.append(
            Config(sc.model, sc.precision, sc.system, _intern(par), _intern(wl), sc.mode)
        )
        cands.append(cand)
        meta.append((i, sc.mode_name))
    configs = _choose_pp(configs, cands)
    res = evaluate(configs) if configs else None
    out = [dict(zip(header, fields, strict=True)) for fields in rows]
    for i, msg in errors.items():
        out[i].update(dict.fromkeys(RESULTS + BREAKDOWN + EXTRA_OUT, ""))
        out[i]["reason"] = f"error: {msg}"
    for k, (i, mode_name) in enumerate(meta):
        out[i].update(_result_cells(res, k, configs[k].parallelism, mode_name))
    return out


def _fmt(x: float) -> str:
    x = float(x)
    return f"{x:.6g}" if math.isfinite(x) else ("inf" if x > 0 else "-inf" if x < 0 else "nan")


def _result_cells(res, k: int, par: Parallelism, mode_name: str) -> dict:
    d = {
        "utps": _fmt(res.utps[k]),
        "tpot_s": _fmt(res.tpot_s[k]),
        "step_time_s": _fmt(res.step_time_s[k]),
        "fits": "yes" if bool(res.fits[k]) else "no",
        "reason": explain(res.reason[k]),
    }
    for f, col in zip(Breakdown.__dataclass_fields__, BREAKDOWN, strict=True):
        d[col] = _fmt(getattr(res.breakdown_s, f)[k])
    deg = {f: int(round(float(getattr(par, f)))) for f in Parallelism.__dataclass_fields__}
    d["chips_used"] = _fmt(res.chips[k])
    d["split"] = " ".join(f"{f}={v}" for f, v in deg.items())
    d["mode_used"] = mode_name
    return d


def to_csv(header: list[str], out: list[dict]) -> str:
    cols = list(header) + list(RESULTS + BREAKDOWN + EXTRA_OUT)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(out)
    return buf.getvalue()


def run_cases(args) -> int:
    """Entry point of ``tpsopt eval --cases`` (exit status 0; bad file → UserError)."""
    if args.out:
        check_output_path(args.out, "--out")
    header, rows = read_table(args.cases)
    enable_cache()
    text = to_csv(header, run_table(header, rows, args))
    if args.out:
        atomic_write(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


__all__ = ["COLUMNS", "read_table", "run_cases", "run_table", "to_csv"]
