"""Grid engine: top-k against a plain Python loop over the cost model, chunking, ties,
infeasible chunks, fronts, compile-once, partial results, result conversion."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from costmodel.decode import decode_step
from costmodel.specs import DEGREES
from search import grid as grid_mod
from search.errors import UserError
from search.grid import grid
from search.pareto import fronts
from search.paths import set_path
from search.space import make_space

TINY = "tests/data/db/models/tiny-moe.toml"
AXES = {
    "batch": [1, 2, 4],
    "context": [512, 4096],
    "tiers.nvlink.hop_latency_s": [1e-7, 1e-6, 1e-5],
    "chip.hbm_capacity_bytes": [3e5, 8e10],
}


@pytest.fixture(scope="module")
def space():
    return make_space(TINY, "hgx-h100-8", axes=AXES)


@pytest.fixture(scope="module")
def brute(space):
    """Every candidate evaluated one by one with ``decode_step`` (float64)."""
    (sub,) = space.subgrids()
    f = jax.jit(decode_step)
    rows = []
    for i in range(sub.size):
        d = sub.decode(i)
        rec = sub.base
        for a in sub.axes:
            rec = set_path(rec, a.name, d[a.name])
        par = [float(d[k]) for k in DEGREES]
        from costmodel.specs import Parallelism

        r = f(rec.model, rec.precision, rec.system, Parallelism(*par), rec.workload, rec.mode)
        rows.append(
            (
                i,
                bool(r.fits),
                float(r.utps),
                float(r.tps_per_chip),
                float(r.chips),
                float(r.tpot_s),
                int(r.reason),
            )
        )
    return rows


def _expected_top(brute, k, key=2, sign=1.0):
    ok = [r for r in brute if r[1]]
    ok.sort(key=lambda r: (-sign * r[key], r[0]))
    return ok[:k]


def test_topk_equals_python_loop(space, brute):
    res = grid(space, top=10)
    want = _expected_top(brute, 10)
    assert [r["index"] for r in res.top] == [w[0] for w in want]
    np.testing.assert_allclose(
        [r["result"]["utps"] for r in res.top], [w[2] for w in want], rtol=1e-12
    )
    np.testing.assert_allclose([r["score"] for r in res.top], [w[2] for w in want], rtol=1e-12)
    assert res.evaluated == space.size == res.total
    assert res.counts["feasible"] == sum(r[1] for r in brute)
    assert res.counts["infeasible"] == sum(not r[1] for r in brute)
    n_cap = sum(bool(r[6] & 1) for r in brute)
    assert res.counts["rejected"]["memory per chip exceeds capacity"] == n_cap
    assert not res.partial


def test_other_objectives_match_loop(space, brute):
    res = grid(space, top=5, objective="tps_per_chip", pareto=False)
    want = _expected_top(brute, 5, key=3)
    assert [r["index"] for r in res.top] == [w[0] for w in want]
    np.testing.assert_allclose([r["score"] for r in res.top], [w[3] for w in want], rtol=1e-12)


@pytest.mark.parametrize("chunk", [7, 100, 1000])
def test_chunk_sizes_that_do_not_divide_n(space, chunk):
    ref = grid(space, top=8)
    res = grid(space, top=8, chunk=chunk)
    assert space.size % chunk != 0
    assert [r["index"] for r in res.top] == [r["index"] for r in ref.top]
    assert res.counts == ref.counts
    assert [r["index"] for r in res.pareto["utps_vs_chips"]] == [
        r["index"] for r in ref.pareto["utps_vs_chips"]
    ]


@pytest.mark.parametrize(("per_split", "t_want"), [(1, 1), (2, 2), (1 << 10, 3)])
def test_tiled_sweep_equals_flat_chunks_and_loop(space, brute, monkeypatch, per_split, t_want):
    """Tiles (split and inner axes vmapped separately, outer axes scalar per chunk) give
    the flat sweep's top-k, counts and fronts, and the loop's top-k."""
    from search import sweep

    (sub,) = space.subgrids()
    monkeypatch.setattr(sweep, "TILE_MIN", 1)
    # per_split: the tile's cap in splits (1: the split alone; 2: × the innermost axis,
    # hbm capacity; large: as many axes as leave 4 tiles, × latency)
    monkeypatch.setattr(sweep, "TILE_MAX", per_split * sub.shape[-1])
    t, size = sweep.choose_tile(sub.shape, 1)
    assert t == t_want and size == int(np.prod(sub.shape[len(sub.shape) - t :]))
    res = grid(space, top=10)
    ref = grid(space, top=10, chunk=100)
    want = _expected_top(brute, 10)
    assert [r["index"] for r in res.top] == [w[0] for w in want]
    assert [r["index"] for r in res.top] == [r["index"] for r in ref.top]
    assert res.counts == ref.counts
    for name in ("utps_vs_chips", "utps_vs_tps_per_chip"):
        assert [r["index"] for r in res.pareto[name]] == [r["index"] for r in ref.pareto[name]]


def test_split_only_space_is_one_tile():
    """No axes: one tile holds the whole split table (no outer digit); same as flat."""
    from search import sweep

    sp = make_space(TINY, "hgx-h100-8")
    (sub,) = sp.subgrids()
    assert sweep.choose_tile(sub.shape, 2) == (1, sub.size)
    a, b = grid(sp, top=5), grid(sp, top=5, chunk=7)
    assert [r["index"] for r in a.top] == [r["index"] for r in b.top]
    assert a.counts == b.counts
    assert [r["index"] for r in a.pareto["utps_vs_chips"]] == [
        r["index"] for r in b.pareto["utps_vs_chips"]
    ]


def test_choose_tile_bounds():
    from search import sweep

    shape = (7, 4, 16, 16, 8, 1423)
    t, size = sweep.choose_tile(shape, 2)
    assert (t, size) == (3, 16 * 8 * 1423)  # x16 more would pass TILE_MAX
    assert size <= sweep.TILE_MAX and np.prod(shape) // size >= 4 * 2
    assert sweep.choose_tile((3, sweep.TILE_MAX + 1), 1) == (0, 0)  # split too long: flat
    assert sweep.choose_tile((10**6, 20), 1) == (0, 0)  # tile too small: flat
    assert sweep.choose_tile((1, 20), 1) == (1, 20)  # the whole grid is one tile


def test_pareto_fronts_equal_brute_force(space, brute):
    res = grid(space, top=3, pareto=True)
    ok = [r for r in brute if r[1]]
    pts = [
        {"index": r[0], "result": {"utps": r[2], "tps_per_chip": r[3], "chips": r[4]}} for r in ok
    ]
    want = fronts(pts)
    for name in ("utps_vs_tps_per_chip", "utps_vs_chips"):
        got = [(r["result"]["utps"], r["result"]["chips"]) for r in res.pareto[name]]
        exp = [(r["result"]["utps"], r["result"]["chips"]) for r in want[name]]
        np.testing.assert_allclose(got, exp, rtol=1e-12)


def test_all_infeasible_chunks_and_space():
    # capacity of a few bytes: nothing fits; small chunks so every chunk is all-infeasible
    sp = make_space(TINY, "hgx-h100-8", axes={"chip.hbm_capacity_bytes": [1.0, 2.0]})
    res = grid(sp, top=5, chunk=16)
    assert res.top == [] and res.best is None
    assert res.counts["feasible"] == 0 and res.counts["infeasible"] == sp.size
    assert res.pareto["utps_vs_chips"] == []
    # only the second half fits: the leading chunks are all-infeasible (same shape)
    sp = make_space(TINY, "hgx-h100-8", axes={"chip.hbm_capacity_bytes": [1.0, 8e10]})
    res = grid(sp, top=3, chunk=16)
    (sub,) = sp.subgrids()
    assert len(res.top) == 3 and all(r["index"] >= sub.size // 2 for r in res.top)


def test_ties_resolve_to_lowest_index():
    # overlap cannot hide anything at batch 1: the three values tie exactly
    sp = make_space(TINY, "hgx-h100-8", axes={"overlap": [0.0, 0.5, 1.0]})
    (sub,) = sp.subgrids()
    res = grid(sp, top=3, chunk=32)
    idx = [r["index"] for r in res.top]
    assert res.top[0]["score"] == res.top[1]["score"] == res.top[2]["score"]
    n = len(sub.splits)
    assert idx == [idx[0], idx[0] + n, idx[0] + 2 * n]  # same split, overlap 0 first
    assert idx[0] < n
    one = grid(sp, top=1, chunk=32)
    assert one.top[0]["index"] == idx[0]


def test_compiles_once_per_space_shape():
    ax = {"tiers.nvlink.overhead_s": [0.0, 1e-6], "tiers.nvlink.hop_latency_s": [1e-7, 1e-6]}
    grid(make_space(TINY, "hgx-h100-8", axes=ax), top=2, chunk=64)
    before = grid_mod.trace_count()
    ax2 = {"tiers.nvlink.overhead_s": [2e-6, 3e-6], "tiers.nvlink.hop_latency_s": [2e-7, 5e-6]}
    res = grid(make_space(TINY, "hgx-h100-8", axes=ax2), top=2, chunk=64)
    assert grid_mod.trace_count() == before  # new values, same shape: no retrace
    assert res.top[0]["axes"]["system.tiers.nvlink.overhead_s"] == 2e-6


def test_time_limit_gives_partial_result_and_progress():
    calls = []
    sp = make_space(TINY, "hgx-h100-8", axes={"tiers.nvlink.hop_latency_s": "1e-8:1e-5:2000:log"})
    res = grid(sp, top=3, chunk=64, time_limit_s=0.0, progress=lambda d, t: calls.append((d, t)))
    assert res.partial
    assert 0 < res.evaluated < res.total
    assert calls and calls[-1][0] == res.evaluated and calls[-1][1] == res.total
    assert len(res.top) == 3


def test_keyboard_interrupt_returns_best_so_far():
    sp = make_space(TINY, "hgx-h100-8", axes={"tiers.nvlink.hop_latency_s": "1e-8:1e-5:2000:log"})

    def interrupt(done, total):
        raise KeyboardInterrupt

    res = grid(sp, top=3, chunk=64, progress=interrupt)
    assert res.partial and res.info["interrupted"]
    assert 0 < res.evaluated < res.total and res.top


def test_constraints_and_result_conversion(space, brute):
    res = grid(space, top=4)
    thr = res.top[0]["result"]["system_tps"]
    sp = make_space(TINY, "hgx-h100-8", axes=AXES, min_system_tps=thr * 1.5)
    res2 = grid(sp, top=4)
    assert all(r["result"]["system_tps"] >= thr * 1.5 for r in res2.top)
    assert res2.counts["rejected"]["system tokens/s below the minimum"] > 0
    rows = res.to_dicts()
    assert rows[0]["rank"] == 1 and "attn_tp" in rows[0] and "breakdown_compute_s" in rows[0]
    pd = pytest.importorskip("pandas")
    df = res.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    assert len(res.to_dataframe("utps_vs_chips")) == len(res.pareto["utps_vs_chips"])


def test_choices_merge_sub_grids():
    sp = make_space([TINY, "llama-3.1-8b"], ["hgx-h100-8", "mi300x-8"], axes={"batch": [1]})
    res = grid(sp, top=4)
    assert len(res.info["sub_grids"]) == 2
    scores = [r["score"] for r in res.top]
    assert scores == sorted(scores, reverse=True)
    # the merged best equals the best of the sub-grids run alone (same compiled kernels)
    models = [TINY, "llama-3.1-8b"]
    best = max(
        grid(make_space(models, s, axes={"batch": [1]}), top=1).top[0]["score"]
        for s in ("hgx-h100-8", "mi300x-8")
    )
    assert res.top[0]["score"] == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize(
    "kw",
    [{"objective": "speed"}, {"top": 0}, {"chunk": 0}, {"time_limit_s": -1.0}],
)
def test_bad_arguments(space, kw):
    with pytest.raises(UserError):
        grid(space, **kw)


def test_energy_objective(space):
    """With sourced energies (hgx-h100-8) the energy objective ranks by J/token; a system
    whose chip has no energy data is refused with one line."""
    from dataclasses import replace

    res = grid(space, objective="energy", top=3, pareto=False)
    best = res.best["result"]["energy_j_per_token"]
    assert 0 < best < float("inf")
    assert all(r["result"]["energy_j_per_token"] >= best for r in res.top)
    sc = space.scenarios[0]
    chip = sc.system.chip.replace(
        hbm_energy_j_per_byte=0.0, sram_energy_j_per_byte=0.0, flop_energy_j_per_flop=0.0
    )
    bare = replace(space, scenarios=(sc.replace(system=sc.system.replace(chip=chip)),))
    with pytest.raises(UserError, match="energy"):
        grid(bare, objective="energy")


def test_huge_space_runs_partially():
    """More than 2^31 candidates: int32 digits, bounded memory, a clean partial stop."""
    axes = {
        "tiers.nvlink.hop_latency_s": "1e-8:1e-5:1000:log",
        "tiers.nvlink.overhead_s": "0:1e-5:1000",
        "tiers.nvlink.bw_bytes_per_s": "1e11:1e12:100",
    }
    sp = make_space(TINY, "hgx-h100-8", axes=axes)
    assert sp.size > 2**31
    res = grid(sp, top=2, chunk=1024, time_limit_s=0.5, pareto=False)
    assert res.partial and res.total == sp.size and 0 < res.evaluated < 2**31
    assert res.top
