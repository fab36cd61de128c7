"""Search space: paths, axis parsing, valid splits, candidate records, index decode."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hardware_db as db
from costmodel.feasibility import CAPACITY, reason_bits
from costmodel.specs import DEGREES, Parallelism, Workload
from search.errors import UserError
from search.paths import (
    LATENCY_SCALE,
    Records,
    get_path,
    parse_values,
    records_of,
    resolve_path,
    set_path,
)
from search.scenario import scenario
from search.space import (
    Space,
    candidate_records,
    make_space,
    ravel,
    unravel,
)
from search.splits import family, pipeline_degrees, valid_splits
from search.sweep import add_offsets, host_digits

TINY = "tests/data/db/models/tiny-moe.toml"


@pytest.fixture(scope="module")
def gb200():
    return scenario("kimi-k2.5", "gb200-nvl72")


# ----------------------------------------------------------------------------- paths


def test_paths_resolve_shortcuts_and_tier_names(gb200):
    rec = records_of(gb200)
    assert resolve_path(rec, "batch") == "workload.batch"
    assert resolve_path(rec, "mtp") == "workload.mtp_depth"
    assert resolve_path(rec, "chip.hbm_bw_bytes_per_s") == "system.chip.hbm_bw_bytes_per_s"
    assert resolve_path(rec, "tiers.nvlink.hop_latency_s") == "system.tiers.nvlink.hop_latency_s"
    assert resolve_path(rec, "system.tiers.1.overhead_s") == "system.tiers.nvlink.overhead_s"
    assert resolve_path(rec, "model.n_experts") == "model.n_experts"
    assert resolve_path(rec, "precision.kv_bytes") == "precision.kv_bytes"
    assert resolve_path(rec, LATENCY_SCALE) == LATENCY_SCALE


@pytest.mark.parametrize(
    "bad, hint",
    [
        ("system.tiers.nvlnk.hop_latency_s", "system.tiers.nvlink.hop_latency_s"),
        ("model.n_expert", "model.n_experts"),
        ("chip.hbm_bandwidth", "system.chip.hbm_bw_bytes_per_s"),
        ("workload.batchsize", "workload.batch"),
    ],
)
def test_unknown_path_suggests_close_names(gb200, bad, hint):
    with pytest.raises(UserError, match="did you mean") as e:
        resolve_path(records_of(gb200), bad)
    assert hint in str(e.value)
    assert "\n" not in str(e.value)


def test_set_path_on_records_and_scenario(gb200):
    rec = records_of(gb200)
    r2 = set_path(rec, "tiers.nvlink.hop_latency_s", 5e-7)
    assert r2.system.tiers[1].hop_latency_s == 5e-7
    assert rec.system.tiers[1].hop_latency_s != 5e-7  # not mutated
    assert get_path(r2, "system.tiers.nvlink.hop_latency_s") == 5e-7
    sc2 = set_path(gb200, "precision.kv_bytes", 1.0)
    assert sc2.precision.kv_bytes == 1.0 and sc2.model_name == gb200.model_name
    r3 = set_path(rec, LATENCY_SCALE, 0.1)
    for t0, t1 in zip(rec.system.tiers, r3.system.tiers, strict=True):
        assert t1.hop_latency_s == pytest.approx(0.1 * t0.hop_latency_s)
        assert t1.overhead_s == pytest.approx(0.1 * t0.overhead_s)


def test_set_path_under_jit_and_vmap(gb200):
    rec = records_of(gb200)

    def f(alpha):
        return set_path(rec, "tiers.nvlink.hop_latency_s", alpha).system.tiers[1].hop_latency_s * 2

    out = jax.jit(jax.vmap(f))(jnp.asarray([1e-7, 2e-7]))
    np.testing.assert_allclose(out, [2e-7, 4e-7])


@pytest.mark.parametrize(
    "text, expect",
    [
        ("1,2,4", [1.0, 2.0, 4.0]),
        ("1:3:3", [1.0, 2.0, 3.0]),
        ("1:100:3:log", [1.0, 10.0, 100.0]),
    ],
)
def test_parse_values(text, expect):
    np.testing.assert_allclose(parse_values(text, "workload.batch"), expect)


def test_parse_values_with_units():
    vals = parse_values("50 ns,1.5us", "system.tiers.nvlink.hop_latency_s")
    np.testing.assert_allclose(vals, [50e-9, 1.5e-6])


@pytest.mark.parametrize(
    "text, path",
    [
        ("", "workload.batch"),
        ("1,,2", "workload.batch"),
        ("abc", "workload.batch"),
        ("0", "workload.batch"),
        ("1.5", "workload.batch"),
        ("1:2", "workload.batch"),
        ("1:2:x", "workload.batch"),
        ("0:1:3:log", "system.tiers.nvlink.hop_latency_s"),
        ("nan", "system.chip.hbm_bw_bytes_per_s"),
        ("-1", "system.chip.hbm_bw_bytes_per_s"),
        ("3 GB", "system.tiers.nvlink.hop_latency_s"),
    ],
)
def test_parse_values_rejects(text, path):
    with pytest.raises(UserError) as e:
        parse_values(text, path)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- splits


def _brute_force_splits(model, budget, batch=1.0, context=8192.0):
    """Every tuple of integers 1..budget the cost model itself calls feasible (capacity
    aside), by the model's own reason bits."""
    wl = Workload(batch=batch, context_tokens=context)
    sysrec = db.load_system("reticle-die", max_chips=budget)
    g = np.stack(np.meshgrid(*[np.arange(1, budget + 1)] * 6, indexing="ij"), -1).reshape(-1, 6)
    g = g[(g[:, 0] * g[:, 1] * g[:, 2] * g[:, 5] <= budget) & (g[:, 3] * g[:, 4] <= budget)]

    def bits(row):
        par = Parallelism(*(row[i] for i in range(6)))
        return reason_bits(model, sysrec, par, wl, 0.0, 1.0)

    b = np.asarray(jax.jit(jax.vmap(bits))(jnp.asarray(g, jnp.float64)))
    return {tuple(int(x) for x in r) for r in g[(b & ~CAPACITY) == 0]}


def _layout_ok(r, layout):
    """Closed form of the layouts: ep·moe_tp = tp·kvp·dp (helix), = tp·dp (shared)."""
    helix = r[3] * r[4] == r[0] * r[1] * r[2]
    shared = r[3] * r[4] == r[0] * r[1]
    return {"helix": helix, "shared": shared, "any": helix or shared}[layout]


@pytest.mark.parametrize("layout", ["helix", "shared", "any"])
def test_valid_splits_are_feasible_and_complete(layout):
    model, _ = db.load_model(TINY)
    budget = 8
    table = valid_splits(model, budget, batch=4.0, context=8192.0, layout=layout)
    got = {tuple(int(x) for x in r) for r in table}
    brute = _brute_force_splits(model, budget, batch=4.0)
    assert got <= brute  # every enumerated split is valid
    # complete among the default candidate degrees (kvp powers of two, pp = ceil(L/s)):
    # the model accepts exactly the union of both layouts
    pow2 = {1, 2, 4, 8}
    pps = set(pipeline_degrees(model.n_layers))
    expected = {r for r in brute if r[2] in pow2 and r[5] in pps and _layout_ok(r, layout)}
    assert got == expected
    if layout == "any":
        assert expected == {r for r in brute if r[2] in pow2 and r[5] in pps}


def test_valid_splits_kimi_rules():
    model, _ = db.load_model("kimi-k2.5")
    t = valid_splits(model, 72)
    assert len(t) > 100
    assert t.shape[1] == 6
    n_attn = t[:, 0] * t[:, 1] * t[:, 2]
    assert np.all(n_attn == t[:, 3] * t[:, 4])  # same chips for attention and MoE
    assert np.all(n_attn * t[:, 5] <= 72)
    assert np.all(64 % t[:, 0] == 0) and np.all(384 % t[:, 3] == 0)
    assert np.all(2048 % t[:, 4] == 0)
    chips = n_attn * t[:, 5]
    assert np.all(np.diff(chips) >= 0)  # sorted by chips: ties resolve to fewer chips


def test_valid_splits_restrictions_and_chips():
    model, _ = db.load_model("kimi-k2.5")
    t = valid_splits(model, 72, degrees={"tp": [8], "pp": [1]}, chips=[8, 16])
    assert set(t[:, 0]) == {8.0} and set(t[:, 5]) == {1.0}
    assert set((t[:, 0] * t[:, 1] * t[:, 2] * t[:, 5]).tolist()) <= {8.0, 16.0}
    assert len(valid_splits(model, 72, degrees={"tp": [3]})) == 0


def test_valid_splits_budget_errors():
    model, _ = db.load_model("kimi-k2.5")
    with pytest.raises(UserError, match="--chips-max"):
        valid_splits(model, math.inf)
    with pytest.raises(UserError):
        valid_splits(model, 0)


def test_family_labels():
    assert family([1, 1, 1, 1, 1, 1]) == "single chip"
    assert family([8, 1, 1, 8, 1, 2]) == "TP+EP+PP"


# ----------------------------------------------------------------------------- space


def test_make_space_shape_and_decode():
    sp = make_space(
        TINY, "hgx-h100-8", axes={"batch": "1,4", "tiers.nvlink.hop_latency_s": [1e-7, 1e-6, 1e-5]}
    )
    (sub,) = sp.subgrids()
    assert sub.shape == (2, 3, len(sub.splits))
    assert sub.size == sp.size
    i = sub.size - 1
    d = sub.decode(i)
    assert d["workload.batch"] == 4.0 and d["system.tiers.nvlink.hop_latency_s"] == 1e-5
    assert tuple(d[k] for k in DEGREES) == tuple(int(x) for x in sub.splits[-1])


def test_make_space_errors():
    with pytest.raises(UserError, match="--chips-max"):
        make_space("kimi-k2.5", "reticle-die")
    with pytest.raises(UserError, match="zero valid splits"):
        make_space("kimi-k2.5", "gb200-nvl72", axes={"tp": [3]}).subgrids()
    with pytest.raises(UserError, match="did you mean"):
        make_space("kimi-k2.5", "gb200-nvl72", axes={"tiers.nvlnk.hop_latency_s": [1e-7]})
    with pytest.raises(UserError, match="empty"):
        make_space("kimi-k2.5", "gb200-nvl72", axes={"batch": []})
    with pytest.raises(UserError, match="≥ 1"):
        make_space("kimi-k2.5", "reticle-die", chips_max=0)
    with pytest.raises(UserError):
        Space(scenarios=())


def test_choices_stack_or_split_by_structure():
    sp = make_space([TINY, "llama-3.1-8b"], ["hgx-h100-8", "hgx-b200-8", "mi300x-8"])
    subs = sp.subgrids()
    # hgx-h100-8 and hgx-b200-8 share tier names/topologies; mi300x-8 (xgmi, full) not
    assert len(subs) == 2
    names = sorted(tuple(a.labels) for s in subs for a in s.axes if a.name == "system")
    assert names == [("hgx-h100-8", "hgx-b200-8")]
    for s in subs:
        assert s.axes[0].name == "model" and len(s.axes[0]) == 2


def test_candidate_records_builds_one_candidate(gb200):
    sp = make_space("kimi-k2.5", ["gb200-nvl72", "gb300-nvl72"], axes={"batch": [1, 8]})
    (sub,) = sp.subgrids()
    rec, par = candidate_records(
        sub.base,
        jnp.asarray([8.0, 1, 1, 8, 1, 1]),
        {"system": 1, "workload.batch": 8.0, "tiers.nvlink.hop_latency_s": 3e-7},
        sub.choices,
    )
    g300 = db.load_system("gb300-nvl72")
    assert float(rec.system.chip.hbm_capacity_bytes) == g300.chip.hbm_capacity_bytes
    assert float(rec.system.tiers[1].hop_latency_s) == pytest.approx(3e-7)
    assert float(rec.workload.batch) == 8.0
    assert float(par.attn_tp) == 8.0 and float(par.ep) == 8.0
    assert isinstance(rec, Records)


# ----------------------------------------------------------------------------- indices


def test_unravel_ravel_round_trip():
    shape = (3, 5, 7)
    for i in range(3 * 5 * 7):
        assert ravel(unravel(i, shape), shape) == i
    assert unravel(34, shape) == list(np.unravel_index(34, shape))


def test_huge_index_decode_on_device():
    """Chunk bases and offsets past 2^31 decode exactly in int32 digits."""
    shape = (5, 1000, 1000, 1000, 9)  # 4.5e10 candidates
    size = math.prod(shape)
    assert size > 2**33
    offsets = jnp.arange(4096, dtype=jnp.int32)
    f = jax.jit(lambda b: add_offsets(b, offsets, shape))
    for base in (2**31 - 100, 2**31 + 12345, 2**33 + 7, size - 4000, size - 10):
        got = np.asarray(f(jnp.asarray(host_digits(base, shape), jnp.int32)))
        for j in (0, 1, 99, 2047, 4095):
            i = base + j
            if i < size:
                assert got[j].tolist() == unravel(i, shape)
            else:  # past the end: outermost digit overflows (masked tail)
                assert got[j][0] >= shape[0]
