"""``tpsopt show NAME [--kind K] [--json]``: every field of one entry, with its provenance.

NAME may be a chip, system, model or precision recipe (name, alias or Hugging Face id,
case-insensitive). If it names entries of several kinds, ``--kind`` chooses. For a model
the derived numbers are added: total and active parameters, weight bytes per component at
its native precision and KV bytes per token (:func:`search.cli.list_cmd.model_summary`).
"""

from __future__ import annotations

import difflib

import hardware_db
from hardware_db import DbError
from hardware_db.loader import KINDS, SINGULAR, describe, index
from hardware_db.units import human
from search.cli.list_cmd import console, model_summary, plain_model, print_json, table
from search.errors import UserError


def find_kind(name: str, kind: str | None, root) -> str:
    """The kind ``name`` belongs to; asks for ``--kind`` when several match."""
    if kind is not None:
        return kind
    hits = []
    for k in KINDS:
        try:
            hardware_db.resolve(k, name, root=root)
        except DbError as e:
            if not str(e).startswith(f"unknown {SINGULAR[k]} "):
                raise  # a broken file, not a miss
            continue
        hits.append(k)
    if len(hits) > 1:
        raise UserError(
            f"{name!r} names a {' and a '.join(SINGULAR[k] for k in hits)}; "
            f"pass --kind {' or --kind '.join(hits)}"
        )
    if hits:
        return hits[0]
    known = {}  # lower-case name or alias -> "slug (kind)"
    for k in KINDS:
        for alias, slug in index(k, root).lookup.items():
            known.setdefault(alias, f"{slug} ({SINGULAR[k]})")
    close = difflib.get_close_matches(name.strip().lower(), list(known), n=3, cutoff=0.6)
    labels = list(dict.fromkeys(known[c] for c in close))
    if labels:
        hint = f"did you mean {' or '.join(labels)}?"
    else:
        hint = "see `tpsopt list chips|systems|models|precisions`"
    raise UserError(f"unknown name {name!r}; {hint}")


def _field_rows(fields: dict, prefix: str = ""):
    return [
        [
            prefix + k,
            f.get("human") or f"{f['value']:g}",
            f.get("text", ""),
            f["grade"] or "-",
            f["source"],
            f["note"],
        ]
        for k, f in fields.items()
    ]


COLS = ["field", "value", "as written", "grade", "source", "note"]


def _show_model(d: dict, out) -> None:
    s = d["derived"]
    rows = [
        [k, f"{v:g}", "stated" if k in d["stated"] else "default"]
        for k, v in d["architecture"].items()
    ]
    out.print(table("architecture (ModelSpec)", ["field", "value", ""], rows, {"value"}))
    pub = [
        [k, f"{v['value']:.6g}", v["grade"], v["source"], v["note"]]
        for k, v in d["published"].items()
    ]
    if pub:
        out.print(table("published", ["figure", "value", "grade", "source", "note"], pub))
    w = s["weight_bytes"]
    derived = [
        ["total params", f"{s['total_params'] / 1e9:.4g} billion", "costmodel.params.total_params"],
        ["total params incl. MTP", f"{s['total_params_incl_mtp'] / 1e9:.4g} billion", ""],
        [
            "active params",
            f"{s['active_params'] / 1e9:.4g} billion",
            "costmodel.params.active_params",
        ],
        [
            "active params excl. embedding",
            f"{s['active_params_excl_embedding'] / 1e9:.4g} billion",
            "",
        ],
    ]
    derived += [[f"weights: {k}", human(v, "bytes"), f"at {d['precision']}"] for k, v in w.items()]
    derived += [
        [
            "KV per token",
            human(s["kv_bytes_per_token"], "bytes"),
            f"{s['kv_elems_per_token']:g} elements",
        ],
    ]
    out.print(
        table(
            f"derived (precision {d['precision']})",
            ["quantity", "value", "how"],
            derived,
            {"value"},
        )
    )


def run(args) -> int:
    """Print every field of one entry."""
    kind = find_kind(args.name, args.kind, args.db)
    d = describe(kind, args.name, root=args.db)
    if kind == "models":
        d["derived"] = model_summary(*plain_model(d, args.db))
    if args.json:
        print_json(d)
        return 0
    out = console()
    head = f"{SINGULAR[kind]} {d['name']}: {d['display_name']}"
    if d["aliases"]:
        head += f"  (aliases: {', '.join(d['aliases'])})"
    out.print(head)
    out.print(f"file: {d['file']}   weakest grade: {d['weakest_grade']}")
    for key in ("note", "notes"):
        if d.get(key):
            out.print(f"{key}: {d[key]}")
    if kind == "chips":
        out.print(table("fields (ChipSpec, SI)", COLS, _field_rows(d["fields"])))
    elif kind == "systems":
        out.print(f"chip: {d['chip']}")
        mc = d["max_chips"]
        out.print(table("system", COLS, [_field_rows({"max_chips": mc})[0]]))
        for i, t in enumerate(d["tiers"]):
            title = f"tier {i}: {t['name']} ({t['topology']})" + (
                f" — {t['note']}" if t["note"] else ""
            )
            out.print(table(title, COLS, _field_rows(t["fields"])))
    elif kind == "precisions":
        out.print(f"source: {d['source']}   grade: {d['grade']}")
        rows = [
            [
                k,
                f"{f['value']:g} {f['unit']}",
                f["format"] or "-",
                f["grade"],
                f["source"],
                f["note"],
            ]
            for k, f in d["fields"].items()
        ]
        out.print(
            table(
                "fields (Precision)", ["field", "value", "format", "grade", "source", "note"], rows
            )
        )
    else:
        out.print(f"source: {d['source']}   grade: {d['grade']}   precision: {d['precision']}")
        _show_model(d, out)
    return 0


def register(sub) -> None:
    """Add ``show`` to the ``tpsopt`` sub-commands."""
    p = sub.add_parser(
        "show",
        help="show every field of a chip, system, model or precision recipe",
        description="Show every field of one database entry: SI value, human units, the "
        "text as written, source and evidence grade; for a model also derived parameter "
        "counts, weight bytes per component and KV bytes per token.",
    )
    p.add_argument("name", help="name, alias or Hugging Face id (case-insensitive)")
    p.add_argument("--kind", choices=KINDS, default=None, help="which kind NAME is")
    p.add_argument("--json", action="store_true", help="plain JSON on stdout (SI units)")
    p.add_argument(
        "--db", metavar="DIR", default=None, help="database folder (default: packaged data)"
    )
    p.set_defaults(func=run)
