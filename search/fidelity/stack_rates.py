r"""What a family's offline-batch rows say about its stack, model-free: the marginal rate
of one more sequence and the one-user time per layer (diagnostics of ``tpsopt validate
--level e2e --set extra``, :mod:`search.fidelity.extra_set`).

**Marginal rate.** Rows of one family, model, split and length at batches ``c ≥ 16`` whose
KV cache holds the whole batch (one wave, :mod:`search.fidelity.kv_waves`) are fitted by
least squares with a line ``TPOT ≈ a + s·c``: ``s`` is the time one more sequence adds to
every step (plus its share of the prefill, ``F_p/(c·tp·P·η_p·osl)``, which the offline
TPOT includes). If that sequence's cost is its matrix work, the rate it runs at is::

    R = F_tok / (tp · s)        FLOP/s per GPU,   F_tok = 2·N_active + L·H·(d_qk + d_v)

(2 FLOPs per active parameter and the attention score/value FLOPs of one token, Kaplan et
al. 2020, arXiv:2001.08361, Table 1: ``prefill_flops(spec, 1)`` of
:mod:`search.fidelity.e2e_fit`), reported against the chip's dense peak ``P`` at the
recipe's GEMM precision. KV reads and host work per sequence also land in ``s``, so ``R``
is a lower bound of the GEMM rate; on a compute-bound stack it is the GEMM rate.

**One-user time per layer.** For rows at one user::

    f = (TPOT − W_chip / BW) / L     seconds per layer

the part of a one-user step that is not the weights read once at peak bandwidth (kernel
launch and fixed kernel times, host work, collectives, KV reads; the prefill of one prompt
is < 1 % of these rows), per layer: a per-layer floor of the stack (``W_chip``: resident
weight bytes per GPU, ``BW``: the chip's HBM bandwidth, ``L``: layers).

Both are medians over the family's groups / rows with min and max. They use no fitted
parameter, so they compare stacks on one footing: a family whose ``R/P`` or ``f`` lies far
outside the others' cannot be predicted from them by any global number (docs/calibration.md).
"""

from __future__ import annotations

import numpy as np

MIN_BATCH = 16
"""Smallest batch of the line fit (below it the step is near the one-user floor)."""

MIN_POINTS = 3
"""Fewest distinct batches a group needs for its line."""


def line_slope(c, tpot_s) -> float:
    """Least-squares slope ``s`` [s per sequence] of ``TPOT ≈ a + s·c`` (arrays ``[n]``,
    ``n ≥ 2`` distinct ``c``)."""
    c = np.asarray(c, np.float64)
    y = np.asarray(tpot_s, np.float64)
    dc = c - c.mean()
    return float(np.sum(dc * (y - y.mean())) / np.sum(dc * dc))


def marginal_rate_flops(flops_per_token, tp, slope_s):
    """``R = F_tok / (tp · s)`` FLOP/s per GPU (module doc; broadcasting)."""
    return np.asarray(flops_per_token, float) / (np.asarray(tp, float) * np.asarray(slope_s))


def one_user_per_layer_s(tpot_s, weights_s, n_layers):
    """``f = (TPOT − W_chip/BW) / L`` seconds per layer (module doc; broadcasting)."""
    return (np.asarray(tpot_s, float) - np.asarray(weights_s, float)) / np.asarray(n_layers)


def _summary(x, scale: float, key: str) -> dict:
    x = np.asarray(x, float) * scale
    if x.size == 0:
        return {key: 0}
    return {
        key: int(x.size),
        "median": round(float(np.median(x)), 3),
        "min": round(float(np.min(x)), 3),
        "max": round(float(np.max(x)), 3),
    }


def family_rates(rows, ev: dict, sel) -> dict:
    """Marginal rate (TFLOP/s per GPU and percent of peak) and one-user time per layer (ms)
    of the rows ``sel`` of one family (``rows``: :class:`hardware_db.extra_e2e.ExtraRow`;
    ``ev``: :func:`search.fidelity.extra_set.evaluate_rows` with ``flops_token``,
    ``peak_flops``, ``n_layers``; module doc)."""
    idx = np.nonzero(np.asarray(sel, bool))[0]
    groups: dict = {}
    for i in idx:
        r = rows[i]
        if r.concurrency >= MIN_BATCH and bool(ev["fits"][i]):
            groups.setdefault((r.model, r.tp, r.isl, r.osl), []).append(i)
    rate, frac = [], []
    for g in groups.values():
        c = np.asarray([rows[i].concurrency for i in g], float)
        if len(set(c)) < MIN_POINTS:
            continue
        s = line_slope(c, ev["meas_s"][g])
        if s <= 0:
            continue
        i0 = g[0]
        r = float(marginal_rate_flops(ev["flops_token"][i0], rows[i0].tp, s))
        rate.append(r)
        frac.append(r / float(ev["peak_flops"][i0]))
    one = [i for i in idx if rows[i].concurrency == 1]
    f = one_user_per_layer_s(ev["meas_s"][one], ev["weights_s"][one], ev["n_layers"][one])
    return {
        "marginal_tflops_per_gpu": _summary(rate, 1e-12, "groups"),
        "marginal_pct_of_peak": _summary(frac, 100.0, "groups"),
        "one_user_ms_per_layer": _summary(f, 1e3, "rows"),
    }
