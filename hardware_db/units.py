"""Unit strings to SI floats: ``"3.35 TB/s"`` → ``3.35e12`` (bytes/s), converted once here.

A quantity is a number followed by a unit, e.g. ``"989.4 TFLOP/s"``, ``"80 GB"``,
``"1.5 us"``. Every field of a record has a *dimension* (:func:`dimension_of`, from the
SI suffix of its name) and a unit string must belong to it: ``"3 GB"`` for a bandwidth is
an error, not a silent conversion.

Conventions:

* Decimal prefixes are powers of 1000 (``kB`` = ``KB`` = 1e3 B; ``TB/s`` = 1e12 B/s);
  binary prefixes are powers of 1024 (``KiB``, ``MiB``, ``GiB``, ``TiB``, ``PiB``).
* Upper-case ``B`` is a byte, lower-case ``b`` or ``bit`` a bit: ``Gb/s`` and ``Gbps`` are
  bits per second and are divided by 8 (a NIC's "400 Gb/s" is 50e9 bytes/s per direction).
* FLOP/s may be written ``TFLOP/s``, ``TFLOPS`` or ``TFLOPs``; integer peaks ``TOPS`` /
  ``TOP/s`` are treated as operations per second on the same scale.
* Energies per bit are converted to energies per byte (× 8): ``"4 pJ/bit"`` → 32e-12 J/B.
* Counts and plain ratios are bare numbers (TOML integers or floats).
* ``"inf"`` is accepted by the parser; whether a field may be infinite is decided by the
  validator (:mod:`hardware_db.validate`).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

DIMENSIONS = {
    "bytes": "capacity (bytes)",
    "bytes_per_s": "bandwidth (bytes/s)",
    "flops_per_s": "compute rate (FLOP/s)",
    "s": "time (seconds)",
    "w": "power (watts)",
    "j_per_byte": "energy per byte (J/B)",
    "j_per_flop": "energy per FLOP (J/FLOP)",
    "count": "count (plain number)",
    "ratio": "plain number",
}
"""Dimension key → human description used in error messages."""

_F = Fraction
_DECIMAL = {"": _F(1), "k": _F(10**3), "K": _F(10**3), "M": _F(10**6), "G": _F(10**9)}
_DECIMAL.update({"T": _F(10**12), "P": _F(10**15), "E": _F(10**18)})
_BINARY = {"Ki": _F(2**10), "Mi": _F(2**20), "Gi": _F(2**30), "Ti": _F(2**40), "Pi": _F(2**50)}
_MILLI, _MICRO, _NANO, _PICO, _FEMTO = (_F(1, 10**k) for k in (3, 6, 9, 12, 15))
_ENERGY = {"": _F(1), "m": _MILLI, "u": _MICRO, "µ": _MICRO, "μ": _MICRO, "n": _NANO}
_ENERGY.update({"p": _PICO, "f": _FEMTO})


def _build_table() -> dict[str, tuple[str, Fraction]]:
    """Every accepted unit string → (dimension, exact SI factor)."""
    t: dict[str, tuple[str, Fraction]] = {}
    for p, f in _DECIMAL.items():
        if p != "E":
            t[f"{p}B"] = ("bytes", f)
            t[f"{p}B/s"] = ("bytes_per_s", f)
            t[f"{p}b/s"] = ("bytes_per_s", f / 8)
            t[f"{p}bit/s"] = ("bytes_per_s", f / 8)
            t[f"{p}bps"] = ("bytes_per_s", f / 8)
        for spelling in ("FLOP/s", "FLOPS", "FLOPs", "OP/s", "OPS"):
            t[f"{p}{spelling}"] = ("flops_per_s", f)
        if p in ("", "k", "M", "G"):
            t[f"{p}W"] = ("w", f)
    for p, f in _BINARY.items():
        t[f"{p}B"] = ("bytes", f)
        t[f"{p}B/s"] = ("bytes_per_s", f)
    for p, f in _ENERGY.items():
        t[f"{p}J/B"] = ("j_per_byte", f)
        t[f"{p}J/byte"] = ("j_per_byte", f)
        t[f"{p}J/bit"] = ("j_per_byte", f * 8)
        t[f"{p}J/b"] = ("j_per_byte", f * 8)
        t[f"{p}J/FLOP"] = ("j_per_flop", f)
        t[f"{p}J/OP"] = ("j_per_flop", f)
    t.update(
        {
            "s": ("s", _F(1)),
            "ms": ("s", _MILLI),
            "us": ("s", _MICRO),
            "µs": ("s", _MICRO),  # micro sign U+00B5
            "μs": ("s", _MICRO),  # Greek mu U+03BC
            "ns": ("s", _NANO),
            "ps": ("s", _PICO),
        }
    )
    return t


UNITS: dict[str, tuple[str, Fraction]] = _build_table()
"""Accepted unit string → ``(dimension, exact factor to SI)``. Case-sensitive (``MB`` ≠ ``Mb``).
Conversion is exact (rational) before the final rounding, so ``"100 ns"`` is ``1e-07``."""

EXAMPLES = {
    "bytes": "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB",
    "bytes_per_s": "B/s, KB/s, MB/s, GB/s, TB/s, PB/s, Gb/s, Tb/s",
    "flops_per_s": "FLOP/s, GFLOP/s, TFLOP/s, PFLOP/s, TFLOPS",
    "s": "s, ms, us, µs, ns",
    "w": "W, kW",
    "j_per_byte": "pJ/B, pJ/byte, pJ/bit",
    "j_per_flop": "pJ/FLOP, fJ/FLOP",
    "count": "a plain number, e.g. 72",
    "ratio": "a plain number, e.g. 0.5625",
}
"""Short list of allowed units per dimension, for error messages."""

_NUMBER = re.compile(
    r"^\s*(?P<num>[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan))"
    r"\s*(?P<unit>.*?)\s*$",
    re.IGNORECASE,
)


class UnitError(ValueError):
    """A quantity string that cannot be read, or whose unit does not fit the field."""


def dimension_of(field: str) -> str:
    """The dimension of a record field, from the SI suffix of its name.

    ``*_bytes_per_s`` bandwidth, ``*_bytes`` capacity (or bytes per element),
    ``*flops_per_s*`` compute rate, ``*_j_per_byte`` / ``*_j_per_flop`` energies,
    ``*_w`` power, ``*_s`` time, ``*_chips`` / ``*_tokens`` counts; anything else is a
    plain number.
    """
    if field.endswith("_bytes_per_s"):
        return "bytes_per_s"
    if "flops_per_s" in field:
        return "flops_per_s"
    if field.endswith("_j_per_byte"):
        return "j_per_byte"
    if field.endswith("_j_per_flop"):
        return "j_per_flop"
    if field.endswith("_bytes"):
        return "bytes"
    if field.endswith("_w"):
        return "w"
    if field.endswith("_s"):
        return "s"
    if field.endswith(("_chips", "_tokens")):
        return "count"
    return "ratio"


def to_si(value, dimension: str) -> float:
    """Convert a TOML value (``"3.35 TB/s"``, ``72``, ``0``, ``"inf"``) to an SI float.

    Bare numbers are accepted for ``count`` and ``ratio`` dimensions, and the bare number
    ``0`` for every dimension (zero needs no unit: "unsupported" / "not modelled").

    Raises:
      UnitError: unparseable text, an unknown unit, or a unit of another dimension; the
        message names the expected dimension and the allowed units.
    """
    if dimension not in DIMENSIONS:
        raise UnitError(f"unknown dimension {dimension!r}")
    want = DIMENSIONS[dimension]
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is a boolean; expected a {want}")
    if isinstance(value, int | float):
        x = float(value)
        if dimension in ("count", "ratio") or x == 0.0 or math.isinf(x) or math.isnan(x):
            return x
        raise UnitError(
            f"bare number {value!r} has no unit; expected a {want} with a unit "
            f"({EXAMPLES[dimension]}), e.g. '{value} {EXAMPLES[dimension].split(',')[0]}'"
        )
    if not isinstance(value, str):
        raise UnitError(f"{value!r} is a {type(value).__name__}; expected a {want}")
    m = _NUMBER.match(value)
    if not m:
        raise UnitError(f"cannot read {value!r} as a number with a unit; expected a {want}")
    x = float(m["num"])
    unit = m["unit"]
    exact = Fraction(m["num"]) if math.isfinite(x) else None
    if unit == "":
        if dimension in ("count", "ratio") or x == 0.0 or math.isinf(x) or math.isnan(x):
            return x
        raise UnitError(
            f"{value!r} has no unit; expected a {want} with a unit ({EXAMPLES[dimension]})"
        )
    if unit not in UNITS:
        hint = _case_hint(unit)
        raise UnitError(
            f"unknown unit {unit!r} in {value!r}{hint}; expected a {want} ({EXAMPLES[dimension]})"
        )
    dim, factor = UNITS[unit]
    if dim != dimension:
        raise UnitError(
            f"unit {unit!r} in {value!r} is a {DIMENSIONS[dim]}, not a {want}; "
            f"allowed units: {EXAMPLES[dimension]}"
        )
    return float(exact * factor) if exact is not None else x


def _case_hint(unit: str) -> str:
    """Suggest a unit that differs only in letter case (``tb/s`` → ``TB/s or Tb/s``)."""
    near = sorted(u for u in UNITS if u.lower() == unit.lower())
    return f" (did you mean {' or '.join(near)}?)" if near else ""


def si_unit(dimension: str) -> str:
    """The SI unit symbol a dimension is stored in (for display)."""
    return {
        "bytes": "B",
        "bytes_per_s": "B/s",
        "flops_per_s": "FLOP/s",
        "s": "s",
        "w": "W",
        "j_per_byte": "J/B",
        "j_per_flop": "J/FLOP",
        "count": "",
        "ratio": "",
    }[dimension]


def human(x: float, dimension: str) -> str:
    """Format an SI value with a readable prefix: ``3.35e12, 'bytes_per_s'`` → ``3.35 TB/s``."""
    if math.isinf(x) or math.isnan(x):
        return str(x)
    unit = si_unit(dimension)
    if dimension in ("count", "ratio"):
        return f"{x:g}"
    if x == 0:
        return f"0 {unit}"
    if dimension in ("s", "j_per_byte", "j_per_flop"):
        for f, p in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
            if abs(x) >= f:
                return f"{x / f:.4g} {p}{unit}"
        return f"{x:.4g} {unit}"
    for f, p in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= f:
            return f"{x / f:.4g} {p}{unit}"
    return f"{x:.4g} {unit}"
