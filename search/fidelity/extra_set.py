r"""The calibrated mode on the offline-batch benchmarks (``tpsopt validate --level e2e
--set extra``): Argonne LLM-Inference-Bench and ROCm vLLM (``hardware_db/data/
extra_measurements.csv``, :mod:`hardware_db.extra_e2e`).

**Measurement model.** These TPOTs are the end-to-end latency of an offline batch divided
by the output length: ``c`` requests of ``isl`` prompt tokens are prefilled, then decoded
together for ``osl`` steps (context growing from ``isl`` to ``isl + osl``) — in ``n_w``
waves of ``c_w`` sequences when the KV cache cannot hold the whole batch
(:mod:`search.fidelity.kv_waves`). So::

    TPOT_measured = n_w · t_step(batch c_w, context isl + osl/2) + T_prefill / osl
    T_prefill     = max(F_p / (tp · P · η_p),  n_w · W_chip / BW)
    F_p           = c · isl · (2·N_active + L·H·(d_qk + d_v)·isl)

``t_step`` is the decode step of the cost model at the mean context (the KV traffic is
linear in the context, so the mean step is the step at the mean context); ``F_p`` the
prefill FLOPs of all ``c`` prompts as in :func:`search.fidelity.e2e_fit.prefill_flops`
(the matmuls, 2 FLOPs per active parameter per token, and causal attention, ``QKᵀ`` and
``PV`` over on average ``isl/2`` keys: Kaplan et al. 2020, arXiv:2001.08361, Table 1);
``P`` the chip's dense peak at the recipe's GEMM precision
(:func:`search.fidelity.e2e_fit.prefill_peak_flops`), ``tp`` the GPUs of the row
(Argonne: ``tp = num_gpus``); ``W_chip`` the resident weight bytes of one chip
(:func:`costmodel.decode.weight_bytes_per_chip`; a prefill of ≥ 128 tokens touches every
expert of the models here) over its HBM bandwidth — each wave's prefill reads the weights
at least once. ``η_p`` is the **assumed** prefill efficiency: the one fitted per software
on the 2026 serving rows (``prefill_eta`` of ``hardware_db/data/e2e_calibration.toml``)
and :data:`~search.fidelity.e2e_fit.PREFILL_ETA` (0.5) for other software. The waves use
the KV budget ``0.9·HBM − W_chip − R`` with ``R = 0`` as is.

**SOL** of a row: the same expression with ``t_step`` in SOL mode, ``η_p = 1`` and the
waves of the whole HBM (``u = 1``, ``R = 0``: the fewest the memory allows) — a lower
bound of the measured TPOT. Rows whose requests may stop at the end-of-sequence token
(``full_length`` False in :mod:`hardware_db.extra_e2e`) get one wave in SOL: fewer
output tokens need less KV cache.

**Same tokens.** Where every request of the batch is a copy of one prompt decoded
greedily (``same_tokens``: the benchmark's TensorRT-LLM runs) a MoE step reads only the
``top_k`` experts all sequences share: such rows run :func:`same_routing_spec`, in the
model and in SOL.

**Modes** (as a user gets them, :func:`search.scenario.calibrated_mode`): the kernel-level
mode where the hardware × software was fitted (H100 with vLLM / TensorRT-LLM),
*transferred* from the nearest measured hardware otherwise (A100 40GB, GH200, MI300X), the
six-scalar mode for DeepSpeed (A100, Gaudi2).

**Fit on this set, leave one family out** (:func:`lofo`): five global numbers — a scale
``k`` of the calibrated step, an added per-step overhead ``o``, a per-sequence per-step
cost ``o_seq`` (host work that grows with the running batch: scheduling, block tables,
sampling, detokenisation — vLLM V0's ``LLMEngine.step`` processes every running sequence
in Python), ``η_p`` and the runtime reserve ``R`` of the KV budget — chosen on grids
(:data:`GRID_K`, :data:`GRID_O_S`, :data:`GRID_OSEQ_S`, :data:`GRID_ETA`,
:data:`GRID_RESERVE_B`) to minimise the MAPE of::

    TPOT = n_w(R) · (k · t_step(c_w(R)) + o + o_seq · c_w(R))
           + max(F_p / (tp·P·η_p), n_w(R) · W_chip/BW) / osl

on the rows of every **other** family (hardware × framework), each family weighted
equally (a family is one stack on one machine; its rows sweep batch and length and are
strongly correlated — unweighted, the 599-row Argonne MI300X family alone would set the
globals); the held-out family's rows never influence its prediction. ``o_seq`` is
charged only to :data:`PER_SEQ_SOFTWARE`. A family whose software build another family
also ran (``build`` of :mod:`hardware_db.extra_e2e`: vLLM v0.6.1 ``Dockerfile.rocm`` on
MI250 and MI300X) is predicted at least at the one-user floor of that build measured on
the *other* family's one-user rows, on its own one-user rows
(:mod:`search.fidelity.build_floor`, :func:`build_floor_s`).
Reported next to the out-of-sample figures *as is* (no fit: ``k = 1``, ``o = o_seq = 0``,
``R = 0``, ``η_p`` as assumed above, no floor).
"""

from __future__ import annotations

import numpy as np

GRID_K = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))
"""Grid of the step scale ``k`` (×0.25 … ×4, log-spaced)."""

GRID_O_S = np.concatenate([[0.0], np.geomspace(1e-4, 3e-2, 19)])
"""Grid of the added step overhead ``o`` (0, then 0.1 … 30 ms)."""

GRID_ETA = np.asarray([0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
"""Grid of the prefill efficiency ``η_p``."""

GRID_OSEQ_S = np.concatenate([[0.0], np.geomspace(3e-6, 1e-3, 11)])
"""Grid of the per-sequence per-step cost ``o_seq`` (0, then 3 µs … 1 ms)."""

PER_SEQ_SOFTWARE = frozenset({"vllm"})
"""Software whose engine does Python work per running sequence each step, charged
``o_seq`` per sequence: vLLM's V0 ``LLMEngine.step`` builds a ``SequenceGroupMetadata``
with its block table for every scheduled group (``vllm/core/scheduler.py``
``schedule``), then appends each sampled token and detokenises it incrementally per
sequence (``vllm/engine/output_processor/single_step.py``,
``vllm/transformers_utils/detokenizer.py``). TensorRT-LLM's runtime keeps the batch in
its C++ executor and ``run.py`` detokenises once at the end; the Gaudi2 DeepSpeed runs
call Hugging Face ``generate`` on a static batch (tensor ops per step). DeepSpeed-MII's
Python ragged-batching loop may pay it too; not charged (no source measurement)."""

GRID_RESERVE_B = np.asarray([0.0, 1e9, 2e9, 4e9])
"""Grid of the runtime reserve ``R`` of the KV budget (bytes per chip; 0 = as is)."""


def prefill_terms_s(spec, prec, system, par, wl, isl: int) -> tuple[float, float]:
    """``(F_p / (tp·P), W_chip / BW)`` seconds of an offline batch's prefill at η_p = 1
    (module doc; ``wl.batch`` requests of ``isl`` tokens on ``par.attn_tp`` GPUs)."""
    from costmodel.decode import weight_bytes_per_chip
    from search.fidelity.e2e_fit import prefill_flops, prefill_peak_flops

    f_p = float(wl.batch) * prefill_flops(spec, isl)
    compute = f_p / (float(par.attn_tp) * prefill_peak_flops(prec, system.chip))
    weights = float(weight_bytes_per_chip(spec, prec, par, wl))
    return compute, weights / float(system.chip.hbm_bw_bytes_per_s)


def tpot_model_s(step_s, compute_s, weights_s, osl, eta_p, k=1.0, o_s=0.0, n_waves=1.0,
                 o_seq_s=0.0, wave_n=0.0):  # fmt: skip
    """``n_w·(k·t_step + o + o_seq·c_w) + max(compute/η_p, n_w·weights)/osl`` (module doc;
    broadcasting numpy; ``step_s`` is the step at the wave batch ``wave_n``)."""
    per_step = k * step_s + o_s + o_seq_s * wave_n
    return n_waves * per_step + np.maximum(compute_s / eta_p, n_waves * weights_s) / osl


def _assumed_eta(software: str) -> float:
    from hardware_db.e2e_calibration import E2E_TOML
    from hardware_db.loader import read_toml
    from search.fidelity.e2e_fit import PREFILL_ETA

    sw = read_toml(E2E_TOML).get("software", {}).get(software, {})
    return float(sw.get("prefill_eta", PREFILL_ETA))


def same_routing_spec(spec):
    """A MoE model whose batch decodes identical sequences: every token of a step picks the
    same ``top_k`` experts, so a step reads ``top_k`` experts per layer (not the
    ``E·(1 − (1 − k/E)^B)`` of ``B`` distinct tokens) while each token still does the FLOPs
    of ``top_k`` experts — exactly the model with ``n_experts = top_k`` (the router's
    ``E``-wide GEMV, < 0.1 % of the step, shrinks with it). Used for rows with
    ``same_tokens`` (:mod:`hardware_db.extra_e2e`)."""
    return spec.replace(n_experts=spec.top_k)


def evaluate_rows(rows) -> dict:
    """Per row (arrays ``[N]``): calibrated and SOL step times, prefill terms, assumed
    η_p, mode name and kind, and the KV waves — ``waves``/``wave_n``/``wave_step_s``
    ``[len(GRID_RESERVE_B), N]``: waves, wave batch and calibrated step at that batch for
    each reserve of the grid; ``sol_waves``/``sol_step_s`` with the whole HBM (module doc);
    ``flops_token`` (``prefill_flops(spec, 1)``), ``peak_flops`` and ``n_layers`` for
    :mod:`search.fidelity.stack_rates`; ``users`` and ``weights_one_token_s`` for
    :mod:`search.fidelity.build_floor`. Every row stacked per structure
    (:func:`search.stacking.evaluate`, one vmapped call per structure and mode type); a
    wave batch other than ``c`` is a second, smaller call."""
    import hardware_db as db
    from costmodel.decode import kv_bytes_per_chip, weight_bytes_per_chip
    from costmodel.specs import SOL, Parallelism, Workload
    from hardware_db.extra_models import load_model_any
    from search.fidelity.build_floor import one_token_weights_s
    from search.fidelity.e2e_fit import prefill_flops, prefill_peak_flops
    from search.fidelity.kv_waves import batch_waves
    from search.scenario import calibrated_mode
    from search.stacking import Config, evaluate

    models, precs, systems, modes = {}, {}, {}, {}
    cfgs, sols, names, kinds, comp, wts, eta = [], [], [], [], [], [], []
    f_tok, peak, n_layers, w_one = [], [], [], []
    hbm, w_chip, kv_seq, base = [], [], [], []
    for r in rows:
        if r.model not in models:
            models[r.model] = load_model_any(r.model)[0]
        if r.recipe not in precs:
            precs[r.recipe] = db.load_precision(r.recipe)
        if r.system not in systems:
            systems[r.system] = db.load_system(r.system)
        key = (r.system, r.software, r.recipe)
        if key not in modes:
            mode, name, _, _ = calibrated_mode(r.system, r.software, precs[r.recipe])
            head = name.split(":")[0]
            kind = head if head in ("kernel", "transferred") else "six_scalar"
            modes[key] = (mode, name, kind, _assumed_eta(r.software))
        mode, name, kind, e = modes[key]
        spec, prec, system = models[r.model], precs[r.recipe], systems[r.system]
        if r.same_tokens and float(spec.n_experts) > 0:
            spec = same_routing_spec(spec)
        par = Parallelism(r.tp, 1, 1, 1, r.tp, 1)
        wl = Workload(batch=r.batch, context_tokens=r.context)
        base.append((spec, prec, system, par, mode))
        cfgs.append(Config(spec, prec, system, par, wl, mode))
        sols.append(Config(spec, prec, system, par, wl, SOL))
        c, w = prefill_terms_s(spec, prec, system, par, wl, r.isl)
        comp.append(c)
        wts.append(w)
        one = Workload(batch=1.0, context_tokens=float(r.isl + r.osl))
        hbm.append(float(system.chip.hbm_capacity_bytes))
        # resident weights: every expert is in HBM whatever the batch routes to
        w_chip.append(float(weight_bytes_per_chip(models[r.model], prec, par, one)))
        w_one.append(one_token_weights_s(models[r.model], prec, par, system.chip))
        kv_seq.append(float(kv_bytes_per_chip(spec, prec, par, one)))
        names.append(name)
        kinds.append(kind)
        eta.append(e)
        f_tok.append(prefill_flops(spec, 1))
        peak.append(prefill_peak_flops(prec, system.chip))
        n_layers.append(float(spec.n_layers))
    step = np.asarray(evaluate(cfgs).step_time_s, np.float64)
    sol_step = np.asarray(evaluate(sols).step_time_s, np.float64)
    batch = np.asarray([r.batch for r in rows], np.float64)
    hbm, w_chip, kv_seq = np.asarray(hbm), np.asarray(w_chip), np.asarray(kv_seq)
    contexts = [r.context for r in rows]

    def at_wave_batch(n_b, base_step, sol: bool):
        """Steps at wave batch ``n_b`` (the rows where it differs from ``c``)."""
        out, idx = base_step.copy(), np.nonzero(n_b < batch)[0]
        if idx.size:
            more = [
                Config(*base[i][:4], Workload(batch=float(n_b[i]), context_tokens=contexts[i]),
                       SOL if sol else base[i][4])
                for i in idx
            ]  # fmt: skip
            out[idx] = np.asarray(evaluate(more).step_time_s, np.float64)
        return out

    waves, wave_n, wave_step = [], [], []
    for res in GRID_RESERVE_B:
        n_w, n_b = batch_waves(batch, hbm, w_chip, kv_seq, res)
        waves.append(n_w)
        wave_n.append(n_b)
        wave_step.append(at_wave_batch(n_b, step, False))
    sol_w, sol_b = batch_waves(batch, hbm, w_chip, kv_seq, 0.0, usable=1.0)
    full = np.asarray([r.full_length for r in rows])
    sol_w, sol_b = np.where(full, sol_w, 1.0), np.where(full, sol_b, batch)
    return {
        "step_s": step,
        "sol_step_s": at_wave_batch(sol_b, sol_step, True),
        "sol_waves": sol_w,
        "sol_wave_n": sol_b,
        "waves": np.asarray(waves),
        "wave_n": np.asarray(wave_n),
        "wave_step_s": np.asarray(wave_step),
        "compute_s": np.asarray(comp),
        "weights_s": np.asarray(wts),
        "osl": np.asarray([r.osl for r in rows], np.float64),
        "users": np.asarray([r.concurrency for r in rows], np.float64),
        "weights_one_token_s": np.asarray(w_one),
        "meas_s": np.asarray([r.tpot_s for r in rows], np.float64),
        "eta": np.asarray(eta),
        "fits": np.asarray(waves[0]) == 1.0,
        "per_seq": np.asarray([r.software in PER_SEQ_SOFTWARE for r in rows]),
        "flops_token": np.asarray(f_tok),
        "peak_flops": np.asarray(peak),
        "n_layers": np.asarray(n_layers),
        "mode": names,
        "kind": kinds,
    }


def _waves_of(ev: dict, j: int):
    """``(waves, sequences charged o_seq, step)`` of reserve index ``j``: the wave batch
    where the software pays a per-sequence cost (``per_seq``, :data:`PER_SEQ_SOFTWARE`),
    else 0; no waves if the dict has none (the step at ``c``, one wave)."""
    per_seq = np.asarray(ev.get("per_seq", True), float)
    if "waves" not in ev:
        n = np.ones_like(ev["step_s"])
        return n, np.zeros_like(n), ev["step_s"]
    return ev["waves"][j], ev["wave_n"][j] * per_seq, ev["wave_step_s"][j]


def predict(ev: dict, fit: dict, sel=slice(None)):
    """TPOT of the rows ``sel`` at fitted globals ``fit`` (``k, o_s, o_seq_s, eta_p,
    reserve_b``; module doc)."""
    j = int(np.argmin(np.abs(GRID_RESERVE_B - fit["reserve_b"])))
    n_w, n_b, step = (x[sel] for x in _waves_of(ev, j))
    return tpot_model_s(step, ev["compute_s"][sel], ev["weights_s"][sel], ev["osl"][sel],
                        fit["eta_p"], fit["k"], fit["o_s"], n_w, fit["o_seq_s"], n_b)  # fmt: skip


def fit_globals(ev: dict, sel) -> dict:
    """``k, o_s, o_seq_s, eta_p, reserve_b`` on the grids minimising the MAPE of the rows
    ``sel`` (weighted by ``ev["row_weight"]`` if given; module doc). Without waves in
    ``ev`` the reserve is 0 and one wave is run."""
    sel = np.asarray(sel, bool)
    comp, wts = ev["compute_s"][sel], ev["weights_s"][sel]
    osl, meas = ev["osl"][sel], ev["meas_s"][sel]
    wt = np.asarray(ev["row_weight"], float)[sel] if "row_weight" in ev else np.ones(len(meas))
    wt = wt / wt.sum()
    best = (np.inf, None)
    ks, os_ = GRID_K[:, None, None], GRID_O_S[None, :, None]
    n_res = len(GRID_RESERVE_B) if "waves" in ev else 1
    for j in range(n_res):
        n_w, n_b, step = (x[sel] for x in _waves_of(ev, j))
        base = n_w * (ks * step + os_)
        for e in GRID_ETA:
            pre = np.maximum(comp / e, n_w * wts) / osl
            for q in GRID_OSEQ_S:
                err = (np.abs((base + n_w * q * n_b + pre) / meas - 1.0) * wt).sum(axis=-1)
                i, m = np.unravel_index(np.argmin(err), err.shape)
                if err[i, m] < best[0]:
                    best = (float(err[i, m]), {
                        "k": float(GRID_K[i]), "o_s": float(GRID_O_S[m]), "o_seq_s": float(q),
                        "eta_p": float(e), "reserve_b": float(GRID_RESERVE_B[j]),
                    })  # fmt: skip
    return best[1]


def build_floor_s(ev: dict, fit: dict, f_s: float, sel):
    """The TPOT floor of the one-user rows ``sel`` from their build's one-user time per
    layer ``f_s`` (:mod:`search.fidelity.build_floor`: the weights one token reads, ``L·f``,
    the prefill at the ``η_p`` of ``fit``)."""
    from search.fidelity.build_floor import floor_tpot_s

    w_all = ev["weights_s"][sel]
    pre = np.maximum(ev["compute_s"][sel] / fit["eta_p"], w_all) / ev["osl"][sel]
    return floor_tpot_s(ev["weights_one_token_s"][sel], ev["n_layers"][sel], f_s, 1.0, pre)


def lofo(ev: dict, families, floors=None) -> tuple[np.ndarray, dict]:
    """Leave-one-family-out predictions ``[N]`` and each family's globals (``k``, ``o_ms``,
    ``o_seq_us``, ``eta_p``, ``reserve_gb``) fitted on the other families' rows, each
    family weighted equally (rows ``1 / family size``, module doc). ``floors``
    (``{family: f or None}``, :func:`search.fidelity.build_floor.transferred_floors`, from
    the other families of the family's build): the prediction is at least
    :func:`build_floor_s` (``build_floor_ms_per_layer`` in the globals)."""
    fam = np.asarray(families)
    pred = np.empty(len(fam))
    fitted = {}
    sizes = {f: int(np.sum(fam == f)) for f in set(families)}
    ev = dict(ev, row_weight=np.asarray([1.0 / sizes[f] for f in families]))
    for f in sorted(set(families)):
        held = fam == f
        g = fit_globals(ev, ~held)
        fitted[f] = {
            "k": round(g["k"], 4), "o_ms": round(g["o_s"] * 1e3, 4),
            "o_seq_us": round(g["o_seq_s"] * 1e6, 2), "eta_p": g["eta_p"],
            "reserve_gb": g["reserve_b"] / 1e9,
        }  # fmt: skip
        pred[held] = predict(ev, g, held)
        f_s = (floors or {}).get(f)
        if f_s is not None:
            fitted[f]["build_floor_ms_per_layer"] = round(f_s * 1e3, 4)
            one = held & (ev["users"] == 1)
            pred[one] = np.maximum(pred[one], build_floor_s(ev, g, f_s, one))
    return pred, fitted


def _ms(x) -> float:
    return round(float(x) * 1e3, 3)


def score_rows(err, sel, sol_viol) -> dict:
    """Rows, MAPE and median relative error (percent) and SOL violations of the selected
    rows (``err``: relative errors; ``sel``, ``sol_viol``: boolean masks)."""
    sel = np.asarray(sel, bool)
    if not sel.any():
        return {"rows": 0}
    return {
        "rows": int(sel.sum()),
        "mape_pct": round(float(np.mean(np.abs(err[sel])) * 100), 2),
        "median_err_pct": round(float(np.median(err[sel]) * 100), 2),
        "sol_violations": int(np.sum(sol_viol[sel])),
    }


def extra_level_report(path=None) -> dict:
    """The extra set as a JSON-ready dict (module doc).

    *Length:* the assembly of one JSON document (skipped rows, per-source / per-family /
    per-mode scores as-is and LOFO, SOL check, worst rows) from one evaluation pass.

    Keys: ``rows_total``, ``rows_used``, ``skipped`` (reason → count), ``measurement_model``,
    ``by_source`` / ``by_family`` / ``by_mode_kind`` (``as_is`` and ``lofo`` scores: rows,
    MAPE, median signed error, SOL violations; per family also the mode, the median prefill
    share of the predicted TPOT, the scores of its rows whose batch fits in one wave
    (``fits_hbm``: KV budget at R = 0), the LOFO-fitted globals and ``stack_rates``: the
    marginal rate per sequence and the one-user time per layer its rows imply (the LOFO
    globals carry ``build_floor_ms_per_layer`` where a build floor applies),
    :func:`search.fidelity.stack_rates.family_rates`), ``overall``,
    ``overall_fits_hbm``, ``overall_le8_users`` (also per source and family: ``le8_users``)
    (rows with ≤ 8 concurrent requests), ``rows_not_fitting_hbm``,
    ``sol_violations`` (id, measured/SOL, reason), ``worst`` (ten largest LOFO errors).
    """
    from collections import Counter

    from hardware_db.extra_e2e import load_extra
    from search.fidelity.build_floor import transferred_floors
    from search.fidelity.stack_rates import family_rates

    every = load_extra(path)
    rows = [r for r in every if r.usable]
    skipped = Counter(r.reason for r in every if not r.usable)
    from search.errors import UserError

    if not rows:
        raise UserError("--set extra: no usable rows (models and hardware not in the database)")
    ev = evaluate_rows(rows)
    meas = ev["meas_s"]
    n_w, n_b, w_step = _waves_of(ev, 0)
    as_is = tpot_model_s(w_step, ev["compute_s"], ev["weights_s"], ev["osl"], ev["eta"],
                         n_waves=n_w)  # fmt: skip
    sol = tpot_model_s(ev["sol_step_s"], ev["compute_s"], ev["weights_s"], ev["osl"], 1.0,
                       n_waves=ev["sol_waves"])  # fmt: skip
    fams = [r.family for r in rows]
    pred_lofo, fitted = lofo(ev, fams, transferred_floors(every, sorted(set(fams))))
    err_a, err_l = as_is / meas - 1.0, pred_lofo / meas - 1.0
    viol = sol > meas
    pre_share = (as_is - n_w * w_step) / as_is

    def both(sel) -> dict:
        return {"as_is": score_rows(err_a, sel, viol), "lofo": score_rows(err_l, sel, viol)}

    fam_a, src_a, kind_a = np.asarray(fams), np.asarray([r.source_id for r in rows]), None
    kind_a = np.asarray(ev["kind"])
    le8 = np.asarray([r.concurrency <= 8 for r in rows])
    by_family = {}
    for f in sorted(set(fams)):
        sel = fam_a == f
        by_family[f] = both(sel) | {
            "fits_hbm": both(sel & ev["fits"]),
            "le8_users": both(sel & le8),
            "mode": sorted({ev["mode"][i] for i in np.nonzero(sel)[0]}),
            "prefill_share_median": round(float(np.median(pre_share[sel])), 3),
            "lofo_fit": fitted[f],
            "stack_rates": family_rates(rows, ev, sel),
        }
    worst = []
    for i in np.argsort(-np.abs(err_l))[:10]:
        r = rows[i]
        worst.append({
            "id": r.id, "family": r.family, "model": r.model, "gpus": r.tp,
            "users": r.concurrency, "isl": r.isl, "osl": r.osl,
            "measured_ms": _ms(meas[i]), "lofo_ms": _ms(pred_lofo[i]),
            "as_is_ms": _ms(as_is[i]), "sol_ms": _ms(sol[i]),
            "prefill_share": round(float(pre_share[i]), 3),
            "fits_hbm": bool(ev["fits"][i]), "waves": int(n_w[i]),
            "err_lofo_pct": round(float(err_l[i] * 100), 1),
        })  # fmt: skip
    return {
        "level": "e2e",
        "set": "extra",
        "note": (
            "offline-batch TPOT = e2e latency / osl, prefill included: predicted as "
            "n_w·(k·t_step(c_w) + o + o_seq·c_w) + max(F_p/(tp·P·η_p), n_w·W/BW)/osl, n_w "
            "waves of c_w sequences when the KV cache cannot hold the batch; as_is = "
            "calibrated mode out of sample (k=1, o=o_seq=0, R=0), lofo = (k, o, o_seq, η_p, "
            "R) fitted on the other families, at least the one-user floor of the family's "
            "build measured on another family of that build"
        ),
        "rows_total": len(every),
        "rows_used": len(rows),
        "skipped": dict(sorted(skipped.items(), key=lambda kv: -kv[1])),
        "by_source": {
            s: both(src_a == s) | {"le8_users": both((src_a == s) & le8)}
            for s in sorted(set(src_a))
        },
        "by_family": by_family,
        "by_mode_kind": {k: both(kind_a == k) for k in sorted(set(kind_a))},
        "overall": both(np.ones(len(rows), bool)),
        "overall_fits_hbm": both(ev["fits"]),
        "overall_le8_users": both(le8),
        "rows_not_fitting_hbm": int(np.sum(~ev["fits"])),
        "sol_violations": [
            {
                "id": rows[i].id,
                "family": rows[i].family,
                "measured_over_sol": round(float(meas[i] / sol[i]), 3),
                "reason": _why(rows[i], ev, i),
            }
            for i in np.nonzero(viol)[0]
        ],
        "worst": worst,
    }


def _why(r, ev: dict, i: int) -> str:
    """A one-line reason a row is measured below SOL (which bound it breaks)."""
    dec = ev["sol_waves"][i] * ev["sol_step_s"][i]
    meas = ev["meas_s"][i]
    pre = max(ev["compute_s"][i], ev["sol_waves"][i] * ev["weights_s"][i]) / ev["osl"][i]
    if dec > meas:
        why = (
            f"the decode-step SOL alone ({dec * 1e3:.3g} ms: the {r.recipe} weights over "
            f"{r.tp} GPUs read once at peak HBM bandwidth) exceeds the measured "
            f"{meas * 1e3:.3g} ms"
        )
        if not r.full_length:
            return why + (
                ": the benchmark sends batch copies of one prompt without ignore-EOS "
                "(greedy on TensorRT-LLM), so identical sequences route to the same experts "
                "(a MoE step reads the experts of one sequence, not of the batch) and may stop "
                "before osl tokens — the SOL of distinct, full-length sequences does not apply"
            )
        return why + ": the run's precision, split or expert traffic is not what the source labels"
    if pre > meas - dec:
        return "prefill bound at peak does not fit in the measured time (prefill not as assumed)"
    return "sum of both bounds exceeds the measurement"
