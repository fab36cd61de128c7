"""``tpsopt import-model PATH [--name SLUG] [--out FILE.toml] [--json]``.

Imports a Hugging Face ``config.json`` (and the ``hf_quant_config.json`` beside it, if any)
with :func:`hardware_db.hf_import.from_hf_config` and prints a summary: family, layers by
class, experts, derived total/active parameters (:mod:`costmodel.params`), weight bytes at the
checkpoint's precision, KV bytes per token and the approximations the import made. ``--out``
writes a model TOML in the schema of ``hardware_db/data/models`` atomically (nothing is left
behind on error); ``--json`` prints the summary as JSON instead of a table.

Provenance of the written TOML: a file named ``<org>--<repo>_config.json`` (or a folder
``<org>--<repo>``) names its Hugging Face repository, which becomes the source URL with grade
``C`` (a copy of the originator's file); ``--source URL`` sets it explicitly. Without either
the source is the local path with grade ``A`` (the loader needs a URL for R/C/S/U grades).
"""

from __future__ import annotations

from pathlib import Path

from search.errors import UserError


def default_name(path: Path) -> str:
    """Slug from the Hugging Face id in the file name, else from the file or folder name."""
    from hardware_db.hf_import import hf_id_from_path, slug_from_id

    hf_id = hf_id_from_path(path)
    if hf_id:
        return slug_from_id(hf_id)
    stem = path.name.removesuffix(".json").removesuffix("_config")
    if stem in ("config", ""):
        stem = path.resolve().parent.name
    return slug_from_id(stem)


def summary(imported, name: str) -> dict:
    """JSON-ready summary of an imported model (SI units: parameters, bytes)."""
    from costmodel import params as P
    from search.cli.list_cmd import model_summary

    spec, prec, meta = imported.arch, imported.quant, imported.meta  # plain: no JAX
    s = model_summary(spec, prec)
    f = float
    state = f(spec.n_linear_attn_layers * P.linear_state_elems(spec) * prec.state_bytes)
    ctx = meta.get("max_context_tokens")
    kv_ctx = f(P.kv_elems_per_token(spec, ctx)) * prec.kv_bytes if ctx else None
    return {
        "name": name,
        "hf_id": meta.get("hf_id"),
        "family": meta["family"],
        "model_type": meta["model_type"],
        "max_context_tokens": ctx,
        "quantization": meta["quantization"],
        "layer_plan": meta["layer_plan"],
        "experts": {
            "routed": f(spec.n_experts),
            "top_k": f(spec.top_k),
            "shared": f(spec.n_shared_experts),
            "d_ff_expert": f(spec.d_ff_expert),
            "d_ff_shared": f(spec.d_ff_shared),
            "latent_dim": f(spec.moe_latent_dim),
        },
        "total_params": s["total_params"],
        "total_params_incl_mtp": s["total_params_incl_mtp"],
        "active_params": s["active_params"],
        "active_params_excl_embedding": s["active_params_excl_embedding"],
        "weight_bytes": s["weight_bytes"],
        "kv_bytes_per_token": s["kv_bytes_per_token"],
        "kv_bytes_per_token_at_max_context": kv_ctx,
        "linear_state_bytes_per_sequence": state,
        "approximations": meta["approximations"],
        "spec": {k: f(v) for k, v in vars(spec).items()},
        "precision": {k: f(v) for k, v in vars(prec).items()},
    }


def _layers(plan: dict) -> str:
    mix = ", ".join(f"{v} {k}" for k, v in plan["mixers"].items() if k != "none")
    ffn = ", ".join(f"{v} {k}" for k, v in plan["ffn"].items() if k != "none")
    return f"{plan['n_layers']} blocks; mixers: {mix or '-'}; FFN: {ffn or '-'}"


def _print(d: dict) -> None:
    from search.cli.list_cmd import console, num, table

    e = d["experts"]
    experts = (
        f"{e['routed']:g} routed (top-{e['top_k']:g}, width {e['d_ff_expert']:g})"
        + (f" + {e['shared']:g} shared (width {e['d_ff_shared']:g})" if e["shared"] else "")
        + (f", latent {e['latent_dim']:g}" if e["latent_dim"] else "")
        if e["routed"]
        else "dense"
    )
    q = d["quantization"]
    w = d["weight_bytes"]
    rows = [
        ["name", d["name"]],
        ["family", f"{d['family']} (model_type {d['model_type']})"],
        ["layers", _layers(d["layer_plan"])],
        ["experts", experts],
        ["total params", f"{num(d['total_params'], 1e9)} B"],
        ["active params", f"{num(d['active_params'], 1e9)} B "
         f"({num(d['active_params_excl_embedding'], 1e9)} B without embedding)"],
        ["checkpoint precision", f"{q['method']} → recipe {q['recipe']}; KV {q['kv_cache']}"],
        ["weights", f"{num(w['total'], 1e9)} GB"],
        ["KV bytes / token", f"{d['kv_bytes_per_token']:,.0f} B (window layers in full)"],
    ]  # fmt: skip
    if d["kv_bytes_per_token_at_max_context"] is not None:
        rows.append(
            [
                f"KV bytes / token @ {d['max_context_tokens']:,}",
                f"{d['kv_bytes_per_token_at_max_context']:,.0f} B",
            ]
        )
    if d["linear_state_bytes_per_sequence"]:
        rows.append(["linear state / sequence", f"{d['linear_state_bytes_per_sequence']:,.0f} B"])
    for i, a in enumerate(d["approximations"]):
        rows.append(["approximation" if i == 0 else "", a])
    if d.get("written"):
        rows.append(["written", d["written"]])
    out = console()
    out.print(table(f"import-model {d['name']}", ["field", "value"], rows))


def run(args) -> int:
    from hardware_db.hf_import import from_hf_config, notes_for, to_toml
    from search.cli.io import atomic_write

    path = Path(args.path)
    m = from_hf_config(path)
    name = args.name or default_name(path)
    if args.source and not args.source.startswith(("http://", "https://")):
        raise UserError(f"--source {args.source!r}: expected an http(s):// URL")
    source, grade, extra = args.source, "C", ""
    if not source and not m.meta.get("hf_id"):
        source, grade = str(path.resolve()), "A"
        extra = "config read from a local file (no Hugging Face id); pass --source URL"
    aliases = [m.meta["hf_id"]] if m.meta.get("hf_id") else []
    text = to_toml(
        m,
        name,
        aliases=aliases,
        source=source,
        grade=grade,
        notes=notes_for(m, extra),
        meta={
            "hf_config": path.name,
            "family": m.meta["family"],
            "model_type": m.meta["model_type"],
            "checkpoint_quantization": m.meta["quantization"]["method"],
            "checkpoint_recipe": m.meta["quantization"]["recipe"],
        },
    )
    d = summary(m, name)
    if args.out:
        d["written"] = str(atomic_write(args.out, text, flag="--out"))
    if args.json:
        from search.cli.list_cmd import print_json

        print_json(d)
    else:
        _print(d)
    return 0


def register(sub) -> None:
    """Add ``import-model`` to the ``tpsopt`` sub-commands."""
    p = sub.add_parser(
        "import-model",
        help="import a Hugging Face config.json as a model",
        description="Import a Hugging Face config.json (and hf_quant_config.json beside it) "
        "into a ModelSpec and Precision; print the derived counts; optionally write a model "
        "TOML for hardware_db/data/models.",
    )
    p.add_argument("path", metavar="PATH", help="config.json of the model")
    p.add_argument("--name", metavar="SLUG", help="database name (default: from the file name)")
    p.add_argument("--out", metavar="FILE.toml", help="write the model TOML here (atomically)")
    p.add_argument("--source", metavar="URL", help="where the config came from (provenance)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
