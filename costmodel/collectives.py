r"""Collectives over a tiered interconnect: latency and bandwidth terms.

One collective *step* on tier ``t`` costs ``hops·α_t + o_t`` (per-hop latency α, fixed
per-step overhead o: synchronisation, flag handshake) and its bytes cost
``bytes / (bw_t · η_link)`` (one-way injection bandwidth per chip). So an algorithm of
``s`` steps costs

    T = s·(h·α_t + o_t) + β_bytes·M / (bw_t·η)                                (1)

with the step count ``s``, hops per step ``h`` and bytes factor ``β_bytes`` from the
tier's topology and the group size ``k`` on that tier (scaling-book ``sharding.md``;
Thakur, Rabenseifner & Gropp, "Optimization of collective communication operations in
MPICH", IJHPCA 2005; NCCL/TensorRT-LLM one-shot and two-shot all-reduce).

Topology terms (relaxed: ``k`` may be fractional; floors are dropped):

=========  ============  ======================  ==============  ===================
topology   diameter D    ring steps R (AR)       ring bytes ×    mean hops (direct)
=========  ============  ======================  ==============  ===================
switch     1             2(k−1)                  1               1
full       1             2(k−1)                  1               1
ring       k/2           2(k−1)                  1               k/4
torus2d    √k            2·2(√k−1)               1               2·√k/4
torus3d    3·∛k/2        3·2(∛k−1)               1               3·∛k/4
mesh2d     2(√k−1)       2·2(√k−1)               2 (no wrap)     2·√k/3
=========  ============  ======================  ==============  ===================

``full`` (point-to-point links to every peer, e.g. AMD Infinity Fabric within 8 GPUs): a
group of k out of d peers only uses k−1 of the d−1 links, so its bandwidth is
``bw·(k−1)/(d−1)``. Direct (non-ring) algorithms on multi-hop topologies load each link
with ``max(1, mean hops)`` times the bytes (the chip's bandwidth is the sum of its links).

Algorithms on one tier (M = message bytes per chip), the **latency-optimal one for the
message size is chosen**, i.e. the minimum of:

* all-reduce: one-shot (s=1, h=D, bytes (k−1)·M — each chip pulls all peers' buffers and
  reduces locally; TensorRT-LLM min-latency path), two-shot (reduce-scatter + all-gather
  direct: s=2, h=D, bytes 2(k−1)/k·M), ring (s=R, h=1, bytes 2(k−1)/k·M);
* all-gather (each chip ends with M, holds M/k): direct (s=1, h=D, (k−1)/k·M) or ring
  (s=R/2, h=1, (k−1)/k·M);
* all-to-all (each chip sends M to the others): direct (s=1, h=D, M);
* point-to-point: s=1, h=1, M.

**Tiers.** Groups are placed innermost-first: a group of ``g`` chips whose consecutive
members are ``stride`` chips apart has ``m_t = clip(domain_t / stride, 1, g)`` members
inside one tier-``t`` domain (``m_last = g``), i.e. a sub-group of ``k_t = m_t / m_{t−1}``
on tier t. A group spanning tiers pays the hierarchical composition, summed over tiers:
all-reduce = reduce-scatter/all-reduce/all-gather nesting, tier t reduces ``M/m_{t−1}``
bytes; all-gather on tier t moves ``M·m_t/g``; all-to-all sends over tier t the share of
destinations first reachable there, ``M·(m_t − m_{t−1})/(g − 1)``; point-to-point crosses
the innermost tier holding both ends. Tiers with ``k_t = 1`` cost nothing
(:func:`costmodel.smooth.active`).

Every function returns ``(latency_s, bandwidth_s, energy_j)`` for one chip; energy is
``bytes · energy_j_per_byte`` of the tiers crossed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from costmodel.smooth import active, safe_div, select
from costmodel.specs import Efficiency, SystemSpec, TierSpec


def topology_terms(topology: str, k):
    """``(diameter, ring_steps, ring_bytes_mult, mean_hops)`` for a sub-group of ``k``."""
    if topology in ("switch", "full"):
        return 1.0, 2 * (k - 1), 1.0, 1.0
    if topology == "ring":
        return k / 2, 2 * (k - 1), 1.0, k / 4
    if topology == "torus2d":
        s = jnp.sqrt(k)
        return s, 4 * (s - 1), 1.0, s / 2
    if topology == "torus3d":
        s = jnp.cbrt(k)
        return 1.5 * s, 6 * (s - 1), 1.0, 0.75 * s
    if topology == "mesh2d":
        s = jnp.sqrt(k)
        return 2 * (s - 1), 4 * (s - 1), 2.0, 2 * s / 3
    raise ValueError(f"unknown topology {topology!r}")


def _tier_bw_bytes_per_s(tier: TierSpec, k, prev_domain, eff: Efficiency):
    """Usable one-way bandwidth of a sub-group of ``k`` chips on ``tier`` (bytes/s)."""
    bw_bytes_per_s = tier.bw_bytes_per_s * eff.link_efficiency
    if tier.topology == "full":
        peers = jnp.maximum(safe_div(tier.domain_chips, prev_domain) - 1.0, 1.0)
        bw_bytes_per_s = bw_bytes_per_s * jnp.clip(k - 1.0, 0.0, None) / peers
    return bw_bytes_per_s


def _alg(tier, steps, hops, nbytes, bw_bytes_per_s):
    """Eq. (1) for one algorithm: ``(total, (latency, bandwidth, bytes))``."""
    lat = steps * (hops * tier.hop_latency_s + tier.overhead_s)
    band = safe_div(nbytes, bw_bytes_per_s)
    return lat + band, (lat, band, nbytes)


def _tier_collective(kind, tier, k, msg, prev_domain, eff, beta):
    """One collective of ``kind`` among ``k`` chips on one tier: ``(latency_s, band_s, bytes)``."""
    diam, ring_steps, ring_mult, mean_hops = topology_terms(tier.topology, k)
    bw_bytes_per_s = _tier_bw_bytes_per_s(tier, k, prev_domain, eff)
    direct = jnp.maximum(1.0, mean_hops)
    frac = safe_div(k - 1.0, k)
    if kind == "all_reduce":
        algs = [
            _alg(tier, 1.0, diam, (k - 1.0) * msg * direct, bw_bytes_per_s),
            _alg(tier, 2.0, diam, 2 * frac * msg * direct, bw_bytes_per_s),
            _alg(tier, ring_steps, 1.0, 2 * frac * msg * ring_mult, bw_bytes_per_s),
        ]
    elif kind == "all_gather":
        algs = [
            _alg(tier, 1.0, diam, frac * msg * direct, bw_bytes_per_s),
            _alg(tier, ring_steps / 2, 1.0, frac * msg * ring_mult, bw_bytes_per_s),
        ]
    elif kind == "all_to_all":
        algs = [_alg(tier, 1.0, diam, msg * direct, bw_bytes_per_s)]
    elif kind == "p2p":
        algs = [_alg(tier, 1.0, 1.0, msg, bw_bytes_per_s)]
    else:
        raise ValueError(f"unknown collective {kind!r}")
    if len(algs) == 1:
        _, parts = algs[0]
    else:
        _, parts = select([a[0] for a in algs], [a[1] for a in algs], largest=False, beta=beta)
    on = active(k)
    return tuple(on * p for p in parts)


def _members_per_domain(system: SystemSpec, g, stride):
    """``m_t``: group members inside one tier-t domain, innermost tier first."""
    n = len(system.tiers)
    ms = []
    for i, tier in enumerate(system.tiers):
        if i == n - 1:
            ms.append(jnp.asarray(g))
        else:
            ms.append(jnp.clip(safe_div(tier.domain_chips, stride), 1.0, jnp.maximum(g, 1.0)))
    return ms


def _concrete(x):
    """``x`` as a float if it is a concrete (untraced) scalar, else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _single_chip_tier(tier: TierSpec, stride) -> bool:
    """True if, with concrete numbers, the tier's domain holds one chip and the group's
    stride is ≥ 1: then ``m = clip(domain/stride, 1, g) = 1`` exactly (e.g. the on-die
    tier), the tier's sub-group is one chip and its cost is exactly 0, so it is skipped
    (XLA need not compute it)."""
    d, s = _concrete(tier.domain_chips), _concrete(stride)
    return d is not None and s is not None and d <= 1.0 and s >= 1.0


def collective(
    kind: str,
    msg_bytes,
    group,
    stride,
    system: SystemSpec,
    eff: Efficiency,
    beta: float = math.inf,
):
    """Cost of one collective over a (possibly tier-spanning) group, for one chip.

    Args:
      kind: ``"all_reduce"`` (``msg_bytes`` = buffer each chip reduces), ``"all_gather"``
        (``msg_bytes`` = gathered result size), ``"all_to_all"`` (``msg_bytes`` = bytes
        each chip sends to the other members), or ``"p2p"`` (``msg_bytes`` sent to the
        next pipeline stage; ``group`` is 2).
      msg_bytes: bytes, scalar.
      group: group size g (chips), scalar ≥ 1.
      stride: chips between consecutive members (product of inner group sizes).
      system: tiers innermost first.
      eff: ``link_efficiency`` scales bandwidth; ``collective_overhead_s`` is added once if
        the group communicates at all.
      beta: gradient sharpness of the algorithm choice (:func:`costmodel.smooth.select`).

    Returns:
      ``(latency_s, bandwidth_s, energy_j)`` scalars for one chip.
    """
    g = jnp.asarray(group) * 1.0
    ms = _members_per_domain(system, g, stride)
    lat = band_s = energy = 0.0
    prev_m = 1.0
    prev_domain = 1.0
    n_tiers, leading = len(system.tiers), True
    for i, (tier, m) in enumerate(zip(system.tiers, ms, strict=True)):
        leading = leading and i < n_tiers - 1 and _single_chip_tier(tier, stride)
        if leading:
            continue  # m = 1 exactly (prev_m stays 1): a one-chip sub-group adds 0
        k = safe_div(m, prev_m)
        if kind == "all_reduce":
            msg = safe_div(msg_bytes, prev_m)
        elif kind == "all_gather":
            msg = msg_bytes * safe_div(m, g)
        elif kind == "all_to_all":
            msg = msg_bytes * safe_div(m - prev_m, jnp.maximum(g - 1.0, 1e-9))
        else:
            msg = msg_bytes
        t_lat, t_band_s, t_bytes = _tier_collective(kind, tier, k, msg, prev_domain, eff, beta)
        lat = lat + t_lat
        band_s = band_s + t_band_s
        energy = energy + t_bytes * tier.energy_j_per_byte
        prev_m = m
        prev_domain = jnp.maximum(tier.domain_chips, 1.0)
    lat = lat + active(g) * eff.collective_overhead_s
    return lat, band_s, energy


def t_onchip_s(system: SystemSpec):
    """On-die all-to-all latency paid once per distributed operator (seconds).

    The first tier named ``"die"`` models the chip's own network (e.g. a reticle-sized
    SRAM die whose compute tiles must exchange partial results after every matrix-vector
    product: one corner-to-corner traversal ``α_die`` plus ``o_die``; Dally, GTC 2026:
    ≈ 30 ns). Systems without such a tier pay nothing here.
    """
    if system.tiers and system.tiers[0].name == "die":
        t = system.tiers[0]
        return t.hop_latency_s + t.overhead_s
    return 0.0
