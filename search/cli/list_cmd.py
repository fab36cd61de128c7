"""``tpsopt list {models,chips,systems,precisions} [--json]``: key numbers of every entry.

Tables show human units and the weakest evidence grade of each row (R > C > S > D > A >
U, see :mod:`hardware_db.validate`); ``--json`` prints plain JSON (SI units, infinities as
the string ``"inf"``) on stdout. This module also holds the rendering helpers and the
derived model summary that ``tpsopt show`` uses.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import unicodedata

import hardware_db
from hardware_db.fields import plain_record
from hardware_db.loader import KINDS, describe, index, resolve
from hardware_db.units import human

# ----------------------------------------------------------------------------- rendering


def plain(obj):
    """A JSON-safe copy: ``inf`` → ``"inf"``, ``nan`` → ``None``, tuples → lists."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def print_json(obj) -> None:
    """Plain JSON (no colour) on stdout."""
    sys.stdout.write(json.dumps(plain(obj), indent=2, ensure_ascii=False) + "\n")


def console():
    """A rich console on the current stdout; wide and colourless when piped."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size((120, 24)).columns if tty else 400
    return Console(file=sys.stdout, width=width, no_color=not tty, highlight=False)


def table(title: str, columns, rows, right=(), wrap=("source", "note")):
    """A rich table; columns named in ``right`` are right-aligned, those in ``wrap`` (long
    free text) fold onto several lines, and every other column keeps its full width, so
    names and numbers are never truncated whatever the terminal (or pipe) width."""
    from rich import box
    from rich.table import Table

    rows = [[str(x) for x in r] for r in rows]
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for i, c in enumerate(columns):
        if c in wrap:
            t.add_column(c, overflow="fold")
        else:
            width = max([len(c)] + [len(r[i]) for r in rows])
            t.add_column(
                c, justify="right" if c in right else "left", no_wrap=True, min_width=width
            )
    for r in rows:
        t.add_row(*r)
    return t


def table_text(title: str, columns, rows, right=(), width: int = 400) -> str | None:
    """The text that :func:`table` renders in a colourless console ``width`` wide, built
    without rich (importing and laying out rich's table costs ~0.2 s of a ~0.35 s
    ``tpsopt list``), or ``None`` where only rich lays it out right: a column that folds
    (``source``/``note``), a character that is not one terminal cell wide (East Asian
    wide, combining, control), no rows, or a table
    wider than ``width``.

    Layout of ``box.SIMPLE_HEAD`` with ``pad_edge=False`` (rich 13/14): each line is
    ``" " + "   ".join(cells) + " "``, cells padded to their column's width (left- or
    right-justified); the title is left-justified over the table width, followed by the
    box's empty top edge; a rule of ``─`` under the header; an empty bottom edge.
    ``tests/test_db_cli.py`` checks it against rich, byte for byte."""
    cells = [[str(c) for c in columns]] + [[str(x) for x in r] for r in rows]
    if not rows or any(c in ("source", "note") for c in columns):
        return None
    if not all(_one_cell_each(x) for r in cells for x in r):
        return None
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    total = 2 + sum(widths) + 3 * (len(widths) - 1)
    if total > width or len(title) > total:
        return None

    def line(r):
        parts = [
            x.rjust(w) if c in right else x.ljust(w)
            for x, w, c in zip(r, widths, columns, strict=True)
        ]
        return " " + "   ".join(parts) + " "

    out = [title.ljust(total), " " * total, line(cells[0]), " " + "─" * (total - 2) + " "]
    out += [line(r) for r in cells[1:]]
    out.append(" " * total)
    return "\n".join(out) + "\n"


def _one_cell_each(text: str) -> bool:
    """Every character of ``text`` takes one terminal cell (so ``len`` is its width)."""
    return (
        text.isascii()
        and text.isprintable()
        or all(
            c.isprintable()
            and not unicodedata.combining(c)
            and unicodedata.east_asian_width(c) not in ("W", "F")
            for c in text
        )
    )


def print_table(title: str, columns, rows, right=()) -> None:
    """Print :func:`table` on stdout: its plain text (:func:`table_text`) where that is
    exact, rich otherwise (and on a terminal, where rich adds its styles and fits the
    terminal width)."""
    text = None if sys.stdout.isatty() else table_text(title, columns, rows, right)
    if text is None:
        console().print(table(title, columns, rows, right))
    else:
        sys.stdout.write(text)


def num(x: float, scale: float = 1.0, digits: int = 4) -> str:
    """``x/scale`` with ``digits`` significant digits, ``-`` for zero, ``inf`` for infinity."""
    if math.isinf(x):
        return "inf"
    if x == 0:
        return "-"
    return f"{x / scale:.{digits}g}"


# ----------------------------------------------------------------------------- models


def attention_kind(arch: dict) -> str:
    """Short label: MLA/GQA/MHA plus the layer classes present (SWA, DSA, linear)."""
    if arch.get("kv_lora_rank", 0) > 0:
        base = "MLA"
    elif arch.get("n_heads", 0) and arch.get("n_kv_heads") == arch.get("n_heads"):
        base = "MHA"
    elif arch.get("n_heads", 0):
        base = "GQA"
    else:
        base = "-"
    extra = [
        label
        for key, label in (
            ("n_window_attn_layers", "SWA"),
            ("n_sparse_attn_layers", "DSA"),
            ("n_linear_attn_layers", "linear"),
        )
        if arch.get(key, 0) > 0
    ]
    return "+".join([base, *extra])


def model_summary(spec, precision) -> dict:
    """Derived counts of a model at its precision (``costmodel.params``); ``spec`` and
    ``precision`` are records or anything with their attributes (:func:`plain_model`).

    Weight bytes per component: attention (incl. DSA indexer and linear mixers) and the
    MoE router at ``attn_weight_bytes``; dense FFN, shared experts and latent-MoE
    projections at ``ffn_weight_bytes``; routed experts at ``expert_weight_bytes``;
    embedding and LM head at ``embed_weight_bytes`` (MTP modules excluded). KV bytes per
    token = ``kv_elems_per_token × kv_bytes`` (window layers counted in full).
    """
    from costmodel import params as P

    f = float
    b = {k: f(v) for k, v in P.param_breakdown(spec).items()}
    router = f(spec.d_model * spec.n_experts * spec.n_moe_layers)
    latent = b["router"] - router
    weights = {
        "attention": b["attention"] * precision.attn_weight_bytes,
        "router": router * precision.attn_weight_bytes,
        "dense_ffn_and_shared_experts": (b["dense_ffn"] + b["shared_experts"] + latent)
        * precision.ffn_weight_bytes,
        "routed_experts": b["routed_experts"] * precision.expert_weight_bytes,
        "embedding_and_lm_head": (b["embedding"] + b["lm_head"]) * precision.embed_weight_bytes,
    }
    weights["total"] = sum(weights.values())
    kv_elems = f(P.kv_elems_per_token(spec))
    return {
        "total_params": f(P.total_params(spec)),
        "total_params_incl_mtp": f(P.total_params(spec, include_mtp=True)),
        "active_params": f(P.active_params(spec)),
        "active_params_excl_embedding": f(P.active_params(spec, include_embedding=False)),
        "param_breakdown": b,
        "weight_bytes": weights,
        "kv_elems_per_token": kv_elems,
        "kv_bytes_per_token": kv_elems * precision.kv_bytes,
    }


def plain_model(d: dict, root) -> tuple:
    """``(spec, precision)`` of a described model as plain attribute namespaces with the
    records' fields (:func:`hardware_db.fields.plain_record`): enough for
    :func:`model_summary`, without building the JAX records."""
    prec = index("precisions", root).entries[resolve("precisions", d["precision"], root)]
    return (
        plain_record("ModelSpec", d["architecture"]),
        plain_record("Precision", {k: q.value for k, q in prec.fields.items()}),
    )


def _model_rows(root):
    rows, data = [], []
    for name in hardware_db.list_names("models", root=root):
        d = describe("models", name, root=root)
        s = model_summary(*plain_model(d, root))
        a = d["architecture"]
        experts = (
            f"{a['n_experts']:g}/{a['top_k']:g}"
            + (f"+{a['n_shared_experts']:g}" if a["n_shared_experts"] else "")
            if a["n_experts"]
            else "dense"
        )
        rows.append(
            [
                name,
                f"{a['n_layers']:g}",
                f"{a['d_model']:g}",
                attention_kind(a),
                experts,
                num(s["total_params"], 1e9),
                num(s["active_params"], 1e9),
                d["precision"],
                f"{d['max_context_tokens']:.0f}" if d["max_context_tokens"] else "-",
                d["weakest_grade"],
            ]
        )
        data.append({**d, "derived": s})
    cols = ["model", "layers", "d_model", "attention", "experts/top-k", "total B", "active B"]
    cols += ["precision", "context", "grade"]
    right = {"layers", "d_model", "total B", "active B", "context"}
    return cols, rows, right, data


# ----------------------------------------------------------------------------- chips


def _chip_rows(root):
    rows, data = [], []
    for name in hardware_db.list_names("chips", root=root):
        d = describe("chips", name, root=root)
        v = {k: f["value"] for k, f in d["fields"].items()}
        rows.append(
            [
                name + (" (hypothetical)" if d["hypothetical"] else ""),
                num(v["peak_flops_per_s_bf16"], 1e15, 3),
                num(v["peak_flops_per_s_fp8"], 1e15, 3),
                num(v["peak_flops_per_s_fp4"], 1e15, 3),
                num(v["hbm_capacity_bytes"], 1e9),
                num(v["hbm_bw_bytes_per_s"], 1e12, 3),
                num(v["sram_capacity_bytes"], 1e6),
                num(v["sram_bw_bytes_per_s"], 1e12, 3),
                num(v["tdp_w"]),
                d["weakest_grade"],
            ]
        )
        data.append(d)
    cols = ["chip", "BF16 PF/s", "FP8 PF/s", "FP4 PF/s", "HBM GB", "HBM TB/s"]
    cols += ["SRAM MB", "SRAM TB/s", "TDP W", "grade"]
    return cols, rows, set(cols[1:-1]), data


# ----------------------------------------------------------------------------- systems


def _system_rows(root):
    rows, data = [], []
    for name in hardware_db.list_names("systems", root=root):
        d = describe("systems", name, root=root)
        for i, t in enumerate(d["tiers"]):
            f = t["fields"]
            rows.append(
                [
                    name if i == 0 else "",
                    d["chip"] if i == 0 else "",
                    num(d["max_chips"]["value"]) if i == 0 else "",
                    t["name"],
                    t["topology"],
                    human(f["hop_latency_s"]["value"], "s"),
                    human(f["overhead_s"]["value"], "s"),
                    human(f["bw_bytes_per_s"]["value"], "bytes_per_s"),
                    num(f["domain_chips"]["value"]),
                    d["weakest_grade"] if i == 0 else "",
                ]
            )
        data.append(d)
    cols = ["system", "chip", "max chips", "tier", "topology", "hop", "overhead"]
    cols += ["one-way BW", "domain", "grade"]
    return cols, rows, {"max chips", "hop", "overhead", "one-way BW", "domain"}, data


# ----------------------------------------------------------------------------- precisions


def _precision_rows(root):
    rows, data = [], []
    for name in hardware_db.list_names("precisions", root=root):
        d = describe("precisions", name, root=root)
        f = {k: v["value"] for k, v in d["fields"].items()}
        bits = "/".join(
            f"{f[k]:g}" for k in ("attn_compute_bits", "ffn_compute_bits", "expert_compute_bits")
        )
        rows.append(
            [
                name,
                *(
                    f"{f[k]:.4g}"
                    for k in (
                        "attn_weight_bytes",
                        "ffn_weight_bytes",
                        "expert_weight_bytes",
                        "embed_weight_bytes",
                        "kv_bytes",
                        "act_bytes",
                    )
                ),
                bits,
                d["weakest_grade"],
            ]
        )
        data.append(d)
    cols = ["recipe", "attn B", "ffn B", "expert B", "embed B", "KV B", "act B"]
    cols += ["compute bits a/f/e", "grade"]
    return cols, rows, set(cols[1:-1]), data


ROWS = {
    "models": _model_rows,
    "chips": _chip_rows,
    "systems": _system_rows,
    "precisions": _precision_rows,
}


def run(args) -> int:
    """Print the table (or JSON) of one kind."""
    index(args.kind, args.db)  # validate the whole kind first: one clear error
    cols, rows, right, data = ROWS[args.kind](args.db)
    if args.json:
        print_json(data)
        return 0
    title = f"{args.kind} ({len(rows) if args.kind != 'systems' else len(data)})"
    print_table(title, cols, rows, right)
    if args.kind == "chips":
        print("dense peaks; '-' = not supported / absent (zero)")
    return 0


def register(sub) -> None:
    """Add ``list`` to the ``tpsopt`` sub-commands."""
    p = sub.add_parser(
        "list",
        help="list models, chips, systems or precision recipes",
        description="List the database entries of one kind with their key numbers and the "
        "weakest evidence grade of each row (R > C > S > D > A > U).",
    )
    p.add_argument("kind", choices=KINDS, help="what to list")
    p.add_argument("--json", action="store_true", help="plain JSON on stdout (SI units)")
    p.add_argument(
        "--db", metavar="DIR", default=None, help="database folder (default: packaged data)"
    )
    p.set_defaults(func=run)
