"""Validation of parsed TOML tables into sourced quantities (one-line :class:`DbError`s).

Every number of the database is an inline table ``{ value, source, grade, note }``; this
module checks such tables and the schema of each kind of file, and returns plain
:class:`Quantity` tuples (SI value plus provenance). Records (``costmodel.specs``) are
built from them by :mod:`hardware_db.loader`; the records themselves do not validate.

Error messages are one line: ``<file>: <field>: <what is wrong>; <what is allowed>``.

Evidence grades (``GRADES``) are those of ``docs/references.md`` §2 plus two for numbers the
project itself produced: ``D`` (derived by the arithmetic written in ``note`` from graded
numbers) and ``A`` (a named assumption, rationale in ``note``). ``GRADE_RANK`` orders them
from strongest to weakest, R > C > S > D > A > U; ``D`` sits below ``S`` because its
arithmetic may combine inputs of different grades.
"""

from __future__ import annotations

import difflib
import math
from typing import NamedTuple

from hardware_db import DbError
from hardware_db.units import DIMENSIONS, UnitError, dimension_of, human, to_si

GRADES = {
    "R": "read from the originator (vendor doc, model owner's file)",
    "C": "verbatim copy of the originator's file kept by a third party",
    "S": "secondary source (press, wiki, summary)",
    "D": "derived by the arithmetic in `note` from graded numbers",
    "A": "named assumption, rationale in `note`",
    "U": "unverified (recalled, not checked)",
}
"""Evidence grades a number may carry."""

GRADE_RANK = {"R": 5, "C": 4, "S": 3, "D": 2, "A": 1, "U": 0}
"""Strength of each grade (higher is stronger); the weakest of a row is its minimum."""

ENTRY_KEYS = ("value", "source", "grade", "note")
"""Keys of a sourced-number inline table."""


class Quantity(NamedTuple):
    """One sourced number: SI value, the text it was written as, and its provenance."""

    value: float
    text: str
    dimension: str
    source: str
    grade: str
    note: str


def where(path) -> str:
    """How a file is named in messages: relative to the working directory if inside it."""
    from pathlib import Path

    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def fail(path, field: str, msg: str):
    """Raise the one-line :class:`DbError` ``<file>: <field>: <msg>``."""
    prefix = f"{where(path)}: {field}: " if field else f"{where(path)}: "
    raise DbError(prefix + " ".join(str(msg).split()))


def suggest(word: str, known) -> str:
    """``"; did you mean X?"`` for the closest of ``known`` (difflib), or ``""``."""
    known = list(known)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if not close:
        low = {k.lower(): k for k in known}
        close = [low[c] for c in difflib.get_close_matches(word.lower(), low, n=1, cutoff=0.6)]
    return f"; did you mean {close[0]}?" if close else ""


def weakest(grades) -> str:
    """The weakest grade among ``grades`` (``"-"`` if empty)."""
    grades = [g for g in grades if g]
    return min(grades, key=GRADE_RANK.__getitem__) if grades else "-"


def check_keys(path, table, where_: str, allowed, required=()):
    """Reject a non-table, unknown keys (with the closest allowed key) and missing keys."""
    if not isinstance(table, dict):
        fail(path, where_, f"expected a table, got {type(table).__name__} {table!r}")
    for key in table:
        if key not in allowed:
            name = f"{where_}.{key}" if where_ else key
            fail(
                path,
                name,
                f"unknown field{suggest(key, allowed)} (allowed: {', '.join(sorted(allowed))})",
            )
    for key in required:
        if key not in table:
            name = f"{where_}.{key}" if where_ else key
            fail(path, name, "missing required field")


def text_field(path, table, key: str, where_: str, required: bool = True) -> str:
    """A required (or optional, default ``""``) non-empty string field."""
    name = f"{where_}.{key}" if where_ else key
    if key not in table:
        if required:
            fail(path, name, "missing required field")
        return ""
    v = table[key]
    if not isinstance(v, str) or not v.strip():
        fail(path, name, f"expected a non-empty string, got {v!r}")
    return v.strip()


def aliases_field(path, table, where_: str = "") -> tuple[str, ...]:
    """Optional ``aliases`` list of non-empty strings."""
    v = table.get("aliases", [])
    name = f"{where_}.aliases" if where_ else "aliases"
    if not isinstance(v, list) or not all(isinstance(a, str) and a.strip() for a in v):
        fail(path, name, f"expected a list of non-empty strings, got {v!r}")
    return tuple(a.strip() for a in v)


def provenance(path, entry: dict, field: str) -> tuple[str, str, str]:
    """Check ``source``, ``grade`` and ``note`` of a sourced entry.

    ``source`` is a string or a list of strings; grades R/C/S/U need at least one
    ``http(s)://`` address; D and A need a ``note`` (the arithmetic / the rationale).
    Returns ``(source, grade, note)`` with a list of sources joined by ``" ; "``.
    """

    def at(key: str) -> str:
        return f"{field}.{key}" if field else key

    if "grade" not in entry:
        fail(path, at("grade"), f"missing evidence grade; allowed: {', '.join(GRADES)}")
    grade = entry["grade"]
    if grade not in GRADES:
        fail(
            path,
            at("grade"),
            f"unknown grade {grade!r}; allowed: "
            + ", ".join(f"{g} ({d.split(' (')[0]})" for g, d in GRADES.items()),
        )
    if "source" not in entry:
        fail(path, at("source"), "missing source (a URL, or for grades D/A a reference)")
    src = entry["source"]
    items = src if isinstance(src, list) else [src]
    if not items or not all(isinstance(s, str) and s.strip() for s in items):
        fail(path, at("source"), f"expected a non-empty string or list of strings: {src!r}")
    if grade in ("R", "C", "S", "U") and not any(
        s.strip().startswith(("http://", "https://")) for s in items
    ):
        fail(path, at("source"), f"grade {grade} needs an http(s):// address, got {src!r}")
    note = entry.get("note", "")
    if not isinstance(note, str):
        fail(path, at("note"), f"expected a string, got {note!r}")
    if grade in ("D", "A") and not note.strip():
        what = "the arithmetic" if grade == "D" else "the rationale"
        fail(path, at("note"), f"grade {grade} needs a note stating {what}")
    return " ; ".join(s.strip() for s in items), grade, note.strip()


def quantity(path, entry, field: str, dimension: str | None = None, extra=()) -> Quantity:
    """Validate a sourced-number inline table and convert its value to SI.

    ``dimension`` defaults to :func:`~hardware_db.units.dimension_of` the last component
    of ``field``. NaN is always rejected; infinity only where the caller allows it (see
    :func:`check_range`). ``extra`` names further allowed keys.
    """
    dim = dimension or dimension_of(field.rsplit(".", 1)[-1])
    if not isinstance(entry, dict):
        fail(
            path,
            field,
            f"expected an inline table {{ value = ..., source = ..., grade = ... }}, got {entry!r}",
        )
    check_keys(path, entry, field, tuple(ENTRY_KEYS) + tuple(extra), required=("value",))
    raw = entry["value"]
    try:
        x = to_si(raw, dim)
    except UnitError as e:
        fail(path, f"{field}.value", str(e))
    if math.isnan(x):
        fail(path, f"{field}.value", f"{raw!r} is NaN; expected a finite {DIMENSIONS[dim]}")
    src, grade, note = provenance(path, entry, field)
    return Quantity(x, str(raw), dim, src, grade, note)


def check_range(
    path,
    field: str,
    q: Quantity,
    lo: float = 0.0,
    lo_open: bool = False,
    hi: float = math.inf,
    hi_open: bool = False,
    allow_inf: bool = False,
    integer: bool = False,
    why: str = "",
    inline: bool = True,
):
    """Reject ``q.value`` outside ``[lo|(lo, hi)|hi]``, infinite, or non-integer counts.

    The error names ``<field>.value`` for inline tables, ``<field>`` for plain numbers
    (``inline=False``).
    """
    x = q.value
    lo_s = "<" if lo_open else "≤"
    hi_s = "<" if hi_open else "≤"
    span = f"{human(lo, q.dimension)} {lo_s} x"
    if math.isfinite(hi):
        span += f" {hi_s} {human(hi, q.dimension)}"
    if allow_inf:
        span += " (or inf)"
    if math.isnan(x):
        fail(path, f"{field}.value" if inline else field, f"{q.text!r} is NaN; allowed: {span}")
    bad = (
        (math.isinf(x) and not allow_inf)
        or x < lo
        or (lo_open and x == lo)
        or (math.isfinite(x) and (x > hi or (hi_open and x == hi)))
        or (integer and math.isfinite(x) and x != int(x))
    )
    if bad:
        kind = "an integer " if integer else ""
        msg = f"{q.text!r} = {human(x, q.dimension)} is not allowed; allowed: {kind}{span}"
        if why:
            msg += f" ({why})"
        fail(path, f"{field}.value" if inline else field, msg)
