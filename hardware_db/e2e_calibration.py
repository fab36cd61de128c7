r"""Kernel-level calibrated mode as data: the kernel-table prior, the end-to-end offsets.

A kernel-level calibration (:class:`costmodel.kernel_mode.KernelCalibration`) of a stack
— hardware × software, for one precision recipe — is composed in an unconstrained
parameter space θ (:data:`PARAM_NAMES`, :func:`to_theta` / :func:`values_of`)::

    θ = θ_table(hardware, software, precision) + δ_software + δ_hardware/software

* ``θ_table``: the kernel microbenchmark fits of ``data/e2e_kernel_prior.toml`` (the
  max form of :mod:`costmodel.kernel_mode` fitted to the decode-shape points, one kernel
  variant per stack: ``python -m search.fidelity.kernel_fit --form max --decode-only
  --write-prior``) for each
  kernel class at the recipe's precision (:func:`table_theta`, nearest entry when the
  exact one is missing: same hardware first, then precision family, then framework), the
  stack's all-reduce and NCCL's all-gather / all-to-all, and :data:`SMALL_PRIOR` /
  :data:`STEP_PRIOR` for the small kernels and the per-step overhead (no tables);
* ``δ``: offsets fitted end to end to the serving measurements
  (``search.fidelity.e2e_fit``), stored in ``data/e2e_calibration.toml``
  (:data:`E2E_TOML`; regenerate with :data:`REGENERATE`), one per entry of
  :data:`PARAM_NAMES`; the feed-forward GEMM class ``gemm_ffn`` (:data:`TIED`) has its own
  table prior (the ``gemm`` table at the recipe's FFN precision) and ``gemm``'s offsets::

      θ_gemm_ffn = θ_table(gemm @ FFN precision) + δ_software,gemm + δ_hardware/software,gemm

  so where the FFN and attention precisions agree, ``θ_gemm_ffn = θ_gemm`` exactly.

**Transforms**: times, half-points and β are ``exp(θ)``; efficiencies and γ are
``sigmoid(θ)`` (in (0, 1)).

**Lookup** (:func:`kernel_values_for`): a fitted family → its offsets; a software seen on
other hardware → the software offsets on this hardware's table prior; hardware never
measured (MI300X, TPUs, Gaudi, the reticle die …) → **transferred** from the nearest
measured hardware (log distance of HBM bandwidth and BF16 peak): its table prior and
offsets, with collective bandwidths scaled by the ratio of scale-up link bandwidths;
kernel times use the target chip's own peaks and bandwidths in the cost model. The mode
name says which: ``kernel:<hw>/<sw>``, ``kernel:<hw>/<sw>*`` (software level),
``transferred:<hw>/<sw>``.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from hardware_db import DbError
from hardware_db.loader import DATA_ROOT, load_system, read_toml, resolve
from hardware_db.stack_kernels import launch_table

KERNEL_TOML = DATA_ROOT / "e2e_kernel_prior.toml"
"""The kernel-table prior of the end-to-end fit: the kernel-level mode's max form
(:func:`costmodel.kernel_mode.main_kernel_s`) and one-regime collectives fitted to the
decode-shape kernel-table points with the counts of ``search.fidelity.kernel_fit``
(``--form max --decode-only --write-prior``), one kernel variant per hardware × framework ×
class × precision"""
E2E_TOML = DATA_ROOT / "e2e_calibration.toml"
REGENERATE = "tpsopt calibrate --level e2e --write"

CLASSES = ("gemm", "attention", "mla", "moe", "small")
KERNEL_FIELDS = ("t_floor_s", "eta_c_max", "m_half_rows", "eta_m_max", "b_half_bytes")
COLLS = ("all_reduce", "all_gather", "all_to_all")
COLL_FIELDS = ("alpha0_s", "alpha1_s", "beta_max_bytes_per_s", "gamma")

PARAM_NAMES = tuple(
    [f"{c}.{f}" for c in CLASSES for f in KERNEL_FIELDS]
    + [f"{c}.{f}" for c in COLLS for f in COLL_FIELDS]
    + ["step_overhead_s"]
)
"""Entries of the end-to-end offsets δ (``data/e2e_calibration.toml``), in order: the
first :data:`PARAM_NAMES` entries of θ."""

TIED = {"gemm_ffn": "gemm"}
"""Kernel classes with a kernel-table prior of their own but no offsets of their own: the
feed-forward dense GEMMs (``gemm_ffn``: dense FFN layers, shared experts) are the ``gemm``
kernel table at the recipe's FFN precision (:func:`precisions_of`) and move with ``gemm``'s
end-to-end offsets (:func:`tied_offsets`): the same GEMM library on the same stack, so the
same software / family departures from the microbenchmark; no new free parameter."""

THETA_NAMES = PARAM_NAMES + tuple(f"{c}.{f}" for c in TIED for f in KERNEL_FIELDS)
"""Entries of θ, in order: :data:`PARAM_NAMES`, then the tied classes' constants."""

OFFSET_INDEX = np.asarray(
    [PARAM_NAMES.index(k.replace(f"{c}.", f"{TIED[c]}.", 1)) if (c := k.split(".")[0]) in TIED
     else PARAM_NAMES.index(k) for k in THETA_NAMES]
)  # fmt: skip
"""``[len(THETA_NAMES)]``: the offset (:data:`PARAM_NAMES` index) each θ entry moves with."""

_LOGIT = {"eta_c_max", "eta_m_max", "gamma"}

SMALL_PRIOR = {
    "t_floor_s": 2.5e-6,
    "eta_c_max": 0.3,
    "m_half_rows": 1.0,
    "eta_m_max": 0.5,
    "b_half_bytes": 1e5,
}
"""Prior of the small-kernel class (norms, elementwise, top-k): one short kernel inside a
CUDA graph, ~2–3 µs (no microbenchmark table)."""

STEP_PRIOR = 200e-6
"""Prior per-step overhead (scheduler, sampling, host/device sync around the graph)."""

AUX_KERNELS = {"trtllm": 0.5, "vllm": 1.0, "sglang": 0.75}
"""Used only by a stack without a launch table (:mod:`hardware_db.stack_kernels`): share of
the operators' auxiliary kernels (norms, latent norms, activation, top-k,
sampling) each stack launches separately (``docs/calibration.md``: TensorRT-LLM fuses
residual-add + RMSNorm into its all-reduce and quantisation into norms; SGLang fuses
residual + norm and some MLA pre-processing; vLLM fuses residual + norm, not the
all-reduce)."""

HW_ORDER = ("a100_sxm", "h100_sxm", "h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300")
"""Measured hardware slugs, oldest to newest (nearness for table fallbacks)."""

_PREC_FAMILY = {
    "bfloat16": "16", "float16": "16", "half": "16",
    "fp8": "8", "fp8_block": "8", "sq": "8", "w4a8_mxfp4_mxfp8": "8", "int8": "8",
    "nvfp4": "4",
    "int4_wo": "wo", "int8_wo": "wo", "w4a16_mxfp4": "wo",
}  # fmt: skip


# ----------------------------------------------------------------------------- θ


def _is_logit(name: str) -> bool:
    return name.split(".")[-1] in _LOGIT


def tied_offsets(delta):
    """Offsets ``[..., len(THETA_NAMES)]`` of θ from the fitted ones ``[..., len(PARAM_NAMES)]``:
    ``δ_θ[i] = δ[OFFSET_INDEX[i]]`` (a tied class takes its parent's, :data:`TIED`);
    traceable (a gather, so ``∂/∂δ_gemm`` collects both classes' sensitivities)."""
    return delta[..., OFFSET_INDEX]


def to_theta(values: dict) -> np.ndarray:
    """θ ``[len(THETA_NAMES)]`` of a value dict keyed by :data:`THETA_NAMES`."""
    out = []
    for k in THETA_NAMES:
        v = float(values[k])
        if _is_logit(k):
            p = min(max(v, 1e-6), 1 - 1e-6)
            out.append(math.log(p / (1 - p)))
        else:
            out.append(math.log(max(v, 1e-12)))
    return np.asarray(out)


def values_of(theta) -> dict:
    """``{name: value}`` of θ ``[..., len(THETA_NAMES)]`` (traceable: jax arrays in, jax
    arrays out)."""
    out = {}
    for i, k in enumerate(THETA_NAMES):
        t = theta[..., i]
        out[k] = jax.nn.sigmoid(t) if _is_logit(k) else jnp.exp(t)
    return out


def nested(values: dict, aux_kernels: float = 1.0, beta_scale: float = 1.0, launches=None) -> dict:
    """``{class: {field: v}, coll: {field: v}, step_overhead_s, aux_kernels, launches}`` of a
    flat value dict (the shape :func:`costmodel.kernel_mode.from_values` reads);
    ``launches``: the stack's launch table (:mod:`hardware_db.stack_kernels`) or ``None``."""
    out: dict = {
        "step_overhead_s": values["step_overhead_s"],
        "aux_kernels": aux_kernels,
        "launches": launches,
    }
    for c in (*CLASSES, *TIED):
        out[c] = {f: values[f"{c}.{f}"] for f in KERNEL_FIELDS}
    for c in COLLS:
        out[c] = {f: values[f"{c}.{f}"] for f in COLL_FIELDS}
        out[c]["beta_max_bytes_per_s"] = out[c]["beta_max_bytes_per_s"] * beta_scale
    return out


# ----------------------------------------------------------------------------- tables


@functools.lru_cache(maxsize=2)
def _tables(path: str, mtime_ns: int):
    del mtime_ns
    doc = read_toml(path)
    return doc.get("kernel", []), doc.get("collective", []), doc.get("source", {})


def kernel_tables(path=None):
    """``(kernel entries, collective entries, source)`` of ``kernel_calibration.toml``."""
    p = Path(path) if path is not None else KERNEL_TOML
    if not p.is_file():
        raise DbError(f"{p}: no kernel calibration; run `python -m search.fidelity.kernel_fit`")
    return _tables(str(p), p.stat().st_mtime_ns)


def _hw_dist(a: str, b: str) -> int:
    if a == b:
        return 0
    ia = HW_ORDER.index(a) if a in HW_ORDER else 99
    ib = HW_ORDER.index(b) if b in HW_ORDER else 99
    return 1 + abs(ia - ib)


def _nearest_kernel(entries, hw, sw, cls, prec):
    """The table entry of class ``cls`` for a stack: same hardware first (then nearest in
    :data:`HW_ORDER`), the recipe's precision, then its family, then the framework."""
    best, key = None, None
    for e in entries:
        if e["class"] != cls:
            continue
        pd = 0 if e["precision"] == prec else (
            1 if _PREC_FAMILY.get(e["precision"]) == _PREC_FAMILY.get(prec) else 2
        )  # fmt: skip
        k = (_hw_dist(e["system"], hw), pd, e["framework"] != sw, e["name"])
        if key is None or k < key:
            best, key = e, k
    return best


def _collective(entries, hw, sw, op):
    """The stack's captured-graph all-reduce, else NCCL's (half precision)."""
    cls = f"comm:{'alltoall' if op == 'all_to_all' else op}"

    def score(e):
        impl = e.get("implementation", "")
        own = e["framework"] == sw and "eager" not in impl
        nccl = e["framework"] == "nccl" and e["precision"] == "half"
        pref = 0 if (op == "all_reduce" and own) else (1 if nccl else 2)
        return (_hw_dist(e["system"], hw), pref, e["name"])

    cands = [e for e in entries if e["class"] == cls]
    return min(cands, key=score) if cands else None


COLLECTOR_EXTRA_LAUNCHES = {("trtllm", "gemm", "fp8"): 3}
"""Launches the kernel-table microbenchmark times inside one operator that the serving
stack does not run, per ``(framework, class, table precision)``.

**TensorRT-LLM per-tensor FP8 GEMM: 3.** The table's collector (aiconfigurator
``collector/trtllm/collect_gemm.py``) loads an FP8 ``Linear`` with ``weight`` and
``weight_scale`` only, no ``input_scale``, so ``FP8QDQLinearMethod.apply``
(``tensorrt_llm/_torch/modules/linear.py``) quantises the activation *dynamically* inside
each timed call: ``quantize_e4m3_per_tensor`` → ``invokeComputeScalesAndQuantizeMatrix``
in ``PER_TENSOR`` mode (``cpp/tensorrt_llm/common/cudaFp8Utils.cu``): a
``cudaMemsetAsync`` of the scale, the ``computeFP8QuantizeScale`` max-reduction kernel and
the quantisation kernel, then the cuBLAS FP8 GEMM. A served FP8 checkpoint (ModelOpt,
e.g. ``nvidia/Llama-3.1-70B-Instruct-FP8``) carries static input scales, and TensorRT-LLM
hands the GEMMs FP8 activations already: quantisation fused into the all-reduce + RMSNorm
(``AllReduceFusionOp.RESIDUAL_RMS_NORM_QUANT_FP8``), the attention output and the SwiGLU
epilogue (``modeling_llama.py``, ``modeling_qwen3.py``), so the three launches do not
exist there. (vLLM's per-tensor FP8 table is timed with a static scale, one quantisation
kernel, as vLLM serves it; block-scaled tables time the per-group quantisation both
collector and server run: no correction.)"""


def _without_collector_launches(e: dict, sw: str, cls: str, prec: str) -> dict:
    r"""Kernel-table constants of ``e`` less the collector's extra launches.

    The max form's fixed costs are the floor and the memory term's intercept
    ``c_b = b_half/(W·η_m,max)`` (``memory_time_s = (Q + b_half)/(W·η_m,max)``); a table
    point that includes ``n`` extra launches of ``t_x`` seconds each (:data:`SMALL_PRIOR`'s
    floor: one short kernel inside a CUDA graph, the time the mode charges every auxiliary
    kernel) is modelled as the served kernel plus ``n·t_x``::

        t_floor' = max(t_floor − n·t_x, 0),  b_half' = max(c_b − n·t_x, 0)·W·η_m,max

    with ``W`` the HBM bandwidth of the entry's system (the fit's). Efficiencies and the
    compute term are unchanged; floors ≥ 0 and η ≤ 1 keep SOL a lower bound.
    """
    n = COLLECTOR_EXTRA_LAUNCHES.get((sw, cls, prec), 0)
    if not n or e.get("framework") != sw or e.get("precision") != prec:
        return e
    t_x = n * SMALL_PRIOR["t_floor_s"]
    bw = float(load_system(e["db_system"]).chip.hbm_bw_bytes_per_s)
    wm = bw * float(e["eta_m_max"])
    c_b = float(e["b_half_bytes"]) / wm
    return dict(
        e,
        t_floor_s=max(float(e["t_floor_s"]) - t_x, 0.0),
        b_half_bytes=max(c_b - t_x, 0.0) * wm,
        name=e["name"] + f" (less {n} collector launches)",
    )


def table_values(hw: str, sw: str, precisions: dict, path=None) -> tuple[dict, tuple]:
    """Flat value dict of the kernel-table prior and the table entries used (names)."""
    kern, coll, _ = kernel_tables(path)
    vals, used = {}, []
    for c in (*CLASSES, *TIED):
        if c == "small":
            e = dict(SMALL_PRIOR, name="prior:small")
        else:
            prec = precisions.get(c, precisions.get(TIED.get(c, c), "bfloat16"))
            table = TIED.get(c, c)  # a tied class reads its parent's kernel table
            e = _nearest_kernel(kern, hw, sw, table, prec)
            if e is None:
                raise DbError(f"{KERNEL_TOML}: no kernel entry of class {table}")
            e = _without_collector_launches(e, sw, table, e["precision"])
        used.append(e["name"])
        for f in KERNEL_FIELDS:
            vals[f"{c}.{f}"] = float(e[f])
    for c in COLLS:
        e = _collective(coll, hw, sw, c)
        if e is None:
            raise DbError(f"{KERNEL_TOML}: no collective entry for {c}")
        used.append(e["name"])
        for f in COLL_FIELDS:
            vals[f"{c}.{f}"] = max(float(e[f]), 1e-9)
    vals["step_overhead_s"] = STEP_PRIOR
    return vals, tuple(used)


def table_theta(hw: str, sw: str, precisions: dict, path=None) -> np.ndarray:
    """θ ``[len(THETA_NAMES)]`` of the kernel-table prior of a stack at ``precisions`` (per
    kernel class; a tied class without its own entry takes its parent's precision)."""
    return to_theta(table_values(hw, sw, precisions, path)[0])


def precisions_of(prec) -> dict:
    """Kernel-table precision per kernel class of a :class:`~costmodel.specs.Precision`.

    ``gemm`` (attention / MLA projections, router, LM head …): the attention linears'
    ``(attn_compute_bits, attn_weight_bytes)``; ``gemm_ffn`` (dense FFN layers, shared
    experts: :mod:`costmodel.operators` ``kclass``): the FFN linears'
    ``(ffn_compute_bits, ffn_weight_bytes)`` — e.g. ``nvfp4-moe`` (NVFP4 FFN, BF16
    attention) or ``fp8-ffn`` (Llama-3.1-405B-FP8: FP8 feed-forward, BF16 attention);
    ``moe``: the experts'; attention cores: the KV cache's. The format of a pair
    ``(bits, bytes)`` follows the kernel tables' quantisation modes (``fmt`` below)."""

    def fmt(bits, nbytes):
        bits, nbytes = float(bits), float(nbytes)
        if bits <= 4.5:
            return "nvfp4"
        if bits <= 8.5:
            return "fp8_block" if nbytes > 1.0 else "fp8"
        if nbytes < 0.55:
            return "w4a16_mxfp4"
        if nbytes < 0.9:
            return "int4_wo"
        if nbytes < 1.5:
            return "int8_wo"
        return "bfloat16"

    kv = "fp8" if float(prec.kv_bytes) <= 1.0 else "bfloat16"
    return {
        "gemm": fmt(prec.attn_compute_bits, prec.attn_weight_bytes),
        "gemm_ffn": fmt(prec.ffn_compute_bits, prec.ffn_weight_bytes),
        "moe": fmt(prec.expert_compute_bits, prec.expert_weight_bytes),
        "attention": kv,
        "mla": kv,
    }


# ----------------------------------------------------------------------------- stored fit


def _offsets(path, where_: str, table) -> np.ndarray:
    if not isinstance(table, dict):
        raise DbError(f"{path}: {where_}: expected a table")
    out = []
    for k in PARAM_NAMES:
        v = table.get(k, 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise DbError(f"{path}: {where_}.{k}: expected a finite number, got {v!r}")
        out.append(float(v))
    return np.asarray(out)


@functools.lru_cache(maxsize=2)
def _load_e2e(path: str, mtime_ns: int) -> dict:
    del mtime_ns
    doc = read_toml(path)
    sw = {k: _offsets(path, f"software.{k}", t) for k, t in doc.get("software", {}).items()}
    fam = {k: _offsets(path, f"families.{k}", t) for k, t in doc.get("families", {}).items()}
    interval = doc.get("interval", {})
    for k in ("log_q_low", "log_q_high"):
        v = interval.get(k)
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise DbError(f"{path}: interval.{k}: expected a finite number, got {v!r}")
    return {"software": sw, "families": fam, "interval": interval, "meta": doc.get("meta", {})}


def load_e2e(path=None) -> dict:
    """The stored end-to-end offsets (``software``, ``families``: θ offsets ``[P]``),
    ``interval`` (log-residual quantiles) and ``meta``."""
    p = Path(path) if path is not None else E2E_TOML
    if not p.is_file():
        raise DbError(f"{p}: no e2e calibration; run `{REGENERATE}`")
    return _load_e2e(str(p), p.stat().st_mtime_ns)


def source_slug(system_name: str) -> str | None:
    """The kernel-table hardware slug of a database system (None if never measured)."""
    name = resolve("systems", system_name)
    kern, _, _ = kernel_tables()
    for e in kern:
        if e.get("db_system") == name:
            return e["system"]
    return None


def _link_bw(system) -> float:
    tiers = [t for t in system.tiers if float(t.domain_chips) > 1]
    return float(tiers[0].bw_bytes_per_s) if tiers else 1.0


def _nearest_measured(system_name: str, candidates) -> str:
    """Measured hardware slug nearest to ``system_name`` (log HBM bandwidth and peak)."""
    kern, _, _ = kernel_tables()
    db_of = {e["system"]: e["db_system"] for e in kern}
    tgt = load_system(system_name).chip
    tb = max(float(tgt.hbm_bw_bytes_per_s), float(tgt.sram_bw_bytes_per_s), 1.0)
    tp = max(float(tgt.peak_flops_per_s_bf16), 1.0)

    def dist(hw):
        c = load_system(db_of[hw]).chip
        return abs(math.log(tb / float(c.hbm_bw_bytes_per_s))) + abs(
            math.log(tp / float(c.peak_flops_per_s_bf16))
        )

    return min(sorted(candidates), key=dist)


def kernel_values_for(system_name: str, software: str | None, prec, path=None, e2e_path=None):
    """``(nested values, mode_name, notes, (log_q_low, log_q_high))`` of the kernel-level
    calibrated mode on ``system_name`` with ``software`` at Precision ``prec``.

    Raises :class:`DbError` if no end-to-end calibration is stored (callers fall back to
    the older calibrated mode)."""
    e2e = load_e2e(e2e_path)
    fams = e2e["families"]
    measured_hw = sorted({k.split("/")[0] for k in fams})
    sw = software or "trtllm"
    notes = [] if software else ["no software given: trtllm assumed"]
    hw = source_slug(system_name)
    name = resolve("systems", system_name)
    beta_scale = 1.0
    if hw is None or hw not in measured_hw:
        cands = [h for h in measured_hw if f"{h}/{sw}" in fams] or measured_hw
        src = _nearest_measured(name, cands)
        kern, _, _ = kernel_tables()
        src_db = next(e["db_system"] for e in kern if e["system"] == src)
        beta_scale = _link_bw(load_system(name)) / _link_bw(load_system(src_db))
        mode = f"transferred:{src}/{sw}"
        notes.append(
            f"{name} never measured: efficiencies and floors of {src}/{sw} on {name}'s own "
            f"peaks and bandwidths (collective bandwidth × {beta_scale:.3g})"
        )
        hw_used = src
    else:
        hw_used, mode = hw, f"kernel:{hw}/{sw}"
    theta = table_theta(hw_used, sw, precisions_of(prec), path)
    fam = f"{hw_used}/{sw}"
    if fam in fams:
        theta = theta + tied_offsets(e2e["software"].get(sw, np.zeros(len(PARAM_NAMES))))
        theta = theta + tied_offsets(fams[fam])
    elif sw in e2e["software"]:
        theta = theta + tied_offsets(e2e["software"][sw])
        if not mode.startswith("transferred"):
            mode += "*"
        notes.append(f"{fam} not measured end to end: software-level offsets of {sw}")
    else:
        notes.append(f"software {sw} not measured end to end: kernel-table prior only")
    vals = {k: float(v) for k, v in values_of(jnp.asarray(theta)).items()}
    iv = e2e["interval"]
    q = (float(iv["log_q_low"]), float(iv["log_q_high"]))
    launches = launch_table(sw)
    return nested(vals, AUX_KERNELS.get(sw, 1.0), beta_scale, launches), mode, tuple(notes), q
