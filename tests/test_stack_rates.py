"""Diagnostics of the offline-batch rows (:mod:`search.fidelity.stack_rates`): closed forms
and the per-family summary on synthetic rows with a known slope and floor."""

from types import SimpleNamespace

import numpy as np
import pytest

from search.fidelity.stack_rates import (
    family_rates,
    line_slope,
    marginal_rate_flops,
    one_user_per_layer_s,
)


def test_line_slope_exact_and_least_squares():
    c = np.array([16.0, 32.0, 48.0, 64.0])
    assert line_slope(c, 0.01 + 3e-4 * c) == pytest.approx(3e-4, rel=1e-12)
    # residuals orthogonal to c − mean(c) leave the slope unchanged
    y = 0.01 + 3e-4 * c + np.array([1e-4, -1e-4, -1e-4, 1e-4])
    assert line_slope(c, y) == pytest.approx(3e-4, rel=1e-12)


def test_closed_forms():
    # 2·7e9 FLOPs per token, 2 GPUs, 0.35 ms per sequence → 20 TFLOP/s per GPU
    assert marginal_rate_flops(14e9, 2, 3.5e-4) == pytest.approx(20e12)
    # 10 ms one-user step, 2.5 ms of weights, 32 layers → 0.234375 ms per layer
    assert one_user_per_layer_s(10e-3, 2.5e-3, 32) == pytest.approx(7.5e-3 / 32)


def _rows_and_ev():
    """Two groups at slopes 0.2 and 0.4 ms/seq (4 batches each), one group with two batches
    only (skipped), one row not in one KV wave (skipped), two one-user rows."""
    f_tok, tp, peak, w_s, layers = 14e9, 1, 1000e12, 2e-3, 32
    rows, meas, fits = [], [], []
    for isl, s in ((128, 2e-4), (512, 4e-4)):
        for c in (16, 32, 64, 128):
            rows.append(SimpleNamespace(model="m", tp=tp, isl=isl, osl=isl, concurrency=c))
            meas.append(5e-3 + s * c)
            fits.append(True)
    for c in (16, 32):  # two batches: no line
        rows.append(SimpleNamespace(model="m", tp=tp, isl=2048, osl=2048, concurrency=c))
        meas.append(1.0)
        fits.append(True)
    rows.append(SimpleNamespace(model="m", tp=tp, isl=128, osl=128, concurrency=256))
    meas.append(100.0)  # several waves: not on the line
    fits.append(False)
    for t in (6e-3, 10e-3):
        rows.append(SimpleNamespace(model="m", tp=tp, isl=256, osl=256, concurrency=1))
        meas.append(t)
        fits.append(True)
    n = len(rows)
    ev = {
        "meas_s": np.asarray(meas),
        "fits": np.asarray(fits),
        "flops_token": np.full(n, f_tok),
        "peak_flops": np.full(n, peak),
        "weights_s": np.full(n, w_s),
        "n_layers": np.full(n, float(layers)),
    }
    return rows, ev


def test_family_rates_on_synthetic_rows():
    rows, ev = _rows_and_ev()
    out = family_rates(rows, ev, np.ones(len(rows), bool))
    rates = sorted([14e9 / 2e-4 / 1e12, 14e9 / 4e-4 / 1e12])  # 70 and 35 TFLOP/s
    m = out["marginal_tflops_per_gpu"]
    assert m["groups"] == 2
    assert m["min"] == pytest.approx(rates[0], abs=1e-3)
    assert m["max"] == pytest.approx(rates[1], abs=1e-3)
    assert m["median"] == pytest.approx(np.median(rates), abs=1e-3)
    assert out["marginal_pct_of_peak"]["median"] == pytest.approx(
        np.median(rates) / 1000 * 100, abs=1e-3
    )
    f = out["one_user_ms_per_layer"]
    assert f["rows"] == 2
    assert f["min"] == pytest.approx((6e-3 - 2e-3) / 32 * 1e3, abs=1e-3)
    assert f["max"] == pytest.approx((10e-3 - 2e-3) / 32 * 1e3, abs=1e-3)


def test_family_rates_selection_and_empty():
    rows, ev = _rows_and_ev()
    sel = np.zeros(len(rows), bool)
    sel[:4] = True  # the first group only
    out = family_rates(rows, ev, sel)
    assert out["marginal_tflops_per_gpu"]["groups"] == 1
    assert out["marginal_tflops_per_gpu"]["median"] == pytest.approx(70.0, abs=1e-3)
    assert out["one_user_ms_per_layer"] == {"rows": 0}
    none = family_rates(rows, ev, np.zeros(len(rows), bool))
    assert none["marginal_tflops_per_gpu"] == {"groups": 0}
