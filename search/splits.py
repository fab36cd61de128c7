r"""Valid parallel splits, enumerated on the host (the Calculon pattern).

A split is the tuple of degrees ``(attn_tp, attn_dp, kvp, ep, moe_tp, pp)`` (the columns
of every split table, :data:`DEGREES`). Most tuples of a naive cross product are invalid;
enumerating the valid ones first keeps the grid small, and the cost model's own
feasibility bits (:mod:`costmodel.feasibility`) catch everything that depends on the
candidate's other axes (capacity, the batch for ``attn_dp``, ...).

Rules (those of :func:`costmodel.feasibility.reason_bits` that depend only on the model,
the batch, the context and the chip budget):

* ``attn_tp`` divides the query heads and either divides the cached KV heads or is a
  multiple of them (MLA: one latent, always); hybrid models: also the linear-attention
  value heads.
* ``ep`` divides the routed experts, ``moe_tp`` divides the expert FFN width (no MoE:
  ``ep = 1``).
* attention and MoE groups use the same chips: ``attn_tp·kvp·attn_dp = ep·moe_tp = N``
  (layout ``"helix"``, the default); in the shared layout (``"shared"``, Medha-style:
  the FFN on the attention TP group, replicated over the ``kvp`` ranks;
  :func:`costmodel.operators.shared_layout`) ``ep·moe_tp = attn_tp·attn_dp = N/kvp``;
  ``"any"`` keeps both. At ``kvp = 1`` the two rules give the same rows.
* ``attn_dp`` divides the batch (any batch of the space); ``kvp`` ≤ the context;
  ``pp`` ≤ layers; chips ``N·pp`` ≤ the budget.

Default candidate degrees, when the space does not list them: divisors for ``attn_tp``,
``ep``, ``moe_tp`` and ``attn_dp``; powers of two for ``kvp``; for ``pp`` the smallest
degree for each distinct number of layers per stage, ``{⌈L/s⌉ : s = 1..L}`` (a larger
pp with the same ``⌈L/pp⌉`` only adds pipeline hops and chips).

Rows are sorted by (chips, attn_tp, attn_dp, kvp, ep, moe_tp, pp), so that among equal
scores the split with the fewest chips has the lowest index and wins ties.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from costmodel.specs import DEGREES, ModelSpec
from search.errors import UserError, check_number

DEGREE_ALIASES = {"tp": "attn_tp", "dp": "attn_dp", "attn-tp": "attn_tp", "attn-dp": "attn_dp"}
DEGREE_ALIASES.update({"moe-tp": "moe_tp", "kv": "kvp"})

FAMILY_LABELS = ("TP", "DP", "KVP", "EP", "MoE-TP", "PP")
"""Names of the degrees in composition labels (same order as :data:`DEGREES`)."""

MAX_BUDGET = 1 << 24
"""Largest chip budget a split table may be enumerated for."""

LAYOUTS = ("helix", "shared", "any")
"""How the FFN side uses the chips of a stage (see the module docstring): ``helix`` —
``ep·moe_tp = attn_tp·kvp·attn_dp`` (Helix, arXiv 2507.07120 §2.2); ``shared`` —
``ep·moe_tp = attn_tp·attn_dp``, the FFN layout equals the attention TP(×DP) layout and
is replicated over kvp (Medha, arXiv 2409.17264 §3.3; Helix's "vanilla KVP" baseline,
§3.2); ``any`` — both."""


def check_layout(layout) -> str:
    """``layout`` if it is one of :data:`LAYOUTS`; a one-line :class:`UserError` naming
    ``layout`` and the allowed values otherwise."""
    if layout not in LAYOUTS:
        raise UserError(f"layout {layout!r}: must be one of {', '.join(LAYOUTS)}", arg="layout")
    return layout


def ffn_chips(attn_tp, kvp, attn_dp, layout: str) -> list:
    """FFN-side chip counts ``ep·moe_tp`` allowed for attention degrees, per layout:
    ``[tp·kvp·dp]`` (helix), ``[tp·dp]`` (shared), both (any); NumPy arrays in, a list
    of arrays out.

    >>> [int(x) for x in ffn_chips(8, 4, 1, "any")]
    [32, 8]
    """
    out = []
    if layout in ("helix", "any"):
        out.append(attn_tp * kvp * attn_dp)
    if layout in ("shared", "any"):
        out.append(attn_tp * attn_dp)
    return out


def divisors(n: float) -> list[int]:
    """Positive divisors of a positive integer ``n`` (``[1]`` for n ≤ 1 or non-integers)."""
    if not math.isfinite(n) or n < 1 or n != round(n):
        return [1]
    n = int(n)
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def pipeline_degrees(n_layers: float) -> list[int]:
    """``{⌈L/s⌉ : s = 1..L}``: the least pp for every distinct count of layers per stage."""
    L = max(1, int(round(n_layers)))
    return sorted({-(-L // s) for s in range(1, L + 1)})


def degree_values(name: str, values) -> list[int]:
    """The distinct integer degrees (each in [1, 2^24]) of an axis ``name``, sorted; a
    one-line :class:`UserError` naming ``axis <name>`` otherwise.

    >>> degree_values("ep", [8, 2.0, 8])
    [2, 8]
    """
    vals = list(values)
    if not vals:
        raise UserError(f"axis {name}: empty list of values", arg="axis")
    lim = 1 << 24
    return sorted(
        {int(check_number(f"axis {name}", v, 1, lim, integer=True, sep="=")) for v in vals}
    )


def _as_list(x) -> list[float]:
    if x is None:
        return []
    if isinstance(x, Iterable) and not isinstance(x, str):
        return [float(v) for v in x]
    return [float(x)]


def candidate_degrees(
    model: ModelSpec, max_chips: float, batch=1, context=None, degrees=None
) -> dict[str, list[int]]:
    """Per-degree candidate values before the joint rules (see the module docstring).

    ``degrees`` maps a degree name (or alias) to the values the user allows; those are
    intersected with what the model admits only through the joint rules in
    :func:`valid_splits` (so a value the model forbids simply yields no row).
    """
    budget = int(min(max_chips, MAX_BUDGET))
    batches = [int(b) for b in _as_list(batch)] or [1]
    contexts = _as_list(context)
    ctx_max = max(contexts) if contexts else math.inf
    heads = float(model.n_heads) if float(model.n_heads) > 0 else float(model.linear_v_heads)
    has_moe = float(model.n_moe_layers) > 0
    pow2 = [1 << i for i in range(budget.bit_length()) if (1 << i) <= budget]
    dp = sorted({d for b in batches for d in divisors(b)})
    out = {
        "attn_tp": [d for d in divisors(heads) if d <= budget],
        "attn_dp": [d for d in dp if d <= budget],
        "kvp": [d for d in pow2 if d <= ctx_max],
        "ep": [d for d in divisors(model.n_experts) if d <= budget] if has_moe else [1],
        "moe_tp": [d for d in divisors(model.d_ff_expert) if d <= budget] if has_moe else None,
        "pp": [d for d in pipeline_degrees(model.n_layers) if d <= budget],
    }
    for name, vals in (degrees or {}).items():
        key = DEGREE_ALIASES.get(name, name)
        if key not in DEGREES:
            raise UserError(f"unknown degree {name!r}; allowed {', '.join(DEGREES)}")
        out[key] = [v for v in degree_values(key, vals) if v <= budget]
    return out


def _heads_ok(model: ModelSpec, tp: np.ndarray) -> np.ndarray:
    """attn_tp rule of :func:`costmodel.feasibility.reason_bits`, on integers."""
    ok = np.ones(tp.shape, bool)
    n_soft = (
        float(model.n_full_attn_layers)
        + float(model.n_window_attn_layers)
        + float(model.n_sparse_attn_layers)
    )
    if n_soft > 0:
        h = float(model.n_heads)
        k = 1.0 if float(model.kv_lora_rank) > 0 else float(model.n_kv_heads)
        ok &= np.isclose(np.mod(h, tp), 0) | np.isclose(np.mod(h, tp), tp)
        div = np.isclose(np.mod(k, tp), 0) | np.isclose(np.mod(tp, max(k, 1e-30)), 0)
        ok &= div
    if float(model.n_linear_attn_layers) > 0:
        ok &= np.mod(float(model.linear_v_heads), tp) == 0
    return ok


def valid_splits(
    model: ModelSpec,
    max_chips: float,
    batch=1,
    context=None,
    degrees: Mapping[str, Iterable] | None = None,
    chips: Iterable | None = None,
    layout: str = "helix",
) -> np.ndarray:
    """All valid splits for ``model`` within ``max_chips`` chips.

    *Length:* The enumeration's constraints applied one after another on one array; each is
    a line.

    Args:
      model: the model (host floats).
      max_chips: chip budget (finite).
      batch: a batch size or several (``attn_dp`` must divide at least one).
      context: a context length or several (``kvp`` ≤ the largest); None: no limit.
      degrees: optional allowed values per degree, e.g. ``{"ep": [8, 16], "pp": [1]}``.
      chips: optional exact chip counts ``N·pp`` to keep.
      layout: one of :data:`LAYOUTS`: which FFN chip count ``ep·moe_tp`` a row may have.

    Returns:
      ``float64 [n, 6]`` array, columns :data:`DEGREES`, sorted by (chips, columns).

    >>> from costmodel.specs import DEGREES, ModelSpec
    >>> m = ModelSpec(n_layers=2.0, d_model=64.0, vocab_size=10.0, n_heads=4.0,
    ...               n_kv_heads=4.0, n_full_attn_layers=2.0)
    >>> valid_splits(m, 2).astype(int).tolist()
    [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 2], [1, 1, 2, 1, 2, 1], [2, 1, 1, 1, 2, 1]]
    """
    check_layout(layout)
    if not (max_chips >= 1):
        raise UserError(f"chip budget {max_chips!r}: must be ≥ 1")
    if not math.isfinite(max_chips):
        raise UserError("the chip budget is unbounded; give --chips-max N")
    budget = int(min(math.floor(max_chips), MAX_BUDGET))
    cand = candidate_degrees(model, budget, batch, context, degrees)
    tp = np.asarray(cand["attn_tp"], np.int64)
    tp = tp[_heads_ok(model, tp.astype(float))]
    kvp = np.asarray(cand["kvp"], np.int64)
    dp = np.asarray(cand["attn_dp"], np.int64)
    ep = np.asarray(cand["ep"], np.int64)
    pp = np.asarray(cand["pp"], np.int64)
    pp = pp[pp <= max(1, int(round(float(model.n_layers))))]
    if min(len(tp), len(kvp), len(dp), len(ep), len(pp)) == 0:
        return np.zeros((0, 6))
    t, k, d = (a.ravel() for a in np.meshgrid(tp, kvp, dp, indexing="ij"))
    n = t * k * d
    keep = n <= budget
    t, k, d, n = t[keep], k[keep], d[keep], n[keep]
    # MoE side: ep | N_f, moe_tp = N_f / ep in the allowed set (N_f per layout)
    nf = np.concatenate(ffn_chips(t, k, d, layout))
    t, k, d, n = (np.tile(a, len(nf) // max(len(a), 1)) for a in (t, k, d, n))
    i, j = (a.ravel() for a in np.meshgrid(np.arange(len(n)), np.arange(len(ep)), indexing="ij"))
    keep = nf[i] % ep[j] == 0
    i, j = i[keep], j[keep]
    mtp = nf[i] // ep[j]
    if cand["moe_tp"] is not None:
        keep = np.isin(mtp, np.asarray(cand["moe_tp"], np.int64))
        i, j, mtp = i[keep], j[keep], mtp[keep]
    # pipeline and the chip budget
    a, b = (x.ravel() for x in np.meshgrid(np.arange(len(i)), np.arange(len(pp)), indexing="ij"))
    total = n[i][a] * pp[b]
    keep = total <= budget
    if chips is not None:
        keep &= np.isin(total, np.asarray(degree_values("chips", chips), np.int64))
    a, b = a[keep], b[keep]
    rows = np.stack([t[i][a], d[i][a], k[i][a], ep[j][a], mtp[a], pp[b]], axis=1).astype(np.float64)
    return sort_splits(rows)


def sort_splits(rows: np.ndarray) -> np.ndarray:
    """Unique rows sorted by (chips, attn_tp, attn_dp, kvp, ep, moe_tp, pp)."""
    if len(rows) == 0:
        return np.zeros((0, 6))
    rows = np.unique(np.asarray(rows, np.float64), axis=0)
    chips = split_chips(rows)
    order = np.lexsort(tuple(rows[:, c] for c in range(5, -1, -1)) + (chips,))
    return rows[order]


def split_chips(rows: np.ndarray) -> np.ndarray:
    """Chips of each split: ``attn_tp·kvp·attn_dp·pp``."""
    rows = np.asarray(rows)
    return rows[:, 0] * rows[:, 1] * rows[:, 2] * rows[:, 5]


def is_shared(row) -> bool:
    """Whether a split row is in the shared (Medha) layout: ``kvp > 1`` and
    ``ep·moe_tp = attn_tp·attn_dp`` (host twin of :func:`costmodel.operators.shared_layout`)."""
    tp, dp, kvp, ep, mtp = (float(row[c]) for c in range(5))
    return kvp > 1 and abs(ep * mtp - tp * dp) <= 1e-6 * tp * dp


def family(row) -> str:
    """Composition label of one split: the degrees above 1, e.g. ``"TP+EP+PP"``; a
    shared-layout (Medha) split says ``"KVP(shared)"`` for its KV parallelism."""
    names = [FAMILY_LABELS[c] for c in range(6) if float(row[c]) > 1]
    if is_shared(row):
        names = ["KVP(shared)" if n == "KVP" else n for n in names]
    return "+".join(names) if names else "single chip"


def families(rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct composition labels and each row's label index."""
    labels = [family(r) for r in rows]
    uniq = sorted(set(labels), key=lambda s: (s.count("+"), s))
    pos = {s: i for i, s in enumerate(uniq)}
    return uniq, np.asarray([pos[s] for s in labels], np.int64)
