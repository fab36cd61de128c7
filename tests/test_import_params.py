"""Derived parameter counts of the model database against the published figures.

For every ``hardware_db/data/models/*.toml`` with a ``[published]`` table, the total and active
parameters derived by :mod:`costmodel.params` from ``[architecture]`` must be within 2 % of the
published value, under the publisher's convention recorded with the figure:
``embedding_included`` (input embedding counted in "active") and ``lm_head_included``
(default true; MiniMax counts neither embedding nor head). MTP modules are never included
(DeepSeek's 671B is the main model; Hugging Face's 685B adds the 14B MTP module).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from costmodel import params as P
from hardware_db.hf_import import spec_from_toml

MODELS = Path(__file__).resolve().parents[1] / "hardware_db" / "data" / "models"
TOL = 0.02

REQUIRED = {
    "kimi-k2.5",
    "kimi-k2",
    "deepseek-v3",
    "deepseek-r1",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "llama-4-scout",
    "llama-4-maverick",
    "qwen3-235b-a22b",
    "qwen3-30b-a3b",
    "gpt-oss-120b",
    "gpt-oss-20b",
    "minimax-m2.5",
    "mixtral-8x22b",
    "mixtral-8x7b",
}
"""Models whose published counts docs/references.md or their TOML sources state (MiniMax-M2's on the M2.5 config)."""


def _cases():
    out = []
    for path in sorted(MODELS.glob("*.toml")):
        doc = tomllib.loads(path.read_text())
        for key, entry in doc.get("published", {}).items():
            out.append(pytest.param(path.stem, key, entry, doc, id=f"{path.stem}-{key}"))
    return out


def derived(doc: dict, key: str, entry: dict) -> float:
    """The derived count matching a published entry's convention."""
    spec = spec_from_toml(doc)
    if key == "total_params":
        return float(P.total_params(spec))
    assert key == "active_params", key
    act = float(P.active_params(spec, include_embedding=entry.get("embedding_included", True)))
    if not entry.get("lm_head_included", True):
        act -= float(P.lm_head_params(spec))
    return act


def test_required_models_have_published_counts():
    have = {c.values[0] for c in _cases()}
    assert REQUIRED <= have, REQUIRED - have


@pytest.mark.parametrize("slug,key,entry,doc", _cases())
def test_within_two_percent(slug, key, entry, doc):
    got = derived(doc, key, entry)
    want = float(entry["value"])
    err = got / want - 1
    assert abs(err) <= TOL, f"{slug} {key}: derived {got:.4g} vs published {want:.4g} ({err:+.2%})"
