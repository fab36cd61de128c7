"""Import a model from a Hugging Face ``config.json`` into :class:`ModelSpec` + :class:`Precision`.

>>> m = from_hf_config("tests/data/hf_configs/moonshotai--Kimi-K2.5_config.json")
>>> m.meta["family"], int(m.spec.n_moe_layers), m.precision.expert_weight_bytes
('deepseek-v3', 60, 0.5625)

The architecture mapping lives in :mod:`hardware_db.hf_families` (layer plan, geometry, the
approximations made per family), the quantization mapping in :mod:`hardware_db.hf_quant`.
A ``hf_quant_config.json`` beside the config (``X_hf_quant_config.json`` for a file named
``X_config.json``, or ``hf_quant_config.json`` for ``config.json``) is read along with it.

Bad input raises :class:`hardware_db.DbError` with one line naming the file, the field and what
is allowed. :func:`to_toml` writes the model-database TOML schema of
``hardware_db/data/models/*.toml``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from hardware_db import DbError
from hardware_db.fields import RECORDS, plain_record
from hardware_db.hf_families import map_architecture
from hardware_db.hf_fields import Fields
from hardware_db.hf_quant import map_precision
from hardware_db.textfile import read_text

if TYPE_CHECKING:
    from costmodel.specs import ModelSpec, Precision


@dataclasses.dataclass
class ImportedModel:
    """A model read from a ``config.json``.

    ``meta`` holds: ``family``, ``model_type``, ``max_context_tokens``, ``tied_embeddings``,
    ``quantization`` (method, per-class formats, KV-cache format, sources, closest recipe),
    ``layer_plan`` (sub-layer counts per mixer and FFN kind), ``approximations`` (list of
    sentences), ``source_file`` and ``hf_id`` (``org/repo`` when the file name tells it).

    ``arch`` and ``quant`` hold the numbers as plain attribute namespaces (every field of
    ``ModelSpec`` / ``Precision``, in field order, defaults filled in); the records
    ``spec`` and ``precision`` are built from them on first access (they import JAX).
    """

    arch: SimpleNamespace
    quant: SimpleNamespace
    meta: dict

    @functools.cached_property
    def spec(self) -> ModelSpec:
        """The :class:`~costmodel.specs.ModelSpec`."""
        from costmodel.specs import ModelSpec

        return ModelSpec(**vars(self.arch))

    @functools.cached_property
    def precision(self) -> Precision:
        """The :class:`~costmodel.specs.Precision`."""
        from costmodel.specs import Precision

        return Precision(**vars(self.quant))


# ---------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------
def read_json(path) -> dict:
    """Parse a JSON object from ``path``; one-line :class:`DbError` on any problem."""
    p = Path(path)
    text = read_text(p, "a config.json file", name=str(p))
    if not text.strip():
        raise DbError(f"{p}: empty file; expected a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DbError(f"{p}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise DbError(f"{p}: top level is a JSON {type(data).__name__}; expected an object")
    return data


def hf_quant_path(path) -> Path | None:
    """The ``hf_quant_config.json`` that belongs to a config file, if it exists."""
    p = Path(path)
    if p.name.endswith("_config.json") and not p.name.endswith("_hf_quant_config.json"):
        q = p.with_name(p.name[: -len("_config.json")] + "_hf_quant_config.json")
    else:
        q = p.with_name("hf_quant_config.json")
    return q if q.is_file() else None


def hf_id_from_path(path) -> str | None:
    """``org/repo`` from a file named ``org--repo_config.json`` (or a folder ``org--repo``)."""
    p = Path(path)
    stem = p.name[: -len("_config.json")] if p.name.endswith("_config.json") else p.parent.name
    if "--" in stem:
        org, repo = stem.split("--", 1)
        if org and repo:
            return f"{org}/{repo}"
    return None


def slug_from_id(hf_id: str) -> str:
    """Database slug from a Hugging Face id: ``moonshotai/Kimi-K2.5`` → ``kimi-k2.5``."""
    name = hf_id.split("/")[-1].lower()
    name = re.sub(r"^meta-", "", name)
    name = re.sub(r"[^a-z0-9.]+", "-", name).strip("-.")
    return name or "model"


# ---------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------
def from_hf_dict(
    cfg: dict, src: str = "<config>", hf_quant: dict | None = None, hf_quant_src=None
) -> ImportedModel:
    """Import from an already-parsed config (``src`` names it in error messages)."""
    if not isinstance(cfg, dict):
        raise DbError(f"{src}: top level is {type(cfg).__name__}; expected an object")
    f = Fields(cfg, src)
    arch = map_architecture(f)
    quant = map_precision(f, arch, hf_quant, hf_quant_src or f"{src} (hf_quant_config)")
    for k, v in {**arch.fields, **quant.fields}.items():
        if not math.isfinite(v) or v < 0:  # pragma: no cover - guarded by the readers
            raise DbError(f"{src}: derived field '{k}' = {v}; expected a finite number ≥ 0")
    spec = plain_record("ModelSpec", arch.fields)
    precision = plain_record("Precision", quant.fields)
    plan = arch.plan
    meta = dict(
        family=arch.family,
        model_type=arch.model_type,
        architectures=cfg.get("architectures") or [],
        max_context_tokens=arch.max_context,
        tied_embeddings=arch.tied,
        quantization=quant.summary,
        layer_plan=dict(
            n_layers=plan.n_layers,
            mixers={k: plan.mixers.count(k) for k in sorted(set(plan.mixers))},
            ffn={k: plan.ffns.count(k) for k in sorted(set(plan.ffns))},
        ),
        approximations=arch.approximations + quant.approximations,
        source_file=src,
    )
    return ImportedModel(arch=spec, quant=precision, meta=meta)


def from_hf_config(path) -> ImportedModel:
    """Import a Hugging Face ``config.json`` (and its ``hf_quant_config.json``, if any)."""
    p = Path(path)
    cfg = read_json(p)
    qp = hf_quant_path(p)
    hq = read_json(qp) if qp else None
    m = from_hf_dict(cfg, str(p), hq, str(qp) if qp else None)
    m.meta["hf_id"] = hf_id_from_path(p)
    return m


def precision_fields_used(spec) -> tuple[str, ...]:
    """``Precision`` fields that matter for ``spec`` (e.g. no ``expert_*`` for a dense model,
    no ``ffn_*`` when there is neither a dense FFN nor a shared expert)."""
    skip = set()
    if not (spec.n_dense_ffn_layers or spec.n_moe_layers * spec.n_shared_experts):
        skip |= {"ffn_weight_bytes", "ffn_compute_bits"}
    if not spec.n_moe_layers:
        skip |= {"expert_weight_bytes", "expert_compute_bits"}
    if not spec.n_linear_attn_layers:
        skip.add("state_bytes")
    return tuple(k for k, _ in RECORDS["Precision"] if k not in skip)


# ---------------------------------------------------------------------------------------
# TOML
# ---------------------------------------------------------------------------------------
SPEC_FIELDS = tuple(k for k, _ in RECORDS["ModelSpec"])


def _str(s: str) -> str:
    """A TOML basic string (escapes quotes, backslashes and control characters)."""
    out = []
    for ch in str(s):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _num(v) -> str:
    """Exact TOML number: integers as integers, other floats by ``repr`` (round-trips)."""
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"cannot write {v} to TOML")
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v} to TOML")
        s = next(t for p in (6, 9, 12, 17) if float(t := f"{v:.{p}g}") == v)
        return s if any(c in s for c in ".e") else s + ".0"
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def notes_for(m: ImportedModel, extra: str = "") -> str:
    """One-line notes: text backbone, quantization and the approximations made."""
    q = m.meta["quantization"]
    parts = [f"text backbone = {m.meta['model_type'] or m.meta['family']}"]
    parts.append(f"checkpoint quantization: {q['method']}, KV cache {q['kv_cache']}")
    if extra:
        parts.append(extra)
    if m.meta["approximations"]:
        parts.append("approximations: " + "; ".join(m.meta["approximations"]))
    return "; ".join(parts)


def to_toml(
    imported: ImportedModel,
    name: str,
    aliases=(),
    source: str | None = None,
    grade: str = "C",
    *,
    display_name: str | None = None,
    precision: str | None = None,
    published: dict | None = None,
    notes: str | None = None,
    meta: dict | None = None,
) -> str:
    """The model-database TOML for ``imported`` (schema of ``hardware_db/data/models``).

    ``precision`` names a recipe of ``precisions.toml`` (default: the closest recipe to the
    checkpoint's quantization); ``published`` maps ``total_params``/``active_params`` to
    ``{value, source, grade[, note, embedding_included, lm_head_included]}`` tables;
    ``meta`` is written as the free-form ``[meta]`` table (strings, numbers, lists).
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name or ""):
        raise DbError(f"model name {name!r}: use lower-case letters, digits, '.', '_' and '-'")
    if grade not in ("R", "C", "S", "D", "A", "U"):
        raise DbError(f"grade {grade!r}: expected one of R, C, S, D, A, U")
    im = imported.meta
    src = source or (
        f"https://huggingface.co/{im['hf_id']}/blob/main/config.json"
        if im.get("hf_id")
        else str(im.get("source_file", ""))
    )
    lines = [
        f"name = {_str(name)}",
        f"display_name = {_str(display_name or name)}",
        f"aliases = {_value(list(aliases))}",
        f"source = {_str(src)}",
        f"grade = {_str(grade)}",
        f"precision = {_str(precision or im['quantization']['recipe'])}",
    ]
    if im.get("max_context_tokens"):
        lines.append(f"max_context_tokens = {int(im['max_context_tokens'])}")
    lines.append(f"notes = {_str(notes if notes is not None else notes_for(imported))}")
    lines += ["", "[architecture]"]
    for k in SPEC_FIELDS:
        lines.append(f"{k} = {_num(getattr(imported.arch, k))}")
    if published:
        lines += ["", "[published]"]
        for k, entry in published.items():
            lines.append(f"{k} = {_value(entry)}")
    if meta:
        lines += ["", "[meta]"]
        for k, v in meta.items():
            lines.append(f"{k} = {_value(v)}")
    return "\n".join(lines) + "\n"


def spec_from_toml(doc: dict, src: str = "<toml>") -> ModelSpec:
    """``ModelSpec`` from a parsed model TOML's ``[architecture]`` table (exact, no checks
    beyond field names; the database loader validates)."""
    arch = doc.get("architecture")
    if not isinstance(arch, dict):
        raise DbError(f"{src}: table [architecture] is missing")
    unknown = sorted(set(arch) - set(SPEC_FIELDS))
    if unknown:
        raise DbError(f"{src}: [architecture] has unknown field(s) {unknown}")
    from costmodel.specs import ModelSpec

    return ModelSpec(**{k: float(v) for k, v in arch.items()})
