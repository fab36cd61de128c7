r"""A declarative search space: discrete axes crossed with the valid parallel splits.

A :class:`Space` is a scenario (model, system, precision, workload) plus

* **degree axes** — allowed values of ``attn_tp`` (``tp``), ``attn_dp`` (``dp``), ``kvp``,
  ``ep``, ``moe_tp``, ``pp``; unlisted degrees take every value the model admits
  (:mod:`search.splits`);
* **chips** — exact chip counts ``attn_tp·kvp·attn_dp·pp`` to keep, and the chip budget
  ``chips_max``;
* **path axes** — any spec field as a list of values (:mod:`search.paths`):
  ``batch``, ``mtp``, ``context``, ``system.tiers.nvlink.hop_latency_s``,
  ``chip.hbm_bw_bytes_per_s``, ``model.n_experts``, ``precision.kv_bytes``,
  ``latency_scale``, ...;
* **choices** — several models and/or systems by name;
* **constraints** — capacity and the model's own rules (inside the cost model, per
  candidate), optional ``min_system_tps`` and ``min_utps``;
* **layout** — how the FFN uses the chips of a stage (:data:`search.splits.LAYOUTS`):
  ``"helix"`` (default; ``ep·moe_tp = attn_tp·kvp·attn_dp``, Helix, arXiv 2507.07120
  §2.2), ``"shared"`` (Medha-style KV parallelism: attention and FFN on one shared layout,
  ``ep·moe_tp = attn_tp·attn_dp``, the FFN replicated over the ``kvp`` ranks; Medha, arXiv
  2409.17264 §3.3, the "vanilla KVP" of Helix's baseline, §3.2) or ``"any"`` (both).

:meth:`Space.subgrids` turns it into one or more :class:`SubGrid`\ s: a table of valid
splits (enumerated on the host, the Calculon pattern) crossed in index space with the
other axes. Models always stack (every field is a float leaf); systems stack when their
tier structure (count, names, topologies) matches, otherwise each structure is its own
sub-grid and the engine merges the results.

Candidate ``i`` of a sub-grid of shape ``(n_1, …, n_k, n_split)`` has the mixed-radix
digits ``unravel_index(i, shape)``: the outermost axis first, the split innermost.
:func:`candidate_records` builds the records of one candidate from those digits' values
and works inside ``jit``/``vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.specs import Parallelism, stack
from search.errors import UserError, check_number
from search.paths import (
    LATENCY_SCALE,
    Records,
    check_value,
    parse_values,
    records_of,
    resolve_path,
    set_path,
)
from search.scenario import Scenario, scenario
from search.splits import (
    DEGREE_ALIASES,
    DEGREES,
    check_layout,
    degree_values,
    families,
    sort_splits,
    split_chips,
    valid_splits,
)

CHOICES = ("model", "system")
"""Axis names whose values are names of database records (stacked, indexed)."""

MAX_GROUPS = 1 << 16
"""Most (batch, chips, composition) groups tracked for the Pareto fronts."""

MAX_MODEL_VARIANTS = 4096
"""Most model variants (model choices × model-path axis values) enumerated for splits."""


@dataclass(frozen=True)
class Axis:
    """One axis of a sub-grid: a canonical path (or ``model``/``system``) and its values.

    ``labels`` name the values of choice axes (the record names); ``None`` otherwise.
    """

    name: str
    values: tuple[float, ...]
    labels: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class SubGrid:
    """One compiled unit of a search: fixed record structure, a split table, axes.

    Attributes:
      base: records (host floats) every candidate starts from.
      choices: stacked records per choice axis: ``"model"`` → ``(ModelSpec, Precision)``
        with a leading axis, ``"system"`` → ``SystemSpec`` with a leading axis.
      axes: the axes other than the split, outermost first (choice axes first).
      splits: ``[n_split, 6]`` valid splits (columns :data:`search.splits.DEGREES`).
      group: ``[n_split]`` composition group of each split (chips × family), for fronts.
      group_labels: ``(chips, family)`` of each group.
      batch_axis: position of the batch axis in ``axes`` (or None).
      names: ``(model, system)`` names of ``base`` (choice axes carry their own labels).
    """

    base: Records
    choices: Mapping
    axes: tuple[Axis, ...]
    splits: np.ndarray
    group: np.ndarray
    group_labels: tuple[tuple[int, str], ...]
    batch_axis: int | None = None
    names: tuple[str, str] = ("model", "system")

    @property
    def shape(self) -> tuple[int, ...]:
        """Mixed radices, outermost first; the split is the last (innermost) digit."""
        return tuple(len(a) for a in self.axes) + (len(self.splits),)

    @property
    def size(self) -> int:
        """Number of candidates (a Python int: may exceed 2^63 only in theory)."""
        return math.prod(self.shape)

    @property
    def n_groups(self) -> int:
        """Groups for the fronts: composition groups × batch values."""
        nb = len(self.axes[self.batch_axis]) if self.batch_axis is not None else 1
        return len(self.group_labels) * nb

    def decode(self, index: int) -> dict:
        """Axis values and split of candidate ``index`` (host, exact for any size)."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        digits = unravel(index, self.shape)
        out = {}
        for a, d in zip(self.axes, digits[:-1], strict=True):
            out[a.name] = a.labels[d] if a.labels else a.values[d]
        out.update(zip(DEGREES, (int(x) for x in self.splits[digits[-1]]), strict=True))
        return out


def unravel(index: int, shape: Sequence[int]) -> list[int]:
    """Mixed-radix digits of ``index`` (Python ints: no overflow), outermost first."""
    out = []
    for r in reversed(shape):
        index, d = divmod(index, r)
        out.append(d)
    return out[::-1]


def ravel(digits: Sequence[int], shape: Sequence[int]) -> int:
    """Inverse of :func:`unravel`."""
    i = 0
    for d, r in zip(digits, shape, strict=True):
        i = i * r + int(d)
    return i


# --------------------------------------------------------------------------- records


def choose(stacked, i):
    """Row ``i`` (an integer scalar, possibly traced) of a stacked record pytree."""
    return jax.tree.map(lambda x: jnp.asarray(x)[i], stacked)


def candidate_records(
    base: Records,
    degrees,
    values: Mapping[str, object] | None = None,
    choices: Mapping | None = None,
) -> tuple[Records, Parallelism]:
    """The records of one candidate (works inside ``jit``/``vmap``).

    Args:
      base: records every candidate starts from (``records_of(scenario)``).
      degrees: ``[6]`` array in :data:`~search.splits.DEGREES` order, or a
        :class:`~costmodel.specs.Parallelism`.
      values: ``{path: value}``; ``"model"``/``"system"`` values are indices into
        ``choices`` and are applied first, then the paths in the given order.
      choices: stacked records for the choice axes (see :class:`SubGrid`).

    Returns:
      ``(records, parallelism)``, ready for
      ``decode_step(*records[:4], parallelism, records.workload, records.mode)``.
    """
    values = dict(values or {})
    rec = records_of(base)
    for name in CHOICES:
        if name in values:
            i = jnp.asarray(values.pop(name)).astype(jnp.int32)
            picked = choose(choices[name], i)
            if name == "model":
                rec = rec._replace(model=picked[0], precision=picked[1])
            else:
                rec = rec._replace(system=picked)
    for path, v in values.items():
        rec = set_path(rec, path, v)
    if isinstance(degrees, Parallelism):
        par = degrees
    else:
        par = Parallelism(*(degrees[c] for c in range(6)))
    return rec, par


def cast_records(tree, dtype):
    """Every float leaf of a record pytree as a NumPy ``dtype`` value.

    NumPy (not ``jnp``) leaves stay concrete inside ``jit``: the cost model then skips
    terms whose count is a concrete zero (absent layer classes, the draft model without
    speculation) and XLA folds everything that depends only on them.
    """
    return jax.tree.map(lambda x: np.asarray(x, dtype)[()], tree)


# --------------------------------------------------------------------------- space


def _structure(system) -> tuple:
    return tuple((t.name, t.topology) for t in system.tiers)


@dataclass(frozen=True)
class Space:
    """A declarative search space (see the module docstring).

    Build it with :func:`make_space` (names resolved from the database) or directly
    from :class:`~search.scenario.Scenario` objects.

    Attributes:
      scenarios: one per (model, system) choice; all share the workload and mode.
      axes: ``(path, values)`` pairs, outermost first (paths canonical or shortcuts).
      degrees: allowed values per degree (others: all the model admits).
      chips: exact chip counts to keep (None: all within the budget).
      chips_max: chip budget (None: each system's own ``max_chips``).
      min_system_tps: reject candidates with fewer system tokens/s.
      min_utps: reject candidates with fewer tokens/s per user.
      layout: which FFN layouts the split tables hold (:data:`search.splits.LAYOUTS`).
    """

    scenarios: tuple[Scenario, ...]
    axes: tuple[tuple[str, tuple[float, ...]], ...] = ()
    degrees: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    chips: tuple[int, ...] | None = None
    chips_max: float | None = None
    min_system_tps: float | None = None
    min_utps: float | None = None
    layout: str = "helix"

    def __post_init__(self):
        if not self.scenarios:
            raise UserError("the space has no model/system")
        check_layout(self.layout)
        if self.chips_max is not None and not (float(self.chips_max) >= 1):
            raise UserError(f"chips_max {self.chips_max!r}: must be ≥ 1", arg="chips_max")
        for name, vals in self.axes:
            if len(vals) == 0:
                raise UserError(f"axis {name}: empty list of values", arg="axis")
        for arg in ("min_system_tps", "min_utps"):
            if getattr(self, arg) is not None:
                check_number(arg, getattr(self, arg), 0)

    @property
    def size(self) -> int:
        """Candidates over all sub-grids."""
        return sum(g.size for g in self.subgrids())

    def budget(self, sc: Scenario) -> float:
        """Chip budget for one scenario: ``min(chips_max, system.max_chips)``."""
        cap = float(sc.system.max_chips)
        if self.chips_max is not None:
            cap = min(cap, float(self.chips_max))
        if not math.isfinite(cap):
            raise UserError(
                f"system {sc.system_name} has no chip limit; give a budget with --chips-max N"
            )
        return cap

    def subgrids(self) -> list[SubGrid]:
        """The sub-grids: one per system structure (models and same-structure systems
        stacked as choice axes)."""
        return _subgrids(self)


def _resolved_axes(space: Space, rec: Records) -> list[tuple[str, tuple[float, ...]]]:
    out, seen = [], set()
    for name, vals in space.axes:
        path = resolve_path(rec, name)
        if path in seen:
            raise UserError(f"axis {name}: given twice", arg="axis")
        seen.add(path)
        out.append((path, tuple(check_value(path, float(v)) for v in vals)))
    return out


def _model_variants(models, axes) -> list:
    """Models × the values of model-path axes (for the union of split tables)."""
    variants = list(models)
    for path, vals in axes:
        if not path.startswith("model."):
            continue
        f = path.split(".", 1)[1]
        if len(variants) * len(vals) > MAX_MODEL_VARIANTS:
            raise UserError(
                f"axis {path}: too many model variants (> {MAX_MODEL_VARIANTS}) to enumerate "
                "valid splits; use fewer values",
                arg="axis",
            )
        variants = [m.replace(**{f: v}) for m in variants for v in vals]
    return variants


def _subgrids(space: Space) -> list[SubGrid]:
    scs = space.scenarios
    first = records_of(scs[0])
    axes = _resolved_axes(space, first)
    wl = scs[0].workload
    batch_vals = dict(axes).get("workload.batch", (float(wl.batch),))
    ctx_vals = dict(axes).get("workload.context_tokens", (float(wl.context_tokens),))
    models = {sc.model_name: (sc.model, sc.precision) for sc in scs}
    systems: dict[str, object] = {}
    for sc in scs:
        systems.setdefault(sc.system_name, sc)
    groups: dict[tuple, list[str]] = {}
    for name, sc in systems.items():
        groups.setdefault(_structure(sc.system), []).append(name)

    out = []
    for names in groups.values():
        sys_recs = [systems[n].system for n in names]
        budget = max(space.budget(systems[n]) for n in names)
        variants = _model_variants([m for m, _ in models.values()], axes)
        tables = [
            valid_splits(m, budget, batch_vals, ctx_vals, space.degrees, space.chips, space.layout)
            for m in variants
        ]
        splits = sort_splits(np.concatenate(tables)) if tables else np.zeros((0, 6))
        if len(splits) == 0:
            raise UserError(_no_splits_message(space, names, budget))
        base = records_of(systems[names[0]])
        base = base._replace(model=first.model, precision=first.precision)
        choices, sub_axes = {}, []
        if len(models) > 1:
            mlist = list(models.values())
            choices["model"] = (stack([m for m, _ in mlist]), stack([p for _, p in mlist]))
            sub_axes.append(Axis("model", tuple(range(len(mlist))), tuple(models)))
        if len(names) > 1:
            choices["system"] = stack(sys_recs)
            sub_axes.append(Axis("system", tuple(range(len(names))), tuple(names)))
        sub_axes += [Axis(path, tuple(vals)) for path, vals in axes]
        group, labels = _groups(splits)
        batch_axis = next((i for i, a in enumerate(sub_axes) if a.name == "workload.batch"), None)
        if batch_axis is not None and len(labels) * len(sub_axes[batch_axis]) > MAX_GROUPS:
            batch_axis = None
        names_ = (scs[0].model_name, names[0])
        out.append(
            SubGrid(base, choices, tuple(sub_axes), splits, group, labels, batch_axis, names_)
        )
    return out


def _groups(splits: np.ndarray):
    """Composition groups: distinct (chips, family) of the split rows."""
    chips = split_chips(splits).astype(np.int64)
    fams, fam_idx = families(splits)
    keys = sorted(set(zip(chips.tolist(), fam_idx.tolist(), strict=True)))
    pos = {k: i for i, k in enumerate(keys)}
    group = np.asarray([pos[k] for k in zip(chips.tolist(), fam_idx.tolist(), strict=True)])
    labels = tuple((c, fams[f]) for c, f in keys)
    return group.astype(np.int32), labels


def _no_splits_message(space: Space, systems, budget) -> str:
    restr = ", ".join(f"{k}={','.join(map(str, v))}" for k, v in space.degrees.items())
    extra = f" with {restr}" if restr else ""
    if space.chips:
        extra += f" and chips in {{{','.join(map(str, space.chips))}}}"
    rule = {
        "helix": "attn_tp·kvp·attn_dp = ep·moe_tp",
        "shared": "attn_tp·attn_dp = ep·moe_tp (layout shared)",
        "any": "ep·moe_tp = attn_tp·kvp·attn_dp or attn_tp·attn_dp (layout any)",
    }[space.layout]
    return (
        f"the space has zero valid splits for {', '.join(systems)} within {budget:g} chips"
        f"{extra} (degrees must divide heads/experts/layers and {rule})"
    )


# --------------------------------------------------------------------------- builder

_DEGREE_NAMES = set(DEGREES) | set(DEGREE_ALIASES)


def split_axes(items: Mapping[str, object] | Sequence[tuple[str, object]] | None):
    """Sort user axes into degrees, chips, choices and path axes.

    Values may be lists of numbers or strings (``"1,2,4"``, ``"lo:hi:n[:log]"``).
    Returns ``(degrees, chips, choices, paths)``.
    """
    if items is None:
        items = []
    if isinstance(items, Mapping):
        items = list(items.items())
    degrees, chips, choices, paths = {}, None, {}, []
    for name, vals in items:
        name = name.strip()
        if name in _DEGREE_NAMES:
            key = DEGREE_ALIASES.get(name, name)
            if key in degrees:
                raise UserError(f"axis {name}: given twice", arg="axis")
            degrees[key] = tuple(_degree_values(name, vals))
        elif name == "chips":
            chips = tuple(_degree_values(name, vals))
        elif name in CHOICES:
            lst = vals.split(",") if isinstance(vals, str) else list(vals)
            lst = [str(v).strip() for v in lst]
            if not lst or any(not v for v in lst):
                raise UserError(f"axis {name}: empty name in the list", arg="axis")
            choices[name] = lst
        else:
            paths.append((name, vals))
    return degrees, chips, choices, paths


def _degree_values(name: str, vals) -> list[int]:
    """An axis of degrees given as text (``"1,2,4"``, ``"1:64:7:log"``) or numbers."""
    if isinstance(vals, str):
        vals = parse_values(vals, name)
    return degree_values(name, vals)


def make_space(
    model: str | Sequence[str] = "kimi-k2.5",
    system: str | Sequence[str] = "gb200-nvl72",
    axes: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
    chips_max: float | None = None,
    min_system_tps: float | None = None,
    min_utps: float | None = None,
    layout: str = "helix",
    **scenario_kw,
) -> Space:
    """A :class:`Space` from database names.

    *Length:* Mostly argument documentation and the routing of each axis kind to its
    checker.

    Args:
      model, system: a name or a list of names (choices; also ``axes={"model": [...]}``).
      axes: ``{name: values}`` or ``[(name, values), ...]``: degrees (``tp``, ``ep``, ...),
        ``chips``, choices, or paths (values: numbers or ``"v1,v2"``/``"lo:hi:n[:log]"``).
      chips_max: chip budget (required for systems without a chip limit).
      min_system_tps, min_utps: optional constraints.
      layout: ``"helix"`` (default), ``"shared"`` (Medha-style: FFN on the attention
        layout, replicated over kvp) or ``"any"``; see :data:`search.splits.LAYOUTS`.
      **scenario_kw: passed to :func:`search.scenario.scenario` (precision, batch,
        context, mtp, acceptance, overlap, imbalance, mode, software, latency_scale).

    >>> sp = make_space("kimi-k2.5", "gb200-nvl72", axes={"tp": [8], "pp": [1]})
    >>> sp.subgrids()[0].splits.astype(int).tolist()[:2]
    [[8, 1, 1, 1, 8, 1], [8, 1, 1, 2, 4, 1]]
    """
    check_layout(layout)
    degrees, chips, choices, paths = split_axes(axes)
    models = choices.get("model", [model] if isinstance(model, str) else list(model))
    systems = choices.get("system", [system] if isinstance(system, str) else list(system))
    if not models or not systems:
        raise UserError("give at least one model and one system")
    if chips_max is not None:
        try:
            chips_max = float(chips_max)
        except (TypeError, ValueError):
            raise UserError(f"chips_max {chips_max!r}: not a number", arg="chips_max") from None
        if not chips_max >= 1 or chips_max != math.floor(chips_max):
            raise UserError(f"chips_max {chips_max:g}: must be an integer ≥ 1", arg="chips_max")
    scs = []
    given_chips = scenario_kw.pop("chips", None)
    for s in dict.fromkeys(systems):
        sys_chips = given_chips
        for m in dict.fromkeys(models):
            sc = scenario(model=m, system=s, chips=sys_chips, **scenario_kw)
            if not math.isfinite(float(sc.system.max_chips)):
                if chips_max is None:
                    raise UserError(
                        f"system {sc.system_name} has no chip limit; "
                        "give a budget with --chips-max N"
                    )
                sys_chips = chips_max
                sc = scenario(model=m, system=s, chips=sys_chips, **scenario_kw)
            scs.append(sc)
    base = records_of(scs[0])
    path_axes = []
    for name, vals in paths:
        path = resolve_path(base, name)
        if isinstance(vals, str):
            v = parse_values(vals, path)
        else:
            v = list(vals) if not np.isscalar(vals) else [vals]
            if not v:
                raise UserError(f"axis {name}: empty list of values", arg="axis")
            v = [check_value(path, check_number(f"axis {name}", x, sep="=")) for x in v]
        path_axes.append((path, tuple(v)))
    return Space(
        scenarios=tuple(scs),
        axes=tuple(path_axes),
        degrees=degrees,
        chips=chips,
        chips_max=chips_max,
        min_system_tps=min_system_tps,
        min_utps=min_utps,
        layout=layout,
    )


__all__ = [
    "Axis",
    "CHOICES",
    "LATENCY_SCALE",
    "Records",
    "Space",
    "SubGrid",
    "candidate_records",
    "cast_records",
    "make_space",
    "ravel",
    "records_of",
    "resolve_path",
    "set_path",
    "split_axes",
    "unravel",
    "valid_splits",
]
