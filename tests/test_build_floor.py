"""The one-user floor of a shared software build (:mod:`search.fidelity.build_floor`): closed
form, the held-out family never sets its own floor, and the floor in the LOFO fit."""

import numpy as np
import pytest
from test_extra_set import synthetic_families

from hardware_db.extra_e2e import BUILDS, load_extra
from search.fidelity.build_floor import floor_tpot_s, one_user_floors, transferred_floors


def test_floor_tpot_closed_form():
    # 2 waves of (3 ms of weights + 32 layers × 0.25 ms) + 1 ms of prefill = 23 ms
    assert floor_tpot_s(3e-3, 32, 0.25e-3, 2, 1e-3) == pytest.approx(23e-3)
    got = floor_tpot_s(np.array([1e-3, 2e-3]), np.array([32, 80]), 1e-4, 1, 0.0)
    np.testing.assert_allclose(got, [1e-3 + 32e-4, 2e-3 + 80e-4])


def _subset():
    """Two one-user rows of each build family: MI250 (chip only, not evaluated) and MI300X,
    plus one H100 vLLM row (no shared build)."""
    rows = load_extra()
    out, count = [], {}
    for r in rows:
        if r.concurrency == 1 and r.model == "llama-2-7b" and r.isl >= 256:
            if r.build and count.get(r.family, 0) < 2:
                out.append(r)
                count[r.family] = count.get(r.family, 0) + 1
            elif r.family == "h100/vllm" and "h100/vllm" not in count:
                out.append(r)
                count["h100/vllm"] = 1
    assert count == {"mi250/vllm": 2, "mi300x/vllm": 2, "h100/vllm": 1}
    return out


def test_one_user_floor_closed_form():
    """f = (TPOT − W_chip/BW)/L: Llama-2-7B FP16 on one MI250 GCD, W from the parameter
    count (6.74e9 × 2 bytes, embeddings and LM head included) at 1.6 TB/s, 32 layers."""
    rows = _subset()
    assert {b for b, _, _ in one_user_floors(rows)} == {"vllm-0.6.1-rocm"}  # not H100's
    r = next(r for r in rows if r.hardware == "mi250" and r.tp == 1)
    [(build, fam, f)] = one_user_floors([r])
    assert (build, fam, r.usable) == ("vllm-0.6.1-rocm", "mi250/vllm", False)
    w_s = 6.738e9 * 2 / 1.6e12
    assert f == pytest.approx((r.tpot_s - w_s) / 32, rel=5e-3)


def test_transferred_floor_excludes_own_family():
    """A family's floor is the median of the other build family's rows: scaling its own
    rows' TPOT leaves it unchanged and moves the other family's floor."""
    rows = _subset()
    fams = ["mi250/vllm", "mi300x/vllm", "h100/vllm"]
    base = transferred_floors(rows, fams)
    assert base["h100/vllm"] is None
    mi250 = [f for b, fam, f in one_user_floors(rows) if fam == "mi250/vllm"]
    assert base["mi300x/vllm"] == pytest.approx(float(np.median(mi250)))
    slow = [r._replace(tpot_s=r.tpot_s * 2) if r.family == "mi300x/vllm" else r for r in rows]
    moved = transferred_floors(slow, fams)
    assert moved["mi300x/vllm"] == base["mi300x/vllm"]
    assert moved["mi250/vllm"] > base["mi250/vllm"]


def test_builds_name_two_families():
    """Each build in the table is shared by at least two families (a floor needs one other)."""
    for b in set(BUILDS.values()):
        assert sum(v == b for v in BUILDS.values()) >= 2


def test_lofo_floor_binds_only_where_above():
    """With a floor for family 'a' the LOFO prediction is max(fit, floor) on its one-user
    rows; its batch rows and the other families' predictions and fits do not change."""
    from search.fidelity.extra_set import build_floor_s, lofo

    rng, ev, fams = synthetic_families(3)
    n = len(fams)
    ev["n_layers"] = np.full(n, 32.0)
    ev["users"] = np.r_[np.ones(6), np.full(n - 6, 16.0)]
    ev["weights_one_token_s"] = 0.8 * ev["weights_s"]
    ev["meas_s"] = ev["step_s"] * rng.uniform(1.1, 1.6, n) + 2e-3
    pred, fitted = lofo(ev, fams)
    f_s = 1e-3  # 32 ms per step: binds on some rows of 'a'
    pred_f, fitted_f = lofo(ev, fams, {"a": f_s, "b": None})
    np.testing.assert_array_equal(pred_f[6:], pred[6:])
    assert fitted_f["b"] == fitted["b"] and fitted_f["a"]["build_floor_ms_per_layer"] == 1.0
    one = np.arange(n) < 6
    g = {"reserve_b": 0.0, "eta_p": fitted["a"]["eta_p"]}
    floor = build_floor_s(ev, g, f_s, one)
    w1, w, osl = (ev[k][:6] for k in ("weights_one_token_s", "weights_s", "osl"))
    pre = np.maximum(ev["compute_s"][:6] / g["eta_p"], w) / osl
    np.testing.assert_allclose(floor, w1 + 32 * f_s + pre)  # closed form
    np.testing.assert_allclose(pred_f[:6], np.maximum(pred[:6], floor))
    assert np.any(floor > pred[:6]) and np.any(floor < pred[:6])
