"""A sensible parallel split for a (model, system) pair when the user gives none.

Rule (what serving stacks do at low batch): attention tensor-parallel over the largest
power of two that fits the scale-up domain and divides the heads; the MoE side uses the
same chips, as expert parallelism over the largest power-of-two divisor of the experts,
the rest as MoE tensor parallelism; pipeline stages are added (doubling) only until the
weights and KV fit. Degrees the user gives are kept, the others completed around them.
"""

from __future__ import annotations

import numpy as np

from costmodel.decode import decode_step
from costmodel.specs import Parallelism, SystemSpec
from search.errors import UserError, check_number
from search.jit import jit_fast_compile
from search.scenario import Scenario

eval_one = jit_fast_compile(decode_step)
"""``decode_step`` compiled for one configuration; shared by the commands so that a
scenario's program compiles once per process. Call it at top level (it carries compiler
options); inside your own ``jit``, call :func:`costmodel.decode.decode_step` directly."""


def eval_first(sc: Scenario, par: Parallelism):
    """One evaluation of ``sc`` with ``par`` without compiling: the cost model's jaxpr run
    by NumPy (:func:`search.interpret.eval_records`; traced once per record structure,
    then ~15 ms a call). For the few evaluations a command makes before its answer (the
    default split, a split check, ``tpsopt eval``); values equal :data:`eval_one`'s to
    float rounding."""
    from search.interpret import eval_records, supports

    if not supports(sc.model, sc.precision, sc.system, sc.mode):  # array leaves: compile
        return eval_one(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode)
    return eval_records(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode)


def scale_up_domain(system: SystemSpec) -> float:
    """Chips of the innermost inter-chip tier (the die tier, if any, is skipped)."""
    for t in system.tiers:
        if float(t.domain_chips) > 1:
            return min(float(t.domain_chips), float(system.max_chips))
    return float(system.max_chips)


def _largest_pow2_divisor(n: float, cap: float) -> int:
    d = 1
    while d * 2 <= cap and n % (d * 2) == 0:
        d *= 2
    return d


def complete_parallelism(
    sc: Scenario, tp=None, ep=None, pp=None, attn_dp=None, kvp=None, moe_tp=None
) -> Parallelism:
    """Fill the degrees not given (``None``) with the default rule above."""
    m = sc.model
    heads = float(m.n_heads) or float(m.linear_v_heads) or 1.0
    n_experts = float(m.n_experts) if float(m.n_moe_layers) > 0 else 0.0
    cap = min(scale_up_domain(sc.system), float(sc.system.max_chips))
    dp = attn_dp or 1
    kv = kvp or 1
    if tp is None:
        tp = _largest_pow2_divisor(heads, max(1.0, cap / (dp * kv)))
    n = tp * kv * dp
    if ep is None and moe_tp is None:
        ep = _largest_pow2_divisor(n_experts, n) if n_experts else 1
        moe_tp = n // ep
    elif ep is None:
        ep = max(1, n // moe_tp)
    elif moe_tp is None:
        moe_tp = max(1, n // ep)
    if pp is not None:
        return Parallelism(float(tp), float(dp), float(kv), float(ep), float(moe_tp), float(pp))
    pp = 1
    while True:
        par = Parallelism(float(tp), float(dp), float(kv), float(ep), float(moe_tp), float(pp))
        r = eval_first(sc, par)
        fits = float(r.memory_per_chip_bytes) <= float(r.capacity_per_chip_bytes)
        if fits or n * pp * 2 > float(sc.system.max_chips) or pp * 2 > float(m.n_layers):
            return par
        pp *= 2


def check_degrees(**degrees) -> dict:
    """Validate user-given degrees (integers in [1, 10⁷], keyed by the caller's names,
    which errors name); return them as ints (``None`` kept)."""
    return {
        name: None if v is None else int(check_number(name, v, 1, 1e7, integer=True))
        for name, v in degrees.items()
    }


def _listing(values, limit: int = 12) -> str:
    vals = [str(int(v)) for v in values]
    return ", ".join(vals[:limit]) + (", …" if len(vals) > limit else "")


def check_split(sc: Scenario, par: Parallelism) -> Parallelism:
    """Reject a user-given split that breaks the model's rules (the reason bits of
    :mod:`costmodel.feasibility` other than capacity) with one line naming each broken
    rule and the allowed values; capacity is an answer, not an error."""
    from costmodel import feasibility as F
    from search.results import parallelism_dict
    from search.splits import MAX_BUDGET, _heads_ok, candidate_degrees, divisors

    m, wl = sc.model, sc.workload
    r = eval_first(sc, par)
    bits = int(r.reason) & ~F.CAPACITY
    if not bits:
        return par
    deg = parallelism_dict(par)
    n_attn, n_ffn = deg["attn_tp"] * deg["kvp"] * deg["attn_dp"], deg["ep"] * deg["moe_tp"]
    allowed = {
        F.CHIPS: f"this split uses {n_attn * deg['pp']} chips, the system has "
        f"{float(sc.system.max_chips):g}",
        F.GROUPS: f"ep·moe_tp = {n_ffn} must equal attn_tp·kvp·attn_dp = {n_attn} (Helix "
        f"layout) or, with kvp > 1, attn_tp·attn_dp = {n_attn // deg['kvp']} (shared layout)",
        F.BATCH: f"allowed attn_dp: divisors of the batch ({_listing(divisors(wl.batch))})",
        F.LAYERS: f"allowed pp ≤ {float(m.n_layers):g} layers",
        F.CONTEXT: f"allowed kvp ≤ the context ({float(wl.context_tokens):g} tokens)",
    }
    if bits & F.HEADS:
        tp = np.asarray(candidate_degrees(m, MAX_BUDGET)["attn_tp"], float)
        allowed[F.HEADS] = f"allowed attn_tp: {_listing(tp[_heads_ok(m, tp)])}"
    if bits & F.EXPERTS:
        if float(m.n_moe_layers) > 0:
            allowed[F.EXPERTS] = (
                f"allowed ep: divisors of {float(m.n_experts):g} experts "
                f"({_listing(divisors(m.n_experts))}); moe_tp: divisors of "
                f"{float(m.d_ff_expert):g} ({_listing(divisors(m.d_ff_expert))})"
            )
        else:
            allowed[F.EXPERTS] = "the model has no experts: ep must be 1"
    split = " ".join(f"{k}={v}" for k, v in deg.items() if v != 1) or "single chip"
    why = "; ".join(
        f"{msg} ({allowed[bit]})" if bit in allowed else msg
        for bit, msg in F.MESSAGES.items()
        if bits & bit
    )
    raise UserError(f"split {split} is not valid for {sc.model_name} on {sc.system_name}: {why}")
