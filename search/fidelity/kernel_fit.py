r"""Fit the kernel-level functional forms (:mod:`costmodel.kernel_time`) to measured kernels.

Data: ``hardware_db/data/kernels/*.csv`` (:mod:`hardware_db.kernel_tables`; NVIDIA
aiconfigurator microbenchmarks, package ``aiconfigurator-core==0.12.0``, Apache-2.0).
A **group** is hardware × framework × kernel class × precision × kernel variant (the
table's ``kernel_source``: the GEMM dtype path — e.g. vLLM's DeepGEMM, FlashInfer and
CUTLASS FP8 block-scaled kernels —, the attention kernel — FA3, FA4, Triton, FlashInfer —,
the MoE backend — Triton, Marlin, FlashInfer CUTLASS / TRT-LLM —); each gets its own
:class:`~costmodel.kernel_time.KernelParams` (collectives: hardware × framework ×
implementation × op × dtype, :class:`~costmodel.kernel_time.CollectiveParams`). A stack
runs one variant per shape and the tables name it, so the variant is a categorical
feature of the point, not a fitted switch. Where a framework's dispatcher switches kernels by
a documented shape rule the table does not name, the p-norm fit splits the variant by that
rule and counts the chosen kernel's work (:func:`pnorm_dispatch`: TensorRT-LLM's XQA vs
multi-head decode attention and its K-only benchmark cache; SGLang's Triton MoE tile rows;
the rows TensorRT-LLM's quantized GEMM plugins compute with the tactic profiled at
``nextPowerOfTwo(m)``; the experts vLLM's collector routes to with its BF16 balanced logits);
the max form of the end-to-end prior keeps the table's variants and counts.

**FLOPs and bytes of each table point, from first principles** (b_w, b_a weight /
activation bytes per element from :data:`DTYPES`, outputs BF16; the counts match
:mod:`costmodel.operators` for the same kernel):

* GEMM ``[m×k]·[k×n]``: ``F = 2mnk``; ``Q = k·n·b_w + m·k·b_a + m·n·2``; reuse ``m``.
* Decode attention (B sequences, H query / K KV heads of size d, S cached tokens):
  ``F = 4·B·H·S·d`` (QKᵀ and PV; operators: ``2·d_qk + 2·d_v`` per head per KV token);
  ``Q = B·S·K·2d·b_kv + B·H·2d·2`` (K and V cache, q in / out); reuse ``H/K``.
* MLA decode core (absorbed, DeepSeek-V3 latent r = 512, rope 64): ``F = B·H·S·(2·576 +
  2·512)`` (operators: ``2(r_kv + d_r) + 2r_kv``); ``Q = B·S·576·b_kv + B·H·(576 + 512)·2``;
  reuse ``H``.
* MLA BMMs (``W_UK`` pre / ``W_UV`` post absorption, per head ``[T×128]·[128×512]`` or
  the transpose): ``F = 2·T·H·128·512``; ``Q = H·128·512·b_w + T·H·(128 + 512)·2``; reuse
  ``T``.
* MoE (T tokens — all ranks' tokens, of which 1/ep land on the measured rank — hidden h,
  expert width I, top-k, E experts, split ``moe_tp`` × ``moe_ep``, ``g`` = 3 gated
  matrices, 2 for non-gated experts, :func:`gated_matrices`): the benchmark routes
  **balanced** (aiconfigurator ``collector/helper.py``, ``balanced_logits``: token i takes
  experts ``(i + j·⌈E/k⌉) mod E``, so ``min(E, T·k)`` distinct experts, spread evenly),
  hence on the rank ``p = max(T·k/ep, 1)`` token-expert pairs and ``e = max(min(E, T·k)/ep,
  1)`` distinct experts (expert 0 is always local and always hit; grouped routing touches
  fewer, :func:`moe_distinct_experts`); ``T_r`` tokens reach
  the rank's kernel (:func:`moe_rank_tokens`);
  ``F = 2·p·g·h·I/tp``; ``Q = e·g·h·I/tp·b_w + p·h·b_a + T_r·h·2`` (active experts'
  weights, each pair's input row, each token's output row once); reuse ``p/e``. These
  counts are the benchmark's routing; ``costmodel.operators`` uses the mean of uniform
  routing (:func:`costmodel.operators.expected_experts_per_chip`), which the balanced
  count bounds from above for ``T·k ≤ E``.
* Collectives: bus bytes of :func:`costmodel.kernel_time.bus_bytes` from the message
  bytes (elements × dtype width) and the rank count.

**Work units** ``x`` (fill factor) and **items** ``N`` (per-item term) of
:func:`costmodel.kernel_time.kernel_time_s`: GEMM ``x = n + k/256`` (output columns —
CTAs tile n, few columns leave SMs idle — plus split-K chunks, :data:`GEMM_SPLIT_K_CHUNK`),
no items; attention ``x = N = B·K`` (sequence, KV head)
CTAs: decode kernels (FlashAttention-3/4, FlashInfer, XQA) pack the ``H/K`` query heads of
a KV head into one CTA, each with its own set-up (Q load, softmax state, split-KV combine)
— the per-item term; ``N = B·H`` (the first pass) left MHA shapes with many short
sequences up to 3× under-predicted; MLA ``x = B``, ``N = B·H``; MLA BMM
``x = H``, ``N = T·H``; MoE ``x = e·I/tp`` (columns of the active experts),
``N`` = the token slots the kernel routes, sorts, gathers and reduces, remote ones
included: they are masked, not dropped (:func:`moe_routed_slots`: all ``T·k``, or SGLang's
rank-0 workload on its Triton lane).

**Rows** ``R`` (second per-item term, its own ``t_row``) and **serial depth** ``D`` (the
reduction loop each CTA walks, capped by the library's split at a fitted ``D_split``,
:func:`costmodel.kernel_time.depth_time_s`): GEMM ``R = 0``, ``D = k``; attention
``R = B·H·d/128`` (each query head's softmax state and output row of ``d`` elements, and
its share of the passes over the KV tile when the query group is wider than the kernel's
tile), ``D = S·d/128`` (:data:`ATTENTION_DEPTH_HEAD_DIM`; H200 + B200 held-out attention at
decode shapes 12.48 / 9.67 → 12.26 / 9.01 % against ``R = B·H``, ``D = S``); MLA
``R = 0``, ``D = S``; MLA BMM ``R = 0``, ``D`` = the contraction (128 for ``W_UK``, 512 for
``W_UV``); MoE ``R = e`` (the experts active on the rank: each one's prologue — its
scale and descriptor loads, its tiles' scheduling in the grouped GEMM —, a cost that grows
with ``T`` until every local expert is hit, then stays; the token slots are the item term
``N``), ``D = h + I/tp`` (the two expert GEMMs run one after the other). Explored on H200 +
B200 (held-out decode MAPE, 1500 steps): GEMM 11.5 → 8.6 %, MLA 8.8 → 7.6 %, MLA BMM 7.0 →
4.8 %, attention 13.8 → 13.5 % (depth) → 12.6 % (depth and rows), MoE 12.6 → 12.2 % (depth)
→ 12.1 % (rows = pairs ``p``); third pass: ``R = e`` instead of ``p``, H200 / B200 10.85 /
11.21 → 9.98 / 10.29 % (the pairs' residual rose to −0.1 in log at ``T·k/E`` ≈ 1–4, where
every expert is active with a few rows each; with ``R = e``: −0.07).

Peak FLOP/s (at the kernel's compute precision; a chip without the narrower unit falls
back to the next wider one, as in ``costmodel``; SmoothQuant ``sq`` uses the INT8 peak of
:data:`INT8_PEAK_FLOPS_PER_S`) and HBM bandwidth come from this
repository's chips (:data:`SYSTEMS` maps aiconfigurator systems to database systems); the
SOL link bandwidth of a collective from the system's scale-up tier.

**Fit**: per group, minimise the mean pseudo-Huber loss of ``t̂/t − 1`` (:func:`_loss`)
over the fitting shapes in float64 by Adam (fixed step count and cosine schedule, six
fixed starts, the best kept: deterministic; gradients through the maxima from the smooth
surrogate of :func:`costmodel.smooth.select`, values exact), parameters unconstrained
through ``exp`` (floors, half-points, item and row times, depth latency and split,
latencies, β; ``p = 1 + exp``) and ``sigmoid`` (efficiencies and ``f_s`` ∈ (0, 1),
γ ∈ (0, 1)). **Holdout**: the distinct shapes of a group sorted, every fifth (index ≡ 4
mod 5) is held out. Reported:
MAPE in-sample and held-out per group (all held-out points and those at decode shapes,
:data:`DECODE_MAX_ROWS`), the held-out summary per hardware × class (``held_out_mape``:
pooled over the class's held-out points, all and at decode shapes; median, min, max over
its groups), and the points faster
than SOL (``sol_violations``; SOL on the L2 bandwidth for L2-resident working sets,
:data:`L2_BYTES`; the points faster than the HBM roofline that this explains are
``sol_violations_l2``).

``python -m search.fidelity.kernel_fit [--write]`` prints the report as JSON (and writes
``hardware_db/data/kernel_calibration.toml``).

**The end-to-end prior** (``--form max --decode-only --write-prior``, :data:`FORMS`): the
same counts and loss in the max form the kernel-level mode evaluates,
``max(t_floor, F/(P·η_c(m)), Q/(W·η_m(Q)))`` (:func:`costmodel.kernel_mode.main_kernel_s`,
θ = the five constants of :data:`MAX_KERNEL_FIELDS`; no units, items or p-norm), and the
one-regime collective law ``α(n) + Q_bus/β(n)`` (:data:`MAX_COLL_FIELDS`), fitted to the
decode-shape points only (:func:`decode_only`), one variant per hardware × framework ×
class × precision (:func:`decode_variants`); written to
``hardware_db/data/e2e_kernel_prior.toml`` (:data:`PRIOR_HEADER`), the prior of
``search.fidelity.e2e_fit``. SOL stays a lower bound: every term of the max form is ≥ its
roofline term (η ≤ 1, floors and half-points ≥ 0 by the transforms).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import hardware_db as db
from costmodel import kernel_time as kt
from costmodel.kernel_mode import main_kernel_s
from hardware_db.e2e_calibration import KERNEL_TOML as PRIOR_TOML
from hardware_db.kernel_tables import load_all

CALIBRATION_TOML = Path(db.__file__).parent / "data" / "kernel_calibration.toml"
SOURCE = {
    "package": "aiconfigurator-core",
    "version": "0.12.0",
    "path": "aiconfigurator_core/systems/data/<system>/<op>/<framework>/<version>/*.parquet",
    "licence": "Apache-2.0",
    "tables": "hardware_db/data/kernels/*.csv (hardware_db/tools/prepare_kernel_tables.py)",
    "regenerate": "python -m search.fidelity.kernel_fit --write",
}

SYSTEMS = {
    "a100_sxm": "hgx-a100-8",
    "h100_sxm": "hgx-h100-8",
    "h200_sxm": "hgx-h200-8",
    "b200_sxm": "hgx-b200-8",
    "b300_sxm": "hgx-b300-8",
    "gb200": "gb200-nvl72",
    "gb300": "gb300-nvl72",
}
"""aiconfigurator system slug → database system (its chip gives peaks and bandwidth)."""

INT8_PEAK_FLOPS_PER_S = {
    # NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf): INT8
    # Tensor Core 624 TOPS dense (1248 with sparsity); grade S like the chip file's numbers.
    "a100_sxm": 624e12,
}
"""Dense INT8 tensor-core peak (op/s) for SmoothQuant ``sq`` (W8A8) kernels, per system.
ChipSpec has no INT8 field (``costmodel/specs.py``, ``hardware_db/schema.py``), so the
fitter keeps it here; systems not listed use the FP8 peak (Hopper and Blackwell: INT8 dense
= FP8 dense), then BF16, as for every 8-bit recipe."""

BLACKWELL_L2_BYTES = 126e6
"""L2 capacity (bytes) used for the Blackwell systems (B200, B300, GB200, GB300): a lower
bound. CUDA reports ``l2CacheSize`` = 132,644,864 B (126.5 MiB) on B300 (GitHub
``ademeure/QuickRunCUDA``, ``b300_clean/03_caches.md``: ``cudaDeviceProp`` of a B300 SXM6 AC)
and the same figure on B200 in public device listings; Chips and Cheese ("Nvidia's B200:
Keeping the CUDA Juggernaut Rolling", 2025) measures 126 MB in two partitions, one per die.
Rounded down to 126 MB and applied to GB200 / GB300, whose GPUs are the same two dies (not
queried here). An address lives in one half only — the hash alternates the halves every
~4 KB, and a hit in the far die's half costs ~2× the latency of a near one (same notes), so
lines are not copied into the near half — hence the whole capacity holds one working set: on
B300 a 96 MB working set streams from L2 at 13 TB/s of L2 traffic (24 TB/s with L1 reuse),
above the 7.3 TB/s measured from HBM. NVIDIA's Blackwell briefs publish no L2 size (grade:
measured device property, not a datasheet figure)."""

BLACKWELL_L2_SMS = 160
"""Streaming multiprocessors of a Blackwell GPU, an upper bound of the enabled ones: 2 dies ×
80 SMs physically (Chips and Cheese, B200: 74 of 80 enabled per die, 148 in all; NVIDIA,
"Inside NVIDIA Blackwell Ultra", 2025: 160 SMs; CUDA reports 148 on B200 and B300)."""

BLACKWELL_SM_CLOCK_HZ = 2.032e9
"""Highest SM clock reported for these parts (B300 SXM6 AC: 2032 MHz boost, CUDA device
property in the notes of :data:`BLACKWELL_L2_BYTES`; B200: 1965 MHz), used as an upper bound
for all four Blackwell systems (same silicon; GB200 / GB300 clocks not queried)."""

SM_LOAD_BYTES_PER_CLOCK = 128
"""Bytes per clock one SM's L1 / shared-memory port delivers (Volta to Blackwell): every byte
an SM loads from L2 enters through it. GH100: 132 SMs × 128 B × 1.98 GHz = 33.5 TB/s, NVIDIA's
quoted H100 SXM shared-memory bandwidth; B300: 148 × 128 B × 2.032 GHz = 38.5 TB/s, and 38.4
TB/s measured (shared-memory reads, notes of :data:`BLACKWELL_L2_BYTES`)."""

L2_BYTES = {
    "a100_sxm": 40e6,  # NVIDIA A100 Tensor Core GPU Architecture whitepaper: 40 MB L2
    "h100_sxm": 50e6,  # NVIDIA H100 Tensor Core GPU Architecture whitepaper: 50 MB L2 (SXM5)
    "h200_sxm": 50e6,  # same GH100 die as H100 SXM
    "b200_sxm": BLACKWELL_L2_BYTES,
    "b300_sxm": BLACKWELL_L2_BYTES,
    "gb200": BLACKWELL_L2_BYTES,
    "gb300": BLACKWELL_L2_BYTES,
}
"""L2 cache size per system (bytes), for the L2-residency rule of the SOL check:
microbenchmarks repeat one kernel on the same buffers, so a point whose whole working set
(weights, inputs and outputs: all its bytes ``Q``) fits in L2 is served from L2 after the
first repeat, not from HBM. Its speed of light is the roofline on the L2 bandwidth
(:data:`L2_BW_BYTES_PER_S`): ``max(F/P, Q/W_L2)``, still a strict lower bound (floors 0,
efficiencies 1) on the bandwidth the data actually comes from. The points of this kind that
run faster than the HBM roofline are counted as ``sol_violations_l2`` (explained, not in
``sol_violations``).

Which bound each figure must be: the bandwidth an **upper** bound, so that the L2 roofline of
a resident point cannot exceed its time (SOL stays a lower bound); the capacity a **lower**
bound, so that a point is called resident — and a run faster than the HBM roofline called
explained — only where its working set certainly fits (a resident point left out keeps the
HBM roofline and is reported as a violation: the conservative side for the report)."""

L2_BW_BYTES_PER_S = {
    # NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), Table 3: L2 cache read
    # bandwidth 5120 bytes/clk, at the 1410 MHz boost clock.
    "a100_sxm": 5120 * 1.41e9,
    # No L2 bandwidth is published for GH100. Upper bound from the SM side: every byte an SM
    # loads enters through its L1 / shared-memory port, 128 bytes/clk per SM (the width of
    # Volta-to-Hopper SMs; the ~33 TB/s shared-memory bandwidth quoted for H100 SXM is this
    # product), 132 SMs at the 1980 MHz max boost (H100 whitepaper): 33.5 TB/s. An upper
    # bound of the bandwidth keeps SOL a lower bound (a loose one for these points).
    "h100_sxm": 132 * SM_LOAD_BYTES_PER_CLOCK * 1.98e9,
    "h200_sxm": 132 * SM_LOAD_BYTES_PER_CLOCK * 1.98e9,  # same GH100 die and clocks
    # Blackwell: none published either; the same SM-side bound, 160 SMs × 128 B/clk ×
    # 2.032 GHz = 41.6 TB/s (each factor an upper bound, see their constants). Measured L2
    # read bandwidth on B300: 17 TB/s (L2-only loads) to 24-26 TB/s (with L1 reuse).
    "b200_sxm": BLACKWELL_L2_SMS * SM_LOAD_BYTES_PER_CLOCK * BLACKWELL_SM_CLOCK_HZ,
    "b300_sxm": BLACKWELL_L2_SMS * SM_LOAD_BYTES_PER_CLOCK * BLACKWELL_SM_CLOCK_HZ,
    "gb200": BLACKWELL_L2_SMS * SM_LOAD_BYTES_PER_CLOCK * BLACKWELL_SM_CLOCK_HZ,
    "gb300": BLACKWELL_L2_SMS * SM_LOAD_BYTES_PER_CLOCK * BLACKWELL_SM_CLOCK_HZ,
}
"""Bandwidth (bytes/s) an L2-resident working set can be read at, per system of
:data:`L2_BYTES` (evidence: the A100 figure from NVIDIA's whitepaper; the GH100 and Blackwell
ones upper bounds derived from SM count, port width and clock)."""

IN_SWITCH_REDUCTION = ("h100_sxm", "h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300")
"""Systems whose NVLink switches reduce in the network (NVLink SHARP, "NVLS"): the
third-generation NVSwitch of HGX H100 / H200 and the NVLink 5 switch of HGX B200 / B300 and
GB200 / GB300 NVL72 execute ``multimem.ld_reduce`` / ``multimem.st`` (NVIDIA, "Upgrading
Multi-GPU Interconnectivity with the Third-Generation NVIDIA NVSwitch", 2022: SHARP
all-reduce in the switch; NCCL 2.17 release notes: the NVLS algorithm on NVSwitch gen3;
PTX ISA §9.7.9.14 ``multimem``). A100's second-generation NVSwitch has no in-switch
compute, so its all-reduce moves the ring's bytes at the least."""


def all_reduce_sol_bytes(system: str, message_bytes, n):
    """Least bytes each rank must move in one direction of its link for an all-reduce of
    ``message_bytes`` per rank over ``n`` ranks — the SOL count, not the fit's ``bus``.

    Every rank's output depends on every other rank's input at every element, so with
    in-switch reduction (:data:`IN_SWITCH_REDUCTION`) a rank must send its whole
    contribution (``M``) and receive the reduced value of every element (``M``): ``M`` bytes
    per direction (NVLS: ``M`` of ``ld_reduce`` requests out and ``M/n`` back for the
    rank's shard, ``M/n`` out and ``M`` back through the multicast store; ``M·(1 + 1/n)``
    in all). With reductions only at the endpoints the lower bound is the ring's
    ``2(n−1)/n·M`` (Patarasuk & Yuan, "Bandwidth optimal all-reduce algorithms for
    clusters of workstations", JPDC 69(2), 2009). ``M ≤ 2(n−1)/n·M`` for ``n ≥ 2``:
    equal at 2 ranks."""
    ring = kt.bus_bytes("all_reduce", message_bytes, n)
    return np.minimum(message_bytes, ring) if system in IN_SWITCH_REDUCTION else ring


DTYPES = {
    # name: (weight/operand bytes, activation bytes, compute bits)
    "bfloat16": (2.0, 2.0, 16),
    "float16": (2.0, 2.0, 16),
    "fp8": (1.0, 1.0, 8),
    "fp8_block": (1.0 + 4 / 16384, 1.0 + 4 / 128, 8),  # 128×128 / 1×128 FP32 scales
    "nvfp4": (0.5625, 0.5625, 4),  # E2M1 + one FP8 scale per 16
    "int4_wo": (0.5625, 2.0, 16),  # weight-only, BF16 scale per 32
    "int8_wo": (1.0 + 2 / 128, 2.0, 16),
    "sq": (1.0, 1.0, 8),  # SmoothQuant W8A8 (int8 tensor cores)
    "w4a16_mxfp4": (0.53125, 2.0, 16),  # MXFP4 weights (E8M0 scale per 32), BF16 math
    "w4a8_mxfp4_mxfp8": (0.53125, 1.0 + 1 / 32, 8),
}
"""Bytes per element (weights, activations; scale overhead included) and compute bits."""

MLA_LATENT, MLA_ROPE, MLA_NOPE = 512, 64, 128  # DeepSeek-V3 (the tables' model)

NONGATED_MOE_SHAPES = frozenset({
    (2688, 1856, 6, 128),  # Nemotron-3 Nano 30B-A3B (and 3.5 Lightning)
    (4096, 2688, 22, 512),  # Nemotron-3 Super 120B-A12B
    (1024, 2688, 22, 512),  # Nemotron-3 Super, latent MoE (experts on the 1024-wide latent)
    (8192, 5120, 22, 512),  # Nemotron-3 Ultra 550B-A55B
    (2048, 5120, 22, 512),  # Nemotron-3 Ultra, latent MoE
})  # fmt: skip
"""MoE shapes ``(hidden, inter, top-k, experts)`` of the non-gated (ReLU², 2 matrices per
expert: up and down) Nemotron-3 models. Source: aiconfigurator's collector case file
``collector/cases/models/NemotronHForCausalLM_cases.yaml`` (``sglang_moe_activation: relu2``,
``sglang_moe_is_gated: false`` for every one of these shapes; the same models run on every
framework). The TensorRT-LLM tables name the kernel ``*_nongated``; the SGLang and vLLM
tables do not, so the shape decides. Counting them with 3 matrices put their bytes 1.5×
too high — the cause of most MoE points "below SOL" of the first pass."""

GEMM_SPLIT_K_CHUNK = 256.0
"""Reduction length (elements of ``k``) per extra work unit of a GEMM: ``x = n + k/256``.
Decode GEMMs with few output columns and a long ``k`` are spread over the SMs by splitting
``k`` (split-K / stream-K in cuBLAS and CUTLASS, two 128-deep k-tiles per chunk), so ``k``
adds parallelism the output columns alone do not give. Chosen among 64 / 256 / 1024 / none on
the H200 and B200 held-out GEMM points (pooled 11.8 / 11.7 / 12.1 / 12.7 %)."""

ATTENTION_DEPTH_HEAD_DIM = 128.0
"""Head dimension at which a decode-attention CTA's serial loop counts one element per
cached token and a query head one row: ``D = S·d/128``, ``R = B·H·d/128``. The loop walks
the KV cache in tiles of ``kBlockN`` tokens whose size the kernels choose by head dimension
(FlashAttention-3's decode tiles shrink as ``d`` grows, the shared-memory budget being fixed,
``hopper/tile_size.h``; XQA and trtllm-gen likewise), so the chain of dependent tile loads
and MMAs grows ∝ ``S·d``, not ``S``; a query head's Q row, softmax rescale and output row
are ``d`` wide. Against ``D = S``, ``R = B·H`` (H200 + B200, held-out attention at decode
shapes): 12.48 / 9.67 → 12.21 / 9.35 % (depth) → 12.26 / 9.01 % (and rows)."""

DECODE_MAX_ROWS = 256
"""Decode-shape selection of the report (``decode`` mask, :func:`decode_mask`): GEMM
``m ≤ 256`` rows (tokens of one decode step), generation attention and MLA ``batch ≤ 256``
sequences, MLA BMM and MoE ``≤ 256`` tokens. Collectives: every message (a decode step's
all-reduce spans the whole table's range)."""
HOLDOUT_EVERY = 5
TABLES = ("gemm", "attention", "mla", "mla_bmm", "moe", "comm")
"""Kernel tables the fitter reads (``--only`` chooses among them)."""
ITERATIONS = 1500
FIT_BETA = 8.0


@functools.cache
def hardware(system: str) -> dict:
    """Peaks (FLOP/s by compute bits), HBM and scale-up link bandwidth of a system."""
    spec = db.load_system(SYSTEMS[system])
    c = spec.chip
    bf16 = float(c.peak_flops_per_s_bf16)
    fp8 = float(c.peak_flops_per_s_fp8) or bf16
    fp4 = float(c.peak_flops_per_s_fp4) or fp8
    link = [float(t.bw_bytes_per_s) for t in spec.tiers if float(t.domain_chips) > 1][0]
    return {
        "peak": {16: bf16, 8: fp8, 4: fp4},
        "hbm": float(c.hbm_bw_bytes_per_s),
        "link": link,
        "db_system": SYSTEMS[system],
    }


def _dtype(name: str, where: str):
    if name not in DTYPES:
        raise db.DbError(f"{where}: unknown dtype {name!r}; known: {', '.join(DTYPES)}")
    return DTYPES[name]


def attention_counts(b, h, k, s, d_qk, d_v, b_kv):
    """FLOPs and bytes of one decode-attention call (broadcasting): ``B`` sequences of ``S``
    cached tokens, ``H`` query heads over ``K`` KV heads, QKᵀ over ``d_qk`` and PV over
    ``d_v``; reads the K and V caches (``b_kv`` bytes per element) and q, writes out
    (2 bytes)::

        F = 2·B·H·S·(d_qk + d_v)
        Q = B·S·K·(d_qk + d_v)·b_kv + B·H·(d_qk + d_v)·2

    (``d_qk = d_v = d``: ``4·B·H·S·d`` FLOPs, the symmetric head of most models)."""
    d = d_qk + d_v
    return 2.0 * b * h * s * d, b * s * k * d * b_kv + b * h * d * 2.0


def work(table) -> dict:
    """FLOPs, bytes, reuse factor, compute bits, group precision and shape key per row.

    *Length:* FLOPs and bytes of every kernel class side by side, so the formulas can be
    compared with :mod:`costmodel.operators` in one place.
    """
    c = table.columns
    n = len(table)
    name = table.name
    f = np.zeros(n)
    q = np.zeros(n)
    m = np.ones(n)
    units = np.ones(n)
    items = np.zeros(n)
    rows = np.zeros(n)
    wbytes = np.full(n, np.inf)  # weight bytes reused across benchmark iterations (L2 rule)
    bits = np.full(n, 16)
    if name == "gemm":
        prec = c["dtype"]
        for i in range(n):
            bw, ba, bits[i] = _dtype(prec[i], "gemm.csv")
            mm, nn, kk = c["m"][i], c["n"][i], c["k"][i]
            f[i] = 2.0 * mm * nn * kk
            wbytes[i] = kk * nn * bw
            q[i] = wbytes[i] + mm * kk * ba + mm * nn * 2.0
            m[i] = mm
        units = c["n"].astype(float) + c["k"].astype(float) / GEMM_SPLIT_K_CHUNK
        depth = c["k"].astype(float)
        shape = np.stack([c["m"], c["n"], c["k"]], 1)
    elif name == "attention":
        prec = c["kv_dtype"]
        bkv = np.array([_dtype(p, "attention.csv")[0] for p in prec])
        bits = kv_compute_bits(prec)
        b, h, k, d, s = (
            c[x].astype(float) for x in ("batch", "heads", "kv_heads", "head_dim", "context")
        )
        f, q = attention_counts(b, h, k, s, d, d, bkv)
        m = h / k
        units = b * k
        items = b * k
        rows = b * h * d / ATTENTION_DEPTH_HEAD_DIM
        depth = s * d / ATTENTION_DEPTH_HEAD_DIM
        shape = np.stack([c["batch"], c["heads"], c["kv_heads"], c["head_dim"], c["context"]], 1)
    elif name == "mla":
        prec = c["kv_dtype"]
        bkv = np.array([_dtype(p, "mla.csv")[0] for p in prec])
        bits = kv_compute_bits(prec)
        b, h, s = (c[x].astype(float) for x in ("batch", "heads", "context"))
        lat = MLA_LATENT + MLA_ROPE
        f = b * h * s * (2.0 * lat + 2.0 * MLA_LATENT)
        q = b * s * lat * bkv + b * h * (lat + MLA_LATENT) * 2.0
        m = h
        units = b
        items = b * h
        depth = s
        shape = np.stack([c["batch"], c["heads"], c["context"]], 1)
    elif name == "mla_bmm":
        prec = c["dtype"]
        t, h = c["tokens"].astype(float), c["heads"].astype(float)
        for i in range(n):
            bw, _, bits[i] = _dtype(prec[i], "mla_bmm.csv")
            wbytes[i] = h[i] * MLA_NOPE * MLA_LATENT * bw
            q[i] = wbytes[i] + t[i] * h[i] * (MLA_NOPE + MLA_LATENT) * 2.0
        f = 2.0 * t * h * MLA_NOPE * MLA_LATENT
        m = t
        units = h
        items = t * h
        is_post = (c["op"] == "mla_gen_post").astype(np.int64)
        depth = np.where(is_post == 1, float(MLA_LATENT), float(MLA_NOPE))
        shape = np.stack([is_post, c["tokens"], c["heads"]], 1)
    elif name == "moe":
        prec = c["dtype"]
        t, hid, inter, topk, e, tp, ep = (
            c[x].astype(float)
            for x in ("tokens", "hidden", "inter", "topk", "experts", "moe_tp", "moe_ep")
        )
        g = gated_matrices(c)
        # balanced routing (the benchmark's): min(E, T·k) distinct experts, 1/ep on the rank
        pairs = np.maximum(t * topk / ep, 1.0)
        experts = np.maximum(moe_distinct_experts(c) / ep, 1.0)
        rank_tokens = moe_rank_tokens(c["framework"], t, topk, ep)
        wb = np.zeros(n)
        ab = np.zeros(n)
        for i in range(n):
            wb[i], ab[i], bits[i] = _dtype(prec[i], "moe.csv")
        per_expert = g * hid * inter / tp
        f = 2.0 * pairs * per_expert
        q = experts * per_expert * wb + pairs * hid * ab + rank_tokens * hid * 2.0
        m = pairs / experts
        units = experts * inter / tp
        items = moe_routed_slots(c)
        rows = experts
        depth = hid + inter / tp
        shape = np.stack(
            [
                c["tokens"],
                c["hidden"],
                c["inter"],
                c["topk"],
                c["experts"],
                c["moe_tp"],
                c["moe_ep"],
                (g == 2).astype(np.int64),
            ],
            1,
        )
    else:
        raise ValueError(name)
    return {
        "flops": f, "bytes": q, "m": m, "units": units, "items": items, "rows": rows,
        "depth": np.asarray(depth, float), "bits": bits, "weight_bytes": wbytes,
        "precision": prec, "shape": shape,
    }  # fmt: skip


def kv_compute_bits(kv_dtype) -> np.ndarray:
    """Compute precision (bits) of a decode-attention / MLA kernel from its KV-cache dtype:
    an 8-bit cache runs QKᵀ and PV on the 8-bit tensor cores (TensorRT-LLM XQA and
    trtllm-gen MLA quantise q to FP8; FlashAttention-3 FP8), so its SOL uses the FP8 peak —
    the 16-bit one put 14 long-context FP8 MLA points on Blackwell below SOL. A lower bound
    either way: the FP8 peak is ≥ the BF16 one."""
    return np.array([_dtype(p, "kv_dtype")[2] for p in kv_dtype])


GROUPED_ROUTING = {(7168, 2048, 8, 256): (8, 4)}
"""MoE shapes ``(hidden, inter, top-k, experts)`` routed by grouped top-k → ``(n_group,
topk_group)``: DeepSeek-V3 / R1 (``config.json``: ``n_group = 8``, ``topk_group = 4``)."""


def moe_distinct_experts(c) -> np.ndarray:
    """Distinct experts the benchmark's balanced routing touches over all ranks, per row of
    a MoE table's columns ``c``.

    Balanced logits (aiconfigurator ``collector/helper.py``, ``balanced_logits``): token i
    is hot on experts ``(i + j·⌈E/k⌉) mod E``, j < k — ``min(E, T·k)`` distinct experts.
    Where the kernel routes the logits itself with **grouped** top-k (vLLM's router for every
    backend, FlashInfer TRT-LLM kernels that route in-kernel; shapes of
    :data:`GROUPED_ROUTING`), the hot experts of a token sit one per group (stride = group
    size), the groups tie and the same ``topk_group`` groups win for every token: ``T·k·tg/ng``
    hot experts there, the other ``k·(1 − tg/ng)`` slots filled by the same tied experts,
    at most ``E·tg/ng`` — ``min(E·tg/ng, T·k·tg/ng + k·(1 − tg/ng))``. (The first pass
    counted all experts for these rows: 50 of its MoE points "below SOL".)"""
    t, k, e = (c[x].astype(float) for x in ("tokens", "topk", "experts"))
    out = np.minimum(e, t * k)
    src = c["kernel_source"].astype(str)
    in_kernel = (np.asarray(c["framework"]) == "vllm") | (
        np.char.find(src, "flashinfer_trtllm") >= 0
    )
    shapes = zip(c["hidden"], c["inter"], c["topk"], c["experts"], strict=True)
    for i, sh in enumerate(shapes):
        grp = GROUPED_ROUTING.get(tuple(int(v) for v in sh))
        if grp and in_kernel[i]:
            f = grp[1] / grp[0]
            out[i] = min(e[i] * f, t[i] * k[i] * f + k[i] * (1.0 - f))
    return out


VLLM_BF16_ROUTING_FRAMEWORKS = frozenset({"vllm"})
"""Frameworks whose MoE collector builds the balanced logits under a BF16 default dtype
(:func:`collector_bf16_expert_scale`)."""


def _bf16(x) -> np.ndarray:
    """Round float32 values to the nearest BF16 (round to nearest even), back as float32."""
    return np.asarray(x, np.float32).astype(jnp.bfloat16).astype(np.float32)


def balanced_hot_experts(tokens: int, experts: int, topk: int, bf16: bool) -> np.ndarray:
    """Hot expert ids ``[T, k]`` of aiconfigurator's ``balanced_logits(T, E, k)``
    (``collector/helper.py``), stride ``s = ⌈E/k⌉``.

    ``T ≥ s``: ``(i + j·s) mod E`` in integers. ``T < s``: ``(i·s/T + j·s) mod E``, then
    ``.long()`` — a true division of integer tensors, which PyTorch computes in the
    **default** floating dtype (``torch.div``: "Always promotes integer types to the default
    scalar type"). ``bf16=False``: the exact arithmetic, ``⌊i·s/T⌋ + j·s mod E`` (the count
    of :func:`moe_distinct_experts`). ``bf16=True``: the collector's steps in BF16 with
    float32 op-math, as PyTorch's CUDA kernels run them: ``i·s`` cast to BF16, times
    ``1/T`` (the true-division kernel multiplies by the reciprocal of a scalar divisor),
    rounded; plus ``j·s`` (BF16), rounded; ``fmod E``, rounded; truncated. BF16 holds 8
    significant bits, so sums above 256 / 512 land on multiples of 2 / 4 and tokens merge:
    ``T = 32``, ``E = 896``, ``k = 16``: 370 distinct experts, not 512."""
    s = -(-experts // topk)
    i = np.arange(tokens)[:, None]
    j = np.arange(topk)[None, :]
    if tokens >= s:
        return (i + j * s) % experts
    if not bf16:
        return (i * s // tokens + j * s) % experts
    x = _bf16(_bf16(i * s) * (np.float32(1.0) / np.float32(tokens)))
    y = _bf16(x + _bf16(j * s))
    return np.trunc(_bf16(np.fmod(y, np.float32(experts)))).astype(np.int64)


def collector_bf16_expert_scale(c) -> np.ndarray:
    """Ratio of the distinct experts the measured rank's weights are read for, with the
    collector's BF16 balanced logits, to the exact count, per row of a MoE table's columns
    ``c`` (1 for rows whose collector builds the logits in float32 or in integers).

    aiconfigurator's vLLM 0.24.0 MoE collector (``collector/vllm/collect_moe.py``,
    ``run_moe_torch``; ``ai-dynamo/aiconfigurator`` d5bad971c, which published the vLLM
    0.24.0 tables, and a77804e36, the Kimi-K3 rows) calls
    ``torch.set_default_dtype(torch.bfloat16)`` before the sweep and builds the balanced
    router logits with ``balanced_logits(T, E, k)`` under it (only the power-law branch
    switches back to float32), so for ``T < ⌈E/k⌉`` the hot ids are computed in BF16
    (:func:`balanced_hot_experts`). The SGLang and TensorRT-LLM MoE collectors leave the
    default dtype alone. The rank holds experts ``[0, E/ep)`` (vLLM's linear expert
    placement, rank 0); the ratio is ``|H_bf16 ∩ R| / |H ∩ R|``, applied to the count of
    :func:`moe_distinct_experts` ``/ ep``."""
    fw = np.asarray(c["framework"]).astype(str)
    t, k, e, ep = (np.asarray(c[x]).astype(int) for x in ("tokens", "topk", "experts", "moe_ep"))
    out = np.ones(len(fw))
    cache: dict = {}
    for r in np.where(np.isin(fw, list(VLLM_BF16_ROUTING_FRAMEWORKS)))[0]:
        key = (t[r], e[r], k[r], ep[r])
        if key not in cache:
            local = e[r] // ep[r]
            n_bf16 = np.unique(balanced_hot_experts(*key[:3], bf16=True))
            n_exact = np.unique(balanced_hot_experts(*key[:3], bf16=False))
            cache[key] = max(np.sum(n_bf16 < local), 1) / max(np.sum(n_exact < local), 1)
        out[r] = cache[key]
    return out


def moe_rank_tokens(framework, tokens, topk, ep):
    """Tokens the measured rank's MoE kernel processes (each with all its ``topk`` slots).

    TensorRT-LLM and vLLM collectors pass all ``T`` tokens to the rank's module (remote
    experts masked); SGLang's builds the rank-0 workload (``build_rank0_workloads``): only
    the tokens with at least one local expert, ``T·(1 − (1 − 1/ep)^k)`` under uniform
    routing (at least 1). Source: aiconfigurator ``collector/{trtllm,vllm,sglang}/
    collect_moe.py``."""
    local = np.maximum(tokens * (1.0 - (1.0 - 1.0 / ep) ** topk), 1.0)
    return np.where(np.asarray(framework) == "sglang", local, tokens)


def balanced_rank0_tokens(tokens: int, topk: int, experts: int, ep: int) -> int:
    """Tokens of ``tokens`` with at least one of their ``topk`` balanced-routing experts
    ``(i + j·⌈E/k⌉) mod E`` on rank 0 (experts ``0 … E/ep − 1``): the rank-0 workload of
    aiconfigurator's SGLang collector (``build_rank0_workloads``, ``rank0_token_mask``)."""
    stride = -(-experts // topk)
    i = np.arange(tokens)[:, None]
    hot = (i + np.arange(topk)[None, :] * stride) % experts
    return int(np.any(hot < experts // ep, axis=1).sum())


def sglang_rank0_lane(c) -> np.ndarray:
    """Rows of a MoE table's columns ``c`` measured on the SGLang collector's rank-0 workload
    (:func:`moe_routed_slots`): its own Triton lane (``bfloat16`` / ``fp8_block`` through
    ``sglang_fused_moe_triton``), every lane before 0.5.14
    (:func:`sglang_collector_rank0_every_lane`); ``moe_ep > 1`` only."""
    src = np.asarray(c["kernel_source"]).astype(str)
    lane = (src == "sglang_fused_moe_triton") & np.isin(
        np.asarray(c["dtype"]), ["bfloat16", "fp8_block"]
    )
    return (
        (np.asarray(c["framework"]) == "sglang")
        & (lane | sglang_collector_rank0_every_lane(c["framework_version"]))
        & (np.asarray(c["moe_ep"]).astype(int) > 1)
    )


def moe_routed_slots(c) -> np.ndarray:
    """Token slots ``T_k·k`` the measured MoE kernel routes, sorts and reduces (the item
    count ``N``), per row of a MoE table's columns ``c``.

    aiconfigurator's SGLang collector builds a rank-0 workload only on its own Triton path
    (``bfloat16`` / ``fp8_block`` through ``sglang_fused_moe_triton`` with ``moe_ep > 1``):
    the tokens with a local expert under balanced routing
    (:func:`balanced_rank0_tokens`, all ``T`` while ``ep ≤ k``). Its quantized and
    non-Triton lanes go through the framework's MoE layer, which, like the TensorRT-LLM and
    vLLM collectors, takes all ``T`` tokens and masks the remote experts' slots. Source:
    aiconfigurator ``collector/sglang/collect_moe.py`` (``run_moe_torch``:
    ``use_framework_layer``). The collector of the 0.5.10 tables built the rank-0 workload for
    every lane (:func:`sglang_collector_rank0_every_lane`). The byte count keeps
    :func:`moe_rank_tokens` (shared with the end-to-end prior)."""
    t, k, e, ep = (np.asarray(c[x]).astype(int) for x in ("tokens", "topk", "experts", "moe_ep"))
    rank0 = sglang_rank0_lane(c)
    cache: dict = {}
    out = t.astype(float)
    for i in np.where(rank0)[0]:
        key = (t[i], k[i], e[i], ep[i])
        if key not in cache:
            cache[key] = max(balanced_rank0_tokens(*key), 1)
        out[i] = cache[key]
    return out * k


SGLANG_FRAMEWORK_LAYER_FROM = (0, 5, 14)
"""First SGLang version whose aiconfigurator collector sends the quantized and non-Triton
MoE lanes through the framework's layer (:func:`sglang_collector_rank0_every_lane`)."""


def sglang_collector_rank0_every_lane(versions) -> np.ndarray:
    """Rows whose SGLang collector built the rank-0 workload for **every** MoE lane.

    Before the 0.5.14 upgrade (aiconfigurator ``collector/sglang/collect_moe.py`` at the
    commit that published the 0.5.10 tables, cb4d907c7, "sglang 0.5.10 perf data"),
    ``run_moe_torch`` called ``build_rank0_workloads`` whenever ``moe_ep_size > 1`` with
    balanced or power-law routing, for the Triton and the Marlin INT4 lanes alike: the
    rank-0 tokens only, remote experts' ids clamped to 0 with weight 0, so the kernel routes
    all ``k`` slots of each rank-0 token. The 0.5.14 collector (``use_framework_layer``)
    keeps that workload for its own Triton lane only. ``versions``: the table's
    ``framework_version`` strings."""
    out = []
    for v in np.asarray(versions).astype(str):
        parts = tuple(int(x) for x in v.split(".")[:3] if x.isdigit())
        out.append(parts < SGLANG_FRAMEWORK_LAYER_FROM)
    return np.array(out, bool)


def sglang_collector_gated_only(c) -> np.ndarray:
    """Rows of a MoE table's columns ``c`` that :func:`gated_matrices` counts with 2 matrices
    (non-gated Nemotron-3 shapes) but whose benchmark ran 3: the SGLang collector before
    0.5.14 (:func:`sglang_collector_rank0_every_lane`) has no gating flag — its
    ``run_moe_torch`` passes ``2·inter/tp`` as the first weight's rows (gate and up) for
    every model (aiconfigurator cb4d907c7, ``collector/sglang/collect_moe.py``); the
    ``is_gated`` case field arrived later. The p-norm dispatch counts them gated
    (:func:`pnorm_dispatch`); the max form of the end-to-end prior keeps the shape's count."""
    old = (np.asarray(c["framework"]) == "sglang") & sglang_collector_rank0_every_lane(
        c["framework_version"]
    )
    named = np.char.find(np.asarray(c["kernel_source"]).astype(str), "nongated") >= 0
    return old & (gated_matrices(c) == 2.0) & ~named


def gated_matrices(c) -> np.ndarray:
    """Weight matrices per MoE expert: 3 (gated: gate, up, down) or 2 (non-gated: up, down)
    per row of a MoE table's columns ``c`` — 2 for ``*nongated*`` kernels and for the shapes
    of :data:`NONGATED_MOE_SHAPES`."""
    named = np.char.find(c["kernel_source"].astype(str), "nongated") >= 0
    shape = zip(c["hidden"], c["inter"], c["topk"], c["experts"], strict=True)
    known = np.array([tuple(int(v) for v in s) in NONGATED_MOE_SHAPES for s in shape], bool)
    return np.where(named | known, 2.0, 3.0)


def decode_mask(name: str, c) -> np.ndarray:
    """Rows of kernel table ``name`` (columns ``c``) at decode shapes
    (:data:`DECODE_MAX_ROWS`)."""
    col = {"gemm": "m", "attention": "batch", "mla": "batch", "mla_bmm": "tokens",
           "moe": "tokens"}[name]  # fmt: skip
    return np.asarray(c[col]) <= DECODE_MAX_ROWS


TRTLLM_XQA_MAX_GROUP = 32
"""Largest query-head group ``H/K`` TensorRT-LLM's XQA decode kernels take
(``supportConfigHMMA`` / ``supportConfigQGMMA`` in ``cpp/tensorrt_llm/kernels/
decoderMaskedMultiheadAttention/decoderXQAImplJIT/kernelUtils.cpp``: ``head_grp_size ×
beam_width > 32`` → not supported); wider groups fall back to the multi-head kernel."""

TRTLLM_XQA_SKIPS_MHA = frozenset({"a100_sxm", "h100_sxm", "h200_sxm"})
"""Systems (SM80 / SM90) whose TensorRT-LLM decode attention runs vanilla MHA (``H = K``)
on the multi-head kernel: XQA's ``supportConfigCommon`` rejects ``is_vanilla_mha`` with beam
width 1 ("Do not use XQA kernel for vanilla MHA case for performance reasons"). Blackwell's
trtllm-gen kernels take MHA like grouped heads (its MHA points sit with the grouped ones in
one fit: 5.6–7.2 % in sample on B200, against 24 % for the H200 FP8 MHA points)."""


def trtllm_mmha(system, heads, kv_heads) -> np.ndarray:
    """Rows of TensorRT-LLM's decode attention that its dispatcher sends to the multi-head
    kernel (``decoderMaskedMultiheadAttention``, MMHA) instead of XQA / trtllm-gen: query
    groups wider than :data:`TRTLLM_XQA_MAX_GROUP` everywhere, vanilla MHA on the systems of
    :data:`TRTLLM_XQA_SKIPS_MHA`. A documented, shape-determined switch: the two kernels get
    their own constants (variant ``…:mmha``). The measured effect: with the XQA shapes in one
    fit, groups of 64–128 query heads per KV head ran up to 35× slower than predicted
    (H200 FP8, 256 sequences × 64 heads / 1 KV head × 64 tokens: 218 µs)."""
    g = np.asarray(heads, float) / np.asarray(kv_heads, float)
    mha = (g == 1.0) & np.isin(np.asarray(system).astype(str), list(TRTLLM_XQA_SKIPS_MHA))
    return (g > TRTLLM_XQA_MAX_GROUP) | mha


TRITON_MOE_MARK = "fused_moe_triton"
"""``kernel_source`` substring of SGLang's Triton fused-MoE lanes (the kernels of
:func:`triton_moe_block_m`)."""
TRITON_MOE_BLOCK_M_SMALL = 16.0
TRITON_MOE_BLOCK_M_LARGE = 64.0


PLUGIN_CUDA_CORE_MAX_M = 4
"""TensorRT-LLM's weight-only and SmoothQuant GEMM plugins run a CUDA-core kernel for at
most this many rows (:func:`trtllm_plugin_cuda_core`)."""
PLUGIN_CUDA_CORE_SUFFIX = ":cudacore"
_PLUGINS_WITH_CUDA_CORE_PATH = ("WeightOnlyQuantMatmul", "SmoothQuantGemm")


def trtllm_plugin_cuda_core(c) -> np.ndarray:
    """Rows of a GEMM table's columns ``c`` that TensorRT-LLM's quantized GEMM plugins serve
    with a CUDA-core kernel instead of their profiled CUTLASS tensor-core GEMM (``m ≤ 4``).

    * Weight-only INT4 / INT8 (``weightOnlyQuantMatmulPlugin.cpp``, ``enqueue``):
      ``use_cuda_kernel = m < SMALL_M_FAST_PATH && mCudaKernelEnabled``,
      ``SMALL_M_FAST_PATH = 5`` (``weightOnlyQuantMatmulPlugin.h``), the CUDA kernel
      enabled from SM75 on — ``weight_only_batched_gemv_launcher`` (``kernels/
      weightOnlyBatchedGemv``), a batched GEMV over the interleaved weights; CUTLASS
      ``fpA_intB`` beyond.
    * SmoothQuant W8A8 (``smoothQuantGemmPlugin.cpp``, ``enqueue``): ``if (m <= 4)``
      ``smooth_quant::int8_sq_launcher`` (``kernels/int8SQ``, CTA tiles of 1–4 rows on CUDA
      cores), ``CutlassInt8GemmRunner`` beyond.

    Both kernels are chosen by ``m`` alone (every system with these rows, A100, is SM80):
    variant ``<source>:cudacore`` (:data:`PLUGIN_CUDA_CORE_SUFFIX`) with its own
    constants, counts unchanged."""
    src = np.asarray(c["kernel_source"]).astype(str)
    plugin = np.zeros(len(src), bool)
    for name in _PLUGINS_WITH_CUDA_CORE_PATH:
        plugin |= np.char.find(src, name) >= 0
    plugin &= np.asarray(c["framework"]) == "trtllm"
    return plugin & (np.asarray(c["m"]).astype(float) <= PLUGIN_CUDA_CORE_MAX_M)


PLUGIN_TILE_M_MAX = {"WeightOnlyQuantMatmul": 128.0, "SmoothQuantGemm": 256.0}
"""Tallest CTA tile (rows of ``m``) among the SM80 CUTLASS candidates of TensorRT-LLM's
quantized GEMM plugins (``cutlass_heuristic.cpp``, ``get_candidate_tiles``): weight-only
``CtaShape{16,32,64,128}x128`` and ``16x256``; INT8 (SmoothQuant) ``32x128``, ``64x128``,
``64x64``, ``128x64``, ``128x256``, ``256x128`` (:func:`trtllm_plugin_padded_rows`)."""


def trtllm_plugin_padded_rows(c) -> np.ndarray:
    """Rows ``m_pad`` the CUTLASS tile of TensorRT-LLM's quantized GEMM plugins computes per
    row of a GEMM table's columns ``c`` (``m`` for every other row, and for the CUDA-core
    rows of :func:`trtllm_plugin_cuda_core`).

    The plugins do not choose their CUTLASS tactic by a shape rule: at engine build
    ``GemmPluginProfiler::profileTactics`` (``plugins/common/gemmPluginProfiler.cpp``) times
    every candidate (tile × stages × split-k, ``get_candidate_configs``) at
    ``m_r = nextPowerOfTwo(m)`` — the benchmark's engines have one ``m``, so only ``m_r`` —
    and keeps the fastest; at run time ``getBestConfig(m)`` looks the tactic up at
    ``nextPowerOfTwo(m)`` again. So the kernel that runs ``m`` rows is the one chosen for
    ``m_r`` rows. Counted here as the tile that covers ``m_r`` in the fewest row tiles,
    ``T = min(m_r, T_max)`` (:data:`PLUGIN_TILE_M_MAX`), every candidate height being a
    power of two: ``m_pad = ⌈m/T⌉·T`` (``= m_r`` for ``m ≤ T_max``; weight-only
    ``m = 160`` → 256, ``384`` → 384). Padded rows are MMA work like the others, so the
    compute term counts ``F·m_pad/m`` FLOPs with reuse ``m_pad``; the bytes do not change
    (the padded rows of A are not loaded) and SOL keeps the useful FLOPs ``F``.

    Check against the full aiconfigurator A100 table (not the fitted subsample): the
    median of ``t(m)/t(128)`` over every ``(n, k)`` is exactly 1 for weight-only INT8 at
    ``m`` = 80 and 96, 0.99 / 1.00 for INT4 and 0.97 for SmoothQuant — a kernel that
    computes 128 rows whatever ``m`` in (64, 128]."""
    m = np.asarray(c["m"]).astype(float)
    src = np.asarray(c["kernel_source"]).astype(str)
    t_max = np.zeros(len(src))
    for name, rows in PLUGIN_TILE_M_MAX.items():
        t_max = np.where(np.char.find(src, name) >= 0, rows, t_max)
    cutlass = (t_max > 0) & (np.asarray(c["framework"]) == "trtllm") & ~trtllm_plugin_cuda_core(c)
    m_r = 2.0 ** np.ceil(np.log2(np.maximum(m, 1.0)))
    tile = np.minimum(m_r, np.where(cutlass, t_max, 1.0))
    return np.where(cutlass, np.ceil(m / tile) * tile, m)


def triton_moe_block_m(c, slots) -> np.ndarray:
    """``BLOCK_SIZE_M`` (token rows per tile) of SGLang's Triton fused MoE per row of a MoE
    table's columns ``c``, ``slots`` the routed slots :func:`moe_routed_slots`.

    SGLang's ``get_default_config`` (``python/sglang/srt/layers/moe/fused_moe_triton/
    fused_moe_triton_config.py``): block-quantised FP8 (``fp8_block``) tiles 64 rows; every
    other dtype 64 rows, or 16 rows where ``M ≤ E`` (``M`` the tokens the kernel gets,
    ``slots/k``; ``E`` the rank's experts ``E/ep``: "a heuristic: … faster with this config
    for small M"). Each active expert's rows are padded to a whole tile (``moe_align_block_
    size``: ``⌈m/BLOCK_M⌉·BLOCK_M`` per expert), so the tile size is the padding the compute
    term's reuse ``m`` sees: :func:`pnorm_dispatch` scales ``m`` by ``16/BLOCK_M``, which
    leaves the fitted ``m_half`` as the 16-row padding and makes the 64-row regime pay 4×
    for few tokens per expert. A shape-determined switch of the library, not a fitted one."""
    t, k, e, ep = (np.asarray(c[x]).astype(float) for x in ("tokens", "topk", "experts", "moe_ep"))
    m_tokens = np.asarray(slots, float) / k
    small = (m_tokens <= e / ep) & (np.asarray(c["dtype"]).astype(str) != "fp8_block")
    return np.where(small, TRITON_MOE_BLOCK_M_SMALL, TRITON_MOE_BLOCK_M_LARGE)


FA3_OWN_HEAD_DIM = 192
"""Head dimension whose SGLang FlashAttention-3 rows are a kernel variant of their own
(:func:`sglang_fa3_own_head_dim`)."""
FA3_HEAD_DIM_SUFFIX = ":hd192"
_SGLANG_FA3_SOURCE = "fa3"


def sglang_fa3_own_head_dim(c) -> np.ndarray:
    """Rows of an attention table's columns ``c`` that SGLang's FlashAttention-3 runs on its
    head-dimension-192 kernel instance.

    FlashAttention-3 compiles one forward kernel per head-dimension bucket (``hopper/
    instantiations/flash_fwd_hdim{64,96,128,192,256}_*_sm90.cu``, dispatched by
    ``hopper/flash_api.cpp`` on the rounded head dim), each with its own tile shape from
    ``hopper/tile_size.h`` (``tile_size_fwd_sm90``, 16-bit: ``d ≤ 64`` 192 × 192/128,
    ``d ≤ 128`` 128 × 176/128, ``d ≤ 192`` 128 × 128/112/96 with ``MmaPV_is_RS``, ``d ≤ 256``
    128 × 80/64), and the split-KV count (``num_splits_heuristic``) is computed from that
    bucket's ``kBlockN``. The instance is chosen by ``d`` alone. The fit's shared counts carry
    the head dimension through the serial loop and rows (:data:`ATTENTION_DEPTH_HEAD_DIM`);
    SGLang's ``d = 192`` instance (sgl-kernel's build of FA3) sits on a launch floor of
    16–20 µs against 9–12 µs for ``d`` = 64 / 128 / 256 at the same short shapes (H100 / H200,
    BF16 and FP8 caches), which no shared constant can take, so its rows get their own
    constants: variant ``fa3:hd192`` (:data:`FA3_HEAD_DIM_SUFFIX`), with the V head of 128 in
    its FLOPs and bytes (:func:`sglang_v_head_dim`, MiMo-V2-Flash's shape). vLLM's
    FA3 fork (``vllm_flash_attn_fa3``) runs ``d = 192`` at 12.7–14.2 µs at such shapes, in
    line with its other head dims, and keeps one variant."""
    src = np.asarray(c["kernel_source"]).astype(str)
    fw = np.asarray(c["framework"]).astype(str)
    d = np.asarray(c["head_dim"]).astype(float)
    return (fw == "sglang") & (src == _SGLANG_FA3_SOURCE) & (d == FA3_OWN_HEAD_DIM)


SGLANG_QK192_V_HEAD_DIM = 128
"""V head dimension of SGLang's attention rows at ``head_dim`` 192
(:func:`sglang_v_head_dim`)."""


def sglang_v_head_dim(c) -> np.ndarray:
    """V head dimension per row of an attention table's columns ``c``: the table's
    ``head_dim`` is the QK one; SGLang's rows at ``head_dim = 192`` have ``d_v = 128``.

    Source: aiconfigurator's SGLang 0.5.14 collector, the commit that published these tables
    (``ai-dynamo/aiconfigurator`` e23be5a79, "upgrade the SGLang collector to 0.5.14 with data
    for 8 systems"). ``collector/sglang/collect_attn.py``, ``run_attention_torch``, refuses
    ``head_dim == 192`` unless the case carries an explicit ``v_head_dim`` and architecture
    ``MiMoV2FlashForCausalLM`` ("head_dim=192 requires the explicit MiMo-V2 SGLang attention
    contract"), and the only such cases are MiMo-V2-Flash's
    (``collector/cases/models/MiMoV2FlashForCausalLM_cases.yaml``: ``head_dim: 192``,
    ``v_head_dim: 128``, 64 query / 4 KV heads split by tensor parallelism, FA3 on SM90,
    Triton on SM100 / SM103). The SGLang base sweep lists ``head_dims [128, 256]`` only. So
    every SGLang row at ``d = 192`` reads a K cache of 192 and a V cache of 128 per token and
    head, and writes 128-wide outputs. vLLM's and TensorRT-LLM's rows at ``d = 192`` are
    symmetric (the case file: vLLM "intentionally omits" MiMo's QK 192 / V 128 path,
    TensorRT-LLM "treats V as qk_head_dim=192"). Other rows: ``d_v = d``."""
    d = np.asarray(c["head_dim"]).astype(float)
    fw = np.asarray(c["framework"]).astype(str)
    qk192 = (fw == "sglang") & (d == FA3_OWN_HEAD_DIM)
    return np.where(qk192, float(SGLANG_QK192_V_HEAD_DIM), d)


FA2_GQA_COPY_SUFFIX = ":gqacopy"
_VLLM_FA2_SOURCE = "vllm_flash_attn"


def vllm_fa2_gqa_copy(c) -> np.ndarray:
    """Rows of an attention table's columns ``c`` where vLLM's FlashAttention-2
    (``vllm_flash_attn``, A100) copies the query and output around the kernel.

    FlashAttention-2's ``mha_varlen_fwd`` (``csrc/flash_attn/flash_api.cpp``; vLLM's fork
    ``vllm-project/flash-attention`` keeps it) swaps a decode step's query-head groups into
    the query length ("faster to transpose q from (b, 1, (nheads_kv ngroups), d) to
    (b, ngroups, nheads_kv, d)"): ``seqlenq_ngroups_swapped`` when ``max_seqlen_q == 1`` and
    ``H > K``, then ``q.reshape({B, K, G, d}).transpose(1, 2).reshape({B·G, K, d})`` and the
    inverse ``out.reshape({B, G, K, d}).transpose(1, 2).reshape({B, K·G, d})``. A PyTorch
    ``reshape`` is a view only where the strides allow; merging ``B`` (stride ``K·G·d``)
    with the transposed ``G`` (stride ``d``) needs ``K·G·d = G·d·K``-contiguity of the
    transposed pair, which holds only for ``B = 1`` (a size-1 dimension merges freely) or
    ``K = 1`` (the transpose moves a size-1 dimension). Otherwise each reshape is a copy
    kernel: two extra launches per call, before and after the attention kernel. So the
    rows with ``B ≥ 2``, ``K ≥ 2`` and ``H > K`` run three kernels, the others one: variant
    ``vllm_flash_attn:gqacopy`` (:data:`FA2_GQA_COPY_SUFFIX`) with its own constants, counts
    unchanged (the copies move ``B·H·d`` elements twice, far under the KV bytes). Measured
    on A100 at ≤ 64 cached tokens: 18–20 µs for these shapes, 11–13 µs for ``B = 1``,
    ``K = 1`` or MHA at the same batch. FlashAttention-3 (Hopper, ``vllm_flash_attn_fa3``)
    packs the query groups inside the kernel (``pack_gqa``) and has no such copy."""
    src = np.asarray(c["kernel_source"]).astype(str)
    fw = np.asarray(c["framework"]).astype(str)
    b, h, k = (np.asarray(c[x]).astype(float) for x in ("batch", "heads", "kv_heads"))
    return (fw == "vllm") & (src == _VLLM_FA2_SOURCE) & (b >= 2) & (k >= 2) & (h > k)


def pnorm_dispatch(name: str, c, w: dict) -> np.ndarray:
    """Kernel variant per row for the p-norm fit (the table's ``kernel_source``, refined by
    a shape rule where the framework's dispatcher switches kernels), and the counts of
    ``w`` (:func:`work`) that the switch changes, in place.

    TensorRT-LLM decode attention (``torch_flow``):

    * rows of :func:`trtllm_mmha` become variant ``torch_flow:mmha``, with the multi-head
      kernel's counts: one CTA per (sequence, query head), items ``N = B·H``, and no
      query-head sharing of the KV tile, ``m = 1`` (MMHA computes each head's dot products
      on its own; ``decoderMaskedMultiheadAttentionTemplate.h``);
    * the KV bytes count the **K cache only**, ``Q = B·S·K·d·b_kv + B·H·2d·2``: the
      collector allocates a K-only pool (aiconfigurator ``collector/trtllm/collect_attn.py``:
      ``KVCacheManager(kv_cache_type=CacheType.SELFKONLY, …)``, one field per block,
      ``kv_factor = 1``, the MLA latent layout), so the kernel's V reads have no pages of
      their own. Counted with K and V, 14 A100 points at 8k–128k context ran up to 1.6×
      faster than HBM allows (none 2×). SOL keeps the rule (floors 0, efficiencies 1 on
      these bytes), still a lower bound on what the benchmark reads from HBM.

    TensorRT-LLM's quantized GEMM plugins (weight-only, SmoothQuant): rows of
    :func:`trtllm_plugin_cuda_core` (``m ≤ 4``) become variant ``<source>:cudacore``; the
    CUTLASS rows compute the rows of their tile, ``m_pad`` of :func:`trtllm_plugin_padded_rows`:
    FLOPs × ``m_pad/m`` and reuse ``m_pad``, with ``sol_flops`` keeping the unpadded FLOPs
    for SOL.

    SGLang MoE: rows of :func:`sglang_collector_gated_only` count the benchmark's third
    matrix (FLOPs × 3/2, one more weight matrix per active expert in the bytes); rows of
    :func:`sglang_rank0_lane` compute every routed slot of the rank-0 tokens — the
    collector's ``build_rank0_local_workload`` sets remote experts' ids to −1 and
    ``collect_moe.py`` clamps them to 0 (weight 0) before the kernel, so expert 0 takes the
    remote slots — FLOPs and reuse ``m`` × slots/local pairs; the Triton lane's reuse ``m``
    then scaled by ``16/BLOCK_M`` (:func:`triton_moe_block_m`).

    vLLM MoE: the collector computes the balanced logits' hot ids in BF16, which merges
    tokens' experts for ``T < ⌈E/k⌉`` (:func:`collector_bf16_expert_scale`): the rank's
    distinct experts ``e`` scaled by that ratio (at least 1), and with them the weight bytes
    (``Δe·g·h·I/tp·b_w``), the columns ``x = e·I/tp``, the rows and the reuse ``p/e``;
    FLOPs and routed slots unchanged (every token still has ``k`` slots).

    SGLang FlashAttention-3 at ``d = 192`` (:func:`sglang_fa3_own_head_dim`): variant
    ``fa3:hd192``. Every SGLang row at ``d = 192`` (FA3 and Triton) has a V head of 128
    (:func:`sglang_v_head_dim`): ``F = 2·B·H·S·(d + d_v)``, ``Q = B·S·K·(d + d_v)·b_kv +
    B·H·(d + d_v)·2`` (the serial loop and rows keep ``d``: the kernel's tile is chosen by the
    QK head dim). vLLM FlashAttention-2 rows whose swapped-group
    reshapes copy q and out (:func:`vllm_fa2_gqa_copy`): variant
    ``vllm_flash_attn:gqacopy``, counts unchanged.

    Other classes and frameworks: the table's variant, counts unchanged."""
    src = np.asarray(c["kernel_source"]).astype(str)
    variant = src.astype(object)  # object: room for the longer names below
    if name == "gemm":
        cc = trtllm_plugin_cuda_core(c)
        variant[cc] = variant[cc] + PLUGIN_CUDA_CORE_SUFFIX
        m_pad = trtllm_plugin_padded_rows(c)
        w["sol_flops"] = w["flops"]  # SOL: the useful FLOPs, not the tile's padded rows
        w["flops"] = w["flops"] * m_pad / w["m"]
        w["m"] = m_pad
        return variant
    if name == "moe":
        h, inter, tp = (np.asarray(c[x]).astype(float) for x in ("hidden", "inter", "moe_tp"))
        wb = np.array([_dtype(p, "moe.csv")[0] for p in c["dtype"]])
        matrix_bytes = h * inter / tp * wb  # one weight matrix of one expert on the rank
        gated = sglang_collector_gated_only(c)
        if gated.any():  # the benchmark's third matrix: FLOPs × 3/2, one more weight matrix
            w["flops"] = np.where(gated, w["flops"] * 1.5, w["flops"])
            w["bytes"] = np.where(gated, w["bytes"] + w["rows"] * matrix_bytes, w["bytes"])
        r0 = sglang_rank0_lane(c)
        if r0.any():  # remote slots computed on expert 0 with weight 0: FLOPs of every slot
            t, k, ep = (np.asarray(c[x]).astype(float) for x in ("tokens", "topk", "moe_ep"))
            scale = w["items"] / np.maximum(t * k / ep, 1.0)
            w["flops"] = np.where(r0, w["flops"] * scale, w["flops"])
            w["m"] = np.where(r0, w["m"] * scale, w["m"])
        bf = collector_bf16_expert_scale(c)
        if np.any(bf != 1.0):  # fewer distinct experts: their weights, columns, reuse
            rows = np.maximum(w["rows"] * bf, 1.0)
            w["bytes"] = w["bytes"] + (rows - w["rows"]) * gated_matrices(c) * matrix_bytes
            w["m"] = w["m"] * w["rows"] / rows
            w["units"] = w["units"] * rows / w["rows"]
            w["rows"] = rows
        tri = np.char.find(src, TRITON_MOE_MARK) >= 0
        if tri.any():
            bm = triton_moe_block_m(c, w["items"])
            w["m"] = np.where(tri, w["m"] * TRITON_MOE_BLOCK_M_SMALL / bm, w["m"])
        return variant
    if name != "attention":
        return variant
    own = sglang_fa3_own_head_dim(c)
    variant[own] = variant[own] + FA3_HEAD_DIM_SUFFIX
    dv = sglang_v_head_dim(c)
    d_qk = np.asarray(c["head_dim"]).astype(float)
    if np.any(dv != d_qk):  # QK 192 / V 128: QKᵀ over d_qk, PV over d_v; K, V, q, out bytes
        b, h, k, s = (c[x].astype(float) for x in ("batch", "heads", "kv_heads", "context"))
        bkv = np.array([_dtype(p, "attention.csv")[0] for p in c["kv_dtype"]])
        w["flops"], w["bytes"] = attention_counts(b, h, k, s, d_qk, dv, bkv)
    cp = vllm_fa2_gqa_copy(c)
    variant[cp] = variant[cp] + FA2_GQA_COPY_SUFFIX
    trt = (np.asarray(c["framework"]) == "trtllm") & (src == "torch_flow")
    if not trt.any():
        return variant
    b, h, k, d, s = (
        c[x].astype(float) for x in ("batch", "heads", "kv_heads", "head_dim", "context")
    )
    bkv = np.array([_dtype(p, "attention.csv")[0] for p in c["kv_dtype"]])
    q_konly = b * s * k * d * bkv + b * h * 2 * d * 2.0
    w["bytes"] = np.where(trt, q_konly, w["bytes"])
    mm = trt & trtllm_mmha(c["system"], h, k)
    variant[mm] = "torch_flow:mmha"
    w["items"] = np.where(mm, b * h, w["items"])
    w["m"] = np.where(mm, 1.0, w["m"])
    return variant


def holdout_mask(shape: np.ndarray) -> np.ndarray:
    """Rows whose distinct shape is every fifth of the group's sorted distinct shapes."""
    uniq, inv = np.unique(shape, axis=0, return_inverse=True)
    return (np.arange(len(uniq)) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1)[inv.reshape(-1)]


# ----------------------------------------------------------------------------- fitting


_SIG = jax.nn.sigmoid
_FROM_THETA = {
    "t_floor_s": jnp.exp,
    "eta_c_max": _SIG,
    "m_half_rows": jnp.exp,
    "eta_m_max": _SIG,
    "b_half_bytes": jnp.exp,
    "x_half_units": jnp.exp,
    "t_item_s": jnp.exp,
    "p_overlap": lambda t: 1.0 + jnp.exp(t),
    "t_row_s": jnp.exp,
    "t_depth_s": jnp.exp,
    "d_split": jnp.exp,
    "alpha0_s": jnp.exp,
    "alpha1_s": jnp.exp,
    "beta_max_bytes_per_s": jnp.exp,
    "gamma": _SIG,
    "alpha0_small_s": jnp.exp,
    "alpha1_small_s": jnp.exp,
    "beta_frac_small": _SIG,
}
"""Unconstrained θ component → constant: ``exp`` for positive times, sizes and rates,
``sigmoid`` for efficiencies and fractions in (0, 1), ``1 + exp`` for the p-norm order."""

KERNEL_FIELDS = tuple(f for f in _FROM_THETA if f in kt.KernelParams.__dataclass_fields__)
"""θ order of the p-norm kernel form (:func:`costmodel.kernel_time.kernel_time_s`)."""
COLL_FIELDS = tuple(f for f in _FROM_THETA if f in kt.CollectiveParams.__dataclass_fields__)
"""θ order of the two-regime collective law."""


def _from_theta(cls, fields, theta):
    """``cls`` with ``fields[i] = _FROM_THETA[fields[i]](θ[i])``; other fields default."""
    return cls(**{f: _FROM_THETA[f](theta[i]) for i, f in enumerate(fields)})


def _kernel_params(theta):
    """p-norm kernel constants from θ ``[11]`` (:data:`KERNEL_FIELDS`)."""
    return _from_theta(kt.KernelParams, KERNEL_FIELDS, theta)


def _coll_params(theta):
    """Two-regime collective constants from θ ``[7]`` (:data:`COLL_FIELDS`)."""
    return _from_theta(kt.CollectiveParams, COLL_FIELDS, theta)


def _kernel_pred(theta, x):
    p = _kernel_params(theta)

    def one(f, q, m, pk, bw, u, it, r, d):
        return kt.kernel_time_s(
            f, q, m, pk, bw, p, beta=FIT_BETA, units=u, items=it, rows=r, depth=d
        )

    return jax.vmap(one)(
        x["flops"], x["bytes"], x["m"], x["peak"], x["hbm"], x["units"], x["items"],
        x["rows"], x["depth"],
    )  # fmt: skip


MAX_KERNEL_FIELDS = KERNEL_FIELDS[:5]
"""Constants of the max form (:func:`costmodel.kernel_mode.main_kernel_s`)."""
MAX_COLL_FIELDS = COLL_FIELDS[:4]
"""Constants of the one-regime collective law ``α(n) + Q_bus/β(n)`` of the kernel-level
mode (:func:`costmodel.kernel_mode.collective_time_s`)."""


def _kernel_params_max(theta):
    """Max-form constants from θ ``[5]`` (:data:`MAX_KERNEL_FIELDS`; no units, no items,
    ``p = ∞``)."""
    return _from_theta(kt.KernelParams, MAX_KERNEL_FIELDS, theta)


def _coll_params_max(theta):
    """One-regime collective constants from θ ``[4]`` (:data:`MAX_COLL_FIELDS`)."""
    return _from_theta(kt.CollectiveParams, MAX_COLL_FIELDS, theta)


def _kernel_pred_max(theta, x):
    """Max-form time of every point: ``max(t_floor, F/(P·η_c(m)), Q/(W·η_m(Q)))``, the
    main-kernel time of the kernel-level mode (one function for both)."""
    p = _kernel_params_max(theta)

    def one(f, q, m, pk, bw):
        return main_kernel_s(f, q, m, pk, bw, p, FIT_BETA)[0]

    return jax.vmap(one)(x["flops"], x["bytes"], x["m"], x["peak"], x["hbm"])


def _coll_pred_max(theta, x):
    p = _coll_params_max(theta)
    return jax.vmap(lambda q, n: kt.collective_time_s(q, n, p, beta=FIT_BETA))(x["bus"], x["ranks"])


FORMS = {
    # form: {kind: (prediction, θ → params, number of θ entries)}
    "pnorm": {
        "kernel": (None, None, len(KERNEL_FIELDS)),
        "collective": (None, None, len(COLL_FIELDS)),
    },
    "max": {
        "kernel": (_kernel_pred_max, _kernel_params_max, len(MAX_KERNEL_FIELDS)),
        "collective": (_coll_pred_max, _coll_params_max, len(MAX_COLL_FIELDS)),
    },
}
"""Functional forms the fitter knows: ``pnorm`` — Eq. (1) and (2) of
:mod:`costmodel.kernel_time` (``kernel_calibration.toml``); ``max`` — the kernel-level
mode's max form and one-regime collectives (``e2e_kernel_prior.toml``)."""


def _coll_pred(theta, x):
    p = _coll_params(theta)
    return jax.vmap(lambda q, n: kt.collective_time_s(q, n, p, beta=FIT_BETA))(x["bus"], x["ranks"])


LOSS_DELTA = 0.02
"""Scale of the pseudo-Huber loss on the relative error (2 %): quadratic below, absolute
above — the fit minimises a smooth MAPE."""


_ROW_THETA = KERNEL_FIELDS.index("t_row_s")


def _tied(theta, x):
    """θ with the per-row constant replaced by ``x["row_tie_log"]`` (log seconds) where
    ``x["row_tie"]`` is set (:func:`row_tie_reference`); θ unchanged for data without these
    fields (every group of the first pass, the max form)."""
    if "row_tie" not in x:
        return theta
    return theta.at[_ROW_THETA].set(
        jnp.where(x["row_tie"][0] > 0, x["row_tie_log"][0], theta[_ROW_THETA])
    )


def _loss(theta, x, pred):
    """Mean pseudo-Huber loss of the relative error ``e = t̂/t − 1``:
    ``δ²(√(1 + (e/δ)²) − 1)``, ``δ`` = :data:`LOSS_DELTA` (smooth; → δ·|e| for |e| ≫ δ,
    so the fit minimises the reported MAPE and one outlier pulls no harder than linearly).
    A tied per-row constant (:func:`_tied`) gets no gradient."""
    theta = _tied(theta, x)
    e = pred(theta, x) / x["t"] - 1.0
    h = LOSS_DELTA**2 * (jnp.sqrt(1.0 + (e / LOSS_DELTA) ** 2) - 1.0)
    return jnp.sum(x["w"] * h) / jnp.maximum(jnp.sum(x["w"]), 1.0)


def _adam(theta0, x, pred, iterations):
    """Adam on the log-time loss, fixed step count and schedule (deterministic); the
    gradient through the maxima is the smooth surrogate of :func:`costmodel.smooth.select`
    with ``beta = FIT_BETA`` (values stay exact), so non-winning terms still get a pull."""
    sched = optax.cosine_decay_schedule(0.1, iterations, alpha=0.01)
    opt = optax.adam(sched)
    vg = jax.value_and_grad(_loss)

    def step(c, _):
        theta, state, best, best_f = c
        f, g = vg(theta, x, pred)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        better = jnp.isfinite(f) & (f < best_f)
        best = jnp.where(better, theta, best)
        best_f = jnp.where(better, f, best_f)
        upd, state = opt.update(g, state, theta)
        return (theta + upd, state, best, best_f), None

    init = (theta0, opt.init(theta0), theta0, jnp.asarray(jnp.inf, theta0.dtype))
    (_, _, best, best_f), _ = jax.lax.scan(step, init, None, length=iterations)
    return best, best_f


@functools.partial(jax.jit, static_argnames=("kind", "iterations", "form"))
def _fit_batch(starts, x, kind: str, iterations: int = ITERATIONS, form: str = "pnorm"):
    """Fits of G groups × S starts at once: ``starts [G, S, P]``, data ``x [G, N]``; the best
    start per group, in functional form ``form`` (:data:`FORMS`)."""
    pred = _kernel_pred if kind == "kernel" else _coll_pred
    if form == "max":
        pred = FORMS[form][kind][0]
    per_start = jax.vmap(lambda th, xx: _adam(th, xx, pred, iterations), in_axes=(0, None))
    thetas, fs = jax.vmap(per_start)(starts, x)
    best = jnp.argmin(jnp.where(jnp.isfinite(fs), fs, jnp.inf), axis=1)
    theta = jnp.take_along_axis(thetas, best[:, None, None], axis=1)[:, 0]
    theta = jax.vmap(_tied)(theta, x)
    preds = jax.vmap(pred)(theta, x)
    return theta, preds


def _kernel_starts(g):
    t = g["t"]
    tmin = max(float(np.min(t)), 1e-7)
    u = float(np.median(g["units"]))
    it = float(np.max(g["items"]))
    ti = math.log(0.05 * tmin / it) if it > 0 else math.log(1e-12)
    rw = float(np.max(g.get("rows", np.zeros(1))))
    tr = math.log(0.05 * tmin / rw) if rw > 0 else math.log(1e-12)
    dm = float(np.median(g.get("depth", np.zeros(1))))
    td = math.log(0.3 * tmin / dm) if dm > 0 else math.log(1e-12)
    dm = max(dm, 1.0)
    base = [
        [math.log(0.8 * tmin), 0.5, math.log(16.0), 1.0, math.log(1e6), math.log(0.1 * u), ti,
         math.log(3.0)],
        [math.log(0.5 * tmin), 0.0, math.log(64.0), 2.0, math.log(1e5), math.log(0.01 * u),
         ti - 2.0, math.log(1.0)],
        [math.log(0.9 * tmin), 1.0, math.log(4.0), 0.5, math.log(1e7), math.log(0.5 * u),
         ti + 1.0, math.log(8.0)],
        [math.log(0.3 * tmin), -1.0, math.log(256.0), 0.0, math.log(1e4), math.log(u),
         ti - 4.0, math.log(0.3)],
        [math.log(0.7 * tmin), 2.0, math.log(1.0), 3.0, math.log(3e6), math.log(0.03 * u),
         ti + 2.0, math.log(20.0)],
        [math.log(0.1 * tmin), 0.0, math.log(32.0), 1.0, math.log(3e5), math.log(2.0 * u),
         ti, math.log(2.0)],
    ]  # fmt: skip
    serial = [  # t_row, t_depth, d_split
        [tr, td, math.log(dm)], [tr - 2.0, td - 1.1, math.log(4.0 * dm)],
        [tr + 1.0, td + 1.2, math.log(0.5 * dm)], [tr - 4.0, td - 3.4, math.log(dm)],
        [tr + 2.0, td, math.log(0.1 * dm)], [tr, td - 2.3, math.log(10.0 * dm)],
    ]  # fmt: skip
    return np.concatenate([np.array(base), np.array(serial)], 1)


def _coll_starts(g):
    t = g["t"]
    tmin = max(float(np.min(t)), 1e-7)
    lt = math.log(tmin)
    return np.array(
        [
            [lt + math.log(1.5), lt - 2.3, math.log(2e11), 0.0, lt - 0.36, lt - 2.3, -1.0],
            [lt + math.log(2.0), lt - 4.6, math.log(5e11), -2.0, lt - 0.1, lt - 4.6, 0.0],
            [lt + math.log(1.0), lt - 1.2, math.log(1e11), 1.0, lt - 0.7, lt - 1.2, -2.0],
        ]
    )


def _pad(groups, fields):
    n = max(len(g["t"]) for g in groups)
    out = {}
    for k in fields + ["t", "w"]:
        fill = 0.0 if k == "w" else 1.0
        out[k] = np.stack(
            [np.pad(g[k].astype(float), (0, n - len(g[k])), constant_values=fill) for g in groups]
        )
    return {k: jnp.asarray(v, jnp.float64) for k, v in out.items()}


def _mape(pred, t, mask):
    if not mask.any():
        return float("nan")
    return float(np.mean(np.abs(pred[mask] / t[mask] - 1.0)) * 100.0)


def kernel_groups(tables, dispatch: bool = False) -> list[dict]:
    """One dict per hardware × framework × class × precision × variant with the fitting
    arrays; ``dispatch``: the p-norm form's shape-keyed kernel variants and counts
    (:func:`pnorm_dispatch`; the max form of the end-to-end prior keeps the table's)."""
    groups = []
    for name in ("gemm", "attention", "mla", "mla_bmm", "moe"):
        if name not in tables:
            continue
        tab = tables[name]
        w = work(tab)
        c = tab.columns
        variant = c["kernel_source"].astype(str)
        if dispatch:
            variant = pnorm_dispatch(name, c, w)
        cols = (c["system"], c["framework"], c["framework_version"], w["precision"],
                variant)  # fmt: skip
        keys = np.array(["|".join(str(x) for x in r) for r in zip(*cols, strict=True)])
        dec = decode_mask(name, c)
        for key in sorted(set(keys)):
            sel = keys == key
            system, fw, ver, prec, variant = key.split("|")
            hw = hardware(system)
            t = c["latency_s"][sel]
            peak = np.array([hw["peak"][int(b)] for b in w["bits"][sel]])
            if prec == "sq":
                peak = np.full(sel.sum(), INT8_PEAK_FLOPS_PER_S.get(system, hw["peak"][8]))
            hold = holdout_mask(w["shape"][sel])
            sol_f = w.get("sol_flops", w["flops"])[sel]
            sol, sol_hbm = kernel_sol(system, sol_f, w["bytes"][sel], peak)
            groups.append(dict(
                kind="kernel", cls=name, system=system, framework=fw, framework_version=ver,
                precision=prec, variant=variant, decode=dec[sel], t=t, flops=w["flops"][sel],
                bytes=w["bytes"][sel], m=w["m"][sel],
                units=w["units"][sel], items=w["items"][sel], rows=w["rows"][sel],
                depth=w["depth"][sel], weight_bytes=w["weight_bytes"][sel],
                peak=peak, hbm=np.full(sel.sum(), hw["hbm"]), hold=hold, sol=sol,
                sol_hbm=sol_hbm, w=(~hold).astype(float),
            ))  # fmt: skip
    return groups


def kernel_sol(system: str, flops, q_bytes, peak):
    """``(SOL, HBM roofline)`` seconds per point: the roofline ``max(F/P, Q/W)`` on the
    bandwidth the bytes come from — HBM, or L2 (:data:`L2_BW_BYTES_PER_S`) where the whole
    working set fits in :data:`L2_BYTES` — and the plain HBM roofline."""
    hbm = hardware(system)["hbm"]
    sol_hbm = np.maximum(flops / peak, q_bytes / hbm)
    l2 = L2_BYTES.get(system, 0.0)
    bw = np.where(q_bytes <= l2, max(hbm, L2_BW_BYTES_PER_S.get(system, hbm)), hbm)
    return np.maximum(flops / peak, q_bytes / bw), sol_hbm


def collective_groups(tables) -> list[dict]:
    if "comm" not in tables:
        return []
    tab = tables["comm"]
    c = tab.columns
    cols = ("system", "framework", "framework_version", "implementation", "op", "dtype")
    keys = np.array(["|".join(r) for r in zip(*(c[k] for k in cols), strict=True)])
    groups = []
    for key in sorted(set(keys)):
        sel = keys == key
        system, fw, ver, impl, op, dt = key.split("|")
        hw = hardware(system)
        n = c["ranks"][sel].astype(float)
        msg = c["message_bytes"][sel].astype(float)
        bus = np.array(kt.bus_bytes(op, msg, n))
        sol_bytes = all_reduce_sol_bytes(system, msg, n) if op == "all_reduce" else bus
        shape = np.stack([c["ranks"][sel], c["message_elems"][sel]], 1)
        hold = holdout_mask(shape)
        groups.append(dict(
            kind="collective", cls=f"comm:{op}", system=system, framework=fw,
            framework_version=ver, precision=dt, implementation=impl, t=c["latency_s"][sel],
            decode=np.ones(sel.sum(), bool),
            bus=bus, ranks=n, hold=hold, w=(~hold).astype(float), sol=sol_bytes / hw["link"],
        ))  # fmt: skip
    return groups


def fit_groups(groups: list[dict], iterations: int = ITERATIONS, form: str = "pnorm") -> list[dict]:
    """Fit every group (batched per kind) in functional form ``form`` (:data:`FORMS`); adds
    ``theta``, ``params``, ``pred``, MAPEs and SOL violations to each group dict, returns
    the list."""
    with jax.enable_x64(True):
        for kind in ("kernel", "collective"):
            gs = [g for g in groups if g["kind"] == kind]
            if not gs:
                continue
            for g in gs:
                if kind == "kernel":  # groups built without the serial-loop inputs: none
                    g.setdefault("rows", np.zeros(len(g["t"])))
                    g.setdefault("depth", np.zeros(len(g["t"])))
            fields = (
                ["flops", "bytes", "m", "peak", "hbm", "units", "items", "rows", "depth"]
                if kind == "kernel"
                else ["bus", "ranks"]
            )
            x = _pad(gs, fields)
            st = _kernel_starts if kind == "kernel" else _coll_starts
            n_theta = FORMS[form][kind][2]
            starts = jnp.asarray(np.stack([st(g)[:, :n_theta] for g in gs]), jnp.float64)
            theta, preds = _fit_batch(starts, x, kind, iterations, form)
            theta, preds = np.asarray(theta), np.asarray(preds)
            if kind == "kernel" and form == "pnorm":
                theta, preds = _refit_row_tied(gs, fields, theta, preds, iterations)
            to_p = _kernel_params if kind == "kernel" else _coll_params
            fields = None
            if form == "max":
                to_p = FORMS[form][kind][1]
                fields = MAX_KERNEL_FIELDS if kind == "kernel" else MAX_COLL_FIELDS
            for i, g in enumerate(gs):
                g["theta"] = theta[i]
                p = to_p(jnp.asarray(theta[i]))
                g["params"] = {k: float(v) for k, v in vars(p).items()}
                if fields is not None:
                    g["params"] = {k: g["params"][k] for k in fields}
                elif kind == "kernel":  # terms without inputs in this class are absent
                    if not np.any(g["items"] > 0):
                        g["params"]["t_item_s"] = 0.0
                    if not np.any(g["rows"] > 0):
                        g["params"]["t_row_s"] = 0.0
                    if not np.any(g["depth"] > 0):
                        g["params"]["t_depth_s"] = 0.0
                g["pred"] = preds[i, : len(g["t"])]
    for g in groups:
        g["mape_in"] = _mape(g["pred"], g["t"], ~g["hold"])
        g["mape_holdout"] = _mape(g["pred"], g["t"], g["hold"])
        g["mape_holdout_decode"] = _mape(g["pred"], g["t"], g["hold"] & g["decode"])
        viol = g["t"] < g["sol"]
        g["sol_violations"] = int(viol.sum())
        below_hbm = g["t"] < g.get("sol_hbm", g["sol"])
        g["sol_violations_l2"] = int((below_hbm & ~viol).sum())  # explained by L2 residency
        g["sol_worst_ratio"] = float(np.min(g["t"] / g["sol"]))
    return groups


ROW_TIE_CLASSES = ("moe",)
"""Classes whose per-row constant is tied to the hardware in under-determined groups
(:func:`row_tie_reference`)."""


def row_tie_reference(groups, theta) -> dict[int, float]:
    """Per-row constant (seconds) of each under-determined group of
    :data:`ROW_TIE_CLASSES`, index → value: a group with no more fitting points than the
    p-norm form has constants (:data:`KERNEL_FIELDS`, 11) cannot separate them; for MoE the
    per-active-expert term ``R·t_row`` (``R = e``) and the memory term both grow with the
    experts read, so the 9–11 points of vLLM's FlashInfer-CUTLASS groups put the weight
    stream into ``t_row`` (B200 / GB200 NVFP4: 8.3 µs per expert, 10–100× the other groups',
    with ``η_m`` 0.79; a tensor-parallel point with a quarter of each expert's bytes then
    takes 3× its time). Such a group's ``t_row`` is the median of the fitted ``t_row`` of the
    same hardware × framework × class groups with more points (all frameworks of the
    hardware where the framework has none): the per-expert set-up — scales, descriptors,
    one expert's tile scheduling in a grouped GEMM — is a property of the chip's launch and
    memory latency more than of one kernel's shapes. ``theta`` ``[G, P]`` the first fit."""
    need = len(KERNEL_FIELDS)
    fit_pts = [int(np.sum(~g["hold"])) for g in groups]
    rows = [bool(np.any(g["rows"] > 0)) for g in groups]
    ok = [i for i, g in enumerate(groups) if fit_pts[i] > need and rows[i]]
    out = {}
    for i, g in enumerate(groups):
        if g["cls"] not in ROW_TIE_CLASSES or fit_pts[i] > need or not rows[i]:
            continue
        same = [
            j for j in ok if groups[j]["cls"] == g["cls"] and groups[j]["system"] == g["system"]
        ]
        mine = [j for j in same if groups[j]["framework"] == g["framework"]]
        ref = mine or same
        if ref:
            out[i] = float(np.median([np.exp(theta[j][_ROW_THETA]) for j in ref]))
    return out


def _refit_row_tied(gs, fields, theta, preds, iterations):
    """Second pass of the p-norm kernel fit: the groups of :func:`row_tie_reference` refitted
    with their per-row constant held at the reference; other groups keep the first fit."""
    ties = row_tie_reference(gs, theta)
    if not ties:
        return theta, preds
    idx = sorted(ties)
    sub = []
    for i in idx:
        h = dict(gs[i])
        h["row_tie"] = np.ones(len(h["t"]))
        h["row_tie_log"] = np.full(len(h["t"]), math.log(ties[i]))
        sub.append(h)
    x = _pad(sub, fields + ["row_tie", "row_tie_log"])
    starts = np.stack([_kernel_starts(g) for g in sub])
    t2, p2 = _fit_batch(jnp.asarray(starts, jnp.float64), x, "kernel", iterations, "pnorm")
    theta, preds = theta.copy(), preds.copy()
    for k, i in enumerate(idx):
        theta[i] = np.asarray(t2[k])
        preds[i, : len(gs[i]["t"])] = np.asarray(p2[k])[: len(gs[i]["t"])]
    return theta, preds


PRIOR_CLASSES = ("gemm", "attention", "mla", "moe")
"""Kernel classes the end-to-end prior reads (:mod:`hardware_db.e2e_calibration`)."""

PRIOR_REGENERATE = "python -m search.fidelity.kernel_fit --form max --decode-only --write-prior"
MIN_DECODE_POINTS = 5
"""A group needs this many decode-shape points for a decode-only fit."""


def decode_only(groups) -> list[dict]:
    """Each group restricted to its decode-shape points (:data:`DECODE_MAX_ROWS`; the
    held-out flags kept: every fifth distinct shape of the whole group), groups with fewer
    than :data:`MIN_DECODE_POINTS` such points dropped."""
    out = []
    for g in groups:
        sel = np.asarray(g["decode"], bool)
        if sel.sum() < MIN_DECODE_POINTS:
            continue
        h = {k: (v[sel] if isinstance(v, np.ndarray) and len(v) == len(sel) else v)
             for k, v in g.items()}  # fmt: skip
        out.append(h)
    return out


def decode_variants(groups) -> list[dict]:
    """One kernel variant per hardware × framework × class × precision: the one with the
    most decode-shape points (ties: the name), i.e. the kernel the stack's dispatcher picked
    at most decode shapes in the benchmark (e.g. vLLM's DeepGEMM over the CUTLASS FP8
    block-scaled GEMM, SGLang's FA3 on Hopper and trtllm-MHA on Blackwell, the monolithic
    FlashInfer TRT-LLM MoE on Blackwell vLLM). Only the classes of :data:`PRIOR_CLASSES`;
    collectives pass unchanged."""
    best: dict = {}
    for g in groups:
        if g["kind"] != "kernel":
            continue
        key = (g["system"], g["framework"], g["cls"], g["precision"])
        score = (int(np.sum(g["decode"])), len(g["t"]), g["variant"])
        if g["cls"] in PRIOR_CLASSES and (key not in best or score > best[key][0]):
            best[key] = (score, g)
    chosen = {id(v[1]) for v in best.values()}
    return [g for g in groups if g["kind"] == "collective" or id(g) in chosen]


def group_name(g) -> str:
    """``system/framework[/implementation]/class/precision[/variant]``."""
    impl = f"/{g['implementation']}" if g["kind"] == "collective" else ""
    var = f"/{g['variant']}" if g.get("variant") else ""
    return f"{g['system']}/{g['framework']}{impl}/{g['cls']}/{g['precision']}{var}"


def _class_of(g) -> str:
    """Summary class: collectives together, attention and MLA core together."""
    if g["kind"] == "collective":
        return "comm"
    return {"attention": "attention_mla", "mla": "attention_mla"}.get(g["cls"], g["cls"])


def _pooled(groups, decode: bool) -> float:
    """MAPE (percent) over every held-out point of ``groups`` (decode shapes only when
    ``decode``): the point-weighted figure of the class."""
    err = [np.abs(g["pred"] / g["t"] - 1.0)[g["hold"] & (g["decode"] if decode else True)]
           for g in groups]  # fmt: skip
    err = np.concatenate(err) if err else np.zeros(0)
    return round(float(np.mean(err) * 100.0), 2) if len(err) else float("nan")


def held_out_summary(groups) -> dict:
    """Held-out MAPE (percent) per hardware × class: pooled over all held-out points of the
    class (``pooled_pct``) and over those at decode shapes (``decode_pct``,
    :data:`DECODE_MAX_ROWS`), the median, min and max over its groups (frameworks ×
    precisions × variants (× ops)), the number of groups and the SOL violations."""
    out: dict = {}
    for key in sorted({(g["system"], _class_of(g)) for g in groups}):
        gs = [g for g in groups if (g["system"], _class_of(g)) == key]
        v = [g["mape_holdout"] for g in gs if math.isfinite(g["mape_holdout"])]
        out.setdefault(key[0], {})[key[1]] = {
            "pooled_pct": _pooled(gs, False),
            "decode_pct": _pooled(gs, True),
            "median_pct": round(float(np.median(v)), 2),
            "min_pct": round(float(np.min(v)), 2),
            "max_pct": round(float(np.max(v)), 2),
            "groups": len(v),
            "sol_violations": int(sum(g["sol_violations"] for g in gs)),
        }
    return out


def report(groups) -> dict:
    rows = []
    for g in groups:
        rows.append({
            "group": group_name(g), "kind": g["kind"], "class": g["cls"], "system": g["system"],
            "framework": g["framework"], "framework_version": g["framework_version"],
            "precision": g["precision"], "variant": g.get("variant", ""),
            "n_points": int(len(g["t"])), "n_holdout": int(g["hold"].sum()),
            "n_holdout_decode": int((g["hold"] & g["decode"]).sum()),
            "mape_in_pct": round(g["mape_in"], 3),
            "mape_holdout_pct": round(g["mape_holdout"], 3),
            "mape_holdout_decode_pct": round(g["mape_holdout_decode"], 3),
            "sol_violations": g["sol_violations"],
            "sol_violations_l2": g["sol_violations_l2"],
            "min_measured_over_sol": round(g["sol_worst_ratio"], 4),
        })  # fmt: skip
    return {
        "held_out_mape": held_out_summary(groups),
        "groups": rows,
        "sol_violations_total": int(sum(g["sol_violations"] for g in groups)),
        "sol_violations_l2_total": int(sum(g["sol_violations_l2"] for g in groups)),
        "points_total": int(sum(len(g["t"]) for g in groups)),
    }


def _toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "nan"
    return repr(float(v)) if isinstance(v, float) else str(v)


PRIOR_HEADER = (
    "# Kernel-table prior of the end-to-end fit (hardware_db/e2e_calibration.py KERNEL_TOML):",
    "# the max form of costmodel.kernel_mode, max(t_floor, F/(P·η_c(m)), Q/(W·η_m(Q))), and",
    "# one-regime collectives α(n) + Q_bus/β(n), fitted by search.fidelity.kernel_fit with its",
    "# FLOP/byte counts (variants, MoE routing, FP8 attention peak) to the decode-shape points",
    "# only (m, batch, tokens ≤ 256), one kernel variant per hardware × framework × class ×",
    "# precision (the one with the most decode points). MAPE over decode points; holdout =",
    "# every fifth distinct shape. Generated by the command in [source].regenerate; do not edit.",
)


def to_toml(groups, date: str, prior: bool = False) -> str:
    """TOML of fitted groups: ``kernel_calibration.toml`` or, ``prior``, the end-to-end
    prior ``e2e_kernel_prior.toml`` (:data:`PRIOR_HEADER`)."""
    lines = [
        "# Kernel-level calibration of costmodel.kernel_time (search.fidelity.kernel_fit).",
        "# One [[kernel]] per hardware × framework × kernel class × precision, one [[collective]]",
        "# per hardware × framework × implementation × op × dtype. MAPE in percent; holdout =",
        "# every fifth distinct shape of the group. Generated file: do not edit by hand.",
    ]
    source = dict(SOURCE, date=date)
    if prior:
        lines = list(PRIOR_HEADER)
        source["regenerate"] = PRIOR_REGENERATE
    lines += ["", "[source]"]
    for k, v in source.items():
        lines.append(f"{k} = {_toml_value(v)}")
    for g in groups:
        lines += ["", f"[[{g['kind']}]]"]
        meta = {
            "name": group_name(g), "class": g["cls"], "system": g["system"],
            "db_system": hardware(g["system"])["db_system"], "framework": g["framework"],
            "framework_version": g["framework_version"], "precision": g["precision"],
        }  # fmt: skip
        if g["kind"] == "collective":
            meta["implementation"] = g["implementation"]
        else:
            meta["variant"] = g["variant"]
        for k, v in meta.items():
            lines.append(f"{k} = {_toml_value(v)}")
        for k, v in g["params"].items():
            lines.append(f"{k} = {_toml_value(float(v))}")
        stats = {
            "n_points": int(len(g["t"])), "n_holdout": int(g["hold"].sum()),
            "n_holdout_decode": int((g["hold"] & g["decode"]).sum()),
            "mape_in_pct": round(g["mape_in"], 3), "mape_holdout_pct": round(g["mape_holdout"], 3),
            "mape_holdout_decode_pct": round(g["mape_holdout_decode"], 3),
            "sol_violations": g["sol_violations"], "sol_violations_l2": g["sol_violations_l2"],
        }  # fmt: skip
        for k, v in stats.items():
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def run(
    tables=None,
    iterations: int = ITERATIONS,
    systems=None,
    form: str = "pnorm",
    decode: bool = False,
    variants: bool = False,
    only=None,
) -> list[dict]:
    """Fit every group of ``tables`` (default: the packaged tables), restricted to the
    aiconfigurator ``systems`` and to the tables ``only`` (:data:`TABLES`) when given, in
    functional form ``form`` (:data:`FORMS`); ``decode``: decode-shape points only
    (:func:`decode_only`); ``variants``: one variant per stack and class
    (:func:`decode_variants`)."""
    tables = load_all() if tables is None else tables
    if only:
        tables = {k: t for k, t in tables.items() if k in set(only)}
    if systems:
        tables = {k: t.select(np.isin(t["system"], list(systems))) for k, t in tables.items()}
    groups = kernel_groups(tables, dispatch=form == "pnorm") + collective_groups(tables)
    if variants:
        groups = decode_variants(groups)
    if decode:
        groups = decode_only(groups)
    return fit_groups(groups, iterations, form)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m search.fidelity.kernel_fit", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--write", action="store_true", help=f"write {CALIBRATION_TOML.name}")
    ap.add_argument(
        "--systems", default="", help="comma-separated aiconfigurator systems to fit (exploration)"
    )
    ap.add_argument(
        "--form", choices=tuple(FORMS), default="pnorm",
        help="pnorm: costmodel.kernel_time (kernel_calibration.toml); max: the kernel-level "
        "mode's max form and one-regime collectives (the end-to-end prior)",
    )  # fmt: skip
    ap.add_argument(
        "--decode-only", action="store_true",
        help=f"fit decode-shape points only (m, batch, tokens <= {DECODE_MAX_ROWS})",
    )  # fmt: skip
    ap.add_argument(
        "--write-prior", action="store_true",
        help=f"write {PRIOR_TOML.name} (needs --form max --decode-only; one variant per stack)",
    )  # fmt: skip
    ap.add_argument(
        "--only", default="",
        help=f"comma-separated tables to fit (exploration): {', '.join(TABLES)}",
    )  # fmt: skip
    args = ap.parse_args(argv)
    systems = [x for x in args.systems.split(",") if x]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        ap.error(f"--systems: unknown {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    only = [x for x in args.only.split(",") if x]
    unknown = sorted(set(only) - set(TABLES))
    if unknown:
        ap.error(f"--only: unknown {', '.join(unknown)}; known: {', '.join(TABLES)}")
    if (systems or only) and (args.write or args.write_prior):
        ap.error("--write, --write-prior: refit every system and table; drop --systems / --only")
    if args.write and (args.form != "pnorm" or args.decode_only):
        ap.error("--write: kernel_calibration.toml is the p-norm fit of every shape; drop "
                 "--form max / --decode-only or use --write-prior")  # fmt: skip
    if args.write_prior and (args.form != "max" or not args.decode_only):
        ap.error("--write-prior: needs --form max --decode-only")
    groups = run(
        systems=systems, form=args.form, decode=args.decode_only, variants=args.write_prior,
        only=only,
    )  # fmt: skip
    if args.write_prior:
        PRIOR_TOML.write_text(
            to_toml(groups, datetime.date.today().isoformat(), prior=True), encoding="utf-8"
        )
        print(f"wrote {PRIOR_TOML}", file=sys.stderr)
    if args.write:
        CALIBRATION_TOML.write_text(
            to_toml(groups, datetime.date.today().isoformat()), encoding="utf-8"
        )
        print(f"wrote {CALIBRATION_TOML}", file=sys.stderr)
    json.dump(report(groups), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
