"""Published small-message collective latencies (``data/collective_measurements.csv``) as data.

``data/collective_measurements.csv``: one row per measured latency, with the database
system it is compared on (``chips`` = the system size to load, e.g. 128 for a
multi-node EP128 run on ``hgx-h100-8`` nodes), the cost model's collective ``kind``
(``all_reduce``, ``all_to_all``, ``p2p``), the group (``ranks``) and ``stride`` (chips
between consecutive members), the message in bytes as
:func:`costmodel.collectives.collective` defines it, the software family used for the
calibrated comparison (empty: hardware level), whether a CUDA graph amortised the
launch, the latency in seconds, the source and notes (what is assumed).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import NamedTuple

from hardware_db import DbError
from hardware_db.loader import DATA_ROOT, resolve
from hardware_db.measurements import _read_text, software_slug
from hardware_db.validate import where

COLLECTIVES_CSV = DATA_ROOT / "collective_measurements.csv"
COLUMNS = (
    "id", "operation", "kind", "system", "chips", "ranks", "stride", "msg_bytes",
    "software", "cuda_graph", "latency_s", "source", "notes",
)  # fmt: skip
KINDS = ("all_reduce", "all_gather", "all_to_all", "p2p")


class CollectiveMeasurement(NamedTuple):
    id: str
    operation: str
    kind: str
    system: str
    chips: float
    ranks: float
    stride: float
    msg_bytes: float
    software: str
    cuda_graph: str
    latency_s: float
    source: str
    notes: str


def load_collective_measurements(path=None) -> tuple[CollectiveMeasurement, ...]:
    """The validated rows of ``path`` (default: the packaged file); one-line errors."""
    p = Path(path) if path is not None else COLLECTIVES_CSV
    reader = csv.DictReader(io.StringIO(_read_text(p), newline=""))
    header = tuple(h.strip() for h in reader.fieldnames or ())
    if header != COLUMNS:
        raise DbError(f"{where(p)}: header: expected {','.join(COLUMNS)}")
    out = []
    for row in reader:
        line = reader.line_num
        rid = (row.get("id") or "?").strip()

        def fail(col, msg, line=line, rid=rid):
            raise DbError(f"{where(p)}: line {line} ({rid}): {col}: {msg}")

        if None in row or any(v is None for v in row.values()):
            fail("row", f"expected {len(COLUMNS)} fields")
        nums = {}
        for c in ("chips", "ranks", "stride", "msg_bytes", "latency_s"):
            try:
                nums[c] = float(row[c])
            except ValueError:
                fail(c, f"{row[c]!r} is not a number")
            if not math.isfinite(nums[c]) or nums[c] < 0:
                fail(c, f"{row[c]!r} must be finite and ≥ 0")
        if row["kind"] not in KINDS:
            fail("kind", f"{row['kind']!r}; allowed: {', '.join(KINDS)}")
        if not 0 < nums["latency_s"] < 1e-2:
            fail("latency_s", f"{nums['latency_s']:g} s is implausible for one collective")
        if nums["ranks"] * nums["stride"] > nums["chips"]:
            fail("chips", "the group does not fit in the system (ranks·stride > chips)")
        try:
            system = resolve("systems", row["system"])
            software = software_slug(row["software"]) if row["software"].strip() else ""
        except DbError as e:
            fail("system/software", str(e))
        out.append(
            CollectiveMeasurement(
                id=rid,
                operation=row["operation"].strip(),
                kind=row["kind"],
                system=system,
                software=software,
                cuda_graph=row["cuda_graph"].strip(),
                source=row["source"].strip(),
                notes=row["notes"].strip(),
                **nums,
            )
        )
    return tuple(out)
