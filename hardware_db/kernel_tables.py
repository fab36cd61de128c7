r"""Kernel microbenchmark tables as data: ``data/kernels/<op>.csv``, validated.

Measured decode-shape kernel latencies (NVIDIA aiconfigurator microbenchmarks, see
``data/kernels/SOURCES.md``; produced by :mod:`hardware_db.tools.prepare_kernel_tables`).
One CSV per kernel class; :data:`SCHEMAS` lists each file's columns in order and their
types. Every table starts with ``system`` (aiconfigurator system slug, e.g. ``h200_sxm``),
``framework`` (``trtllm``/``vllm``/``sglang``/``nccl``) and ``framework_version``, and ends
with ``latency_s`` (seconds, > 0).

:func:`load_table` returns a :class:`KernelTable`: one numpy array per column (``str``
columns as ``numpy.str_`` arrays, ``int`` as int64, ``float`` as float64). Every error is
one line naming the file, the CSV line and the column, like the other loaders of
:mod:`hardware_db`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hardware_db import DbError
from hardware_db.loader import DATA_ROOT
from hardware_db.textfile import read_text
from hardware_db.validate import where

KERNELS_DIR = DATA_ROOT / "kernels"
"""The packaged kernel tables."""

_LEAD = (("system", "str"), ("framework", "str"), ("framework_version", "str"))
_TAIL = (("latency_s", "float"),)

SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "gemm": _LEAD
    + (("kernel_source", "str"), ("dtype", "str"), ("m", "int"), ("n", "int"), ("k", "int"))
    + _TAIL,
    "attention": _LEAD
    + (
        ("kernel_source", "str"),
        ("attn_dtype", "str"),
        ("kv_dtype", "str"),
        ("batch", "int"),
        ("heads", "int"),
        ("kv_heads", "int"),
        ("head_dim", "int"),
        ("context", "int"),
    )
    + _TAIL,
    "mla": _LEAD
    + (
        ("kernel_source", "str"),
        ("mla_dtype", "str"),
        ("kv_dtype", "str"),
        ("batch", "int"),
        ("heads", "int"),
        ("context", "int"),
    )
    + _TAIL,
    "mla_bmm": _LEAD
    + (
        ("op", "str"),
        ("kernel_source", "str"),
        ("dtype", "str"),
        ("tokens", "int"),
        ("heads", "int"),
    )
    + _TAIL,
    "moe": _LEAD
    + (
        ("kernel_source", "str"),
        ("dtype", "str"),
        ("tokens", "int"),
        ("hidden", "int"),
        ("inter", "int"),
        ("topk", "int"),
        ("experts", "int"),
        ("moe_tp", "int"),
        ("moe_ep", "int"),
    )
    + _TAIL,
    "comm": _LEAD
    + (
        ("implementation", "str"),
        ("op", "str"),
        ("dtype", "str"),
        ("ranks", "int"),
        ("message_elems", "int"),
        ("message_bytes", "int"),
    )
    + _TAIL,
}
"""Columns of each table, in order, with their type (``str``, ``int`` ≥ 1, ``float`` > 0)."""


class KernelTable(NamedTuple):
    """One kernel table: its name (``gemm``, ...), the file, and one array per column."""

    name: str
    path: Path
    columns: dict

    def __len__(self) -> int:
        return len(self.columns["latency_s"])

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.columns[key]
        return tuple.__getitem__(self, key)

    def select(self, mask) -> KernelTable:
        """The rows where ``mask`` is true."""
        # not _replace: NamedTuple._make checks len(), which __len__ makes the row count
        return KernelTable(self.name, self.path, {k: v[mask] for k, v in self.columns.items()})


def _parse(value: str, kind: str, at: str) -> object:
    if kind == "str":
        if not value.strip():
            raise DbError(f"{at}: empty; expected a name")
        return value.strip()
    try:
        x = float(value)
    except ValueError:
        raise DbError(f"{at}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise DbError(f"{at}: {value!r} is not finite")
    if kind == "int":
        if x != int(x) or x < 1:
            raise DbError(f"{at}: {value!r} is not a positive integer")
        return int(x)
    if x <= 0:
        raise DbError(f"{at}: {value!r} must be > 0")
    return x


def load_table(name: str, path=None) -> KernelTable:
    """The validated table ``name`` (a key of :data:`SCHEMAS`) from ``path`` (default the
    packaged ``data/kernels/<name>.csv``)."""
    if name not in SCHEMAS:
        raise DbError(f"unknown kernel table {name!r}; known: {', '.join(SCHEMAS)}")
    path = Path(path) if path is not None else KERNELS_DIR / f"{name}.csv"
    text = read_text(path, "a kernel table .csv file")
    shown = where(path)
    schema = SCHEMAS[name]
    want = [c for c, _ in schema]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise DbError(f"{shown}: empty file; expected the header {','.join(want)}")
    header = [h.strip() for h in header]
    missing = [c for c in want if c not in header]
    extra = [c for c in header if c not in want]
    if missing or extra:
        what = "; ".join(
            s
            for s in (
                f"missing column(s) {', '.join(missing)}" if missing else "",
                f"unexpected column(s) {', '.join(extra)}" if extra else "",
            )
            if s
        )
        raise DbError(f"{shown}: header: {what}; expected {','.join(want)}")
    if header != want:
        raise DbError(f"{shown}: header: columns out of order; expected {','.join(want)}")
    values: dict[str, list] = {c: [] for c in want}
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(want):
            raise DbError(f"{shown}: line {line}: {len(row)} fields; expected {len(want)}")
        for (col, kind), v in zip(schema, row, strict=True):
            values[col].append(_parse(v, kind, f"{shown}: line {line}: {col}"))
    if not values["latency_s"]:
        raise DbError(f"{shown}: no data rows")
    dtypes = {"str": np.str_, "int": np.int64, "float": np.float64}
    cols = {c: np.asarray(values[c], dtype=dtypes[k]) for c, k in schema}
    return KernelTable(name, path, cols)


def load_all(root=None) -> dict[str, KernelTable]:
    """Every table of :data:`SCHEMAS` present under ``root`` (default the packaged ones)."""
    root = Path(root) if root is not None else KERNELS_DIR
    return {n: load_table(n, root / f"{n}.csv") for n in SCHEMAS if (root / f"{n}.csv").exists()}
