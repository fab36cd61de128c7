r"""KV-cache capacity of an offline batch: how many of its requests run at once, and in
how many waves the batch is served.

An offline batch of ``c`` requests of ``isl`` prompt and ``osl`` output tokens needs, per
chip, ``c · kv_seq`` bytes of KV cache at its end (``kv_seq``: the KV bytes of one
sequence of ``isl + osl`` tokens, :func:`costmodel.decode.kv_bytes_per_chip` at batch 1).
A serving stack gives the KV cache what is left of the usable HBM after the weights and a
runtime reserve::

    budget      = u · HBM − W_chip − R                      (bytes per chip)
    concurrent  = clip(floor(budget / kv_seq), 1, c)        (sequences at once)
    waves       = ceil(c / concurrent)
    wave batch  = ceil(c / waves)                           (sequences per wave)

* ``u``: vLLM's ``gpu_memory_utilization`` (default 0.9; ``vllm/engine/arg_utils.py``
  ``EngineArgs``): the KV pool is ``u·HBM`` minus the peak memory of the profiling pass
  (weights, activations, non-torch allocations) — ``vllm/worker/worker.py``
  ``determine_num_available_blocks``. TensorRT-LLM sizes its pool as a fraction (0.9 by
  default, ``KvCacheConfig.free_gpu_memory_fraction``) of the memory left after the engine;
  DeepSpeed-FastGen (MII) likewise from the memory left after weights. ``u·HBM − W − R``
  is the vLLM rule; the others differ by a few percent of HBM, inside ``R``.
* ``R``: the runtime reserve (CUDA/HIP context, NCCL buffers, the activation peak of the
  profiling forward pass, CUDA-graph pools). Unpublished per stack: ``R = 0`` gives the
  fewest waves the memory allows; the leave-one-family-out fit
  (:mod:`search.fidelity.extra_set`) chooses it on a grid.
* Requests beyond the capacity wait: vLLM's scheduler admits a waiting request only when
  its blocks fit (``vllm/core/scheduler.py`` ``_schedule_prefills``, ``can_allocate``)
  and preempts the newest running ones when decode blocks run out
  (``_preempt``, recompute by default); TensorRT-LLM's ``GUARANTEED_NO_EVICT`` policy
  admits a request only when its whole ``isl + osl`` fits. Either way the batch is served
  as waves of about ``concurrent`` sequences, each decoding its ``osl`` tokens, so the
  measured end-to-end latency ÷ ``osl`` is ``waves × t_step(wave batch)`` plus the prefill
  (Kwon et al. 2023, *PagedAttention*, arXiv:2309.06180, §4.5 scheduling and preemption).

All functions are pure NumPy (broadcasting), SI units.
"""

from __future__ import annotations

import numpy as np

HBM_USABLE = 0.9
"""Share ``u`` of HBM a serving stack gives to weights, activations and KV cache (vLLM's
default ``gpu_memory_utilization``)."""


def kv_budget_bytes(hbm_bytes, weight_bytes, reserve_bytes=0.0, usable=HBM_USABLE):
    """KV-cache bytes per chip: ``u · HBM − W_chip − R`` (may be ≤ 0: nothing fits)."""
    return usable * np.asarray(hbm_bytes, float) - np.asarray(weight_bytes, float) - reserve_bytes


def concurrent_sequences(batch, budget_bytes, kv_seq_bytes):
    """Sequences that fit at once: ``clip(floor(budget / kv_seq), 1, batch)`` (at least one:
    a stack that cannot hold one sequence fails to start, it does not run zero)."""
    fit = np.floor(np.maximum(np.asarray(budget_bytes, float), 0.0) / np.asarray(kv_seq_bytes))
    return np.clip(fit, 1.0, np.asarray(batch, float))


def waves(batch, concurrent):
    """Waves serving ``batch`` requests ``concurrent`` at a time: ``ceil(batch / concurrent)``."""
    return np.ceil(np.asarray(batch, float) / np.asarray(concurrent, float))


def wave_batch(batch, n_waves):
    """Sequences per wave when ``batch`` requests run in ``n_waves`` balanced waves:
    ``ceil(batch / n_waves)``."""
    return np.ceil(np.asarray(batch, float) / np.asarray(n_waves, float))


def batch_waves(batch, hbm_bytes, weight_bytes, kv_seq_bytes, reserve_bytes=0.0,
                usable=HBM_USABLE):  # fmt: skip
    """``(waves, wave batch)`` of an offline batch (module doc), broadcasting."""
    budget = kv_budget_bytes(hbm_bytes, weight_bytes, reserve_bytes, usable)
    n = waves(batch, concurrent_sequences(batch, budget, kv_seq_bytes))
    return n, wave_batch(batch, n)
