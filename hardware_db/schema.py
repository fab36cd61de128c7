"""Schemas of the four kinds of database file: chips, systems, precisions, models.

Each ``check_*`` function takes a parsed TOML table and the file's path, validates it
(raising a one-line :class:`hardware_db.DbError` naming file and field) and returns an
entry of :class:`~hardware_db.validate.Quantity` values with their provenance. Field names
are those of the records in ``costmodel.specs`` (``ChipSpec``, ``TierSpec``,
``SystemSpec``, ``Precision``, ``ModelSpec``), read from :mod:`hardware_db.fields` (a
plain table kept equal to the records by a test, so that checking a file needs no JAX).

File layouts (see the shipped files for examples):

* chip: ``name``, ``display_name``, ``aliases``, ``note``, ``hypothetical`` and a
  ``[fields]`` table of sourced numbers, one per ``ChipSpec`` field.
* system: ``name``, ``display_name``, ``aliases``, ``note``, ``chip`` (a chip name),
  ``max_chips`` (sourced count, may be ``"inf"``) and ``[[tiers]]`` innermost first, each
  with ``name``, ``topology``, ``note`` and sourced ``hop_latency_s``, ``overhead_s``,
  ``bw_bytes_per_s`` (one-way, per chip), ``domain_chips`` (cumulative) and optionally
  ``energy_j_per_byte``. The first tier is the on-die network ``die`` with one chip.
* precisions (one file): ``[formats.<name>]`` sourced bytes per element (incl. scales),
  and ``[recipes.<name>]`` with ``display_name``, ``aliases``, ``source``, ``grade``,
  ``note``, every ``*_bytes`` field naming a format and every ``*_compute_bits`` field 4,
  8 or 16.
* model: ``name``, ``display_name``, ``aliases``, ``source``, ``grade``, ``precision``
  (a recipe), ``max_context_tokens``, ``notes``, ``[architecture]`` (plain numbers, one per
  ``ModelSpec`` field; the top-level source and grade apply), optional ``[published]``
  sourced figures and a free-form ``[meta]`` table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import NamedTuple

from hardware_db.fields import TOPOLOGIES, record_fields
from hardware_db.validate import (
    Quantity,
    aliases_field,
    check_keys,
    check_range,
    fail,
    provenance,
    quantity,
    suggest,
    text_field,
)

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
"""Canonical names: lower-case letters, digits, ``.``, ``_`` and ``-``."""

CHIP_REQUIRED = (
    "peak_flops_per_s_bf16",
    "peak_flops_per_s_fp8",
    "peak_flops_per_s_fp4",
    "hbm_bw_bytes_per_s",
    "hbm_capacity_bytes",
)
"""Chip fields every file must state (a zero is a statement too: unsupported / absent).
The SRAM placement tier (``sram_*``) is optional and 0 when omitted: GPU L2 and TPU VMEM
are caches / scratchpads, not tiers that hold weights or KV across decode steps."""

COMPUTE_BITS = (4.0, 8.0, 16.0)
"""Allowed ``*_compute_bits``: which peak of the chip applies."""

MAX_LATENCY_S = 1.0
"""Per-hop latencies and per-step overheads must be below this (else: a unit error)."""


class ChipEntry(NamedTuple):
    name: str
    display_name: str
    aliases: tuple[str, ...]
    note: str
    hypothetical: bool
    fields: dict[str, Quantity]


class TierEntry(NamedTuple):
    name: str
    topology: str
    note: str
    fields: dict[str, Quantity]


class SystemEntry(NamedTuple):
    name: str
    display_name: str
    aliases: tuple[str, ...]
    note: str
    chip: str
    max_chips: Quantity
    tiers: tuple[TierEntry, ...]


class RecipeEntry(NamedTuple):
    name: str
    display_name: str
    aliases: tuple[str, ...]
    source: str
    grade: str
    note: str
    fields: dict[str, Quantity]
    formats: dict[str, str]


class ModelEntry(NamedTuple):
    name: str
    display_name: str
    aliases: tuple[str, ...]
    source: str
    grade: str
    precision: str
    max_context_tokens: float
    notes: str
    architecture: dict[str, Quantity]
    published: dict[str, dict]


def _name(path, table, expect: str | None) -> str:
    """The ``name`` slug; equal to the file's stem when ``expect`` is given."""
    name = text_field(path, table, "name", "")
    if not SLUG.match(name):
        fail(path, "name", f"{name!r} is not a slug; use lower-case letters, digits, '.', '-'")
    if expect is not None and name != expect:
        fail(path, "name", f"{name!r} differs from the file name; rename one to {expect!r}")
    return name


def check_chip(path, data: dict, expect: str | None = None) -> ChipEntry:
    """Validate a chip file (see module docstring)."""
    check_keys(
        path,
        data,
        "",
        ("name", "display_name", "aliases", "note", "hypothetical", "fields"),
        required=("name", "display_name", "fields"),
    )
    name = _name(path, data, expect)
    names, required = record_fields("ChipSpec")
    table = data["fields"]
    check_keys(
        path, table, "fields", names, required=tuple(dict.fromkeys(required + CHIP_REQUIRED))
    )
    fields: dict[str, Quantity] = {}
    for key, entry in table.items():
        f = f"fields.{key}"
        q = quantity(path, entry, f)
        check_range(path, f, q, lo=0.0, lo_open=(key == "peak_flops_per_s_bf16"))
        fields[key] = q
    get = {k: (fields[k].value if k in fields else 0.0) for k in names}
    for mem in ("hbm", "sram"):
        cap, bw = get[f"{mem}_capacity_bytes"], get[f"{mem}_bw_bytes_per_s"]
        if (cap > 0) != (bw > 0):
            fail(
                path,
                f"fields.{mem}_bw_bytes_per_s",
                f"{mem.upper()} capacity is {cap:g} B but bandwidth is {bw:g} B/s; "
                "both must be > 0 or both 0",
            )
    if get["hbm_capacity_bytes"] <= 0 and get["sram_capacity_bytes"] <= 0:
        fail(
            path,
            "fields.hbm_capacity_bytes",
            "a chip needs HBM or SRAM capacity > 0 (both are 0)",
        )
    hyp = data.get("hypothetical", False)
    if not isinstance(hyp, bool):
        fail(path, "hypothetical", f"expected true or false, got {hyp!r}")
    return ChipEntry(
        name,
        text_field(path, data, "display_name", ""),
        aliases_field(path, data),
        text_field(path, data, "note", "", required=False),
        hyp,
        fields,
    )


def _check_tier(path, i: int, tier, n_tiers: int) -> TierEntry:
    """Validate one ``[[tiers]]`` table (index ``i`` of ``n_tiers``)."""
    label = f"tiers[{i}]"
    if isinstance(tier, dict) and isinstance(tier.get("name"), str):
        label = f"tiers[{i}] ({tier['name']})"
    names, required = record_fields("TierSpec")
    check_keys(
        path,
        tier,
        label,
        names + ("name", "topology", "note"),
        required=("name", "topology") + required,
    )
    name = text_field(path, tier, "name", label)
    topo = text_field(path, tier, "topology", label)
    if topo not in TOPOLOGIES:
        fail(
            path,
            f"{label}.topology",
            f"unknown topology {topo!r}{suggest(topo, TOPOLOGIES)} "
            f"(allowed: {', '.join(TOPOLOGIES)})",
        )
    fields: dict[str, Quantity] = {}
    for key, entry in tier.items():
        if key in ("name", "topology", "note"):
            continue
        f = f"{label}.{key}"
        q = quantity(path, entry, f)
        if key in ("hop_latency_s", "overhead_s"):
            check_range(
                path, f, q, hi=MAX_LATENCY_S, hi_open=True, why="per hop / per step, not total"
            )
        elif key == "bw_bytes_per_s":
            check_range(path, f, q, lo_open=True, why="one-way bandwidth per chip")
        elif key == "domain_chips":
            last = i == n_tiers - 1
            check_range(path, f, q, lo=1.0, allow_inf=last, integer=True)
        else:
            check_range(path, f, q)
        fields[key] = q
    if i == 0:
        if name != "die":
            fail(
                path,
                f"{label}.name",
                f"the first tier must be the on-die network 'die', got {name!r}",
            )
        if fields["domain_chips"].value != 1:
            fail(path, f"{label}.domain_chips", "the 'die' tier must have domain_chips = 1")
    return TierEntry(name, topo, text_field(path, tier, "note", label, required=False), fields)


def check_system(
    path, data: dict, resolve_chip: Callable[[str], str], expect: str | None = None
) -> SystemEntry:
    """Validate a system file; ``resolve_chip`` maps a chip name to its slug or raises."""
    names, _ = record_fields("SystemSpec")
    check_keys(
        path,
        data,
        "",
        ("name", "display_name", "aliases", "note", "chip", "tiers") + names,
        required=("name", "display_name", "chip", "max_chips", "tiers"),
    )
    name = _name(path, data, expect)
    chip_name = text_field(path, data, "chip", "")
    try:
        chip = resolve_chip(chip_name)
    except Exception as e:  # DbError from the chip index, re-labelled with this file
        fail(path, "chip", str(e))
    max_chips = quantity(path, data["max_chips"], "max_chips")
    check_range(path, "max_chips", max_chips, lo=1.0, allow_inf=True, integer=True)
    tiers_raw = data["tiers"]
    if not isinstance(tiers_raw, list) or not tiers_raw:
        fail(path, "tiers", "expected a non-empty array of [[tiers]] tables, innermost first")
    tiers = tuple(_check_tier(path, i, t, len(tiers_raw)) for i, t in enumerate(tiers_raw))
    seen: set[str] = set()
    prev = 0.0
    for i, t in enumerate(tiers):
        if t.name in seen:
            fail(path, f"tiers[{i}].name", f"duplicate tier name {t.name!r}")
        seen.add(t.name)
        d = t.fields["domain_chips"].value
        if d <= prev:
            fail(
                path,
                f"tiers[{i}] ({t.name}).domain_chips",
                f"{d:g} must exceed the previous tier's {prev:g} (domains are cumulative, "
                "innermost first)",
            )
        prev = d
    if max_chips.value > tiers[-1].fields["domain_chips"].value:
        fail(
            path,
            "max_chips",
            f"{max_chips.value:g} exceeds the outermost tier's domain_chips "
            f"{tiers[-1].fields['domain_chips'].value:g}",
        )
    return SystemEntry(
        name,
        text_field(path, data, "display_name", ""),
        aliases_field(path, data),
        text_field(path, data, "note", "", required=False),
        chip,
        max_chips,
        tiers,
    )


def check_precisions(path, data: dict) -> tuple[dict[str, Quantity], dict[str, RecipeEntry]]:
    """Validate ``precisions.toml``: ``(formats, recipes)``."""
    check_keys(path, data, "", ("formats", "recipes"), required=("formats", "recipes"))
    check_keys(path, data["formats"], "formats", tuple(data["formats"]))
    formats: dict[str, Quantity] = {}
    for fname, entry in data["formats"].items():
        f = f"formats.{fname}"
        q = quantity(path, entry, f, dimension="bytes", extra=("display_name",))
        check_range(path, f, q, lo_open=True, hi=8.0, why="bytes per element incl. scales")
        formats[fname] = q
    names, _ = record_fields("Precision")
    meta = ("display_name", "aliases", "source", "grade", "note")
    recipes: dict[str, RecipeEntry] = {}
    for rname, table in data["recipes"].items():
        r = f"recipes.{rname}"
        if not SLUG.match(rname):
            fail(path, r, "recipe names are slugs: lower-case letters, digits, '.', '-'")
        check_keys(
            path, table, r, meta + names, required=("display_name", "source", "grade") + names
        )
        source, grade, note = provenance(path, table, r)
        fields: dict[str, Quantity] = {}
        used: dict[str, str] = {}
        for key in names:
            v = table[key]
            f = f"{r}.{key}"
            if key.endswith("_bits"):
                if isinstance(v, bool) or not isinstance(v, int | float) or v not in COMPUTE_BITS:
                    fail(path, f, f"{v!r} is not allowed; allowed: 4, 8 or 16 (which peak applies)")
                fields[key] = Quantity(float(v), str(v), "ratio", source, grade, note)
            else:
                if not isinstance(v, str) or v not in formats:
                    fail(
                        path,
                        f,
                        f"unknown format {v!r}{suggest(str(v), formats)} "
                        f"(allowed: {', '.join(formats)})",
                    )
                fq = formats[v]
                fields[key] = fq._replace(note=f"format {v}: {fq.note}".rstrip(": "))
                used[key] = v
        recipes[rname] = RecipeEntry(
            rname,
            text_field(path, table, "display_name", r),
            aliases_field(path, table, r),
            source,
            grade,
            note,
            fields,
            used,
        )
    return formats, recipes


def check_model(
    path, data: dict, resolve_precision: Callable[[str], str], expect: str | None = None
) -> ModelEntry:
    """Validate a model file; ``resolve_precision`` maps a recipe name to its slug or raises."""
    check_keys(
        path,
        data,
        "",
        (
            "name",
            "display_name",
            "aliases",
            "source",
            "grade",
            "precision",
            "max_context_tokens",
            "notes",
            "note",
            "architecture",
            "published",
            "meta",
        ),
        required=("name", "source", "grade", "precision", "architecture"),
    )
    name = _name(path, data, expect)
    notes = data.get("notes", data.get("note", ""))
    if not isinstance(notes, str):
        fail(path, "notes", f"expected a string, got {notes!r}")
    top = {k: data[k] for k in ("source", "grade") if k in data}
    source, grade, _ = provenance(path, {**top, "note": notes}, "")
    try:
        precision = resolve_precision(text_field(path, data, "precision", ""))
    except Exception as e:  # DbError from the precision index
        fail(path, "precision", str(e))
    names, required = record_fields("ModelSpec")
    arch = data["architecture"]
    check_keys(path, arch, "architecture", names, required=required)
    architecture: dict[str, Quantity] = {}
    for key, v in arch.items():
        f = f"architecture.{key}"
        if isinstance(v, bool) or not isinstance(v, int | float):
            fail(path, f, f"expected a plain number, got {v!r}")
        q = Quantity(float(v), str(v), "ratio", source, grade, "")
        check_range(path, f, q, lo_open=key in required, inline=False)
        architecture[key] = q
    ctx = data.get("max_context_tokens", 0)
    if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx < 0:
        fail(path, "max_context_tokens", f"expected a positive integer, got {ctx!r}")
    published: dict[str, dict] = {}
    pub = data.get("published", {})
    if not isinstance(pub, dict):
        fail(path, "published", f"expected a table, got {pub!r}")
    for key, entry in pub.items():
        f = f"published.{key}"
        if not isinstance(entry, dict):
            fail(path, f, f"expected an inline table {{ value, source, grade }}, got {entry!r}")
        flags = tuple(k for k, v in entry.items() if isinstance(v, bool))
        q = quantity(path, entry, f, dimension="ratio", extra=flags)
        if not math.isfinite(q.value):
            fail(path, f"{f}.value", f"{q.text!r} is not finite")
        published[key] = {"quantity": q, **{k: entry[k] for k in flags}}
    return ModelEntry(
        name,
        data.get("display_name", name) if isinstance(data.get("display_name"), str) else name,
        aliases_field(path, data),
        source,
        grade,
        precision,
        float(ctx),
        notes.strip(),
        architecture,
        published,
    )
