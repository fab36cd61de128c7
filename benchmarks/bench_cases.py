"""Benchmark ``tpsopt eval --cases`` on a generated file (prints one JSON line).

    python benchmarks/bench_cases.py [--rows 10000]

The file mixes models (dense, MoE, MLA), systems (switch and fully connected tiers,
multi-node), batch and context sweeps, given and missing parallel degrees (completed
by the default rule, pipeline depth chosen for all rows at once), SOL and calibrated
mode, and 1 % bad rows. Timed: the whole command (read, validate, complete, evaluate,
write), cold (first call in the process: includes compilation) and warm.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

MODELS = [
    ("llama-3.1-70b", ""),
    ("llama-3.1-8b", ""),
    ("deepseek-r1", "nvfp4-moe"),
    ("kimi-k2.5", ""),
    ("qwen3-235b-a22b", ""),
    ("llama-2-70b", ""),
]
SYSTEMS = ["hgx-h100-8", "hgx-b200-8", "gb200-nvl72", "mi300x-8", "hgx-a100-8"]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        model, prec = rng.choice(MODELS)
        r = {
            "id": f"r{i}",
            "model": model,
            "system": rng.choice(SYSTEMS),
            "precision": prec,
            "batch": rng.choice([1, 2, 4, 8, 16, 32, 64]),
            "context": rng.choice([1024, 4096, 8192, 32768, 131072]),
            "tp": rng.choice(["", "", "4", "8"]),
            "ep": "",
            "pp": "",
            "mtp": rng.choice([0, 0, 1, 3]),
            "acceptance": 0.7,
            "software": rng.choice(["", "trtllm", "vllm", "sglang"]),
            "mode": rng.choice(["sol", "calibrated"]),
        }
        if i % 100 == 99:
            r["batch"] = -1  # a bad row
        rows.append(r)
    return rows


def main(argv=None) -> None:
    from search.cli.cases import run_cases

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "cases.csv", Path(d) / "out.csv"
        rows = make_rows(a.rows)
        with open(src, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        args = SimpleNamespace(cases=str(src), out=str(out))
        times = []
        for _ in range(2):
            t = time.perf_counter()
            run_cases(args)
            times.append(time.perf_counter() - t)
        with open(out) as f:
            res = list(csv.DictReader(f))
    errors = sum(r["reason"].startswith("error:") for r in res)
    print(
        json.dumps(
            {
                "benchmark": "eval_cases",
                "rows": a.rows,
                "cold_s": round(times[0], 3),
                "warm_s": round(times[1], 3),
                "rows_per_s_warm": round(a.rows / times[1]),
                "error_rows": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
