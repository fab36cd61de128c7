"""Model TOMLs: generated from the configs, round-trip to the importer's ModelSpec, load.

* every ``hardware_db/data/models/*.toml`` is up to date with
  ``python -m hardware_db.tools.gen_models`` (the generator is the only writer);
* ``[architecture]`` → ``ModelSpec`` equals :func:`from_hf_config` of the config named in
  ``[meta] hf_config`` — read both directly (``tomllib``) and through
  :func:`hardware_db.load_model` (the database loader);
* the native precision recipe equals the checkpoint's precision as imported, field by field,
  for every field the model uses — except where the TOML notes say how they differ;
* :func:`to_toml` escapes strings and writes numbers exactly.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

import hardware_db
from costmodel.specs import ModelSpec
from hardware_db.hf_import import (
    from_hf_config,
    precision_fields_used,
    spec_from_toml,
    to_toml,
)
from hardware_db.tools import gen_models

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "hardware_db" / "data" / "models"
CONFIGS = ROOT / "tests" / "data" / "hf_configs"
TOMLS = sorted(MODELS.glob("*.toml"))
REQUIRED = (
    "kimi-k2.5 kimi-k2 deepseek-v3 deepseek-r1 deepseek-v3.2 llama-3.1-8b llama-3.1-70b "
    "llama-3.1-405b llama-4-scout llama-4-maverick qwen3-32b qwen3-235b-a22b "
    "qwen3.5-397b-a17b gpt-oss-120b gpt-oss-20b glm-5 minimax-m2.5 mixtral-8x7b"
).split()
NATIVE = {
    "kimi-k2.5": "int4-experts",
    "kimi-k2": "fp8-block",
    "deepseek-v3": "fp8-block",
    "deepseek-r1": "fp8-block",
    "deepseek-v3.2": "fp8-block",
    "gpt-oss-120b": "mxfp4-experts",
    "gpt-oss-20b": "mxfp4-experts",
    "llama-3.1-8b": "bf16",
    "qwen3-32b": "bf16",
    "mixtral-8x7b": "bf16",
    "glm-5": "bf16",
    "minimax-m2.5": "fp8-block",
}


def same_spec(a: ModelSpec, b: ModelSpec) -> bool:
    return all(
        float(getattr(a, f.name)) == float(getattr(b, f.name)) for f in dataclasses.fields(a)
    )


def test_required_models_present_with_native_recipe():
    names = {p.stem for p in TOMLS}
    assert set(REQUIRED) <= names, set(REQUIRED) - names
    for slug, recipe in NATIVE.items():
        assert tomllib.loads((MODELS / f"{slug}.toml").read_text())["precision"] == recipe


def test_generated_files_up_to_date(tmp_path):
    gen_models.main(["--out", str(tmp_path)])
    written = {p.name: p.read_text() for p in tmp_path.glob("*.toml")}
    assert sorted(written) == sorted(p.name for p in TOMLS)
    stale = [n for n, text in written.items() if (MODELS / n).read_text() != text]
    assert not stale, f"run python -m hardware_db.tools.gen_models: {stale}"


@pytest.mark.parametrize("path", TOMLS, ids=lambda p: p.stem)
def test_round_trip(path):
    doc = tomllib.loads(path.read_text())
    imported = from_hf_config(CONFIGS / doc["meta"]["hf_config"])
    assert same_spec(spec_from_toml(doc, str(path)), imported.spec)
    spec, prec = hardware_db.load_model(path.stem)  # via the database loader
    assert same_spec(spec, imported.spec)
    for alias in doc["aliases"]:
        assert hardware_db.resolve("models", alias) == path.stem
    diff = [
        f
        for f in precision_fields_used(imported.spec)
        if float(getattr(prec, f)) != float(getattr(imported.precision, f))
    ]
    if diff:  # documented in the notes, field by field
        assert f"native recipe {doc['precision']} differs from the checkpoint" in doc["notes"]
        assert all(f in doc["notes"] for f in diff)
    assert doc["max_context_tokens"] == imported.meta["max_context_tokens"]


def test_to_toml_escapes_and_is_exact():
    m = from_hf_config(CONFIGS / "deepseek-ai--DeepSeek-V4-Flash_config.json")
    text = to_toml(
        m,
        "x-1",
        aliases=['a"b', "c\\d"],
        notes='quote " backslash \\ newline \n tab \t bell \x07 é',
        published={"total_params": {"value": 284e9, "source": "https://x.y", "grade": "S"}},
    )
    doc = tomllib.loads(text)
    assert doc["aliases"] == ['a"b', "c\\d"]
    assert doc["notes"] == 'quote " backslash \\ newline \n tab \t bell \x07 é'
    assert doc["published"]["total_params"]["value"] == 284e9
    assert same_spec(spec_from_toml(doc), m.spec)  # non-integer head_dim_v exact
    assert m.spec.head_dim_v != int(m.spec.head_dim_v)


@pytest.mark.parametrize(
    "bad,msg",
    [("Kimi", "model name"), ("a b", "model name"), ("", "model name")],
)
def test_to_toml_rejects_bad_names(bad, msg):
    m = from_hf_config(CONFIGS / "meta-llama--Meta-Llama-3.1-8B_config.json")
    with pytest.raises(hardware_db.DbError, match=msg):
        to_toml(m, bad)
