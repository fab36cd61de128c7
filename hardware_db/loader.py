"""Loading the database: TOML files → validated entries → ``costmodel.specs`` records.

Layout of a database folder (the packaged one is ``hardware_db/data``)::

    chips/<name>.toml      one chip per file        (ChipSpec)
    systems/<name>.toml    one system per file      (SystemSpec: a chip + tiers)
    models/<name>.toml     one model per file       (ModelSpec + a precision recipe)
    precisions.toml        formats and recipes      (Precision)

Every public function takes an optional ``root``: a folder laid out as above. Kinds the
folder lacks fall back to the packaged data, so a test folder may hold only
``models/`` and still use the packaged precisions.

Parsing is cached per file (keyed on path, modification time and size), and each kind's
index (names, aliases, validated entries, records) is cached per set of files, so
repeated loads cost a few ``stat`` calls. A whole kind is validated when it is first
indexed: one broken file is reported whichever entry was asked for.

Records (``costmodel.specs``, which imports JAX and Flax) are built on first request of
each entry, so listing, describing and validating the database never imports JAX.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import math
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from hardware_db import DbError
from hardware_db.fields import RECORDS
from hardware_db.schema import (
    ChipEntry,
    ModelEntry,
    SystemEntry,
    check_chip,
    check_model,
    check_precisions,
    check_system,
    record_fields,
)
from hardware_db.textfile import check_file, decode_utf8
from hardware_db.units import human, si_unit
from hardware_db.validate import Quantity, weakest, where

if TYPE_CHECKING:
    from costmodel.specs import ChipSpec, ModelSpec, Precision, SystemSpec

DATA_ROOT = Path(__file__).resolve().parent / "data"
"""The packaged database folder."""

CALIBRATION_TOML = DATA_ROOT / "calibration.toml"
"""The calibrated mode's fitted parameters (:mod:`hardware_db.calibration`)."""

KINDS = ("chips", "systems", "models", "precisions")
"""Kinds of entry, as used by :func:`list_names`, :func:`resolve` and :func:`describe`."""

SINGULAR = {"chips": "chip", "systems": "system", "models": "model", "precisions": "precision"}

DEFAULT_MODEL = "kimi-k2.5"
DEFAULT_SYSTEM = "gb200-nvl72"

_DEPENDS = {"systems": "chips", "models": "precisions"}


# ----------------------------------------------------------------------------- files


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is one of :data:`KINDS`, else raise with a suggestion."""
    if kind in KINDS:
        return kind
    close = difflib.get_close_matches(str(kind), KINDS, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise DbError(f"unknown kind {kind!r}{hint} (allowed: {', '.join(KINDS)})")


def data_location(kind: str, root=None) -> Path:
    """The folder (chips, systems, models) or file (precisions) holding ``kind``."""
    rel = "precisions.toml" if check_kind(kind) == "precisions" else kind
    if root is not None:
        base = Path(root)
        if not base.is_dir():
            raise DbError(f"{where(base)}: database folder does not exist or is not a folder")
        if (base / rel).exists():
            return base / rel
    return DATA_ROOT / rel


def _stat_key(path: Path) -> tuple[str, int, int]:
    """``(path, mtime_ns, size)`` of a regular file; a one-line error otherwise."""
    check_file(path, "a .toml file")
    try:
        st = path.stat()
    except OSError as e:
        raise DbError(f"{where(path)}: cannot read: {e.strerror}") from None
    return (str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=1024)
def _parse(path: str, mtime_ns: int, size: int) -> dict:
    """Decode and parse one TOML file (cached on its stat key; do not mutate the result)."""
    del mtime_ns, size  # cache key only
    text = decode_utf8(Path(path).read_bytes(), path, bom=False)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = " ".join(str(e).split())
        if "(at end of document)" in msg:  # name the line: the file ends too early
            last = text.count("\n") + (0 if text.endswith("\n") else 1)
            msg = msg.replace("(at end of document)", f"(at end of document, line {last})")
        raise DbError(f"{where(path)}: invalid TOML: {msg}") from None


def read_toml(path) -> dict:
    """Parse a TOML file (UTF-8), cached; raises :class:`DbError` with the parser's line."""
    return _parse(*_stat_key(Path(path)))


def _kind_files(kind: str, root) -> tuple[tuple[str, int, int], ...]:
    """Stat keys of every file of ``kind`` (one file for precisions)."""
    loc = data_location(kind, root)
    if kind == "precisions":
        return (_stat_key(loc),)
    if not loc.is_dir():
        raise DbError(f"{where(loc)}: expected a folder of .toml files")
    files = sorted(loc.glob("*.toml"))
    if kind == "models":  # hand-written models without a config.json copy, same schema
        extra = loc.parent / "extra_models"
        if extra.is_dir():
            files += sorted(extra.glob("*.toml"))
    return tuple(_stat_key(p) for p in files)


_SNAPSHOT: list[dict] = []
"""Fingerprints memoised by the innermost active :func:`snapshot` (none: every
:func:`index` call stats the files again)."""


@contextlib.contextmanager
def snapshot():
    """Within the block, each kind's files are listed and stat-ed once: the database is
    read as one view (a command of the CLI runs in one). Outside, every :func:`index`
    call re-checks the files, so edits are seen at once. ``tpsopt list models`` looks a
    kind up ~200 times (~4,000 ``stat`` calls without a snapshot)."""
    _SNAPSHOT.append({})
    try:
        yield
    finally:
        _SNAPSHOT.pop()


def _fingerprint(kind: str, root) -> tuple:
    """Cache key of a kind's index: its files and those of the kind it refers to."""
    memo = _SNAPSHOT[-1] if _SNAPSHOT else None
    if memo is not None and (kind, str(root)) in memo:
        return memo[kind, str(root)]
    key = (kind, _kind_files(kind, root))
    if kind in _DEPENDS:
        key += (_fingerprint(_DEPENDS[kind], root),)
    if memo is not None:
        memo[kind, str(root)] = key
    return key


# ----------------------------------------------------------------------------- index


class Records(dict):
    """``records[slug]``: the record of a validated entry, built on first access."""

    def __init__(self, kind: str, entries: dict, root):
        super().__init__()
        self._kind, self._entries, self._root = kind, entries, root

    def __missing__(self, slug):
        rec = _record(self._kind, self._entries[slug], self._root)
        self[slug] = rec
        return rec


class Index(NamedTuple):
    """Validated entries of one kind: ``entries[slug]``, ``records[slug]`` (built on first
    access), ``files[slug]``, and ``lookup`` from every lower-cased name, alias and display
    name to its slug."""

    kind: str
    entries: dict
    records: dict
    files: dict
    lookup: dict


def index(kind: str, root=None) -> Index:
    """The validated, cached index of ``kind`` (see module docstring)."""
    check_kind(kind)
    return _build_index(_fingerprint(kind, root), None if root is None else str(root))


@functools.lru_cache(maxsize=64)
def _build_index(fingerprint: tuple, root: str | None) -> Index:
    kind, files = fingerprint[0], fingerprint[1]
    entries: dict = {}
    paths: dict = {}
    if kind == "precisions":
        path = Path(files[0][0])
        _, recipes = check_precisions(path, read_toml(path))
        entries = dict(recipes)
        paths = dict.fromkeys(recipes, path)
    else:
        for path_s, *_ in files:
            path = Path(path_s)
            data = read_toml(path)
            if kind == "chips":
                e = check_chip(path, data, expect=path.stem)
            elif kind == "systems":
                e = check_system(path, data, lambda n: resolve("chips", n, root), path.stem)
            else:
                e = check_model(path, data, lambda n: resolve("precisions", n, root), path.stem)
            entries[e.name] = e
            paths[e.name] = path
    lookup: dict[str, str] = {}
    for slug, e in entries.items():
        for alias in (slug, *e.aliases, e.display_name):
            key = alias.strip().lower()
            other = lookup.get(key)
            if other is not None and other != slug:
                raise DbError(
                    f"{where(paths[slug])}: aliases: {alias!r} is already a name of "
                    f"{other} ({where(paths[other])}); names must be unique"
                )
            lookup[key] = slug
    return Index(kind, entries, Records(kind, entries, root), paths, lookup)


def _record(kind: str, e, root):
    """Build the ``costmodel.specs`` record of a validated entry."""
    if kind == "chips":
        return _chip_record(e)
    if kind == "systems":
        return _system_record(e, root, e.max_chips.value)
    if kind == "precisions":
        from costmodel.specs import Precision

        return Precision(**{k: q.value for k, q in e.fields.items()})
    return _model_record(e)


def _chip_record(e: ChipEntry):
    from costmodel.specs import ChipSpec

    return ChipSpec(**{k: q.value for k, q in e.fields.items()})


def _model_record(e: ModelEntry):
    from costmodel.specs import ModelSpec

    return ModelSpec(**{k: q.value for k, q in e.architecture.items()})


def _system_record(e: SystemEntry, root, max_chips: float):
    """A system whose tier domains are clipped to ``max_chips`` (cumulative domains)."""
    from costmodel.specs import SystemSpec, TierSpec

    chip = index("chips", root).records[e.chip]
    tiers = []
    for t in e.tiers:
        v = {k: q.value for k, q in t.fields.items()}
        v["domain_chips"] = min(v["domain_chips"], max_chips)
        tiers.append(TierSpec(**v, topology=t.topology, name=t.name))
    return SystemSpec(chip=chip, tiers=tuple(tiers), max_chips=float(max_chips))


# ----------------------------------------------------------------------------- names


def list_names(kind: str, root=None) -> list[str]:
    """Canonical names (slugs) of every entry of ``kind``, sorted."""
    return sorted(index(kind, root).entries)


def resolve(kind: str, name: str, root=None) -> str:
    """The canonical slug for ``name``: a slug, an alias (e.g. a Hugging Face id such as
    ``"moonshotai/Kimi-K2.5"``) or a display name, case-insensitive.

    Raises:
      DbError: ``unknown system 'gb200-nvl27'; did you mean gb200-nvl72?``.
    """
    idx = index(kind, root)
    if not isinstance(name, str) or not name.strip():
        raise DbError(f"empty {SINGULAR[kind]} name; known: {', '.join(sorted(idx.entries))}")
    key = name.strip().lower()
    if key in idx.lookup:
        return idx.lookup[key]
    close = difflib.get_close_matches(key, list(idx.lookup), n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {idx.lookup[close[0]]}?"
    else:
        hint = f"known: {', '.join(sorted(idx.entries))}"
    raise DbError(f"unknown {SINGULAR[kind]} {name!r}; {hint}")


# ----------------------------------------------------------------------------- records


def load_chip(name: str, root=None) -> ChipSpec:
    """The :class:`~costmodel.specs.ChipSpec` of chip ``name`` (SI units)."""
    return index("chips", root).records[resolve("chips", name, root)]


def load_system(name: str, max_chips=None, root=None) -> SystemSpec:
    """The :class:`~costmodel.specs.SystemSpec` of system ``name``.

    ``max_chips`` overrides the file's chip budget (for systems whose size is a free
    variable, such as ``reticle-die``); it may not exceed the outermost tier's domain.
    Tier domains larger than the budget are clipped to it, so every domain is finite when
    the budget is.
    """
    slug = resolve("systems", name, root)
    idx = index("systems", root)
    if max_chips is None:
        return idx.records[slug]
    e: SystemEntry = idx.entries[slug]
    try:
        n = float(max_chips)
    except (TypeError, ValueError):
        raise DbError(f"max_chips: {max_chips!r} is not a number") from None
    outer = e.tiers[-1].fields["domain_chips"].value
    if math.isnan(n) or n < 1 or n > outer:
        raise DbError(
            f"max_chips: {max_chips!r} is not allowed for system {slug}; "
            f"allowed: 1 ≤ max_chips ≤ {outer:g} (its outermost tier's domain)"
        )
    return _system_record(e, root, n)


def load_precision(name: str, root=None) -> Precision:
    """The :class:`~costmodel.specs.Precision` of recipe ``name``."""
    return index("precisions", root).records[resolve("precisions", name, root)]


def _model_path(name) -> Path | None:
    """``name`` as a path if it names a file (ends in .json/.toml or exists), else None."""
    s = str(name)
    p = Path(s).expanduser()
    if s.endswith((".json", ".toml")) or p.exists():
        return p
    return None


def load_model(name, root=None) -> tuple[ModelSpec, Precision]:
    """A model and its native precision, by name, alias or path.

    ``name`` may be a database name or alias (``"kimi-k2.5"``, ``"moonshotai/Kimi-K2.5"``),
    a path to a model TOML file (same schema as ``data/models``), or a path to a Hugging
    Face ``config.json``, imported by :func:`hardware_db.hf_import.from_hf_config`.
    """
    path = _model_path(name)
    if path is None:
        slug = resolve("models", name, root)
        idx = index("models", root)
        e = idx.entries[slug]
        return idx.records[slug], load_precision(e.precision, root)
    check_file(path, "a model .toml or a config.json")
    if path.suffix == ".json":
        from hardware_db.hf_import import from_hf_config

        imported = from_hf_config(path)
        return imported.spec, imported.precision
    e = load_model_file(path, root)
    return _model_record(e), load_precision(e.precision, root)


def load_model_file(path, root=None) -> ModelEntry:
    """Validate a model TOML at ``path`` (any file name) and return its entry."""
    path = Path(path)
    return check_model(path, read_toml(path), lambda n: resolve("precisions", n, root))


# ----------------------------------------------------------------------------- describe


def quantity_dict(q: Quantity | None, field: str = "") -> dict:
    """A sourced number as a plain dict: SI value, units, text as written, provenance."""
    if q is None:
        from hardware_db.units import dimension_of

        dim = dimension_of(field)
        return {
            "value": 0.0,
            "unit": si_unit(dim),
            "text": "",
            "human": human(0.0, dim),
            "source": "",
            "grade": "",
            "note": "not stated in the file: record default (zero = not modelled)",
        }
    return {
        "value": q.value,
        "unit": si_unit(q.dimension),
        "text": q.text,
        "human": human(q.value, q.dimension),
        "source": q.source,
        "grade": q.grade,
        "note": q.note,
    }


def describe(kind: str, name: str, root=None) -> dict:
    """Every field of an entry: SI value, unit, original text, source, grade, note.

    Returns a JSON-friendly dict (floats may be ``inf``), with ``weakest_grade`` the
    weakest evidence grade among its numbers.
    """
    slug = resolve(kind, name, root)
    idx = index(kind, root)
    e = idx.entries[slug]
    out = {
        "kind": kind,
        "name": slug,
        "display_name": e.display_name,
        "aliases": list(e.aliases),
        "file": where(idx.files[slug]),
    }
    if kind == "chips":
        names, _ = record_fields("ChipSpec")
        fields = {k: quantity_dict(e.fields.get(k), k) for k in names}
        out.update(note=e.note, hypothetical=e.hypothetical, fields=fields)
        grades = [q.grade for q in e.fields.values()]
    elif kind == "systems":
        tiers = [
            {
                "name": t.name,
                "topology": t.topology,
                "note": t.note,
                "fields": {
                    k: quantity_dict(t.fields.get(k), k) for k in record_fields("TierSpec")[0]
                },
            }
            for t in e.tiers
        ]
        out.update(
            note=e.note,
            chip=e.chip,
            max_chips=quantity_dict(e.max_chips),
            tiers=tiers,
        )
        grades = [e.max_chips.grade] + [q.grade for t in e.tiers for q in t.fields.values()]
    elif kind == "precisions":
        fields = {
            k: {**quantity_dict(q), "format": e.formats.get(k, "")} for k, q in e.fields.items()
        }
        for k, f in fields.items():
            if k.endswith("_bits"):
                f["unit"] = "bit"
            else:
                f["unit"] = "B/element"
                f["human"] = f"{f['value']:g} B"
        out.update(source=e.source, grade=e.grade, note=e.note, fields=fields)
        grades = [e.grade] + [q.grade for q in e.fields.values()]
    else:
        defaults = dict(RECORDS["ModelSpec"])
        out.update(
            source=e.source,
            grade=e.grade,
            precision=e.precision,
            max_context_tokens=e.max_context_tokens,
            notes=e.notes,
            architecture={
                k: float(e.architecture[k].value if k in e.architecture else defaults[k])
                for k in defaults
            },
            stated=sorted(e.architecture),
            published={
                k: {**quantity_dict(v["quantity"]), **{f: v[f] for f in v if f != "quantity"}}
                for k, v in e.published.items()
            },
        )
        grades = [e.grade] + [v["quantity"].grade for v in e.published.values()]
    out["weakest_grade"] = weakest(grades)
    return out


__all__ = [
    "DATA_ROOT",
    "DEFAULT_MODEL",
    "DEFAULT_SYSTEM",
    "KINDS",
    "data_location",
    "describe",
    "index",
    "list_names",
    "load_chip",
    "load_model",
    "load_model_file",
    "load_precision",
    "load_system",
    "read_toml",
    "resolve",
]
