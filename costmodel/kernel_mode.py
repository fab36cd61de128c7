r"""Kernel-level calibrated mode: one :class:`KernelCalibration` record per stack.

The record holds, per **kernel class**, the constants of :func:`costmodel.kernel_time.
kernel_time_s` (:class:`~costmodel.kernel_time.KernelParams`) and, per **collective**,
those of :func:`costmodel.kernel_time.collective_time_s`
(:class:`~costmodel.kernel_time.CollectiveParams`), plus one per-step overhead.
:func:`costmodel.decode.decode_step` accepts it as ``mode`` next to ``SOL`` and the
older :class:`~costmodel.specs.Efficiency`.

**Operators** (:mod:`costmodel.operators`): every :class:`~costmodel.operators.Op` is one
*main* kernel of static class ``kclass`` with reuse factor ``rows`` (``m`` of eq. (1) of
:mod:`costmodel.kernel_time`) plus ``kernels − 1`` auxiliary kernels (norms, latent norms,
activation, top-k, sampling; plus :data:`EXTRA_AUX` for the MoE class)::

    t_op = kernel_time_s(F, Q, m, P(bits), W_eff, θ_class)                       (1)
         + a·(kernels − 1)·kernel_time_s(0, 0, 1, P, W_eff, θ_small)

or, with a stack's launch table (:attr:`KernelCalibration.launches`, counted from the
framework's model code in ``hardware_db/stack_kernels.py``), the operator's own row
(``Op.tag``; GQA or MLA column; times ``Op.present``)::

    t_op = kernel_time_s(F, Q, m, P(bits), W_eff, θ_class)
         + n_aux·t_empty(θ_small) + n_gemm·t_empty(θ_gemm)                      (1')

with ``t_empty(θ) = max(t_floor, b_half/(W_eff·η_m,max))`` (:func:`empty_kernel_s`).
``W_eff = 1/s_per_byte`` is the bandwidth the SOL roofline uses (the SRAM/HBM mix of
:func:`costmodel.decode.read_s_per_byte`), ``a`` = :attr:`KernelCalibration.aux_kernels`
(the stack's share of auxiliary kernels left unfused, ``docs/calibration.md``). An op with
``kernels = 0`` (fused into another op's kernel) pays no floor. Attention cores use the
``mla`` class when the model's attention is MLA (``kv_lora_rank > 0``, a traced choice),
``attention`` otherwise.

**Collectives** (:func:`costmodel.decode.comm_plan`), on ``n`` ranks::

    t = active(n)·max(t_SOL, α(n) + bus_bytes/β(n))                              (2)

with ``t_SOL`` the tiered SOL collective (:func:`costmodel.collectives.collective`): the
measured law never goes below the hardware bound. Point-to-point uses the all-gather
constants with the message as its bus bytes.

**Speed of light.** Every term of (1) is ≥ its roofline (``η ≤ 1``, floors ≥ 0) and (2)
≥ ``t_SOL``; the step overhead is ≥ 0; so every calibrated step is ≥ the SOL step
(``tests/test_e2e_calibration.py``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from costmodel import kernel_time as kt
from costmodel.kernel_time import CollectiveParams, KernelParams
from costmodel.smooth import active, select

KERNEL_CLASSES = ("gemm", "gemm_ffn", "attention", "mla", "moe", "small")
"""Kernel classes of the operators (``Op.kclass``): dense GEMM/GEMV (attention and MLA
projections, router, LM head, MTP projection), feed-forward dense GEMM (dense FFN layers,
shared experts: the same GEMM kernels at the FFN linears' precision, which a mixed recipe
such as NVFP4 FFN + BF16 attention sets apart), GQA/MHA decode attention, MLA decode
attention, grouped MoE GEMM, small memory-bound kernels (norms, elementwise, embedding
gather, top-k)."""

COLLECTIVES = ("all_reduce", "all_gather", "all_to_all")
"""Collectives with their own constants (``p2p`` uses ``all_gather``'s)."""

EXTRA_AUX = {"moe": 3.0}
"""Auxiliary kernels of a main kernel beyond its operator's ``kernels − 1``: a MoE layer's
grouped GEMM comes with routing top-k, token permutation (align / expand) and the
finalize (un-permute and weighted sum) kernels (``docs/calibration.md`` §3)."""

OP_TAGS = (
    "attn_proj", "attn_core", "o_proj", "indexer", "linear_proj", "linear_core",
    "dense_ffn", "router", "moe_experts", "shared_expert", "lm_head", "embedding",
    "mtp_proj",
)  # fmt: skip
"""Operators of :mod:`costmodel.operators` (``Op.tag``): the rows of a stack's launch
table (:attr:`KernelCalibration.launches`)."""

LAUNCH_COLUMNS = ("aux_gqa", "gemm_gqa", "aux_mla", "gemm_mla")
"""Columns of a launch-table row: auxiliary (small-class) kernels and extra GEMM-class
launches (BMMs, second projections) beside the operator's main kernel, for a GQA/MHA model
and for an MLA model (the model's attention flag picks, traced)."""

_BUS_OP = {"all_reduce": "all_reduce", "all_gather": "all_gather", "all_to_all": "alltoall"}


@struct.dataclass
class KernelCalibration:
    """The kernel-level calibrated mode (module docstring): constants per kernel class and
    per collective, the per-step overhead and the auxiliary-kernel share.

    ``launches``: the stack's launch table ``[len(OP_TAGS), 4]`` (:data:`LAUNCH_COLUMNS`),
    counted from the framework's model code (``hardware_db/stack_kernels.py``), or
    ``None``: every operator's ``kernels − 1`` (+ :data:`EXTRA_AUX`) auxiliary kernels times
    ``aux_kernels``. With a table, ``aux_kernels`` is not used; its extra GEMM-class
    launches (BMMs, second projections) are charged at ``gemm``'s empty-kernel time."""

    gemm: KernelParams
    gemm_ffn: KernelParams
    attention: KernelParams
    mla: KernelParams
    moe: KernelParams
    small: KernelParams
    all_reduce: CollectiveParams
    all_gather: CollectiveParams
    all_to_all: CollectiveParams
    step_overhead_s: float = 0.0
    aux_kernels: float = 1.0
    launches: object = None


KERNEL_SOL_MODE = KernelCalibration(
    *(kt.KERNEL_SOL for _ in KERNEL_CLASSES),
    *(CollectiveParams(beta_max_bytes_per_s=math.inf) for _ in COLLECTIVES),
    step_overhead_s=0.0,
    aux_kernels=0.0,
)
"""A :class:`KernelCalibration` that reproduces SOL exactly (roofline, no floors, no α)."""


def class_params(cal: KernelCalibration, kclass: str, is_mla) -> KernelParams:
    """Constants of ``kclass``; ``"attention"`` follows the (traced) MLA flag."""
    if kclass == "attention":
        return jax.tree.map(lambda a, b: jnp.where(is_mla, a, b), cal.mla, cal.attention)
    return getattr(cal, kclass)


def op_time_s(op, cal: KernelCalibration, is_mla, peak, bw_eff, beta=math.inf):
    """Eq. (1) for one occurrence of ``op``: ``(total, (floor, compute, memory, aux))`` s.

    ``floor``/``compute``/``memory`` is the main kernel's time attributed to the term that
    wins its maximum; ``aux`` the auxiliary kernels' floors.
    """
    p = class_params(cal, op.kclass, is_mla)
    launched = jnp.minimum(jnp.asarray(op.kernels) * 1.0, 1.0)
    p = p.replace(t_floor_s=p.t_floor_s * launched, b_half_bytes=p.b_half_bytes * launched)
    q = op.weight_bytes + op.kv_bytes + op.act_bytes
    main, (f_part, c_part, m_part) = main_kernel_s(
        op.flops, q, jnp.maximum(op.rows, 1e-9), peak, bw_eff, p, beta
    )
    small = cal.small  # an empty kernel: max(floor, b_half/(W·η_m)), the form of Eq. (1)
    aux = n_aux_kernels(op, cal, is_mla, launched) * empty_kernel_s(small, bw_eff)
    if cal.launches is not None and op.tag in OP_TAGS:
        row = jnp.asarray(cal.launches)[OP_TAGS.index(op.tag)]
        n_gemm = jnp.where(is_mla, row[3], row[1]) * jnp.asarray(op.present)
        aux = aux + n_gemm * empty_kernel_s(cal.gemm, bw_eff)
    return main + aux, (f_part, c_part, m_part, aux)


def main_kernel_s(flops, q_bytes, m, peak_flops_per_s, bw_bytes_per_s, p: KernelParams, beta):
    """The max form of one main kernel, ``max(t_floor, F/(P·η_c(m)), Q/(W·η_m(Q)))`` in
    seconds, with its split ``(floor, compute, memory)`` (the winner's time on its term, 0
    elsewhere): Eq. (1) of the module without the auxiliary kernels; the form
    ``search.fidelity.kernel_fit --form max`` fits to the kernel tables. ``x_half``,
    ``t_item`` and ``p_overlap`` of :class:`KernelParams` are not used (full chip, no
    items, perfect overlap). SOL (floor 0, η = 1, half-points 0): the roofline."""
    tc = kt.compute_time_s(flops, m, peak_flops_per_s, p)
    tm = kt.memory_time_s(q_bytes, bw_bytes_per_s, p)
    floor = jnp.asarray(p.t_floor_s) * 1.0
    z = 0.0 * (floor + tc + tm)
    return select((floor, tc, tm), ((floor, z, z), (z, tc, z), (z, z, tm)), largest=True, beta=beta)


def empty_kernel_s(p: KernelParams, bw_eff):
    """One launch of class ``p`` that moves (almost) nothing: ``max(t_floor, b_half/(W·η_m))``
    seconds — Eq. (1) at zero FLOPs and bytes in the max form the floors were fitted with."""
    return jnp.maximum(p.t_floor_s, kt.memory_time_s(0.0, bw_eff, p))


def n_aux_kernels(op, cal: KernelCalibration, is_mla, launched):
    """Auxiliary (small-class) kernels of one occurrence of ``op``.

    With a launch table: the stack's count for the operator (GQA or MLA column), times
    ``present``. Without: ``(kernels − 1 + launched·EXTRA_AUX[class])·aux_kernels``."""
    if cal.launches is not None and op.tag in OP_TAGS:
        row = jnp.asarray(cal.launches)[OP_TAGS.index(op.tag)]
        return jnp.where(is_mla, row[2], row[0]) * jnp.asarray(op.present)
    n = jnp.maximum(jnp.asarray(op.kernels) * 1.0 - 1.0, 0.0)
    n = n + launched * EXTRA_AUX.get(op.kclass, 0.0)
    return n * cal.aux_kernels


def collective_time_s(kind: str, msg_bytes, group, sol_total, sol_parts, cal, beta=math.inf):
    """Eq. (2) for one collective: ``(total, (latency, bandwidth))`` seconds, one chip."""
    p = cal.all_gather if kind == "p2p" else getattr(cal, kind)
    n = jnp.maximum(jnp.asarray(group) * 1.0, 2.0)
    bus = msg_bytes if kind == "p2p" else kt.bus_bytes(_BUS_OP[kind], msg_bytes, n)
    lat = kt.collective_alpha_s(n, p)
    band = bus / kt.collective_beta_bytes_per_s(n, p)
    on = active(group)
    total, parts = select(
        (sol_total, lat + band), (sol_parts, (lat, band)), largest=True, beta=beta
    )
    return on * total, tuple(on * x for x in parts)


def from_values(values: dict) -> KernelCalibration:
    """A :class:`KernelCalibration` from nested plain values ``{class: {field: v}, …,
    "step_overhead_s": v, "aux_kernels": v, "launches": table}`` (the shape ``hardware_db``
    stores; ``launches`` optional, :func:`launch_array`)."""
    return KernelCalibration(
        *(KernelParams(**values[c]) for c in KERNEL_CLASSES),
        *(CollectiveParams(**values[c]) for c in COLLECTIVES),
        step_overhead_s=values["step_overhead_s"],
        aux_kernels=values.get("aux_kernels", 1.0),
        launches=launch_array(values.get("launches")),
    )


def launch_array(table):
    """``[len(OP_TAGS), 4]`` array of a launch table ``{tag: (aux_gqa, gemm_gqa, aux_mla,
    gemm_mla)}`` (tags missing from the table launch nothing beyond their main kernel); an
    array passes through (e.g. traced, one row of a vmapped fit); ``None`` stays ``None``."""
    if table is None or not isinstance(table, dict):
        return table
    return jnp.asarray([list(table.get(t, (0.0, 0.0, 0.0, 0.0))) for t in OP_TAGS], float)
