"""Addressing spec fields by path: ``system.tiers.nvlink.hop_latency_s``, ``model.n_experts``.

A *path* names one float leaf of the records a decode step reads (:class:`Records`):

==============================================  ==========================================
``model.<field>``                               :class:`~costmodel.specs.ModelSpec`
``precision.<field>``                           :class:`~costmodel.specs.Precision`
``system.max_chips``                            chip budget of the system
``system.chip.<field>``                         :class:`~costmodel.specs.ChipSpec`
``system.tiers.<name or index>.<field>``        :class:`~costmodel.specs.TierSpec` (numbers)
``workload.<field>``                            :class:`~costmodel.specs.Workload`
``mode.<field>``                                :class:`~costmodel.specs.Efficiency`
``latency_scale``                               multiplies every tier's α and overhead
==============================================  ==========================================

Shortcuts: ``chip.X`` = ``system.chip.X``; ``tiers.N.X`` = ``system.tiers.N.X``; ``batch``,
``context``, ``mtp`` (``mtp_depth``), ``acceptance``, ``overlap``, ``imbalance`` are the
:class:`~costmodel.specs.Workload` fields. Tiers are addressed by their ``name`` (e.g.
``nvlink``, ``scale-out``) or by position (``0`` is the innermost).

:func:`set_path` works on host records and inside ``jit``/``vmap`` (the value may be a
tracer); it returns new records and never mutates.
"""

from __future__ import annotations

import difflib
import math
from typing import NamedTuple

from costmodel.specs import (
    ChipSpec,
    Efficiency,
    ModelSpec,
    Precision,
    SystemSpec,
    Workload,
)
from search.errors import UserError, check_number


class Records(NamedTuple):
    """The five records one decode step reads besides the parallel split."""

    model: ModelSpec
    precision: Precision
    system: SystemSpec
    workload: Workload
    mode: Efficiency


SHORTCUTS = {
    "batch": "workload.batch",
    "context": "workload.context_tokens",
    "context_tokens": "workload.context_tokens",
    "mtp": "workload.mtp_depth",
    "mtp_depth": "workload.mtp_depth",
    "acceptance": "workload.acceptance_rate",
    "acceptance_rate": "workload.acceptance_rate",
    "overlap": "workload.overlap",
    "imbalance": "workload.moe_imbalance",
    "moe_imbalance": "workload.moe_imbalance",
}
"""Short axis names → canonical paths."""

LATENCY_SCALE = "latency_scale"
"""Virtual path: multiply every tier's ``hop_latency_s`` and ``overhead_s``."""

_RECORD_TYPES = {
    "model": ModelSpec,
    "precision": Precision,
    "workload": Workload,
    "mode": Efficiency,
}
_TIER_FIELDS = (
    "hop_latency_s",
    "overhead_s",
    "bw_bytes_per_s",
    "domain_chips",
    "energy_j_per_byte",
)


def _fields(cls) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)


def records_of(sc) -> Records:
    """The :class:`Records` of a :class:`~search.scenario.Scenario` (or Records itself)."""
    if isinstance(sc, Records):
        return sc
    return Records(sc.model, sc.precision, sc.system, sc.workload, sc.mode)


def all_paths(rec: Records) -> list[str]:
    """Every canonical path of ``rec`` (tiers by name), plus ``latency_scale``."""
    out = [f"{root}.{f}" for root, cls in _RECORD_TYPES.items() for f in _fields(cls)]
    out.append("system.max_chips")
    out += [f"system.chip.{f}" for f in _fields(ChipSpec)]
    for t in rec.system.tiers:
        out += [f"system.tiers.{t.name}.{f}" for f in _TIER_FIELDS]
    out.append(LATENCY_SCALE)
    return out


def _suggest(name: str, choices) -> str:
    near = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not near:
        tail = name.rsplit(".", 1)[-1]
        near = [c for c in choices if c.rsplit(".", 1)[-1] == tail][:3]
    return f"; did you mean {', '.join(near)}?" if near else ""


def _tier_index(system: SystemSpec, key: str) -> int:
    names = [t.name for t in system.tiers]
    if key in names:
        return names.index(key)
    if key.isdigit() and int(key) < len(names):
        return int(key)
    raise KeyError(key)


def resolve_path(rec: Records, name: str) -> str:
    """Canonical path for ``name`` (shortcuts expanded, tier index → tier name).

    Raises:
      UserError: unknown path, with up to three close names.
    """
    name = name.strip()
    if name == LATENCY_SCALE:
        return name
    path = SHORTCUTS.get(name, name)
    if path.startswith("chip."):
        path = "system." + path
    elif path.startswith("tiers."):
        path = "system." + path
    parts = path.split(".")
    ok = False
    if len(parts) == 2 and parts[0] in _RECORD_TYPES:
        ok = parts[1] in _fields(_RECORD_TYPES[parts[0]])
    elif parts == ["system", "max_chips"]:
        ok = True
    elif len(parts) == 3 and parts[:2] == ["system", "chip"]:
        ok = parts[2] in _fields(ChipSpec)
    elif len(parts) == 4 and parts[:2] == ["system", "tiers"]:
        try:
            i = _tier_index(rec.system, parts[2])
        except KeyError:
            ok = False
        else:
            parts[2] = rec.system.tiers[i].name
            ok = parts[3] in _TIER_FIELDS
    if not ok:
        raise UserError(f"unknown axis path {name!r}{_suggest(path, all_paths(rec))}")
    return ".".join(parts)


def get_path(obj, path: str):
    """The value at ``path`` (canonical or shortcut) of a Scenario or :class:`Records`."""
    rec = records_of(obj)
    if path == LATENCY_SCALE:
        return 1.0
    path = resolve_path(rec, path)
    parts = path.split(".")
    if parts[0] != "system":
        return getattr(getattr(rec, parts[0]), parts[1])
    if parts[1] == "max_chips":
        return rec.system.max_chips
    if parts[1] == "chip":
        return getattr(rec.system.chip, parts[2])
    return getattr(rec.system.tiers[_tier_index(rec.system, parts[2])], parts[3])


def set_system_path(system: SystemSpec, path: str, value, arg: str = "knob") -> SystemSpec:
    """A copy of ``system`` with the leaf at ``path`` set to ``value`` (traceable).

    ``path`` is relative to the system: ``max_chips``, ``chip.<field>``,
    ``tiers.<tier name>.<field>``, or ``tiers.*.<field>`` (the same value on every
    inter-chip tier, the die tier excepted). A bad path is a one-line :class:`UserError`
    naming ``arg``. :func:`set_path` uses it for every ``system.`` path.
    """
    parts = path.split(".")
    if parts == ["max_chips"]:
        return system.replace(max_chips=value)
    if parts[0] == "chip" and len(parts) == 2:
        if parts[1] not in system.chip.__dataclass_fields__:
            raise UserError(f"{arg} {path!r}: no chip field {parts[1]!r}", arg=arg)
        return system.replace(chip=system.chip.replace(**{parts[1]: value}))
    if parts[0] == "tiers" and len(parts) == 3:
        names = [t.name for t in system.tiers]
        if parts[1] != "*" and parts[1] not in names:
            raise UserError(
                f"{arg} {path!r}: no tier {parts[1]!r}; tiers are {', '.join(names)}", arg=arg
            )
        if parts[2] not in system.tiers[0].__dataclass_fields__ or parts[2] in ("name", "topology"):
            raise UserError(f"{arg} {path!r}: no tier field {parts[2]!r}", arg=arg)
        tiers = tuple(
            t.replace(**{parts[2]: value})
            if (parts[1] == t.name or (parts[1] == "*" and t.name != "die"))
            else t
            for t in system.tiers
        )
        return system.replace(tiers=tiers)
    raise UserError(f"{arg} {path!r}: expected chip.<field> or tiers.<tier>.<field>", arg=arg)


def scale_system(system: SystemSpec, knob: str, factor, tier: str | None = None) -> SystemSpec:
    """A copy of ``system`` with ``knob`` of every tier (or only the tier named ``tier``)
    multiplied by ``factor`` (traceable): the one multi-leaf setter.

    ``latency`` multiplies ``hop_latency_s`` and ``overhead_s`` (the die tier too, unless
    ``tier`` names one); ``bandwidth`` multiplies ``bw_bytes_per_s``. The path
    ``latency_scale`` of :func:`set_path` is ``scale_system(system, "latency", value)``.
    """
    tiers = []
    for t in system.tiers:
        if tier is not None and t.name != tier:
            tiers.append(t)
        elif knob == "latency":
            tiers.append(
                t.replace(hop_latency_s=t.hop_latency_s * factor, overhead_s=t.overhead_s * factor)
            )
        elif knob == "bandwidth":
            tiers.append(t.replace(bw_bytes_per_s=t.bw_bytes_per_s * factor))
        else:
            raise ValueError(f"unknown knob {knob!r}; allowed latency, bandwidth")
    return system.replace(tiers=tuple(tiers))


def set_path(obj, path: str, value):
    """A copy of ``obj`` (Scenario or :class:`Records`) with the leaf at ``path`` set.

    Works under ``jit``/``vmap`` (``value`` may be traced). ``latency_scale`` multiplies
    every tier's latency and overhead by ``value``.

    >>> from costmodel.specs import TierSpec
    >>> r = Records(ModelSpec(1.0, 8.0, 10.0), Precision(),
    ...             SystemSpec(ChipSpec(1e12), (TierSpec(1e-6, 0.0, 1e9, 8.0, name="nv"),)),
    ...             Workload(), Efficiency())
    >>> set_path(r, "tiers.nv.hop_latency_s", 5e-7).system.tiers[0].hop_latency_s
    5e-07
    >>> set_path(r, "batch", 8.0).workload.batch
    8.0
    """
    rec = records_of(obj)
    if path == LATENCY_SCALE:
        new = rec._replace(system=scale_system(rec.system, "latency", value))
    else:
        path = resolve_path(rec, path)
        parts = path.split(".")
        if parts[0] == "system":
            new = rec._replace(system=set_system_path(rec.system, ".".join(parts[1:]), value))
        else:
            field = getattr(rec, parts[0]).replace(**{parts[1]: value})
            new = rec._replace(**{parts[0]: field})
    if isinstance(obj, Records):
        return new
    return obj.replace(**new._asdict())


# --------------------------------------------------------------------------- values

_RANGES = {
    "workload.batch": (1.0, 1e9, True),
    "workload.context_tokens": (1.0, 1e9, True),
    "workload.mtp_depth": (0.0, 16.0, True),
    "workload.acceptance_rate": (0.0, 1.0, False),
    "workload.overlap": (0.0, 1.0, False),
    "workload.moe_imbalance": (1.0, 100.0, False),
    "mode.mem_efficiency": (1e-6, 1.0, False),
    "mode.compute_efficiency": (1e-6, 1.0, False),
    "mode.link_efficiency": (1e-6, 1.0, False),
    "system.max_chips": (1.0, math.inf, True),
    LATENCY_SCALE: (1e-12, 1e12, False),
}


def check_value(path: str, value: float, arg: str = "axis") -> float:
    """Validate one value for the field at ``path`` (finite, ≥ 0, field-specific ranges
    from :data:`_RANGES`) with :func:`search.errors.check_number`; errors start
    ``"<arg> <path>=<value>"``."""
    lo, hi, integer = _RANGES.get(path, (0.0, math.inf, False))
    allow_inf = path == "system.max_chips" or path.endswith(".domain_chips")
    return check_number(
        f"{arg} {path}", value, lo, hi, integer=integer, allow_inf=allow_inf, sep="="
    )


def parse_quantity(text: str, path: str, arg: str = "axis") -> float:
    """A number, or a quantity with a unit fitting the field (``"150 ns"``, ``"1.8 TB/s"``)."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    from hardware_db.units import UnitError, dimension_of, to_si

    field = path.rsplit(".", 1)[-1]
    try:
        return to_si(s, dimension_of(field))
    except UnitError as e:
        raise UserError(f"{arg} {path}: {s!r} is not a number ({e})", arg=arg) from None


def parse_values(text: str, path: str, arg: str = "axis") -> list[float]:
    """Values of an axis: ``v1,v2,...`` or a range ``lo:hi:n`` (linear, both ends
    included) or ``lo:hi:n:log`` (geometric; integer fields such as the batch are
    rounded, repeats dropped). Each value is checked with :func:`check_value`; the list
    is non-empty."""
    s = text.strip()
    if not s:
        raise UserError(f"{arg} {path}=: empty list of values", arg=arg)
    if ":" in s:
        parts = s.split(":")
        log = parts[-1].strip().lower() == "log"
        if log:
            parts = parts[:-1]
        if len(parts) != 3:
            raise UserError(f"{arg} {path}={s}: a range is lo:hi:n or lo:hi:n:log", arg=arg)
        lo, hi = (parse_quantity(p, path, arg) for p in parts[:2])
        try:
            n = int(parts[2])
        except ValueError:
            raise UserError(f"{arg} {path}={s}: n must be an integer ≥ 1", arg=arg) from None
        if not 1 <= n <= 10_000_000:
            raise UserError(f"{arg} {path}={s}: n must be in [1, 10000000]", arg=arg)
        if log and (lo <= 0 or hi <= 0):
            raise UserError(f"{arg} {path}={s}: a log range needs lo, hi > 0", arg=arg)
        if n == 1:
            vals = [lo]
        elif log:
            r = math.log(hi / lo)
            vals = [lo * math.exp(r * i / (n - 1)) for i in range(n)]
        else:
            vals = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        if _RANGES.get(path, (0, 0, False))[2]:  # integer field: round, drop repeats
            vals = list(dict.fromkeys(float(round(v)) for v in vals))
    else:
        items = [x for x in s.split(",")]
        if any(not x.strip() for x in items):
            raise UserError(f"{arg} {path}={s}: empty value in the list", arg=arg)
        vals = [parse_quantity(x, path, arg) for x in items]
    return [check_value(path, v, arg) for v in vals]


__all__ = [
    "LATENCY_SCALE",
    "Records",
    "SHORTCUTS",
    "all_paths",
    "check_value",
    "get_path",
    "parse_quantity",
    "parse_values",
    "records_of",
    "resolve_path",
    "set_path",
    "set_system_path",
]
