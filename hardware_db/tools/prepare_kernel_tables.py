r"""Prepare ``hardware_db/data/kernels/*.csv`` from aiconfigurator's kernel microbenchmarks.

A data-preparation script, not a runtime dependency (needs ``pyarrow`` and ``pandas``: the
``kernels`` extra). It downloads the PyPI wheel ``aiconfigurator-core==0.12.0``
(Apache-2.0) with ``pip download --no-deps``, opens it as a zip and reads **only** the
microbenchmark tables ``aiconfigurator_core/systems/data/<system>/<op>/<framework>/
<version>/<table>.parquet`` listed in :data:`TABLES`, for the systems in :data:`SYSTEMS`.
For each (system, op, framework) the newest version holding the table is used.

The wheel also holds ``aiconfigurator_core/systems/silicon_sample.csv``, an end-to-end
sample reserved for independent testing of this project: it is skipped by path
(:data:`RESERVED`) and never opened.

Only decode-relevant shapes are kept (few tokens: GEMM ``m ≤ 512``, generation attention
and MLA with ``batch ≤ 512``, MLA BMMs and MoE with ``≤ 512`` tokens, MoE with balanced
routing, full attention only), duplicates of a shape are collapsed to their median, and
each (system, framework, dtype) group is capped by a deterministic subsample (the shapes
with the smallest SHA-256 of their key), so the committed CSVs stay small.

Latencies in the source tables are milliseconds; the CSVs hold **seconds** (``latency_s``).
Collective message sizes in the source are element counts; the CSVs hold both
``message_elems`` and ``message_bytes`` (elements × dtype width).

Usage::

    pip install -e '.[kernels]'
    python -m hardware_db.tools.prepare_kernel_tables            # download + write CSVs
    python -m hardware_db.tools.prepare_kernel_tables --wheel W  # use a downloaded wheel
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aiconfigurator-core"
VERSION = "0.12.0"
LICENCE = "Apache-2.0"
IN_WHEEL = "aiconfigurator_core/systems/data"
RESERVED = "aiconfigurator_core/systems/silicon_sample.csv"
"""Reserved for independent testing: never opened, listed or parsed by this script."""

SYSTEMS = ("h100_sxm", "h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300", "a100_sxm")
FRAMEWORKS = ("trtllm", "vllm", "sglang", "nccl")
TABLES = {
    # op dir: table file names (generation / decode tables only)
    "gemm": ("gemm_perf.parquet",),
    "attention": ("generation_attention_perf.parquet",),
    "mla": ("generation_mla_perf.parquet",),
    "mla_bmm": ("mla_bmm_perf.parquet",),
    "moe": ("moe_perf.parquet",),
    "comm": ("nccl_perf.parquet", "custom_allreduce_perf.parquet"),
}
DECODE_MAX_TOKENS = 512
CAP = {"gemm": 160, "attention": 200, "mla": 160, "mla_bmm": 80, "moe": 220, "comm": 10_000}
"""Rows kept per (system, framework, dtype group) after the decode filter."""

OUT = Path(__file__).resolve().parents[1] / "data" / "kernels"

ELEM_BYTES = {"half": 2, "float16": 2, "bfloat16": 2, "fp16": 2, "int8": 1, "fp8": 1}


def _version_key(v: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps aiconfigurator-core==0.12.0 -d dest``; the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"{PACKAGE}=={VERSION}"]
    subprocess.run(cmd + ["-d", str(dest)], check=True)
    wheels = sorted(dest.glob("aiconfigurator_core-*.whl"))
    if not wheels:
        raise SystemExit(f"no wheel of {PACKAGE} in {dest}")
    return wheels[0]


def select_tables(names) -> dict:
    """``{(system, op, framework, table): (version, in-wheel path)}``, newest version."""
    found: dict = {}
    for n in names:
        if n == RESERVED or not n.startswith(IN_WHEEL + "/"):
            continue  # the reserved file is skipped by path, before any parsing
        parts = n.split("/")
        if len(parts) != 8:
            continue
        _, _, _, system, op, fw, version, table = parts
        if system not in SYSTEMS or fw not in FRAMEWORKS or table not in TABLES.get(op, ()):
            continue
        key = (system, op, fw, table)
        if key not in found or _version_key(version) > _version_key(found[key][0]):
            found[key] = (version, n)
    return found


def _median(df, keys):
    return df.groupby(keys, as_index=False, dropna=False)["latency"].median()


def _cap(df, keys, group, cap):
    """At most ``cap`` rows per ``group``: the ones with the smallest SHA-256 of ``keys``."""
    h = df[keys].astype(str).agg("|".join, axis=1)
    df = df.assign(_h=h.map(lambda s: hashlib.sha256(s.encode()).hexdigest()))
    df = df.sort_values(group + ["_h"]).groupby(group, sort=False).head(cap)
    return df.drop(columns="_h")


def _common(df, system, fw, version):
    df = df.copy()
    df.insert(0, "framework_version", version)
    df.insert(0, "framework", fw)
    df.insert(0, "system", system)
    df["latency_s"] = df.pop("latency") * 1e-3  # source tables: milliseconds
    return df


def gemm_rows(df):
    df = df[df["m"] <= DECODE_MAX_TOKENS]
    keys = ["kernel_source", "gemm_dtype", "m", "n", "k"]
    df = _median(df, keys).rename(columns={"gemm_dtype": "dtype"})
    return df, ["dtype"], ["m", "n", "k"]


def attention_rows(df):
    if "window_size" not in df:
        df = df.assign(window_size=0)
    df = df[(df["batch_size"] <= DECODE_MAX_TOKENS) & (df["window_size"] == 0)]
    df = df[df["beam_width"] == 1]
    df = df.assign(context=df["isl"] + df["step"])  # KV length = prompt + decoded steps
    keys = ["kernel_source", "attn_dtype", "kv_cache_dtype", "batch_size", "num_heads"]
    keys += ["num_key_value_heads", "head_dim", "context"]
    df = _median(df, keys).rename(
        columns={
            "kv_cache_dtype": "kv_dtype",
            "batch_size": "batch",
            "num_heads": "heads",
            "num_key_value_heads": "kv_heads",
        }
    )
    return df, ["kv_dtype"], ["batch", "heads", "kv_heads", "head_dim", "context"]


def mla_rows(df):
    df = df[df["batch_size"] <= DECODE_MAX_TOKENS]
    df = df.assign(context=df["isl"] + df["step"])
    keys = ["kernel_source", "mla_dtype", "kv_cache_dtype", "batch_size", "num_heads", "context"]
    df = _median(df, keys).rename(
        columns={"kv_cache_dtype": "kv_dtype", "batch_size": "batch", "num_heads": "heads"}
    )
    return df, ["kv_dtype"], ["batch", "heads", "context"]


def mla_bmm_rows(df):
    df = df[df["num_tokens"] <= DECODE_MAX_TOKENS]
    keys = ["op_name", "kernel_source", "bmm_dtype", "num_tokens", "num_heads"]
    df = _median(df, keys).rename(
        columns={
            "op_name": "op",
            "bmm_dtype": "dtype",
            "num_tokens": "tokens",
            "num_heads": "heads",
        }
    )
    return df, ["dtype", "op"], ["tokens", "heads"]


def moe_rows(df):
    df = df[(df["num_tokens"] <= DECODE_MAX_TOKENS) & (df["distribution"] == "balanced")]
    keys = ["kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk"]
    keys += ["num_experts", "moe_tp_size", "moe_ep_size"]
    df = _median(df, keys).rename(
        columns={
            "moe_dtype": "dtype",
            "num_tokens": "tokens",
            "hidden_size": "hidden",
            "inter_size": "inter",
            "num_experts": "experts",
            "moe_tp_size": "moe_tp",
            "moe_ep_size": "moe_ep",
        }
    )
    return df, ["dtype"], ["tokens", "hidden", "inter", "topk", "experts", "moe_tp", "moe_ep"]


def comm_rows(df, table):
    if table == "nccl_perf.parquet":
        df = df.rename(columns={"nccl_dtype": "dtype"}).assign(implementation="nccl")
    else:
        impl = "custom"
        for col in ("implementation", "backend"):
            if col in df:
                df = df.assign(implementation=df[col].astype(str).fillna(impl))
                break
        else:
            df = df.assign(implementation=impl)
        df = df.rename(columns={"allreduce_dtype": "dtype"})
    keys = ["implementation", "op_name", "dtype", "num_gpus", "message_size"]
    df = _median(df, keys).rename(
        columns={"op_name": "op", "num_gpus": "ranks", "message_size": "message_elems"}
    )
    width = df["dtype"].map(ELEM_BYTES)
    if width.isna().any():
        raise SystemExit(f"unknown collective dtype(s): {sorted(set(df['dtype'][width.isna()]))}")
    df["message_bytes"] = df["message_elems"] * width
    return df, ["op", "dtype", "implementation"], ["ranks", "message_elems"]


HANDLERS = {
    "gemm": gemm_rows,
    "attention": attention_rows,
    "mla": mla_rows,
    "mla_bmm": mla_bmm_rows,
    "moe": moe_rows,
}


def build(wheel: Path) -> dict:
    """All CSV tables as DataFrames, keyed by output stem."""
    import pandas as pd

    out: dict[str, list] = {k: [] for k in TABLES}
    sources: list[str] = []
    with zipfile.ZipFile(wheel) as z:
        for (system, op, fw, table), (version, path) in sorted(select_tables(z.namelist()).items()):
            assert path != RESERVED
            df = pd.read_parquet(io.BytesIO(z.read(path)))
            if op == "comm":
                df, group, shape = comm_rows(df, table)
            else:
                df, group, shape = HANDLERS[op](df)
            if df.empty:
                continue
            df = _cap(
                df,
                ["kernel_source" if "kernel_source" in df else "implementation"] + group + shape,
                group,
                CAP[op],
            )
            df = _common(df, system, fw, version)
            out[op].append(df)
            sources.append(f"| {op} | {system} | {fw} | {version} | `{path}` | {len(df)} |")
    frames = {}
    for op, dfs in out.items():
        if dfs:
            df = pd.concat(dfs, ignore_index=True)
            lead = ["system", "framework", "framework_version"]
            df = df[
                lead + [c for c in df.columns if c not in lead and c != "latency_s"] + ["latency_s"]
            ]
            frames[op] = df.sort_values(list(df.columns[:-1]), kind="stable")
    return frames, sources


def write(frames: dict, sources: list[str], out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for op, df in frames.items():
        df.to_csv(out / f"{op}.csv", index=False, float_format="%.6g")
    lines = [
        "# Kernel microbenchmark tables",
        "",
        f"Source: PyPI package `{PACKAGE}=={VERSION}` (licence {LICENCE}), in-wheel paths",
        f"`{IN_WHEEL}/<system>/<op>/<framework>/<version>/<table>.parquet` (NVIDIA",
        "aiconfigurator kernel microbenchmarks). Regenerate with",
        "`python -m hardware_db.tools.prepare_kernel_tables` (needs the `kernels` extra).",
        "",
        f"`{RESERVED}` (reserved for independent testing) is never read.",
        "",
        "Units: `latency_s` seconds (source: milliseconds); sizes in elements or bytes as",
        "named. Only decode shapes (≤ 512 tokens / sequences) are kept, duplicates collapsed",
        "to the median, each (system, framework, dtype) group capped by a deterministic",
        "SHA-256 subsample (`CAP` in the script).",
        "",
        "| op | system | framework | version | in-wheel path | rows |",
        "|---|---|---|---|---|---|",
        *sources,
        "",
    ]
    (out / "SOURCES.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="an already downloaded wheel")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.wheel is None:
        with tempfile.TemporaryDirectory() as d:
            frames, sources = build(download_wheel(Path(d)))
    else:
        frames, sources = build(args.wheel)
    write(frames, sources, args.out)
    for op, df in frames.items():
        print(f"{op}: {len(df)} rows -> {args.out / (op + '.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
