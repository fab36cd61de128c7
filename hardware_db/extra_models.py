"""Hand-written model files that have no Hugging Face ``config.json`` copy.

``data/models/`` is generated from the config copies (``hardware_db.tools.gen_models``),
so models known only from a paper or a benchmark page (Llama-2, the FasterTransformer
GPT benchmark models, Megatron-530B) live in ``data/extra_models/<slug>.toml``, in the
same schema as ``data/models`` (:func:`hardware_db.schema.check_model`). They are found
by slug or alias through :func:`load_model_any` / :func:`resolve_model_any`, which try the
main database first::

    from hardware_db.extra_models import load_model_any
    spec, precision = load_model_any("llama-2-70b")
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

from hardware_db import DbError
from hardware_db.loader import DATA_ROOT, load_model, read_toml, resolve

EXTRA_ROOT = DATA_ROOT / "extra_models"
"""Folder of hand-written model files."""


@functools.lru_cache(maxsize=8)
def _extra_lookup(files: tuple[str, ...]) -> dict[str, Path]:
    """Lower-cased slug, aliases and display name → file, for the files given."""
    out: dict[str, Path] = {}
    for f in files:
        path = Path(f)
        doc = read_toml(path)
        names = [path.stem, doc.get("display_name", ""), *doc.get("aliases", [])]
        for n in names:
            if isinstance(n, str) and n.strip():
                out[n.strip().lower()] = path
    return out


def extra_lookup() -> dict[str, Path]:
    """Every name of every hand-written model, lower-cased, to its file."""
    files = tuple(sorted(str(p) for p in EXTRA_ROOT.glob("*.toml")))
    return _extra_lookup(files)


def resolve_model_any(name: str) -> str:
    """The slug of ``name`` in the main database, else among the hand-written models.

    Raises :class:`DbError` naming the closest known model when neither knows it.
    """
    try:
        return resolve("models", name)
    except DbError as main_error:
        key = str(name).strip().lower()
        look = extra_lookup()
        if key in look:
            return look[key].stem
        close = difflib.get_close_matches(key, list(look), n=1, cutoff=0.8)
        if close:
            raise DbError(f"unknown model {name!r}; did you mean {look[close[0]].stem}?") from None
        raise main_error from None


def load_model_any(name):
    """:func:`hardware_db.load_model` (name, alias, HF id, ``config.json`` or ``.toml``
    path), falling back to the hand-written models by slug or alias."""
    try:
        return load_model(name)
    except DbError:
        look = extra_lookup()
        key = str(name).strip().lower()
        if key not in look:
            raise
        return load_model(look[key])
