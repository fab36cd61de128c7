"""The shared (Medha-style) layout: which splits it admits, the cost terms it changes
(closed form), and the searches over it (properties)."""

from __future__ import annotations

import pytest

from costmodel import operators as O
from costmodel import params as P
from costmodel.decode import comm_plan, kvp_partial_bytes, op_plan, weight_bytes_per_chip
from costmodel.feasibility import GROUPS, reason_bits
from costmodel.specs import Parallelism
from search.grid import grid
from search.scenario import scenario
from search.space import make_space
from search.splits import family, is_shared

HELIX = Parallelism(attn_tp=8.0, kvp=4.0, moe_tp=32.0)
SHARED = Parallelism(attn_tp=8.0, kvp=4.0, moe_tp=8.0)
TINY = "tests/data/db/models/tiny-moe.toml"


@pytest.fixture(scope="module")
def llama():
    return scenario("llama-3.1-405b", "gb200-nvl72", precision="nvfp4", batch=1, context=1e6)


def test_layout_is_read_off_the_split():
    assert float(O.shared_layout(SHARED)) == 1.0
    assert float(O.shared_layout(HELIX)) == 0.0
    # kvp = 1: both rules give the same split, which is the Helix one
    assert float(O.shared_layout(Parallelism(attn_tp=8.0, moe_tp=8.0))) == 0.0
    # with attention-DP the shared FFN grid is attn_tp·attn_dp
    dp = Parallelism(attn_tp=2.0, attn_dp=4.0, kvp=2.0, ep=8.0)
    assert float(O.shared_layout(dp)) == 1.0 and is_shared([2, 4, 2, 8, 1, 1])
    assert family([8, 1, 4, 1, 8, 1]) == "TP+KVP(shared)+MoE-TP"
    assert family([8, 1, 4, 1, 32, 1]) == "TP+KVP+MoE-TP"


def test_group_rule_accepts_both_layouts_only(llama):
    sc = llama

    def bits(par):
        return int(reason_bits(sc.model, sc.system, par, sc.workload, 0.0, 1.0)) & GROUPS

    assert bits(HELIX) == 0 and bits(SHARED) == 0
    assert bits(Parallelism(attn_tp=8.0, kvp=4.0, moe_tp=16.0)) == GROUPS  # neither
    assert bits(Parallelism(attn_tp=8.0, moe_tp=4.0)) == GROUPS  # kvp = 1: only N


def test_shared_weights_closed_form(llama):
    """Shared minus Helix at tp 8, kvp 4: the output projection, the FFN, the embedding
    and LM head are split 8 ways instead of 32 (replicated over the 4 KV-parallel ranks);
    everything else, the KV cache included, is the same."""
    m, p, wl = llama.model, llama.precision, llama.workload
    share = 1 / 8 - 1 / 32
    layer = P.attn_o_params(m) * p.attn_weight_bytes + P.dense_ffn_params(m) * p.ffn_weight_bytes
    vocab = float(m.vocab_size * m.d_model) * p.embed_weight_bytes
    resident = share * (float(m.n_layers) * layer + 2 * vocab)  # untied embedding + head
    got = weight_bytes_per_chip(m, p, SHARED, wl) - weight_bytes_per_chip(m, p, HELIX, wl)
    assert float(got) == pytest.approx(float(resident), rel=1e-5)

    def read(par, field):
        return sum(float(o.count) * float(getattr(o, field)) for o in op_plan(m, p, par, wl))

    # read per step: the same, except the embedding reads one row (D weights), not V·D
    step = share * (float(m.n_layers) * layer + vocab + float(m.d_model) * p.embed_weight_bytes)
    assert read(SHARED, "weight_bytes") - read(HELIX, "weight_bytes") == pytest.approx(
        float(step), rel=1e-5
    )
    assert read(SHARED, "kv_bytes") == pytest.approx(read(HELIX, "kv_bytes"), rel=1e-9)


def test_shared_collectives_closed_form(llama):
    """Helix: all-to-all of the partial outputs over kvp, then the output projection's
    all-reduce over tp·kvp; shared: every rank's partial outputs to all kvp ranks (they
    all need the full output), then the all-reduce over tp."""
    m, p, wl = llama.model, llama.precision, llama.workload
    L = float(m.n_layers)
    # one token, 128/8 heads of d_v = 128 plus 8 bytes of statistics
    partial = 16 * (128 * p.act_bytes + 8)
    c = O.make_ctx(SHARED, wl, 1.0)
    assert float(kvp_partial_bytes(m, p, c)) == pytest.approx(partial)

    def live(par):
        return [
            (cm.kind, float(cm.msg_bytes), float(cm.group), float(cm.stride), float(cm.count))
            for cm in comm_plan(m, p, par, wl)
            if float(cm.count) > 0 and float(cm.group) > 1
        ]

    hidden = float(m.d_model) * p.act_bytes
    shared, helix = live(SHARED), live(HELIX)
    # shared: each of the 4 ranks sends its whole buffer to the 3 others
    assert ("all_to_all", pytest.approx(3 * partial), 4.0, 8.0, L) in shared
    assert ("all_reduce", pytest.approx(hidden), 8.0, 1.0, L) in shared
    # Helix: each rank keeps 1/4 of the heads and sends the other 3/4
    assert ("all_to_all", pytest.approx(partial * 3 / 4), 4.0, 8.0, L) in helix
    assert ("all_reduce", pytest.approx(hidden), 32.0, 1.0, L) in helix
    assert len(shared) == len(helix)  # the same collectives, other sizes and groups


@pytest.fixture(scope="module")
def searched():
    out = {}
    for layout in ("helix", "shared", "any"):
        sp = make_space(TINY, "hgx-h100-8", axes={"batch": [1, 2, 4]}, context=4096, layout=layout)
        out[layout] = (sp, grid(sp, top=1, pareto=True))
    return out


def test_split_tables_nest(searched):
    rows = {k: {tuple(r) for r in sp.subgrids()[0].splits} for k, (sp, _) in searched.items()}
    assert rows["helix"] | rows["shared"] == rows["any"]
    kvp1 = {r for r in rows["any"] if r[2] == 1}
    assert rows["helix"] & rows["shared"] == kvp1  # the layouts meet only at kvp = 1
    assert all(is_shared(r) for r in rows["shared"] - kvp1)


def test_shared_optimum_below_free_optimum(searched):
    best = {k: res.best["result"]["utps"] for k, (_, res) in searched.items()}
    assert best["shared"] <= best["any"] * (1 + 1e-6)
    assert best["helix"] <= best["any"] * (1 + 1e-6)
    assert max(best["helix"], best["shared"]) == pytest.approx(best["any"], rel=1e-6)
    par = searched["shared"][1].best["parallelism"]
    shared_rule = par["ep"] * par["moe_tp"] == par["attn_tp"] * par["attn_dp"]
    assert par["kvp"] == 1 or shared_rule


def test_make_space_rejects_unknown_layout():
    from search.errors import UserError

    with pytest.raises(UserError, match="layout 'medha': must be one of helix, shared, any"):
        make_space(TINY, "hgx-h100-8", layout="medha")
