r"""Time of one kernel and of one collective from its shape: the calibrated functional forms.

Pure JAX, one function per concept, written for **one** kernel (scalars; ``jax.vmap`` at
the edge), no ``jit`` inside. Units SI: seconds, bytes, FLOPs, FLOP/s, bytes/s.

**Kernel** (compute or memory bound, with a launch/latency floor)::

    t = max(t_floor,  F / (P·η_c(m)),  Q / (W·η_m(Q)))                           (1)
    η_c(m) = η_c,max · m / (m + m_half)          saturating in the reuse factor m
    η_m(Q) = η_m,max · Q / (Q + b_half)          saturating in the bytes moved Q

F FLOPs, Q bytes, P peak FLOP/s at the kernel's precision, W HBM bandwidth; m is the
number of rows that share each weight / KV element (GEMM ``m``, MoE tokens per active
expert, attention query heads per KV head, MLA heads). With these forms the memory term
equals ``(Q + b_half)/(W·η_m,max)`` — a fixed latency ``b_half/(W·η_m,max)`` plus the
bytes at the asymptotic bandwidth — and the compute term ``F·(1 + m_half/m)/(P·η_c,max)``
(tiles padded to ``m_half`` rows). Bounds: ``0 < η_max ≤ 1``, ``m_half, b_half, t_floor ≥
0``; η_c, η_m are increasing in m and Q and tend to η_max as m, Q → ∞.

**Speed of light** is (1) with ``t_floor = 0``, ``η_c,max = η_m,max = 1``, ``m_half =
b_half = 0`` (:data:`KERNEL_SOL`): ``max(F/P, Q/W)``, the roofline, a lower bound of (1)
for every admissible parameter (each term of (1) is ≥ its SOL counterpart).

**Collective** on ``n`` ranks moving ``Q_bus`` bus bytes per rank::

    t = α(n) + Q_bus / β(n)                                                       (2)
    α(n) = α0 + α1·log2(n)                       (tree / log-depth synchronisation)
    β(n) = β_max · (2/n)^γ,  0 ≤ γ ≤ 1            (bus bandwidth, falling with n)

per hardware × framework × algorithm (the bus-bytes factor of each algorithm is
:func:`bus_bytes`; nccl-tests conventions). SOL: ``α = 0``, ``γ = 0``, ``β_max`` = the
chip's link bandwidth.

The maxima use :func:`costmodel.smooth.select`: exact values; ``beta`` sets the gradient
surrogate at the kinks (``inf`` = the winner's subgradient), per the repo's convention.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import struct

from costmodel.smooth import safe_div, select


@struct.dataclass
class KernelParams:
    """Calibrated constants of (1) for one hardware × framework × kernel class × precision.

    ``t_floor_s``: launch/latency floor (s). ``eta_c_max``, ``eta_m_max``: asymptotic
    fractions of peak FLOP/s and HBM bandwidth (0, 1]. ``m_half_rows``: reuse factor at
    which η_c is half its maximum. ``b_half_bytes``: bytes at which η_m is half its
    maximum.
    """

    t_floor_s: float = 0.0
    eta_c_max: float = 1.0
    m_half_rows: float = 0.0
    eta_m_max: float = 1.0
    b_half_bytes: float = 0.0


KERNEL_SOL = KernelParams()
"""Speed of light: floors 0, efficiencies 1 — the roofline."""


@struct.dataclass
class CollectiveParams:
    """Calibrated constants of (2) for one hardware × framework × collective algorithm.

    ``alpha0_s`` + ``alpha1_s``·log2(n): latency (s). ``beta_max_bytes_per_s``: bus
    bandwidth at n = 2; ``gamma``: its decay exponent in n (β(n) = β_max·(2/n)^γ).
    """

    alpha0_s: float = 0.0
    alpha1_s: float = 0.0
    beta_max_bytes_per_s: float = 1.0
    gamma: float = 0.0


def eta_compute(m, p: KernelParams):
    """η_c(m) = η_c,max · m/(m + m_half): achieved fraction of peak FLOP/s (dimensionless)
    for a reuse factor of ``m`` rows; 1 at SOL (m_half = 0)."""
    return p.eta_c_max * safe_div(m, m + p.m_half_rows)


def eta_memory(q_bytes, p: KernelParams):
    """η_m(Q) = η_m,max · Q/(Q + b_half): achieved fraction of HBM bandwidth for a kernel
    moving ``q_bytes`` bytes; 1 at SOL (b_half = 0)."""
    return p.eta_m_max * safe_div(q_bytes, q_bytes + p.b_half_bytes)


def compute_time_s(flops, m, peak_flops_per_s, p: KernelParams):
    """F / (P·η_c(m)) in seconds: ``F(1 + m_half/m)/(P·η_c,max)``."""
    return safe_div(flops * (m + p.m_half_rows), m * peak_flops_per_s * p.eta_c_max)


def memory_time_s(q_bytes, hbm_bw_bytes_per_s, p: KernelParams):
    """Q / (W·η_m(Q)) in seconds, written ``(Q + b_half)/(W·η_m,max)`` (finite at Q = 0)."""
    return safe_div(q_bytes + p.b_half_bytes, hbm_bw_bytes_per_s * p.eta_m_max)


def kernel_time_s(
    flops, q_bytes, m, peak_flops_per_s, hbm_bw_bytes_per_s, p: KernelParams, beta=math.inf
):
    """Eq. (1): ``max(t_floor, F/(P·η_c(m)), Q/(W·η_m(Q)))`` in seconds (exact value;
    ``beta`` is the gradient surrogate of :func:`costmodel.smooth.select`)."""
    tc = compute_time_s(flops, m, peak_flops_per_s, p)
    tm = memory_time_s(q_bytes, hbm_bw_bytes_per_s, p)
    t_floor = jnp.asarray(p.t_floor_s) * 1.0
    values = (t_floor, tc, tm)
    # parts given: smooth.select's finite-beta path unpacks (winner, parts) even without parts
    win, _ = select(values, parts=tuple((v,) for v in values), largest=True, beta=beta)
    return win


def kernel_sol_s(flops, q_bytes, peak_flops_per_s, hbm_bw_bytes_per_s):
    """Roofline ``max(F/P, Q/W)``: :func:`kernel_time_s` at :data:`KERNEL_SOL`."""
    return kernel_time_s(flops, q_bytes, 1.0, peak_flops_per_s, hbm_bw_bytes_per_s, KERNEL_SOL)


def bus_bytes(op: str, message_bytes, n):
    """Bytes each rank moves over its links (nccl-tests "bus bandwidth" convention) for a
    collective whose buffer is ``message_bytes`` per rank on ``n`` ranks:
    all-reduce ``2(n−1)/n·M`` (ring or reduce-scatter + all-gather), all-gather,
    reduce-scatter and all-to-all ``(n−1)/n·M``. ``op`` is static."""
    f = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0, "alltoall": 1.0}[op]
    return f * (n - 1.0) / n * message_bytes


def collective_alpha_s(n, p: CollectiveParams):
    """α(n) = α0 + α1·log2(n) seconds."""
    return p.alpha0_s + p.alpha1_s * jnp.log2(n)


def collective_beta_bytes_per_s(n, p: CollectiveParams):
    """β(n) = β_max·(2/n)^γ bytes/s."""
    return p.beta_max_bytes_per_s * (2.0 / n) ** p.gamma


def collective_time_s(q_bus_bytes, n, p: CollectiveParams):
    """Eq. (2): ``α(n) + Q_bus/β(n)`` seconds."""
    return collective_alpha_s(n, p) + safe_div(q_bus_bytes, collective_beta_bytes_per_s(n, p))


def collective_sol_s(q_bus_bytes, link_bw_bytes_per_s):
    """SOL of (2): ``Q_bus / link bandwidth`` (α = 0, γ = 0)."""
    return safe_div(q_bus_bytes, link_bw_bytes_per_s)
