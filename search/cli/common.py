"""Flags shared by the commands that evaluate or search a scenario."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import hardware_db as db

if TYPE_CHECKING:  # imported where used: they import JAX, --help must not
    from search.scenario import Scenario


def add_scenario_args(p: argparse.ArgumentParser, batch_default="1") -> None:
    """--model/--system/--precision/--chips, workload and mode flags."""
    g = p.add_argument_group("scenario")
    g.add_argument(
        "--model",
        default=db.DEFAULT_MODEL,
        help="model name, alias, HF id or config.json path (default %(default)s)",
    )
    g.add_argument("--system", default=db.DEFAULT_SYSTEM, help="system name (default %(default)s)")
    g.add_argument(
        "--precision", default=None, help="precision recipe (default: the model's native recipe)"
    )
    g.add_argument(
        "--chips", default=None, help="chips in the system (for systems with a free chip count)"
    )
    g.add_argument(
        "--batch", default=batch_default, help="concurrent sequences (default %(default)s)"
    )
    g.add_argument("--context", default="8192", help="KV length in tokens (default %(default)s)")
    g.add_argument("--mtp", default="0", help="MTP / speculative depth (default 0)")
    g.add_argument("--acceptance", default="0.0", help="per-position draft acceptance in [0, 1]")
    g.add_argument(
        "--overlap", default="0.0", help="fraction of hideable communication overlapped, [0, 1]"
    )
    g.add_argument("--imbalance", default="1.0", help="MoE load-imbalance factor ≥ 1")
    g.add_argument(
        "--mode",
        default="sol",
        choices=("sol", "calibrated"),
        help="speed of light or calibrated efficiencies",
    )
    g.add_argument(
        "--software", default=None, help="software family for --mode calibrated (e.g. trtllm, vllm)"
    )
    g.add_argument(
        "--latency-scale",
        default="1.0",
        help="multiply every per-hop latency and per-step overhead",
    )


def add_degree_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("parallel split (missing degrees take a sensible default)")
    g.add_argument("--tp", default=None, help="attention tensor parallelism")
    g.add_argument("--ep", default=None, help="expert parallelism")
    g.add_argument("--pp", default=None, help="pipeline parallelism")
    g.add_argument("--attn-dp", default=None, help="attention data parallelism")
    g.add_argument("--kvp", default=None, help="KV (Helix) parallelism")
    g.add_argument("--moe-tp", default=None, help="tensor parallelism inside each expert")


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def scenario_from_args(a) -> Scenario:
    from search.scenario import scenario

    return scenario(
        model=a.model,
        system=a.system,
        precision=a.precision,
        chips=a.chips,
        batch=a.batch,
        context=a.context,
        mtp=a.mtp,
        acceptance=a.acceptance,
        overlap=a.overlap,
        imbalance=a.imbalance,
        mode=a.mode,
        software=a.software,
        latency_scale=a.latency_scale,
    )


def parallelism_from_args(sc: Scenario, a):
    from search.defaults import check_degrees, check_split, complete_parallelism

    d = check_degrees(tp=a.tp, ep=a.ep, pp=a.pp, attn_dp=a.attn_dp, kvp=a.kvp, moe_tp=a.moe_tp)
    par = complete_parallelism(sc, **d)
    if any(v is not None for v in d.values()):  # a split the user asked for must be valid
        check_split(sc, par)
    return par


def scenario_dict(sc: Scenario) -> dict:
    return {
        "model": sc.model_name,
        "system": sc.system_name,
        "precision": sc.precision_name,
        "mode": sc.mode_name,
        "batch": float(sc.workload.batch),
        "context_tokens": float(sc.workload.context_tokens),
        "mtp_depth": float(sc.workload.mtp_depth),
        "acceptance_rate": float(sc.workload.acceptance_rate),
        "max_chips": float(sc.system.max_chips),
    }
