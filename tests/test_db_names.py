"""Names, aliases, suggestions, describe() and model loading (fixture model under tests/data)."""

import json
from pathlib import Path

import pytest

import hardware_db as db
from hardware_db import DbError

FIXTURES = Path(__file__).parent / "data" / "db"
HF = Path(__file__).parent / "data" / "hf_configs"


@pytest.mark.parametrize(
    "kind,name,slug",
    [
        ("chips", "h100", "h100-sxm"),
        ("chips", "H100-SXM5", "h100-sxm"),
        ("chips", "NVIDIA H100 SXM5 80GB", "h100-sxm"),
        ("chips", "tpu7x", "tpu-ironwood"),
        ("chips", "LP30", "lpu-lp30"),
        ("systems", "DGX-H100", "hgx-h100-8"),
        ("systems", "nvl72", "gb200-nvl72"),
        ("systems", " reticle ", "reticle-die"),
        ("precisions", "W4A16", "int4-awq"),
        ("precisions", "fp4", "nvfp4"),
    ],
)
def test_resolve_aliases(kind, name, slug):
    assert db.resolve(kind, name) == slug


@pytest.mark.parametrize(
    "kind,name,message",
    [
        ("systems", "gb200-nvl27", "unknown system 'gb200-nvl27'; did you mean gb200-nvl72?"),
        ("chips", "h1000", "unknown chip 'h1000'; did you mean "),
        ("precisions", "nvfp5", "unknown precision 'nvfp5'; did you mean nvfp4"),
        ("chips", "zzzzzz", "unknown chip 'zzzzzz'; known: a100, a100-40gb, b200"),
        ("chips", "", "empty chip name; known: a100"),
    ],
)
def test_unknown_names_suggest(kind, name, message):
    with pytest.raises(DbError) as e:
        db.resolve(kind, name)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_unknown_kind():
    with pytest.raises(DbError, match=r"unknown kind 'chip'; did you mean chips\?"):
        db.list_names("chip")


def test_loaders_accept_aliases():
    assert db.load_chip("h100") == db.load_chip("h100-sxm")
    assert db.load_system("dgx-h100") == db.load_system("hgx-h100-8")
    with pytest.raises(DbError, match="did you mean gb200-nvl72"):
        db.load_system("gb200-nvl27")


def test_describe_chip():
    d = db.describe("chips", "h100")
    assert d["name"] == "h100-sxm" and d["file"].endswith("h100-sxm.toml")
    bw = d["fields"]["hbm_bw_bytes_per_s"]
    assert bw["value"] == 3.35e12 and bw["text"] == "3.35 TB/s" and bw["unit"] == "B/s"
    assert bw["human"] == "3.35 TB/s" and bw["grade"] == "S" and bw["source"].startswith("https://")
    # an omitted optional field is reported at its record default
    assert d["fields"]["sram_capacity_bytes"]["value"] == 0
    assert d["fields"]["sram_capacity_bytes"]["grade"] == ""
    # the HBM3 energy per byte is a class assumption (A), the weakest grade of the row
    assert d["weakest_grade"] == "A"


def test_describe_system_and_precision():
    d = db.describe("systems", "reticle-die")
    assert [t["name"] for t in d["tiers"]] == ["die", "cross-die"]
    assert d["tiers"][1]["fields"]["overhead_s"]["grade"] == "R"
    assert d["weakest_grade"] == "A"
    p = db.describe("precisions", "int4-experts")
    assert p["fields"]["expert_weight_bytes"]["format"] == "int4-g32"
    assert p["fields"]["expert_weight_bytes"]["value"] == 0.5625
    assert p["weakest_grade"] == "D"


def test_fixture_model_closed_form():
    """tiny-moe: D=64, H=4, K=2, d=16, 1 dense FFN (F=128) + 1 MoE (4 experts of 32, top-2,
    1 shared of 32), V=1000 untied."""
    spec, prec = db.load_model("tiny-moe", root=FIXTURES)
    assert spec.n_layers == 2 and spec.n_experts == 4
    assert prec == db.load_precision("int4-experts")
    from costmodel import params as P

    attn = 2 * (64 * 4 * 16 + 64 * 2 * 32 + 4 * 16 * 64)
    dense, expert, shared, router, emb = 3 * 64 * 128, 3 * 64 * 32, 3 * 64 * 32, 64 * 4, 1000 * 64
    assert float(P.total_params(spec)) == attn + dense + 4 * expert + shared + router + 2 * emb
    assert float(P.active_params(spec)) == attn + dense + 2 * expert + shared + router + 2 * emb


def test_model_by_alias_and_path():
    by_name = db.load_model("TEST/tiny-moe", root=FIXTURES)
    by_path = db.load_model(str(FIXTURES / "models" / "tiny-moe.toml"))
    assert by_name == by_path
    d = db.describe("models", "tiny-moe", root=FIXTURES)
    assert d["precision"] == "int4-experts" and d["max_context_tokens"] == 4096
    assert d["published"]["total_params"]["value"] == 2.5e5
    assert d["published"]["total_params"]["embedding_included"] is True
    assert d["weakest_grade"] == "U"
    json.dumps(d)  # JSON-friendly


def test_model_root_falls_back_for_other_kinds():
    assert db.list_names("models", root=FIXTURES) == ["tiny-moe"]
    assert db.list_names("chips", root=FIXTURES) == db.list_names("chips")


def test_load_model_json_uses_hf_import():
    path = HF / "Qwen--Qwen3-0.6B_config.json"
    spec, prec = db.load_model(str(path))
    assert spec.n_layers == 28


def test_missing_json_file():
    with pytest.raises(DbError, match=r"nope_config.json: no such file"):
        db.load_model("nope_config.json")
