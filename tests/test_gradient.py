"""Gradient search: finds the exhaustive optimum, deterministic, respects a budget."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import INT4_EXPERTS, gb200, kimi_k25, switch_system

from costmodel.decode import decode_step
from costmodel.specs import Parallelism, Workload
from search.gradient import Knob, log_improvement_budget, optimize
from search.paths import set_system_path
from search.scenario import Scenario
from search.splits import valid_splits

SC = Scenario(
    "kimi", kimi_k25(), "int4", INT4_EXPERTS, "s", switch_system(gb200(), 32.0),
    Workload(batch=1.0, context_tokens=8192.0),
)  # fmt: skip
TABLE = valid_splits(SC.model, 32.0, 1.0, 8192.0)
LAT = "tiers.scale_up.hop_latency_s"
HBM = "chip.hbm_bw_bytes_per_s"
KNOBS = (
    Knob(LAT, 0.025e-6, 0.25e-6, tuple(np.geomspace(0.025e-6, 0.25e-6, 8))),
    Knob(HBM, 8e12, 32e12, tuple(np.geomspace(8e12, 32e12, 8))),
)
BUDGET = {
    "nominal": {LAT: 0.25e-6, HBM: 8e12},
    "sign": {LAT: -1.0, HBM: 1.0},
    "log_budget": math.log(4.0) + 1e-9,
}


def exhaustive(knobs=(), budget_args=None):
    """Grid over splits × knob levels (with the budget), exact model, float64."""
    levels = [k.levels for k in knobs] or [()]
    combos = list(itertools.product(*levels)) if knobs else [()]

    def one(row, kv):
        s = SC.system
        for k, v in zip(knobs, kv, strict=True):
            s = set_system_path(s, k.path, v)
        r = decode_step(
            SC.model, SC.precision, s, Parallelism(*(row[i] for i in range(6))), SC.workload
        )
        return jnp.where(r.fits, r.utps, -jnp.inf)

    best, n = -np.inf, 0
    f = jax.jit(jax.vmap(one, in_axes=(0, None)))
    for kv in combos:
        vals = dict(zip([k.path for k in knobs], kv, strict=True))
        if budget_args is not None and float(log_improvement_budget(vals, budget_args)) > 0:
            continue
        u = np.asarray(f(jnp.asarray(TABLE), jnp.asarray(kv)))
        best = max(best, float(u.max()))
        n += len(TABLE)
    return best, n


def test_parallelism_only_matches_exhaustive_and_is_deterministic():
    best, _ = exhaustive()
    a = optimize(SC, TABLE, n_starts=16, steps=100, seed=3)
    b = optimize(SC, TABLE, n_starts=16, steps=100, seed=3)
    assert a.score == pytest.approx(best, rel=1e-6)
    assert a.parallelism == b.parallelism and a.score == b.score
    assert bool(a.result.fits)


def test_codesign_under_budget_within_one_percent_of_grid():
    """Two hardware knobs (scale-up hop latency, HBM bandwidth), 8 levels each, under a
    4x improvement budget: the gradient search's exact answer is within 1 % of the grid
    optimum, uses fewer evaluations than the grid, and respects the budget."""
    best, n_grid = exhaustive(KNOBS, BUDGET)
    g = optimize(SC, TABLE, KNOBS, log_improvement_budget, BUDGET, n_starts=16, steps=100)
    assert g.score >= best * 0.99
    assert g.score <= best * (1 + 1e-6)
    assert float(log_improvement_budget(g.knobs, BUDGET)) <= 1e-9
    assert g.evaluations < n_grid
    assert sum(g.evaluations_by_step.values()) == g.evaluations
    assert g.evaluations_by_step["relax"] == 16 * 100


def test_optimize_many_equals_one_at_a_time(monkeypatch):
    """Batched scenarios (one structure: lanes of the same calls) give exactly the
    answers of one-at-a-time searches; the compiled programs take the numbers as data."""
    from search import gradient_programs as gp
    from search.gradient import optimize_many

    monkeypatch.setattr(gp, "MAX_LANES", 8)  # one lane shape for both runs: one compile
    other = SC.replace(workload=Workload(batch=1.0, context_tokens=131072.0))
    kw = dict(n_starts=4, steps=40, seed=5)
    many = optimize_many([(SC, TABLE, KNOBS, BUDGET), (other, TABLE, KNOBS, BUDGET)],
                         log_improvement_budget, **kw)  # fmt: skip
    for sc, g in zip((SC, other), many, strict=True):
        one = optimize(sc, TABLE, KNOBS, log_improvement_budget, BUDGET, **kw)
        assert (g.parallelism, g.knobs, g.score) == (one.parallelism, one.knobs, one.score)
        assert g.evaluations == one.evaluations
    assert many[1].score != many[0].score


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"n_starts": 0}, "n_starts 0"),
        ({"steps": 1.5}, "steps 1.5"),
        ({"max_moved": 0}, "max_moved 0"),
        ({"objective": "speed"}, "objective 'speed'"),
        ({"splits": np.zeros((0, 6))}, "splits"),
        ({"knobs": (Knob(LAT, 0.0, 1.0),)}, "knobs"),
        ({"knobs": (Knob("chip.nope", 1.0, 2.0),)}, "chip.nope"),
    ],
)
def test_bad_arguments_name_the_api_argument(kw, fragment):
    from search.errors import UserError

    args = {"sc": SC, "splits": TABLE, **kw}
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")) as e:
        optimize(**args)
    assert "--" not in str(e.value)


def test_interpreted_quick_and_optimised_relaxed_programs_agree(monkeypatch):
    """The relaxed run by the interpreter with complex-step gradients (small runs on CPU),
    and compiled without LLVM optimisation (mid-size runs) and with it (large runs),
    follow the same trajectories, to float64 rounding; the choice follows the size of
    the run."""
    from search import gradient_programs as gp
    from search.gradient import _new_state

    assert gp.use_interpreter(gp.INTERPRET_ROWS) and not gp.use_interpreter(gp.INTERPRET_ROWS + 1)
    assert gp.relax_options(gp.QUICK_LANE_STEPS) is gp.QUICK_COMPILE_OPTIONS
    assert gp.relax_options(gp.QUICK_LANE_STEPS + 1) is gp.SEARCH_COMPILE_OPTIONS
    st = _new_state(SC, TABLE, KNOBS, log_improvement_budget, BUDGET)
    p = st.problem
    x0 = p.lo + np.random.default_rng(1).uniform(size=(8, len(p.lo))) * (p.hi - p.lo)
    args = ([p], [x0], "utps", 20, 0.1, 20.0, 10.0, 20.0)
    ((xi, hi),) = gp.run_relax(*args)
    monkeypatch.setattr(gp, "INTERPRET_ROWS", 0)
    ((xq, hq),) = gp.run_relax(*args)
    monkeypatch.setattr(gp, "QUICK_LANE_STEPS", 0)
    ((xo, ho),) = gp.run_relax(*args)
    for x, h in ((xq, hq), (xo, ho)):
        np.testing.assert_allclose(xi, x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(hi, h, rtol=1e-9, atol=1e-12)


def test_budget_arguments_are_checked():
    from search.errors import UserError

    for bad, fragment in (
        ({**BUDGET, "nominal": {LAT: 0.0, HBM: 8e12}}, "nominal value of knob"),
        ({**BUDGET, "sign": {LAT: -1.0}}, "no entry for knob"),
    ):
        with pytest.raises(UserError, match=fragment):
            optimize(SC, TABLE, KNOBS, log_improvement_budget, bad)


def test_log_space_budget_is_exact_at_the_nominal_bound():
    """The relaxed loss reads the budget in log space: a knob at its nominal value (a
    box bound) gives an exact tie inside ``max``, whatever ``exp``/``log`` round to."""
    from search import gradient_programs as gp

    a = {"sign": np.array([1.0, -1.0]), "log_budget": 0.5}
    a["log_nominal"] = np.log(np.array([3e12, 2e-7]))
    a["nominal"] = np.exp(a["log_nominal"])
    x = np.array(a["log_nominal"])
    with jax.enable_x64(True):
        assert float(gp._log_space_budget(x, a)) == -0.5
        g = jax.grad(lambda z: gp._log_space_budget(z, a))(x)
        v = float(gp._vector_log_budget(np.exp(x + [0.1, -0.2]), a))
    np.testing.assert_array_equal(g, [0.5, -0.5])  # lax.max's tie: half each side
    np.testing.assert_allclose(v, float(gp._log_space_budget(x + [0.1, -0.2], a)), rtol=1e-12)


def test_neighbourhood_max_moved_keeps_rows_that_move_few_degrees():
    """``max_moved = 5`` is the whole 3^5 cube; a smaller value keeps exactly the cube's
    rows with at most that many free degrees off the centre's values."""
    from search.gradient import FREE, neighbourhood

    free = list(FREE)

    center = TABLE[len(TABLE) // 2]
    cube = neighbourhood(TABLE, center)
    assert len(cube) <= 3**5 and any((cube == center).all(1))
    for k in (1, 2, 3):
        sub = neighbourhood(TABLE, center, max_moved=k)
        moved = (sub[:, free] != center[free]).sum(1)
        assert moved.max() <= k
        in_cube = (cube[:, free] != center[free]).sum(1) <= k
        assert len(sub) == in_cube.sum() < len(cube)


def test_coupled_moves_are_same_chip_count_or_two_degree_planes():
    """The coupled scan scores every unseen row with the centre's chip count or at most
    two free degrees changed (any values), once."""
    from search.gradient import FREE, _new_state, coupled_moves

    st = _new_state(SC, TABLE, (), None, None)
    st.seen = set()
    center = TABLE[len(TABLE) // 2]
    rows, kv = coupled_moves(st, center, np.zeros(0))
    chips = TABLE[:, [0, 1, 2, 5]].prod(1)
    free = list(FREE)
    want = (chips == np.prod(center[[0, 1, 2, 5]])) | ((TABLE[:, free] != center[free]).sum(1) <= 2)
    assert len(rows) == want.sum() < len(TABLE) and kv.shape == (len(rows), 0)
    assert {tuple(r) for r in rows} == {tuple(r) for r in TABLE[want]}
    assert coupled_moves(st, center, np.zeros(0)) is None  # all seen now


def test_refine_knobs_pins_the_split_and_rounds_to_level_corners():
    """Step 8: the knobs move, the split stays; candidates are the ≤ 2^K level corners
    around the re-relaxed knob values."""
    from search.gradient import SearchSettings, _new_state, refine_knobs

    st = _new_state(SC, TABLE, KNOBS, log_improvement_budget, BUDGET)
    row = TABLE[len(TABLE) // 3]
    kv = np.array([KNOBS[0].levels[-1], KNOBS[1].levels[0]])  # no improvement used
    ((i, rows, cands),) = refine_knobs([st], [(0, (row, kv, 1.0))], SearchSettings())
    assert i == 0 and (rows == row).all() and 1 <= len(cands) <= 4
    for k, knob in enumerate(KNOBS):
        assert set(cands[:, k]) <= set(knob.levels)
    assert st.by_step["knob_relax"] == SearchSettings.knob_steps
    assert not (cands == kv).all(1).all()  # the budget was unused: the knobs moved


def test_later_steps_only_improve_and_are_counted():
    """Steps 7–9 (coupled scan, knob re-relaxation, polish climb) start from the climbs'
    best, so the answer is never worse than without them; every evaluation is counted
    under one step, value-and-gradient steps × (1 + inputs) as forward equivalents."""
    from search.gradient import STEPS

    kw = dict(n_starts=4, steps=30, seed=2)
    off = optimize(SC, TABLE, KNOBS, log_improvement_budget, BUDGET, coupled_scan=False,
                   knob_steps=0, polish_reach=0, **kw)  # fmt: skip
    on = optimize(SC, TABLE, KNOBS, log_improvement_budget, BUDGET, **kw)
    assert on.score >= off.score
    for g in (on, off):
        assert set(g.evaluations_by_step) == set(STEPS)
        assert sum(g.evaluations_by_step.values()) == g.evaluations
        steps = g.evaluations_by_step["relax"] + g.evaluations_by_step["knob_relax"]
        assert g.forward_equivalents == g.evaluations + steps * (5 + len(KNOBS))
    assert off.evaluations_by_step["coupled_scan"] == off.evaluations_by_step["polish"] == 0
    assert on.evaluations_by_step["knob_relax"] == 30


def test_small_tables_get_one_climb():
    from search.gradient import SearchSettings, _n_climbs, _new_state

    st = _new_state(SC, TABLE, (), None, None)
    assert _n_climbs(st, SearchSettings(small_table=len(TABLE))) == 1
    assert _n_climbs(st, SearchSettings(small_table=len(TABLE) - 1)) == SearchSettings.n_climbs
