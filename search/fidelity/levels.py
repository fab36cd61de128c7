r"""Validation at the kernel level and end to end (``tpsopt validate --level kernels|e2e``).

* :func:`kernel_level_report` — the kernel microbenchmark fits as stored in
  ``hardware_db/data/kernel_calibration.toml`` (:mod:`search.fidelity.kernel_fit`; no
  refit): per fitted group (hardware × framework × kernel class × precision, collectives by
  implementation and op) the held-out MAPE (every fifth distinct shape; all held-out points
  and those at decode shapes), the in-sample MAPE, the point counts and the points faster
  than SOL; summarised per hardware × kernel class (median / min / max over the groups,
  point-weighted MAPE over all held-out points and over those at decode shapes, totals).
* :func:`e2e_level_report` — the kernel-level calibrated mode against the serving
  measurements (``hardware_db/data/serving_measurements.csv``, ≤ 8 users,
  :mod:`search.fidelity.e2e_fit`). By default **no refit**: the stored offsets of
  ``e2e_calibration.toml`` predict every row (in-sample, ~15 s), and the leave-one-model-out
  (LOMO) figures are the stored ones (overall only: the file keeps no per-stack LOMO). A full
  LOMO refit (``refit=True``, every prior scale × model, minutes on a few cores) gives LOMO
  MAPE per stack and per model. ``stale`` says when the stored offsets no longer reproduce
  the stored in-sample MAPE (the kernel tables or the cost model changed since the fit).
"""

from __future__ import annotations

import math

import numpy as np

STALE_PP = 0.5
"""In-sample MAPE difference (percentage points) beyond which the stored fit is stale."""

KERNEL_ROW_KEYS = (
    "n_points", "n_holdout", "n_holdout_decode", "mape_in_pct", "mape_holdout_pct",
    "mape_holdout_decode_pct", "sol_violations", "sol_violations_l2",
)  # fmt: skip


# ----------------------------------------------------------------------------- kernels


def _summary_class(kind: str, cls: str) -> str:
    """Collectives together, attention and MLA core together (as kernel_fit's summary)."""
    if kind == "collective":
        return "comm"
    return {"attention": "attention_mla", "mla": "attention_mla"}.get(cls, cls)


def _weighted(groups, key: str, weight) -> float | None:
    w = np.asarray([weight(g) for g in groups], float)
    v = np.asarray([g[key] for g in groups], float)
    ok = np.isfinite(v) & (w > 0)
    return round(float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])), 3) if ok.any() else None


def _kernel_summary(name: str, gs: list) -> dict:
    held = [g["mape_holdout_pct"] for g in gs if math.isfinite(g["mape_holdout_pct"])]
    return {
        "name": name,
        "groups": len(gs),
        "n_points": int(sum(g["n_points"] for g in gs)),
        "n_holdout": int(sum(g["n_holdout"] for g in gs)),
        "holdout_median_pct": round(float(np.median(held)), 3) if held else None,
        "holdout_min_pct": round(float(np.min(held)), 3) if held else None,
        "holdout_max_pct": round(float(np.max(held)), 3) if held else None,
        # point-weighted: the MAPE over all held-out (in-sample) points of the groups
        "holdout_pooled_pct": _weighted(gs, "mape_holdout_pct", lambda g: g["n_holdout"]),
        # the same at decode shapes (kernel_fit.DECODE_MAX_ROWS): the target figure
        "holdout_decode_pooled_pct": _weighted(
            gs, "mape_holdout_decode_pct", lambda g: g["n_holdout_decode"]
        ),
        "in_pooled_pct": _weighted(gs, "mape_in_pct", lambda g: g["n_points"] - g["n_holdout"]),
        "sol_violations": int(sum(g["sol_violations"] for g in gs)),
        "sol_violations_l2": int(sum(g["sol_violations_l2"] for g in gs)),
    }


def kernel_level_report(path=None) -> dict:
    """The stored kernel-level fit as a JSON-ready dict (module docstring).

    Keys: ``source`` (the TOML's ``[source]`` and its path), ``groups`` (one per stored
    ``[[kernel]]`` / ``[[collective]]``: name, kind, class, system, framework, precision and
    :data:`KERNEL_ROW_KEYS`, values as stored), ``by_hardware_class`` (summaries per
    hardware × summary class), ``by_class`` (per summary class over all hardware) and
    ``overall``.
    """
    from hardware_db.e2e_calibration import kernel_tables
    from hardware_db.loader import DATA_ROOT

    path = DATA_ROOT / "kernel_calibration.toml" if path is None else path
    kern, coll, source = kernel_tables(path)
    groups = []
    for kind, entries in (("kernel", kern), ("collective", coll)):
        for e in entries:
            g = {
                "name": e["name"], "kind": kind, "class": e["class"], "system": e["system"],
                "framework": e["framework"], "precision": e["precision"],
                "variant": e.get("variant", e.get("implementation", "")),
                "summary_class": _summary_class(kind, e["class"]),
            }  # fmt: skip
            for k in KERNEL_ROW_KEYS:
                g[k] = e.get(k)
            for k in ("mape_in_pct", "mape_holdout_pct", "mape_holdout_decode_pct"):
                g[k] = float(g[k])
            groups.append(g)
    by_hw = []
    for hw, c in sorted({(g["system"], g["summary_class"]) for g in groups}):
        gs = [g for g in groups if (g["system"], g["summary_class"]) == (hw, c)]
        by_hw.append({"system": hw, "class": c, **_kernel_summary(f"{hw}/{c}", gs)})
    by_class = [
        _kernel_summary(c, [g for g in groups if g["summary_class"] == c])
        for c in sorted({g["summary_class"] for g in groups})
    ]
    return {
        "level": "kernels",
        "source": {
            **{k: v for k, v in source.items() if isinstance(v, str | int | float)},
            "toml": str(path),
            "refit": False,
        },
        "groups": groups,
        "by_hardware_class": by_hw,
        "by_class": by_class,
        "overall": _kernel_summary("all", groups),
    }


# ----------------------------------------------------------------------------- e2e


def _stored_params(pb, path) -> tuple[dict, dict]:
    """The stored fit as e2e_fit parameters ``{s, f, p}`` for ``pb`` and the raw TOML."""
    from hardware_db import e2e_calibration as ec
    from hardware_db.loader import read_toml
    from search.fidelity import e2e_fit as ef

    st = ec.load_e2e(path)
    doc = read_toml(path or ec.E2E_TOML)  # cached: load_e2e parsed the same file
    zero = np.zeros(len(ec.PARAM_NAMES))
    s = np.stack([st["software"].get(n, zero) for n in pb.sw_names])
    f = np.stack([st["families"].get(n, zero) for n in pb.fam_names])
    eta = np.asarray([doc["software"].get(n, {}).get("prefill_eta", ef.PREFILL_ETA)
                      for n in pb.sw_names], float)  # fmt: skip
    centre = math.log(ef.PREFILL_ETA / (1 - ef.PREFILL_ETA))
    p = np.log(eta / (1 - eta)) - centre
    return {"s": s, "f": f, "p": p}, doc


def _by(pb, names, idx, ins, loo, sol) -> dict:
    from search.fidelity.e2e_fit import _mape

    lt = pb.log_t
    out = {}
    for i, n in enumerate(names):
        sel = idx == i
        out[n] = {
            "rows": int(sel.sum()),
            "mape_lomo_pct": None if loo is None else round(_mape(loo, lt, sel), 2),
            "mape_in_pct": round(_mape(ins, lt, sel), 2),
            "six_scalar_mape_pct": None,
            "sol_violations": int(np.sum(lt[sel] < sol[sel])),
        }
    return out


def e2e_level_report(path=None, refit: bool = False) -> dict:
    """The end-to-end validation as a JSON-ready dict (module docstring).

    *Length:* mostly the assembly of one JSON document (rows, per-stack and per-model
    scores, interval, worst rows) from one prediction pass, field by field.

    Keys: ``source`` (path, date, prior scale, ``refit``, ``note``), ``stored`` (the TOML's
    rows, LOMO and in-sample MAPE, interval and its held-out coverage), ``rows``,
    ``mape_in_pct`` and ``mape_lomo_pct`` (this run: in-sample from the stored offsets or
    the refit; LOMO from the refit, else the stored figure), ``by_stack`` / ``by_model``
    (rows, ``mape_lomo_pct`` — ``None`` without refit —, ``mape_in_pct``,
    ``six_scalar_mape_pct`` — ``None``: e2e_fit does not expose the six-scalar mode on these
    rows —, ``sol_violations``), ``sol_violations`` (rows measured below SOL),
    ``calibrated_below_sol``, ``interval`` (log quantiles, ratios, held-out coverage,
    in-sample coverage), ``worst`` (10 rows with the largest error) and ``stale``.
    """
    import jax
    import jax.numpy as jnp

    from hardware_db import e2e_calibration as ec
    from hardware_db.serving import load_serving
    from search.fidelity import e2e_fit as ef

    pb = ef.build_problem(load_serving(usable_only=True, max_users=ef.MAX_USERS))
    params, doc = _stored_params(pb, path)
    meta, iv = doc.get("meta", {}), doc.get("interval", {})
    stored = {
        "rows": meta.get("rows"),
        "mape_lomo_pct": meta.get("mape_lomo_pct"),
        "mape_in_pct": meta.get("mape_in_pct"),
        "prior_scale": meta.get("prior_scale"),
        "interval_log_q": [iv.get("log_q_low"), iv.get("log_q_high")],
        "interval_coverage_lomo": iv.get("coverage_lomo"),
    }
    with jax.enable_x64(True):
        sol = ef.sol_log(pb)
        if refit:
            lo = ef.lomo(pb)
            ins, loo, lam = lo.insample, lo.loo, lo.scale
        else:
            p = jax.tree.map(jnp.asarray, params)
            ins, loo, lam = np.asarray(ef.predict_log(p, pb)), None, meta.get("prior_scale")
    lt = pb.log_t
    allrows = lt == lt
    mape_in = ef._mape(ins, lt, allrows)
    if loo is not None:
        cov, q = ef.coverage(pb, loo)
        mape_lomo = ef._mape(loo, lt, allrows)
        note = "full leave-one-model-out refit (search.fidelity.e2e_fit.lomo)"
    else:
        cov, q = stored["interval_coverage_lomo"], tuple(stored["interval_log_q"])
        mape_lomo = stored["mape_lomo_pct"]
        note = (
            "no refit: in-sample figures from the stored offsets of e2e_calibration.toml; "
            "LOMO MAPE and the interval's held-out coverage are the stored ones (overall "
            "only; --refit for LOMO per stack and model, minutes)"
        )
    stale = ""
    if not refit and stored["mape_in_pct"] is not None:
        d = mape_in - float(stored["mape_in_pct"])
        if abs(d) > STALE_PP:
            stale = (
                f"stored offsets give in-sample MAPE {mape_in:.2f} %, the file says "
                f"{stored['mape_in_pct']:.2f} % (kernel tables or cost model changed since "
                f"the fit); regenerate: {ec.REGENERATE}"
            )
    err_log = loo if loo is not None else ins
    resid = lt - err_log
    err = np.abs(np.exp(err_log - lt) - 1.0)
    worst = []
    for i in np.argsort(-err)[:10]:
        r = pb.rows[i]
        worst.append({
            "id": r.id, "stack": r.stack, "model": r.model, "recipe": r.recipe,
            "users": r.concurrency, "split": f"tp{r.attn_tp} dp{r.attn_dp} ep{r.ep}",
            "measured_ms": round(math.exp(lt[i]) * 1e3, 3),
            "predicted_ms": round(math.exp(err_log[i]) * 1e3, 3),
            "sol_ms": round(math.exp(sol[i]) * 1e3, 3),
            "err_pct": round(float((math.exp(err_log[i] - lt[i]) - 1.0) * 100), 1),
        })  # fmt: skip
    below = int(np.sum(ins < sol - 1e-9)) + (0 if loo is None else int(np.sum(loo < sol - 1e-9)))
    return {
        "level": "e2e",
        "source": {
            "toml": str(path or ec.E2E_TOML),
            "date": meta.get("date"),
            "prior_scale": lam,
            "refit": bool(refit),
            "note": note,
            "regenerate": ec.REGENERATE,
        },
        "stored": stored,
        "rows": len(pb.rows),
        "max_users": ef.MAX_USERS,
        "mape_in_pct": round(mape_in, 2),
        "mape_lomo_pct": mape_lomo,
        "six_scalar_mape_pct": None,
        "by_stack": _by(pb, pb.fam_names, pb.fam, ins, loo, sol),
        "by_model": _by(pb, pb.model_names, pb.model, ins, loo, sol),
        "sol_violations": [
            {"id": pb.rows[i].id, "measured_over_sol": round(float(np.exp(lt[i] - sol[i])), 3)}
            for i in np.nonzero(lt < sol)[0]
        ],
        "calibrated_below_sol": below,
        "interval": {
            "log_q": [float(q[0]), float(q[1])],
            "ratio": [round(math.exp(q[0]), 4), round(math.exp(q[1]), 4)],
            "coverage_lomo": cov,
            "coverage_in": round(float(np.mean((resid >= q[0]) & (resid <= q[1]))), 3),
        },
        "worst": worst,
        "worst_by": "lomo" if loo is not None else "in-sample (stored offsets)",
        "stale": stale,
    }


# ----------------------------------------------------------------------------- published set


def published_level_report(path=None) -> dict:
    """The kernel-level calibrated mode on the published decode measurements
    (``hardware_db/data/measurements.csv``, every usable row, grades A–C), **never fitted**
    on them: the end-to-end fit sees only the serving set, so every row here is out of
    sample — held out by family trivially (a stronger hold-out than leave-one-family-out).

    Each row runs ``--mode calibrated`` as a user would (:func:`search.scenario.
    calibrated_mode`: the kernel-level mode for trtllm / vllm / sglang or no software,
    *transferred* on hardware without kernel tables, the six-scalar mode for other
    software — whose constants *were* fitted on these rows, so those rows are marked
    ``six_scalar_in_sample``). A one-user row of a software build that families of the
    extra set also ran (LLM-Inference-Bench's MI300X vLLM v0.6.1 ``Dockerfile.rocm`` rows,
    :data:`hardware_db.extra_e2e.BUILDS`) is predicted at least at that build's step floor
    ``W_1/BW + L·f``, ``f`` the median one-user time per layer of the build's extra-set
    families on *other* hardware (:func:`search.fidelity.build_floor.published_step_floors`:
    never these rows nor the extra set's copies of them) — the rule of the extra set's
    leave-one-family-out fit; its mode reads ``…+build_floor:<build>`` and the row carries
    ``build_floor_ms_per_layer``, ``build_floor_s`` and ``err_without_build_floor_pct``.
    Keys: ``rows`` (id, family, grade, mode, measured, SOL, calibrated, error),
    ``by_family``, ``by_source`` (the primary source of the rows,
    :func:`source_label`; kernel-level and transferred rows only, as the six-scalar rows are
    in sample) and ``by_mode_kind`` (rows, MAPE, median signed error, SOL violations),
    ``overall`` (kernel-level rows only, all rows, and the kernel-level rows without the
    build floor), ``sol_violations``.
    """
    from hardware_db.measurements import load_measurements
    from search.fidelity.build_floor import published_step_floors
    from search.fidelity.problem import row_config
    from search.scenario import calibrated_mode
    from search.stacking import Config, evaluate

    rows = [m for m in load_measurements(path, usable_only=True)]
    configs, sols, kinds, names = [], [], [], []
    for m in rows:
        spec, prec, system, par, wl = row_config(m)
        mode, name, _, _ = calibrated_mode(m.system, m.software, prec)
        configs.append(Config(spec, prec, system, par, wl, mode))
        sols.append(Config(spec, prec, system, par, wl, _sol()))
        names.append(name)
        head = name.split(":")[0]
        kinds.append(head if head in ("kernel", "transferred") else "six_scalar_in_sample")
    pred = np.asarray(evaluate(configs).step_time_s, np.float64)
    sol = np.asarray(evaluate(sols).step_time_s, np.float64)
    meas = np.asarray([m.step_time_s for m in rows], np.float64)
    err_no_floor = pred / meas - 1.0
    labels = [source_label(m.source) for m in rows]
    floors = published_step_floors(rows, labels)
    for i, fl in enumerate(floors):
        if fl is not None:
            pred[i] = max(pred[i], fl[2])
            names[i] = f"{names[i]}+build_floor:{fl[0]}"
    err = pred / meas - 1.0
    out_rows = [
        {
            "id": m.id,
            "family": m.family,
            "grade": m.grade,
            "model": m.model,
            "system": m.system,
            "software": m.software,
            "mode": names[i],
            "kind": kinds[i],
            "measured_s": float(meas[i]),
            "sol_s": float(sol[i]),
            "calibrated_s": float(pred[i]),
            "err_pct": round(float(err[i] * 100), 2),
            "sol_lower_bound": bool(sol[i] <= meas[i]),
            "source": labels[i],
        }  # fmt: skip
        | _floor_fields(floors[i], err_no_floor[i])
        for i, m in enumerate(rows)
    ]

    def score(sel, e=err) -> dict:
        from search.fidelity.extra_set import score_rows

        return score_rows(e, sel, sol > meas)

    fams = sorted({m.family for m in rows})
    kind_arr = np.asarray(kinds)
    kernel = kind_arr != "six_scalar_in_sample"
    srcs = np.asarray([r["source"] for r in out_rows])
    fam_arr = np.asarray([m.family for m in rows])
    by_source = {
        s: score(kernel & (srcs == s)) | {"families": sorted(set(fam_arr[kernel & (srcs == s)]))}
        for s in sorted(set(srcs[kernel]))
    }
    return {
        "level": "e2e",
        "set": "published",
        "note": (
            "out of sample: the kernel-level fit never sees these rows; six-scalar rows "
            "(other software) are in sample for that older mode"
        ),
        "rows": out_rows,
        "by_family": {
            f: score([m.family == f for m in rows])
            | {"kind": sorted({kinds[i] for i, m in enumerate(rows) if m.family == f})}
            for f in fams
        },  # fmt: skip
        "by_source": by_source,
        "by_mode_kind": {k: score(kind_arr == k) for k in sorted(set(kinds))},
        "overall": {
            "kernel_level": score(kernel),
            "all": score(kernel | ~kernel),
            "kernel_level_without_build_floor": score(kernel, err_no_floor),
        },
        "sol_violations": [r["id"] for r in out_rows if not r["sol_lower_bound"]],
    }


def _floor_fields(floor, err_no_floor) -> dict:
    """A published row's build-floor fields (none without a floor): ``f`` [ms per layer],
    the floor [s] and the error without it [%]."""
    if floor is None:
        return {}
    return {
        "build_floor_ms_per_layer": round(floor[1] * 1e3, 4),
        "build_floor_s": floor[2],
        "err_without_build_floor_pct": round(float(err_no_floor * 100), 2),
    }


def source_label(url: str) -> str:
    """Short name of a row's primary source: ``owner/repo`` of a GitHub URL, else the host
    (``https://blogs.oracle.com/...`` → ``blogs.oracle.com``)."""
    from urllib.parse import urlparse

    u = urlparse(url.strip())
    parts = [p for p in u.path.split("/") if p]
    if u.netloc.endswith("github.com") and len(parts) >= 2:
        return f"{parts[0]}/{parts[1]}"
    return u.netloc or url.strip()


def _sol():
    from costmodel.specs import SOL

    return SOL
