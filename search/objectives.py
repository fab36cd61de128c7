"""What a search maximises: the objectives, their scores and their one check.

Every search (grid, gradient, the main job's exhaustive scan) names its objective from
:data:`OBJECTIVES`; the score of a :class:`~costmodel.decode.DecodeResult` is
:func:`score_of` (maximised: ``tpot`` and ``energy`` are negated).

>>> check_objective("utps")
'utps'
>>> check_objective("speed")
Traceback (most recent call last):
...
search.errors.UserError: objective 'speed': allowed utps, system_tps, tps_per_chip, tpot, energy
"""

from __future__ import annotations

from search.errors import UserError

OBJECTIVES = {
    "utps": "tokens/s per user",
    "system_tps": "system tokens/s",
    "tps_per_chip": "tokens/s per chip",
    "tpot": "time per output token (lower is better)",
    "energy": "energy per token (lower is better)",
}
"""Objectives and what they mean (maximised score; ``tpot`` and ``energy`` are negated)."""

RATE_OBJECTIVES = ("utps", "system_tps", "tps_per_chip")
"""The objectives that are fields of :class:`~costmodel.decode.DecodeResult` to maximise
as they are (the gradient search and the main job's scan support these)."""


def check_objective(objective: str, allowed=tuple(OBJECTIVES)) -> str:
    """``objective`` if it is one of ``allowed``; else a one-line :class:`UserError`."""
    if objective not in allowed:
        raise UserError(f"objective {objective!r}: allowed {', '.join(allowed)}", arg="objective")
    return objective


def score_of(r, objective: str):
    """The maximised score of a :class:`~costmodel.decode.DecodeResult`."""
    if objective in RATE_OBJECTIVES:
        return getattr(r, objective)
    if objective == "tpot":
        return -r.tpot_s
    if objective == "energy":
        return -r.energy_j_per_token
    raise ValueError(f"unknown objective {objective!r}")
