r"""Gradient search over parallel splits and hardware knobs, with exact re-scoring.

What worked on this kind of problem (``docs/design.md``, search methods; DOSA, MICRO'23):
multi-start, rounding, and an exact integer-neighbourhood check; single starts land in the
wrong basin about half the time. The recipe here:

1. **Relax** in log space: ``u = log2(attn_tp, attn_dp, kvp, ep, pp)``; ``moe_tp`` is
   derived (``tp·kvp·dp/ep``) so attention and MoE use the same chips; hardware knobs
   ``v = log(x)`` within ``[log lo, log hi]``.
2. **Objective** (minimised): ``−log score + μ·Σ softplus(κ·g_i)/κ`` over the violations
   ``g``: ``log(mem/cap)`` (capacity), ``log2 chips − log2 max_chips`` (chip budget),
   ``−log2 moe_tp`` (moe_tp ≥ 1), ``log2 attn_dp − log2 B`` (a sequence per replica), and
   a user budget ``budget(knobs) ≤ 0``. Scale-free (logs), so one μ serves every
   scenario. The model's kinks use the log-space soft-max gradient ``beta`` (values stay
   exact; :mod:`costmodel.smooth`).
3. **Optimise** ``n_starts`` seeded random starts in the box with ``optax.adam`` and a box
   projection after every step, all starts vmapped inside one ``lax.scan`` (steps 1–3:
   :func:`relax`).
4. **Round and check exactly**: each start's degrees snap to the ``n_near`` nearest valid
   splits (log2 distance) of the enumerated table plus the neighbourhood of the nearest
   (every free degree at its value or an adjacent distinct value of the table: the 3^d
   neighbourhood restricted to valid splits, or its rows that move at most ``max_moved``
   degrees); knobs with discrete levels snap to their
   nearest level. Every candidate is re-scored with the exact model (``beta = inf``,
   hard feasibility and budget) (:func:`round_starts`).
5. **Scan the split table** at the ``n_scans`` best knob combinations found so far (with
   knobs only; off by default: a whole table per scan costs 1/(knob combinations) of
   the grid, ~0.07 % on ``bench_gradient``) (:func:`scan_requests`).
6. **Hill-climb exactly** from each of the ``n_climbs`` best distinct candidates (one on
   tables of at most ``small_table`` rows, :func:`_n_climbs`): its neighbourhood of
   valid splits (knobs fixed) and ±1 level of every knob (split fixed), at most
   ``max_moved`` degrees or knobs moved at once, re-scored exactly, until no neighbour
   improves (at most ``max_climb`` rounds). This repairs relaxed optima that round two
   steps away from the discrete one (e.g. EP 4 vs EP 1 when the busiest-expert term is
   flat) (:func:`hill_climb`, moves from :func:`climb_moves`).
7. **Coupled scan** (``coupled_scan``) at the best point's knob values: every split of
   the table with the same chip count (the degrees' product), and every split with at
   most two degrees changed to any value (:func:`coupled_moves`). The misses of steps
   1–6 on ``bench_gradient``'s large tables (GB200 NVL72, reticle dies) were all the
   right chip count factored the wrong way, or a two-degree trade (``tp`` against
   ``pp``) several table values away.
8. **Re-relax the knobs** at the best split (and the coupled scan's ``n_refine − 1``
   next best splits): ``knob_steps`` projected Adam steps with the degrees pinned, then
   the ``2^K`` level corners around the result (:func:`refine_knobs`). Under a binding
   budget the best knob levels of a discrete split can be several levels from those of
   the relaxed split.
9. **Polish**: one more climb from the best point, knob moves reaching
   ±``polish_reach`` levels (:func:`polish`).

Only candidates not scored before cost an evaluation (steps 6–9 share a seen set).
Arguments are checked first (:func:`check_args`; errors name the API argument).

Every step runs for many scenarios at once (:func:`optimize_many`; :func:`optimize` is
the one-scenario case): the compiled programs (:mod:`search.gradient_programs`) depend
only on a scenario's structure (tier topologies, number of knobs, objective), every
model and system number is a traced argument, and the starts of all scenarios of one
structure run as lanes of one vmapped call; exact re-scoring batches the candidates of
all scenarios into fixed-size calls.

Deterministic for a seed. ``evaluations`` counts model evaluations: one per start per
step (value and gradient together, steps 3 and 8) plus one per exact candidate;
``forward_equivalents`` counts each step as ``1 + inputs`` forward passes (one JVP per
relaxed variable).

Defaults (:class:`SearchSettings`) were tuned on ``benchmarks/bench_gradient.py``'s
scenarios, seeds 11 and 12 only (80 scenarios, 4 knobs × 16 levels under a budget):
every answer within 1 % of the grid optimum, with 0.088 % and 0.073 % of the grid's
evaluations in total (per scenario, median 0.32 % and 0.23 %: small spaces cost a
larger share); the fresh seeds' figures are in ``docs/design.md`` §9.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import jax
import numpy as np

from costmodel.specs import DEGREES
from search import gradient_programs as gp
from search.errors import UserError
from search.gradient_programs import log_improvement_budget, value_and_jacfwd
from search.objectives import RATE_OBJECTIVES, check_objective
from search.scenario import Scenario

__all__ = [
    "GradientResult",
    "Knob",
    "log_improvement_budget",
    "neighbourhood",
    "optimize",
    "optimize_many",
    "value_and_jacfwd",
]

FREE = tuple(i for i, d in enumerate(DEGREES) if d != "moe_tp")
"""Relaxed columns of the split table; ``moe_tp`` is derived (``tp·kvp·dp/ep``)."""


@dataclass(frozen=True)
class Knob:
    """A hardware number searched in log space.

    ``path`` addresses a float leaf: ``chip.<field>`` or ``tiers.<tier name>.<field>``
    (or ``tiers.*.<field>`` for the same factor on every inter-chip tier). ``levels``
    (optional) are the discrete values rounding may choose; otherwise the continuous
    optimum is kept.
    """

    path: str
    lo: float
    hi: float
    levels: tuple[float, ...] | None = None


@dataclass
class GradientResult:
    """Best exact configuration found, and how it was found."""

    parallelism: dict
    knobs: dict
    score: float
    objective: str
    result: object  # DecodeResult of the winner (exact model)
    evaluations: int
    forward_equivalents: int
    evaluations_by_step: dict  # per step of STEPS (relax: one per start per step)
    relaxed_score: float  # exact score at the best start's continuous optimum (if feasible)
    starts: int
    steps: int
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        from search.results import result_dict

        return {
            "parallelism": self.parallelism,
            "knobs": self.knobs,
            "objective": self.objective,
            "score": self.score,
            "evaluations": self.evaluations,
            "starts": self.starts,
            "steps": self.steps,
            "result": result_dict(self.result),
        }


def neighbourhood(table: np.ndarray, center: np.ndarray, max_moved: int = 5) -> np.ndarray:
    """Rows of ``table`` whose every free degree is the centre's value or an adjacent
    distinct value of that column (at most 3^5 rows; ``moe_tp`` follows), with at most
    ``max_moved`` free degrees away from the centre's (5: the whole 3^5 cube; 2: single
    moves and pairs, at most 5·2 + 10·4 = 50 rows)."""
    keep = np.ones(len(table), bool)
    moved = np.zeros(len(table), int)
    for c in FREE:
        vals = np.unique(table[:, c])
        j = int(np.argmin(np.abs(np.log2(vals) - np.log2(center[c]))))
        keep &= np.isin(table[:, c], vals[max(j - 1, 0) : j + 2])
        moved += table[:, c] != vals[j]
    return table[keep & (moved <= max_moved)]


STEPS = ("relax", "round", "scan", "climb", "coupled_scan", "knob_relax", "knob_round", "polish")
"""Keys of :attr:`GradientResult.evaluations_by_step`, in the order the steps run."""


@dataclass(frozen=True)
class SearchSettings:
    """The optimiser's settings (the keyword arguments of :func:`optimize`)."""

    objective: str = "utps"
    n_starts: int = 6
    steps: int = 40
    lr: float = 0.15
    beta: float = 20.0
    mu: float = 10.0
    kappa: float = 20.0
    n_near: int = 4
    max_climb: int = 20
    n_climbs: int = 3
    n_scans: int = 0
    max_moved: int = 2
    coupled_scan: bool = True
    knob_steps: int = 30
    n_refine: int = 1
    polish_reach: int = 2
    small_table: int = 256
    seed: int = 0


def check_args(splits, knobs, budget, s: SearchSettings) -> np.ndarray:
    """Validate the arguments of :func:`optimize`; return the split table as float64.

    Raises :class:`UserError` naming the offending argument."""
    check_objective(s.objective, RATE_OBJECTIVES)
    for name in ("n_starts", "steps"):
        v = getattr(s, name)
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise UserError(f"{name} {v!r}: must be an integer ≥ 1")
    for name in ("max_moved", "n_refine"):
        v = getattr(s, name)
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise UserError(f"{name} {v!r}: must be an integer ≥ 1")
    counts = ("n_near", "max_climb", "n_climbs", "n_scans", "knob_steps", "polish_reach")
    for name in (*counts, "small_table"):
        v = getattr(s, name)
        if not (isinstance(v, (int, np.integer)) and v >= 0):
            raise UserError(f"{name} {v!r}: must be an integer ≥ 0")
    for name in ("lr", "beta", "mu", "kappa"):
        v = getattr(s, name)
        if not (isinstance(v, (int, float)) and v > 0):
            raise UserError(f"{name} {v!r}: must be a number > 0")
    for k in knobs:
        if not (0 < k.lo <= k.hi < math.inf):
            raise UserError(f"knobs: {k.path!r} needs 0 < lo ≤ hi < inf (got {k.lo}, {k.hi})")
        if k.levels is not None and (len(k.levels) == 0 or min(k.levels) <= 0):
            raise UserError(f"knobs: {k.path!r} levels must be a non-empty list of values > 0")
    if len({k.path for k in knobs}) != len(knobs):
        raise UserError("knobs: each path at most once")
    if budget is not None and not callable(budget):
        raise UserError("budget: must be a function f(vals, budget_args) or None")
    table = np.asarray(splits, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 6 or len(table) == 0:
        raise UserError("splits: no valid parallel split to search (empty split table)")
    return table


@dataclass
class _State:
    """One scenario's search state (host side): the candidates scored so far."""

    table: np.ndarray
    knobs: tuple
    problem: gp.Problem
    levels: list  # per knob: sorted levels or None
    par: np.ndarray = None  # [n, 6] candidate splits
    kv: np.ndarray = None  # [n, K] candidate knob values
    scores: np.ndarray = None
    n_exact: int = 0
    by_step: dict = field(default_factory=dict)  # exact evaluations per step name
    seen: set = field(default_factory=set)
    x: np.ndarray = None  # relaxed optima [starts, D]
    hist: np.ndarray = None  # loss per start per step

    def add(self, par, kv, scores, step: str):
        """Append scored candidates (counted under ``step``)."""
        kv = np.asarray(kv, np.float64).reshape(len(par), len(self.knobs))
        self.par = par if self.par is None else np.vstack([self.par, par])
        self.kv = kv if self.kv is None else np.vstack([self.kv, kv])
        self.scores = scores if self.scores is None else np.concatenate([self.scores, scores])
        self.count(step, len(par))

    def count(self, step: str, n: int) -> None:
        """Count ``n`` exact evaluations under ``step``."""
        self.n_exact += n
        self.by_step[step] = self.by_step.get(step, 0) + n


def _new_state(sc: Scenario, table, knobs, budget, budget_args) -> _State:
    lt = np.log2(table[:, FREE])
    problem = gp.pack(sc, knobs, budget, budget_args, lt.min(0), lt.max(0))
    levels = [np.asarray(sorted(k.levels), np.float64) if k.levels else None for k in knobs]
    return _State(table, tuple(knobs), problem, levels)


def _score_all(states, requests, objective, want_results=False):
    """Exact scores for ``requests`` = ``[(state index, splits, knob values)]`` of states
    that share a structure: one batched evaluation (:func:`gp.run_exact`)."""
    problems = [st.problem for st in states]
    return gp.run_exact(problems, requests, objective, want_results)


def relax(states, s: SearchSettings) -> None:
    """Steps 1–3: ``n_starts`` seeded random starts per scenario in the box (numpy's
    ``default_rng(seed)``, the same for every scenario), projected
    Adam on the penalised relaxed objective; sets each state's ``x`` and ``hist``."""
    x0s = []
    for st in states:  # numpy's generator: no program to compile for the starts
        lo, hi = st.problem.lo, st.problem.hi
        u = np.random.default_rng(s.seed).uniform(size=(s.n_starts, len(lo)))
        x0s.append(lo + u * (hi - lo))
    out = gp.run_relax(
        [st.problem for st in states], x0s, s.objective, s.steps, s.lr, s.beta, s.mu, s.kappa
    )
    for st, (x, h) in zip(states, out, strict=True):
        st.x, st.hist = x, h


def _nearest_level(levels, v: float) -> float:
    return float(levels[int(np.argmin(np.abs(np.log(levels) - np.log(v))))])


def round_starts(st: _State, n_near: int, max_moved: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Step 4 (candidates): per start, its ``n_near`` nearest valid splits (log2
    distance) and the neighbourhood of the nearest (:func:`neighbourhood` with
    ``max_moved``), at the start's nearest knob levels
    (knob moves are left to the hill-climb). Returns distinct ``(splits, knob values)``."""
    nd = len(FREE)
    lt = np.log2(st.table[:, FREE])
    cand: dict[tuple, tuple] = {}
    for x in st.x:
        dist = np.abs(lt - x[:nd]).sum(1)
        near = st.table[np.argsort(dist, kind="stable")[:n_near]]
        rows = np.vstack([near, neighbourhood(st.table, near[0], max_moved)])
        rows = np.unique(rows, axis=0)
        kv = [
            _nearest_level(lv, float(np.exp(x[nd + i])))
            if lv is not None
            else float(np.exp(x[nd + i]))
            for i, lv in enumerate(st.levels)
        ]
        kv = np.asarray(kv, np.float64)
        for r in rows:
            cand[(tuple(r), tuple(kv))] = (r, kv)
    par = np.array([r for r, _ in cand.values()])
    kv = np.array([k for _, k in cand.values()]).reshape(len(cand), len(st.knobs))
    return par, kv


def relaxed_point(st: _State) -> tuple[np.ndarray, np.ndarray]:
    """The best start's continuous optimum as a (fractional) split row and knob values."""
    nd = len(FREE)
    i0 = int(np.argmin(st.hist[:, -1]))
    d = np.exp2(st.x[i0, :nd])
    row = np.array([*d[:4], d[0] * d[1] * d[2] / d[3], d[4]])
    return row, np.exp(st.x[i0, nd:])


def scan_requests(st: _State, n_scans: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Step 5: the whole split table at the ``n_scans`` best knob combinations scored so
    far (with knobs only; the table is small next to a grid over knob levels × splits,
    and exhaustive there repairs splits the relaxation rounds badly)."""
    if not st.knobs or n_scans <= 0:
        return []
    best: dict[tuple, float] = {}
    for kvr, score in zip(st.kv, st.scores, strict=True):
        best[tuple(kvr)] = max(best.get(tuple(kvr), -np.inf), float(score))
    top = sorted(best, key=lambda k: -best[k])[:n_scans]
    n = len(st.table)
    return [(st.table, np.tile(np.asarray(k, np.float64), (n, 1))) for k in top]


def climb_moves(
    st: _State, par, kv, max_moved: int = 5, knob_reach: int = 1
) -> tuple[np.ndarray, np.ndarray] | None:
    """Unseen neighbours of ``(par, kv)``: its neighbourhood of valid splits at the
    current knob values, and up to ±``knob_reach`` levels of every knob jointly at the
    current split, with at most ``max_moved`` degrees or knobs moved at once
    (:func:`neighbourhood`) (marked seen). ``None`` when every neighbour has been scored.

    ``knob_reach = 2`` (the polish climb, :func:`_search_group`) lets a move trade two
    levels of one knob against one of another under a binding budget: with log-spaced
    levels of unequal steps (e.g. ×1.166 for a latency, ×1.097 for a bandwidth) the
    better budget split can lie two levels away while every ±1 pair is worse."""
    kopts = []
    for i, lv in enumerate(st.levels):
        if lv is None:
            kopts.append(np.array([kv[i]]))
        else:
            j = int(np.argmin(np.abs(lv - kv[i])))
            kopts.append(lv[max(j - knob_reach, 0) : j + knob_reach + 1])
    combos = list(itertools.product(*kopts)) if st.knobs else [()]
    combos = [c for c in combos if sum(a != b for a, b in zip(c, kv, strict=True)) <= max_moved]
    cands = [(r, kv) for r in neighbourhood(st.table, par, max_moved)]
    cands += [(par, np.asarray(c, np.float64)) for c in combos]
    new = [(r, np.asarray(c, np.float64)) for r, c in cands if (tuple(r), tuple(c)) not in st.seen]
    if not new:
        return None
    st.seen.update((tuple(r), tuple(c)) for r, c in new)
    npar = np.array([r for r, _ in new])
    return npar, np.array([c for _, c in new]).reshape(len(new), len(st.knobs))


def climb_seeds(st: _State, n_climbs: int) -> list[tuple]:
    """The ``n_climbs`` best feasible candidates with distinct splits, as ``(split, knob
    values, score)``."""
    seeds, used = [], set()
    for i in np.argsort(-st.scores, kind="stable"):
        if not np.isfinite(st.scores[i]) or len(seeds) == n_climbs:
            break
        if tuple(st.par[i]) not in used:
            used.add(tuple(st.par[i]))
            seeds.append((st.par[i], st.kv[i], st.scores[i]))
    return seeds


class _Climb:
    """One scenario's climbs from ``seeds`` (``(split, knob values, score)``), run one
    after another (as a state machine, so the climbs of many scenarios advance in
    lockstep and share exact-scoring calls); evaluations are counted under ``step``."""

    def __init__(
        self,
        st: _State,
        seeds: list,
        max_climb: int,
        max_moved: int = 5,
        knob_reach: int = 1,
        step: str = "climb",
    ):
        self.st, self.max_climb, self.max_moved = st, max_climb, max_moved
        self.knob_reach, self.step = knob_reach, step
        self.queue = list(seeds)
        self.best = (None, None, -np.inf)
        self.cur = None
        self.pending = None

    def propose(self):
        """The next batch of neighbours to score, or ``None`` when all climbs are done."""
        while True:
            if self.cur is None:
                if not self.queue:
                    return None
                self.cur = [*self.queue.pop(0), 0]
            moves = None
            if self.cur[3] < self.max_climb:
                moves = climb_moves(
                    self.st, self.cur[0], self.cur[1], self.max_moved, self.knob_reach
                )
            if moves is not None:
                self.pending = moves
                return moves
            self._finish()

    def accept(self, scores):
        """Move to the best proposed neighbour if it improves; else end this climb."""
        npar, nkv = self.pending
        self.st.count(self.step, len(npar))
        j = int(np.argmax(scores))
        if scores[j] > self.cur[2]:
            self.cur = [npar[j], nkv[j], scores[j], self.cur[3] + 1]
        else:
            self._finish()

    def _finish(self):
        if self.cur[2] > self.best[2]:
            self.best = tuple(self.cur[:3])
        self.cur = None


def _n_climbs(st: _State, s: SearchSettings) -> int:
    """Climbs of step 6 for this scenario: ``n_climbs``, or one where the split table
    has at most ``small_table`` rows.

    The search's evaluations scale with the space: the further climbs start from other
    basins, which a small table does not need — there the coupled scan (step 7: every
    row with the same chip count or at most two degrees changed) reaches most rows, and
    each climb round (up to ~50 splits and ~30 knob moves) costs a sizeable share of
    the whole space. Measured on ``bench_gradient`` (seeds 11 and 12, 80 scenarios):
    one climb on tables of ≤ 256 rows kept every answer within 1 % and saved ~15 % of
    the evaluations; ≤ 600 rows missed one (3 %)."""
    return min(s.n_climbs, 1) if len(st.table) <= s.small_table else s.n_climbs


def hill_climb(states, s: SearchSettings, seeds=None, knob_reach: int = 1, step="climb"):
    """Step 6: exact hill-climbs from each scenario's ``n_climbs`` best distinct
    candidates (or from ``seeds[i]``, a list of ``(split, knob values, score)`` per
    scenario) until no neighbour improves (≤ ``max_climb`` moves each); the climbs of
    all scenarios share each round's exact-scoring call. Returns ``(split, knob values,
    score)`` per scenario."""
    if seeds is None:
        seeds = [climb_seeds(st, _n_climbs(st, s)) for st in states]
    climbs = [
        _Climb(st, sd, s.max_climb, s.max_moved, knob_reach, step)
        for st, sd in zip(states, seeds, strict=True)
    ]
    active = list(range(len(climbs)))
    while active:
        reqs, owners = [], []
        for i in active:
            m = climbs[i].propose()
            if m is not None:
                reqs.append((i, *m))
                owners.append(i)
        if not reqs:
            break
        scores, _ = _score_all(states, reqs, s.objective)
        for i, sc in zip(owners, scores, strict=True):
            climbs[i].accept(sc)
        active = owners
    return [c.best for c in climbs]


def chip_count(par) -> np.ndarray:
    """Chips of split rows ``[..., 6]``: ``attn_tp · attn_dp · kvp · pp`` (shape ``[...]``)."""
    return np.asarray(par, np.float64)[..., [0, 1, 2, 5]].prod(-1)


def coupled_moves(st: _State, par, kv) -> tuple[np.ndarray, np.ndarray] | None:
    """Step 7 (candidates): the unseen rows of the split table that use as many chips as
    ``par`` (``attn_tp·attn_dp·kvp·pp`` equal), at the knob values ``kv`` (marked seen).

    The degrees are coupled by their product: the relaxation and the memory and chip
    constraints fix the chip count well, but not how it factors. A relaxed optimum that
    rounds to the right chip count in the wrong factorisation is typically several
    degrees away from the discrete optimum at once (e.g. ``pp 8 → 1`` with ``kvp 8 → 32``,
    ``tp 8 → 16``, ``ep 1 → 2``, or ``ep 1 ↔ moe_tp 64``), beyond the climbs' neighbourhood;
    this iso-chip slice of the table is ~5–30 % of it (measured on ``bench_gradient``'s
    tables), far fewer rows than a scan of the whole table."""
    same = np.isclose(chip_count(st.table), chip_count(par))
    same |= (st.table[:, list(FREE)] != np.asarray(par)[list(FREE)]).sum(1) <= 2
    same = st.table[same]
    new = [r for r in same if (tuple(r), tuple(kv)) not in st.seen]
    if not new:
        return None
    st.seen.update((tuple(r), tuple(kv)) for r in new)
    return np.array(new), np.tile(np.asarray(kv, np.float64), (len(new), 1))


def refine_knobs(states, seeds: list, s: SearchSettings) -> list:
    """Step 8 (candidates): the knobs re-relaxed at the discrete split of each seed
    ``(state index, (split, knob values, score))``, rounded to the corners of their
    level cell. Returns ``(state index, split rows, knob values)`` per seed of a state
    with knobs.

    The relaxed knob values are optimal for the relaxed, fractional split; once the
    split is discrete, the best use of a binding budget can move several knobs by a
    level or more at once (e.g. latency ×0.736 → ×0.631 on two knobs while the
    bandwidth goes ×2.1 → ×1.6), which single-level climbs may not reach through
    improving steps. So the projected Adam of step 3 runs again, ``knob_steps`` steps
    from the seed, with the split's degrees pinned (box bounds ``lo = hi`` at its
    ``log2`` degrees, so the projection holds them), and every knob with levels then
    takes the level below or above its continuous value: the ``2^K`` corners
    (continuous knobs keep their value)."""
    seeds = [(i, b) for i, b in seeds if states[i].knobs and b[0] is not None]
    if not seeds or s.knob_steps <= 0:
        return []
    probs, x0s = [], []
    for i, (par, kv, _) in seeds:
        st = states[i]
        deg = np.log2(np.asarray(par, np.float64)[list(FREE)])
        lo, hi = st.problem.lo.copy(), st.problem.hi.copy()
        lo[: len(FREE)] = hi[: len(FREE)] = deg
        probs.append(dataclasses.replace(st.problem, lo=lo, hi=hi))
        x0s.append(np.concatenate([deg, np.log(np.asarray(kv, np.float64))])[None])
    runs = gp.run_relax(probs, x0s, s.objective, s.knob_steps, s.lr, s.beta, s.mu, s.kappa)
    out = []
    for (i, b), (x, _) in zip(seeds, runs, strict=True):
        st = states[i]
        st.count("knob_relax", s.knob_steps)
        opts = []
        for k, lv in enumerate(st.levels):
            v = float(np.exp(x[0, len(FREE) + k]))
            if lv is None:
                opts.append([v])
            else:
                j = int(np.searchsorted(lv, v))
                opts.append(sorted({float(lv[max(j - 1, 0)]), float(lv[min(j, len(lv) - 1)])}))
        kv = np.array(list(itertools.product(*opts)), np.float64)
        out.append((i, np.tile(np.asarray(b[0], np.float64), (len(kv), 1)), kv))
    return out


def _unseen(st: _State, par, kv):
    """The rows of ``(par, kv)`` not scored before (marked seen), or ``None``."""
    new = [(r, k) for r, k in zip(par, kv, strict=True) if (tuple(r), tuple(k)) not in st.seen]
    if not new:
        return None
    st.seen.update((tuple(r), tuple(k)) for r, k in new)
    return np.array([r for r, _ in new]), np.array([k for _, k in new])


def _top_splits(par, kv, scores, n: int, skip) -> list[tuple]:
    """The ``n`` best feasible rows with distinct splits, none equal to ``skip``."""
    out, used = [], {tuple(skip)}
    for j in np.argsort(-scores, kind="stable"):
        if len(out) == n or not np.isfinite(scores[j]):
            break
        if tuple(par[j]) not in used:
            used.add(tuple(par[j]))
            out.append((par[j], kv[j], float(scores[j])))
    return out


def _better(a: tuple, b: tuple) -> tuple:
    """The better of two ``(split, knob values, score)`` (``a`` on ties)."""
    return b if b[0] is not None and b[2] > a[2] else a


def polish(states, best: list, s: SearchSettings) -> list[tuple]:
    """Steps 7–9 from each scenario's best climb end ``best[i]``: the coupled scan at
    its knob values (:func:`coupled_moves`, if ``coupled_scan``); the knobs re-relaxed
    and rounded (:func:`refine_knobs`) at the best point and at the ``n_refine − 1``
    next best distinct splits of the scan (the split and the knobs are chosen jointly:
    a split that loses at the climb's knob values can win at its own); then one more
    exact climb from the best point so far, whose knob moves reach ±``polish_reach``
    levels (:func:`climb_moves`). Only candidates not scored before cost an evaluation.
    Returns the best ``(split, knob values, score)`` per scenario."""
    best = list(best)
    seeds = [(i, b) for i, b in enumerate(best)]
    if s.coupled_scan:
        reqs = []
        for i, (st, b) in enumerate(zip(states, best, strict=True)):
            m = coupled_moves(st, b[0], b[1]) if b[0] is not None else None
            if m is not None:
                reqs.append((i, *m))
        if reqs:
            scores, _ = _score_all(states, reqs, s.objective)
            for (i, par, kv), sc in zip(reqs, scores, strict=True):
                states[i].count("coupled_scan", len(par))
                top = _top_splits(par, kv, sc, s.n_refine, best[i][0])
                if top:
                    best[i] = _better(best[i], top[0])
                seeds += [(i, t) for t in top]
    # the best point first, then the scan's next best splits, n_refine per scenario
    order = {i: [best[i]] for i in range(len(states))}
    for i, t in seeds[len(states) :]:
        if len(order[i]) < s.n_refine and not np.array_equal(t[0], best[i][0]):
            order[i].append(t)
    seeds = [(i, t) for i in range(len(states)) for t in order[i]]
    reqs = []
    for i, par, kv in refine_knobs(states, seeds, s):
        m = _unseen(states[i], par, kv)
        if m is not None:
            reqs.append((i, *m))
    if reqs:
        scores, _ = _score_all(states, reqs, s.objective)
        for (i, par, kv), sc in zip(reqs, scores, strict=True):
            states[i].count("knob_round", len(par))
            j = int(np.argmax(sc))
            best[i] = _better(best[i], (par[j], kv[j], float(sc[j])))
    if s.polish_reach > 0:
        seeds = [[b] if b[0] is not None else [] for b in best]
        ends = hill_climb(states, s, seeds, knob_reach=s.polish_reach, step="polish")
        best = [_better(b, e) for b, e in zip(best, ends, strict=True)]
    return best


def _search_group(states, s: SearchSettings) -> list[GradientResult]:
    """Steps 1–8 for scenarios that share a structure (one set of compiled programs)."""
    relax(states, s)
    cands = [round_starts(st, s.n_near, s.max_moved) for st in states]
    scores, _ = _score_all(states, [(i, *c) for i, c in enumerate(cands)], s.objective)
    for st, c, sc in zip(states, cands, scores, strict=True):
        st.add(c[0], c[1], sc, "round")
    scans = [(i, *r) for i, st in enumerate(states) for r in scan_requests(st, s.n_scans)]
    if scans:
        scores, _ = _score_all(states, scans, s.objective)
        for (i, par, kv), sc in zip(scans, scores, strict=True):
            states[i].add(par, kv, sc, "scan")
    for st in states:
        st.seen = {(tuple(r), tuple(v)) for r, v in zip(st.par, st.kv, strict=True)}
    best = polish(states, hill_climb(states, s), s)
    # the winners and the relaxed optima, exactly (for the result record and the gap)
    final = []
    for i, (st, b) in enumerate(zip(states, best, strict=True)):
        row, kv = relaxed_point(st)
        if b[0] is None:  # nothing feasible: score the relaxed point only
            b = (row, kv, -np.inf)
        final.append((i, np.vstack([b[0], row]), np.vstack([b[1], kv]).reshape(2, len(st.knobs))))
    _, results = _score_all(states, final, s.objective, want_results=True)
    return [
        _result(st, b, r, s) if b[0] is not None else None
        for st, b, r in zip(states, best, results, strict=True)
    ]


def _result(st: _State, best, res, s: SearchSettings) -> GradientResult:
    par, kv, score = best
    n_relaxed = s.n_starts * s.steps
    n_steps = n_relaxed + st.by_step.get("knob_relax", 0)  # value-and-gradient steps
    return GradientResult(
        parallelism={c: int(round(float(par[i]))) for i, c in enumerate(DEGREES)},
        knobs={k.path: float(kv[i]) for i, k in enumerate(st.knobs)},
        score=float(score),
        objective=s.objective,
        result=jax.tree.map(lambda a: a[0], res),
        evaluations=int(n_relaxed + st.n_exact),
        forward_equivalents=int(
            n_steps * (len(st.problem.lo) + 1) + n_relaxed + st.n_exact - n_steps
        ),
        evaluations_by_step={"relax": int(n_relaxed)}
        | {k: int(st.by_step.get(k, 0)) for k in STEPS[1:]},
        relaxed_score=float(np.asarray(getattr(res, s.objective))[1]),
        starts=s.n_starts,
        steps=s.steps,
        history=st.hist.min(0).tolist(),
    )


def optimize_many(
    problems, budget=None, objective: str = "utps", **settings
) -> list[GradientResult]:
    """:func:`optimize` for many scenarios at once, batched by structure.

    Args:
      problems: sequence of ``(scenario, splits, knobs, budget_args)`` tuples (``knobs``
        may be ``()``, ``budget_args`` ``None``); scenarios whose records share a
        structure (tier topologies, knob count) share compiled programs and run as the
        lanes of the same calls.
      budget: one budget function for all (see :func:`optimize`), or ``None``.
      objective, settings: as for :func:`optimize` (the same for every scenario).

    Returns:
      One :class:`GradientResult` per problem, in order; ``None`` for a scenario where
      no feasible configuration was found (:func:`optimize` raises instead).
    """
    s = SearchSettings(objective=objective, **settings)
    states = []
    for sc, splits, knobs, budget_args in problems:
        table = check_args(splits, tuple(knobs), budget, s)
        states.append(_new_state(sc, table, tuple(knobs), budget, budget_args))
    groups: dict[tuple, list[int]] = {}
    for i, st in enumerate(states):
        groups.setdefault(st.problem.key, []).append(i)
    out: list = [None] * len(states)
    for idx in groups.values():
        for i, r in zip(idx, _search_group([states[i] for i in idx], s), strict=True):
            out[i] = r
    return out


def optimize(
    sc: Scenario,
    splits: np.ndarray,
    knobs: tuple[Knob, ...] = (),
    budget=None,
    budget_args=None,
    objective: str = "utps",
    n_starts: int = SearchSettings.n_starts,
    steps: int = SearchSettings.steps,
    lr: float = SearchSettings.lr,
    beta: float = 20.0,
    mu: float = 10.0,
    kappa: float = 20.0,
    n_near: int = SearchSettings.n_near,
    max_climb: int = SearchSettings.max_climb,
    n_climbs: int = SearchSettings.n_climbs,
    n_scans: int = SearchSettings.n_scans,
    max_moved: int = SearchSettings.max_moved,
    coupled_scan: bool = SearchSettings.coupled_scan,
    knob_steps: int = SearchSettings.knob_steps,
    n_refine: int = SearchSettings.n_refine,
    polish_reach: int = SearchSettings.polish_reach,
    small_table: int = SearchSettings.small_table,
    seed: int = 0,
) -> GradientResult:
    """Multi-start relaxed search, then exact rounding (see the module docstring).

    Args:
      sc: the scenario (model, precision, system, workload, mode).
      splits: valid split table ``[n, 6]`` (columns :data:`costmodel.specs.DEGREES`), e.g. from
        ``search.splits.valid_splits``; rounding chooses only among these rows.
      knobs: hardware knobs to co-design (empty: parallelism only).
      budget: ``f(vals, budget_args) -> scalar`` (``vals``: dict path → value); a
        configuration is within budget iff ``≤ 0``. Traceable; a module-level function
        (it keys the compilation cache). :func:`log_improvement_budget` runs in vector
        form, so scenarios with different knob paths share one compiled program.
      budget_args: any pytree handed to ``budget`` (traced).
      objective: ``utps`` | ``system_tps`` | ``tps_per_chip`` (maximised).
      n_starts, steps, lr: relaxed starts, Adam steps and learning rate.
      beta, mu, kappa: soft-max sharpness, penalty weight, softplus sharpness.
      n_near, n_scans, n_climbs, max_climb: rounding and repair (module docstring).
      max_moved: most degrees (and, in a climb, knobs) a neighbour moves at once
        (5: the whole 3^5 neighbourhood; 2: moves and pairs, far fewer evaluations).
      coupled_scan, knob_steps, n_refine, polish_reach: steps 7–9 (module docstring;
        ``knob_steps = 0`` / ``polish_reach = 0`` skip steps 8 / 9).
      small_table: split tables of at most this many rows get one climb (step 6).
      seed: seed of the random starts (the answer is deterministic for a seed).
    """
    settings = dict(n_starts=n_starts, steps=steps, lr=lr, beta=beta, mu=mu, kappa=kappa)
    settings.update(n_near=n_near, max_climb=max_climb, n_climbs=n_climbs, n_scans=n_scans)
    settings.update(max_moved=max_moved, coupled_scan=coupled_scan, knob_steps=knob_steps)
    settings.update(n_refine=n_refine, polish_reach=polish_reach, small_table=small_table)
    (res,) = optimize_many(
        [(sc, splits, knobs, budget_args)], budget, objective, seed=seed, **settings
    )
    if res is None:
        raise UserError("no feasible configuration found (capacity, chips or budget)")
    return res
