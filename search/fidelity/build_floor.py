r"""The one-user floor of a software build that two families ran, carried from one family
to the other in the leave-one-family-out fit of ``tpsopt validate --level e2e --set
extra`` (:mod:`search.fidelity.extra_set`).

A one-user step cannot be faster than reading the weights once at the chip's bandwidth
plus what the stack spends per layer outside that read: host work (the engine's Python
model code, scheduling, sampling), kernel launches and the fixed latency of each small
kernel, the collectives. Per layer, from a one-user row of an offline batch::

    f = (TPOT(c = 1) − W_1 / BW) / L             [s per layer]

(:func:`search.fidelity.stack_rates.one_user_per_layer_s`; ``W_1``: the weight bytes per
GPU one token reads — every dense weight, the ``top_k`` routed experts of a MoE layer; the
prefill of one prompt is < 1 % of these rows). **Assumption** (named, not fitted): rows
that ran the same software build — ``build`` of :mod:`hardware_db.extra_e2e`, vLLM v0.6.1
built from its ``Dockerfile.rocm`` for both the MI250 and the MI300X runs of
LLM-Inference-Bench — share ``f``: the host path is the same code on the same kind of
host, the per-kernel path the same HIP runtime and kernels. A family's floor is the
**median** ``f`` of the one-user rows of the *other* families of its build (never its own
rows), and the leave-one-family-out TPOT of its one-user rows is at least::

    TPOT ≥ W_1/BW + L·f + max(F_p/(tp·P·η_p), W_chip/BW) / osl

(the one-user step floor plus the prefill as in the rest of the model, with the family's
fitted ``η_p``; ``W_chip``: resident weights). It is measured at one user and applied at
one user only: at batch the step's per-sequence work is a property of the build's kernels
on each GPU, which this floor does not carry. A family with no other family of its build
gets no floor.

The published set (``tpsopt validate --level e2e --set published``) holds seven copies of
the MI300X family's one-user runs (D37–D40, D51, D57, D58 of ``measurements.csv``, keyed in
``BUILDS`` by primary source, system and software): :func:`published_step_floors` bounds
them by the same floor, with ``f`` from the build's extra-set families on other hardware
(:func:`other_hardware_floor`: the MI250 rows) and without the prefill term — their step
time has the prefill taken out already.
"""

from __future__ import annotations

import numpy as np


def one_token_weights_s(spec, prec, par, chip) -> float:
    """``W_1/BW``: the weight bytes per chip one token's step reads (every dense weight;
    of a MoE layer the ``top_k`` experts the token routes to: the model with
    ``n_experts = top_k``, :func:`search.fidelity.extra_set.same_routing_spec`) over the
    chip's HBM bandwidth [s]."""
    from costmodel.decode import weight_bytes_per_chip
    from costmodel.specs import Workload
    from search.fidelity.extra_set import same_routing_spec

    if float(spec.n_experts) > 0:
        spec = same_routing_spec(spec)
    wl = Workload(batch=1.0, context_tokens=1.0)
    return float(weight_bytes_per_chip(spec, prec, par, wl)) / float(chip.hbm_bw_bytes_per_s)


def floor_tpot_s(weights_s, n_layers, f_s, n_waves, prefill_s):
    """``n_w·(W_chip/BW + L·f) + prefill_s`` seconds (module doc; broadcasting;
    ``prefill_s`` = ``max(F_p/(tp·P·η_p), n_w·W_chip/BW)/osl``)."""
    step = np.asarray(weights_s, float) + np.asarray(n_layers, float) * np.asarray(f_s)
    return np.asarray(n_waves, float) * step + np.asarray(prefill_s, float)


def one_user_floors(rows) -> list[tuple[str, str, float]]:
    """``(build, family, f)`` of every one-user row with a shared build whose model is in
    the database and whose hardware has a chip (a system's, or
    :data:`hardware_db.extra_e2e.CHIP_ONLY` for rows the cost model does not evaluate)."""
    import hardware_db as db
    from costmodel.specs import Parallelism
    from hardware_db.extra_e2e import CHIP_ONLY
    from hardware_db.extra_models import load_model_any
    from search.fidelity.stack_rates import one_user_per_layer_s

    out, specs, chips = [], {}, {}
    for r in rows:
        chip_only = CHIP_ONLY.get(r.hardware) if r.system is None else None
        if not r.build or r.concurrency != 1 or r.model is None or r.recipe is None:
            continue
        if r.system is None and chip_only is None:
            continue
        if r.model not in specs:
            specs[r.model] = load_model_any(r.model)[0]
        key = r.system or chip_only
        if key not in chips:
            chips[key] = db.load_system(r.system).chip if r.system else db.load_chip(key)
        spec, chip = specs[r.model], chips[key]
        par = Parallelism(r.tp, 1, 1, 1, r.tp, 1)
        w_s = one_token_weights_s(spec, db.load_precision(r.recipe), par, chip)
        f = float(one_user_per_layer_s(r.tpot_s, w_s, float(spec.n_layers)))
        out.append((r.build, r.family, f))
    return out


def median_floor(floors, build: str, exclude) -> float | None:
    """The median ``f`` of the ``(build, family, f)`` of :func:`one_user_floors` whose build is
    ``build`` and whose family is not in ``exclude`` (``None`` without one, or without a
    build)."""
    vals = [f for b, fam, f in floors if build and b == build and fam not in exclude]
    return float(np.median(vals)) if vals else None


def transferred_floors(rows, families) -> dict:
    """``{family: f or None}`` for the families named: the median ``f`` of the one-user rows
    of the other families of the same build (module doc), ``None`` without one."""
    floors = one_user_floors(rows)
    build_of = {r.family: r.build for r in rows if r.build}
    return {fam: median_floor(floors, build_of.get(fam, ""), {fam}) for fam in families}


def other_hardware_floor(extra_rows, build: str, system: str) -> float | None:
    """The floor ``f`` of a build for rows *outside* the extra set that ran it on ``system``
    (the published set's copies of the same benchmark, :func:`published_step_floors`): the
    median ``f`` of the one-user extra rows of the build's families on other hardware —
    every extra family of the build on ``system`` is left out, as those rows are the same
    measurements (the same rule as the leave-one-family-out fit)."""
    same = {r.family for r in extra_rows if r.build == build and r.system == system}
    mine = [r for r in extra_rows if r.build == build and r.family not in same]
    return median_floor(one_user_floors(mine), build, same)


def published_step_floors(rows, labels, extra_rows=None) -> list:
    r"""Per published measurement row (:mod:`hardware_db.measurements`), ``(build, f, floor)``
    where the build floor applies, else ``None``. It applies to a one-user row (``batch``
    1) whose ``(labels[i], system, software)`` — ``labels``: the primary source as
    :func:`search.fidelity.levels.source_label` names it — is a key of
    :data:`hardware_db.extra_e2e.BUILDS`, with ``f`` from
    :func:`other_hardware_floor` on the extra set (``extra_rows``, default
    :func:`hardware_db.extra_e2e.load_extra`)::

        floor = W_1/BW + L·f                          [s per decode step]

    — the step part of the floor of the module doc: a published row's ``step_time_s`` is
    the decode step with its prefill already taken out (the modelled TTFT of the row's
    ``notes``), so no prefill term (``floor_tpot_s`` with one wave and ``prefill_s = 0``).
    ``W_1``: :func:`one_token_weights_s` of the row's model, precision, split and chip."""
    from hardware_db.extra_e2e import BUILDS, load_extra
    from search.fidelity.problem import row_config

    out, fs = [], {}
    for m, label in zip(rows, labels, strict=True):
        build = BUILDS.get((label, m.system, m.software), "")
        if not build or m.batch != 1:
            out.append(None)
            continue
        if (build, m.system) not in fs:
            extra_rows = load_extra() if extra_rows is None else extra_rows  # once, if needed
            fs[(build, m.system)] = other_hardware_floor(extra_rows, build, m.system)
        f_s = fs[(build, m.system)]
        if f_s is None:
            out.append(None)
            continue
        spec, prec, system, par, _ = row_config(m)
        w_s = one_token_weights_s(spec, prec, par, system.chip)
        out.append((build, f_s, float(floor_tpot_s(w_s, spec.n_layers, f_s, 1.0, 0.0))))
    return out
