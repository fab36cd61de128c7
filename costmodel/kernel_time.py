r"""Time of one kernel and of one collective from its shape: the calibrated functional forms.

Pure JAX, one function per concept, written for **one** kernel (scalars; ``jax.vmap`` at
the edge), no ``jit`` inside. Units SI: seconds, bytes, FLOPs, FLOP/s, bytes/s.

**Kernel** (compute or memory bound, with a launch/latency floor, a per-item issue cost
and a fill-the-chip factor)::

    t = t_floor + ‖(t_c, t_m, t_i, t_d)‖_p                                        (1)
    t_c = F·(1 + m_half/m)·(1 + x_half/x) / (P·η_c,max)        compute
    t_m = (Q + b_half)·(1 + x_half/x) / (W·η_m,max)            memory
    t_i = N·t_item + R·t_row                                  per-item issue
    t_d = t_depth · D·D_split/(D + D_split)                   serial depth (split-capped)
    ‖v‖_p = (Σ v_i^p)^{1/p},  1 ≤ p ≤ ∞                        (p = ∞: the maximum)

F FLOPs, Q bytes, P peak FLOP/s at the kernel's precision, W HBM bandwidth (all per chip).

* ``m`` (rows) is the number of rows that share each weight / KV element (GEMM ``m``, MoE
  tokens per active expert, attention query heads per KV head, MLA heads):
  ``η_c(m) = η_c,max·m/(m + m_half)`` saturates in m — tiles padded to ``m_half`` rows.
* ``x`` (units) is the number of independent work units the kernel spreads over the chip's
  SMs (GEMM output columns ``n``, attention (sequence, KV head) pairs, ...):
  ``x/(x + x_half)`` is the fraction of the chip kept busy, a smooth surrogate of the wave
  quantisation ``tiles/(⌈tiles/SMs⌉·SMs)`` that is monotone in x and → 1 as x → ∞. It
  scales both throughput terms (an idle SM neither computes nor issues loads).
* ``(Q + b_half)/(W·η_m,max)`` is ``Q/(W·η_m(Q))`` with ``η_m(Q) = η_m,max·Q/(Q + b_half)``:
  a fixed memory latency ``b_half/(W·η_m,max)`` plus the bytes at the asymptotic bandwidth.
* ``N`` (items) counts serial per-item work that neither FLOPs nor bytes capture (attention:
  (sequence, query head) pairs — softmax/reduction set-up per pair, dominant at short
  context with large batch × heads); ``t_item`` is the chip-wide time per item (s).
* ``R`` (rows) counts a second kind of serial item with its own cost ``t_row`` (attention:
  (sequence, query head) pairs weighted by ``d/128`` — each query head's softmax state,
  output row and, where the query-group is wider than the kernel's tile, its extra pass
  over the KV tile; MoE: the experts active on the rank — each one's prologue, scale loads
  and tile scheduling in the grouped GEMM; 0 for the other classes).
* ``D`` (depth) is the length of the serial reduction loop each CTA walks (GEMM: ``k``;
  decode attention and MLA: the cached tokens ``S``; MLA BMM: the contraction, 128 or 512;
  MoE: ``h + I/tp``, the two expert GEMMs' ``k``), ``t_depth`` the latency per element of
  it when nothing overlaps it. The loop is a chain of dependent tile loads and MMAs, so a
  kernel whose bytes and FLOPs are small still pays ``∝ D``: on H200 a ``[m×k]·[k×32]`` BF16
  GEMM takes 2.6 µs at k = 32 and 4.5 µs at k = 1536 for 0.1 MB. Past ``D_split`` the
  libraries split the loop over CTAs (split-K / stream-K in cuBLAS and CUTLASS, e.g.
  CUTLASS ``GemmSplitKParallel`` and the stream-K scheduler, Osama et al., PPoPP 2023,
  arXiv:2301.03598; Flash-Decoding's split-KV for attention, Dao et al. 2023,
  https://crfm.stanford.edu/2023/10/12/flashdecoding.html), which caps the serial part:
  ``D·D_split/(D + D_split)`` → ``D`` for ``D ≪ D_split`` and → ``D_split`` for
  ``D ≫ D_split`` (smooth, increasing and concave in D; the split pieces' bytes and FLOPs
  stay in ``t_m``, ``t_c``). On the H200 / B200 tables this term took the held-out
  decode-shape MAPE of GEMM from 11.5 to 8.6 %, of MLA from 8.8 to 7.6 %, of MLA BMM from
  7.0 to 4.8 % (``search.fidelity.kernel_fit``, docs/calibration.md §6).
* ``p`` blends the terms: ``p = ∞`` is the roofline's maximum (perfect overlap), ``p = 1``
  their sum (no overlap); ``‖v‖_p ≥ max v`` for every p, smooth for finite p, monotone in
  each term.
* ``t_floor`` (launch and synchronisation latency, s) is added, not maxed: it is paid
  before any byte moves, and the fitted floors of the first pass (max form) left a
  systematic under-prediction just above the floor.

Bounds: ``0 < η_max ≤ 1``; ``m_half, x_half, b_half, t_floor, t_item, t_row, t_depth ≥
0``; ``D_split > 0`` (``∞``: no split); ``p ≥ 1``. Every term is non-decreasing in F, Q, N,
R, D and non-increasing in m and x.

**Speed of light** is (1) with ``t_floor = t_item = t_row = t_depth = 0``,
``η_c,max = η_m,max = 1``, ``m_half = x_half = b_half = 0``, ``p = ∞``
(:data:`KERNEL_SOL`): ``max(F/P, Q/W)``, the roofline, a lower bound of (1) for every
admissible parameter (each term of (1) is ≥ its SOL counterpart and the p-norm is ≥ the
maximum).

**Collective** on ``n`` ranks moving ``Q_bus`` bus bytes per rank, as the faster of two
protocol regimes (NCCL's low-latency LL/LL128 protocols for small messages, Simple for
large; custom all-reduce one-shot vs two-shot)::

    t = min(t_L, t_S)                                                             (2)
    t_L = α(n) + Q_bus / β(n)                      large-message (bandwidth) regime
    t_S = α_s(n) + Q_bus / (f_s·β(n))              small-message (latency) regime
    α(n) = α0 + α1·log2(n),  α_s(n) = α0,s + α1,s·log2(n)     (log-depth synchronisation)
    β(n) = β_max · (2/n)^γ,  0 ≤ γ ≤ 1                         (bus bandwidth, falling with n)

per hardware × framework × algorithm (the bus-bytes factor of each algorithm is
:func:`bus_bytes`; nccl-tests conventions). ``0 < f_s ≤ 1``: the small-message protocol
moves data at a fraction of the bandwidth (LL spends half of each 8-byte word on a flag)
for a lower latency. Each regime is affine and increasing in Q_bus and n; the minimum is
what the library's protocol choice approximates (exact value, kinks where the regimes
cross; gradients by :func:`costmodel.smooth.select`). ``α0,s = ∞`` (the default) leaves
one regime. SOL: ``α = α_s = 0``, ``γ = 0``, ``f_s = 1``, ``β_max`` = the chip's link
bandwidth — ``Q_bus/β_max``, a lower bound of (2) whenever ``β_max`` ≤ the link
bandwidth.

The maximum uses :func:`costmodel.smooth.select`: exact value; ``beta`` sets the gradient
surrogate at the kinks (``inf`` = the winner's subgradient), per the repo's convention. The
p-norm is written ``max·(Σ (v_i/max)^p)^{1/p}``, which is homogeneous of degree one in the
maximum, so its gradient is the exact p-norm gradient whatever surrogate the maximum uses.
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
    maximum. ``x_half_units``: work units at which half the chip is busy (≥ 0).
    ``t_item_s``: chip-wide serial time per item (s, ≥ 0). ``p_overlap``: exponent of the
    p-norm that combines the terms (≥ 1; ∞ = maximum). ``t_row_s``: serial time per row
    item (s, ≥ 0). ``t_depth_s``: latency per element of a CTA's serial reduction loop (s,
    ≥ 0); ``d_split``: loop length at which the split caps it (elements, > 0; ∞ = never).
    """

    t_floor_s: float = 0.0
    eta_c_max: float = 1.0
    m_half_rows: float = 0.0
    eta_m_max: float = 1.0
    b_half_bytes: float = 0.0
    x_half_units: float = 0.0
    t_item_s: float = 0.0
    p_overlap: float = math.inf
    t_row_s: float = 0.0
    t_depth_s: float = 0.0
    d_split: float = math.inf


KERNEL_SOL = KernelParams()
"""Speed of light: floors 0, efficiencies 1 — the roofline."""


@struct.dataclass
class CollectiveParams:
    """Calibrated constants of (2) for one hardware × framework × collective algorithm.

    ``alpha0_s`` + ``alpha1_s``·log2(n): latency (s). ``beta_max_bytes_per_s``: bus
    bandwidth at n = 2; ``gamma``: its decay exponent in n (β(n) = β_max·(2/n)^γ).
    Small-message regime: ``alpha0_small_s`` + ``alpha1_small_s``·log2(n) latency (s;
    ``inf`` = no such regime), ``beta_frac_small`` ∈ (0, 1] its share of β(n).
    """

    alpha0_s: float = 0.0
    alpha1_s: float = 0.0
    beta_max_bytes_per_s: float = 1.0
    gamma: float = 0.0
    alpha0_small_s: float = math.inf
    alpha1_small_s: float = 0.0
    beta_frac_small: float = 1.0


def eta_compute(m, p: KernelParams):
    """η_c(m) = η_c,max · m/(m + m_half): achieved fraction of peak FLOP/s (dimensionless)
    for a reuse factor of ``m`` rows; 1 at SOL (m_half = 0)."""
    return p.eta_c_max * safe_div(m, m + p.m_half_rows)


def eta_memory(q_bytes, p: KernelParams):
    """η_m(Q) = η_m,max · Q/(Q + b_half): achieved fraction of HBM bandwidth for a kernel
    moving ``q_bytes`` bytes; 1 at SOL (b_half = 0)."""
    return p.eta_m_max * safe_div(q_bytes, q_bytes + p.b_half_bytes)


def fill_factor(units, p: KernelParams):
    """``1 + x_half/x`` ≥ 1: the inverse of the busy fraction ``x/(x + x_half)`` of the chip
    for ``units`` independent work units (dimensionless; 1 at SOL or x → ∞)."""
    return 1.0 + safe_div(p.x_half_units, units)


def compute_time_s(flops, m, peak_flops_per_s, p: KernelParams, units=math.inf):
    """F / (P·η_c(m)) in seconds: ``F(1 + m_half/m)(1 + x_half/x)/(P·η_c,max)``."""
    t = safe_div(flops * (m + p.m_half_rows), m * peak_flops_per_s * p.eta_c_max)
    return t * fill_factor(units, p)


def memory_time_s(q_bytes, hbm_bw_bytes_per_s, p: KernelParams, units=math.inf):
    """Q / (W·η_m(Q)) in seconds, written ``(Q + b_half)(1 + x_half/x)/(W·η_m,max)``
    (finite at Q = 0)."""
    t = safe_div(q_bytes + p.b_half_bytes, hbm_bw_bytes_per_s * p.eta_m_max)
    return t * fill_factor(units, p)


def depth_time_s(depth, p: KernelParams):
    """``t_depth · D·D_split/(D + D_split)`` seconds: the serial reduction loop of ``depth``
    elements per CTA, capped by the split at ``D_split`` (``∞``: ``t_depth·D``). Increasing
    and concave in D; 0 at SOL (``t_depth = 0``)."""
    d = jnp.asarray(depth) * 1.0
    # D/(1 + D/D_split): exact and NaN-free at D_split = ∞ (value and gradient), D = 0
    return p.t_depth_s * d / (1.0 + d / p.d_split)


def p_norm(values, p_exp, beta=math.inf):
    """``(Σ v_i^p)^{1/p}`` of positive times, ``p ∈ [1, ∞]`` (``∞``: the exact maximum).

    Written ``max·(Σ (v_i/max)^p)^{1/p}`` (no overflow; degree-one homogeneous in the
    maximum, so the gradient is the p-norm's whatever surrogate ``beta`` gives the maximum,
    :func:`costmodel.smooth.select`)."""
    # parts given: smooth.select's finite-beta path unpacks (winner, parts) even without parts
    win, _ = select(values, parts=tuple((v,) for v in values), largest=True, beta=beta)
    if isinstance(p_exp, float | int) and math.isinf(p_exp):
        return win
    p_exp = jnp.asarray(p_exp) * 1.0
    inf = jnp.isinf(p_exp)
    pe = jnp.where(inf, 1.0, p_exp)
    s = sum(safe_div(v, win) ** pe for v in values)
    return win * jnp.where(inf, 1.0, s ** (1.0 / pe))


def kernel_time_s(
    flops,
    q_bytes,
    m,
    peak_flops_per_s,
    hbm_bw_bytes_per_s,
    p: KernelParams,
    beta=math.inf,
    units=math.inf,
    items=0.0,
    rows=0.0,
    depth=0.0,
):
    """Eq. (1): ``t_floor + ‖(t_c, t_m, N·t_item + R·t_row, t_d(D))‖_p`` in seconds for
    ``units`` work units, ``items`` and ``rows`` serial items and a serial loop of ``depth``
    elements (defaults: a full chip, no items, no loop); at ``p = ∞`` the exact maximum,
    ``beta`` its gradient surrogate (:func:`costmodel.smooth.select`)."""
    tc = compute_time_s(flops, m, peak_flops_per_s, p, units)
    tm = memory_time_s(q_bytes, hbm_bw_bytes_per_s, p, units)
    t_floor = jnp.asarray(p.t_floor_s) * 1.0
    t_item = jnp.asarray(items * p.t_item_s + rows * p.t_row_s) * 1.0
    return t_floor + p_norm((tc, tm, t_item, depth_time_s(depth, p)), p.p_overlap, beta)


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


def collective_time_s(q_bus_bytes, n, p: CollectiveParams, beta=math.inf):
    """Eq. (2): ``min(α(n) + Q_bus/β(n), α_s(n) + Q_bus/(f_s·β(n)))`` seconds (exact
    value; ``beta`` the gradient surrogate of :func:`costmodel.smooth.select`)."""
    bw = collective_beta_bytes_per_s(n, p)
    t_large = collective_alpha_s(n, p) + safe_div(q_bus_bytes, bw)
    if isinstance(p.alpha0_small_s, float | int) and math.isinf(p.alpha0_small_s):
        return t_large
    a_small = p.alpha0_small_s + p.alpha1_small_s * jnp.log2(n)
    t_small = a_small + safe_div(q_bus_bytes, bw * p.beta_frac_small)
    values = (t_large, t_small)
    win, _ = select(values, parts=tuple((v,) for v in values), largest=False, beta=beta)
    return win


def collective_sol_s(q_bus_bytes, link_bw_bytes_per_s):
    """SOL of (2): ``Q_bus / link bandwidth`` (α = 0, γ = 0)."""
    return safe_div(q_bus_bytes, link_bw_bytes_per_s)
