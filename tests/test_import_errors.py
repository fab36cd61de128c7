"""Bad config files give one-line errors naming file and field; the CLI exits 2, writes nothing.

Also the happy path of ``tpsopt import-model``: table and JSON output, and ``--out`` writing a
TOML that the database loader accepts.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from hardware_db import DbError
from hardware_db.hf_import import from_hf_config
from hardware_db.loader import load_model_file
from search.cli import main

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
KIMI = CONFIGS / "moonshotai--Kimi-K2.5_config.json"
LLAMA = json.loads((CONFIGS / "meta-llama--Meta-Llama-3.1-8B_config.json").read_text())


def _write(tmp_path: Path, name: str, cfg) -> Path:
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return p


def _llama(**changes):
    cfg = dict(LLAMA)
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


CASES = [
    # (file name, content (None: make a directory), expected fragments of the message)
    ("dir_config.json", None, ["is a directory"]),
    ("truncated_config.json", '{"hidden_size": 4096,\n  "num_hid', ["invalid JSON at line 2"]),
    ("empty_config.json", "   \n", ["empty file"]),
    ("list_config.json", "[1, 2]", ["top level is a JSON list", "expected an object"]),
    ("nohidden_config.json", _llama(hidden_size=None), ["'hidden_size'", "missing"]),
    ("nolayers_config.json", _llama(num_hidden_layers=None), ["'num_hidden_layers'", "missing"]),
    ("negdim_config.json", _llama(intermediate_size=-14336), ["'intermediate_size'", "> 0"]),
    ("zerohidden_config.json", _llama(hidden_size=0), ["'hidden_size'", "> 0"]),
    ("strdim_config.json", _llama(hidden_size="4096"), ["'hidden_size'", "expected an integer"]),
    (
        "heads_config.json",
        _llama(hidden_size=4000, num_attention_heads=48),
        ["'num_attention_heads'", "does not divide hidden_size", "head_dim"],
    ),
    (
        "quant_config.json",
        _llama(quantization_config={"quant_method": "gptq", "bits": 4}),
        ["'quantization_config.quant_method'", "'gptq'", "supported: fp8, compressed-tensors"],
    ),
    (
        "layertypes_config.json",
        _llama(layer_types=["full_attention"] * 3),
        ["'layer_types'", "3 entries", "expected 32"],
    ),
    (
        "topk_config.json",
        _llama(num_local_experts=4, num_experts_per_tok=8),
        ["'num_experts_per_tok'", "exceeds the number of experts 4"],
    ),
    (
        "kvheads_config.json",
        _llama(num_key_value_heads=5),
        ["'num_key_value_heads'", "must divide num_attention_heads"],
    ),
    (
        "nested_config.json",
        {"model_type": "x", "text_config": {"model_type": "llama", "vocab_size": 10}},
        ["'text_config.hidden_size'", "missing"],
    ),
]


def _make(tmp_path, name, content) -> Path:
    if content is None:
        p = tmp_path / name
        p.mkdir()
        return p
    return _write(tmp_path, name, content)


@pytest.mark.parametrize("name,content,frags", CASES, ids=[c[0] for c in CASES])
def test_bad_config_one_line_error(tmp_path, name, content, frags):
    path = _make(tmp_path, name, content)
    with pytest.raises(DbError) as e:
        from_hf_config(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    for frag in frags:
        assert frag in msg, (frag, msg)


def test_missing_file(tmp_path):
    with pytest.raises(DbError, match="no such file"):
        from_hf_config(tmp_path / "nope_config.json")


def test_non_utf8(tmp_path):
    p = tmp_path / "bin_config.json"
    p.write_bytes(b'{"hidden_size": 1, "name": "\xff\xfe"}')
    with pytest.raises(
        DbError, match=r"not UTF-8 text: byte 0xff at offset 28; save the file as UTF-8"
    ):
        from_hf_config(p)


def test_bad_hf_quant_sidecar_names_that_file(tmp_path):
    cfg = _write(tmp_path, "m_config.json", LLAMA)
    _write(tmp_path, "m_hf_quant_config.json", {"quantization": {"quant_algo": "INT3_MAGIC"}})
    with pytest.raises(DbError) as e:
        from_hf_config(cfg)
    msg = str(e.value)
    assert "m_hf_quant_config.json" in msg and "'quantization.quant_algo'" in msg
    assert "NVFP4" in msg  # lists what is supported


def test_hf_quant_sidecar_is_read(tmp_path):
    cfg = _write(tmp_path, "m_config.json", LLAMA)
    _write(
        tmp_path,
        "m_hf_quant_config.json",
        {"quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8"}},
    )
    p = from_hf_config(cfg).precision
    assert (p.attn_weight_bytes, p.ffn_weight_bytes, p.kv_bytes) == (0.5625, 0.5625, 1.0)
    assert p.ffn_compute_bits == 4 and p.embed_weight_bytes == 2.0  # LM head left in BF16


# ----------------------------------------------------------------------------- CLI
def test_cli_good_file_table_and_json(capsys):
    assert main(["import-model", str(KIMI)]) == 0
    out = capsys.readouterr().out
    assert "kimi-k2.5" in out and "int4-experts" in out and "1026" in out
    assert main(["import-model", str(KIMI), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["name"] == "kimi-k2.5" and d["quantization"]["recipe"] == "int4-experts"
    assert d["layer_plan"]["ffn"] == {"dense": 1, "moe": 60}
    assert abs(d["active_params"] / 32.86e9 - 1) < 0.02
    assert d["kv_bytes_per_token"] == 61 * 576 * 2


@pytest.mark.parametrize("name,content,frags", CASES[:8], ids=[c[0] for c in CASES[:8]])
def test_cli_bad_file_exit_2_one_line(tmp_path, capsys, name, content, frags):
    path = _make(tmp_path, name, content)
    out = tmp_path / "out.toml"
    assert main(["import-model", str(path), "--out", str(out)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tpsopt import-model: error: ")
    assert "Traceback" not in cap.err
    assert frags[0] in lines[0]
    assert not out.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == [name]  # nothing left behind


def test_cli_out_writes_loadable_toml(tmp_path, capsys):
    src = tmp_path / "openai--gpt-oss-20b_config.json"
    shutil.copy(CONFIGS / src.name, src)
    out = tmp_path / "gpt-oss-20b.toml"
    assert main(["import-model", str(src), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    doc = tomllib.loads(out.read_text())
    assert doc["name"] == "gpt-oss-20b" and doc["aliases"] == ["openai/gpt-oss-20b"]
    assert doc["precision"] == "mxfp4-experts" and doc["grade"] == "C"
    entry = load_model_file(out)  # the database's validation accepts it
    assert entry.precision == "mxfp4-experts"
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted([src.name, out.name])


def test_cli_out_local_file_without_hf_id(tmp_path, capsys):
    src = tmp_path / "config.json"
    shutil.copy(CONFIGS / "Qwen--Qwen3-8B_config.json", src)
    out = tmp_path / "m.toml"
    assert main(["import-model", str(src), "--name", "m", "--out", str(out)]) == 0
    doc = tomllib.loads(out.read_text())
    assert doc["grade"] == "A" and "--source" in doc["notes"]
    load_model_file(out)


def test_cli_out_into_missing_folder(tmp_path, capsys):
    out = tmp_path / "nope" / "x.toml"
    assert main(["import-model", str(KIMI), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not out.parent.exists()


def test_cli_bad_name_and_source(tmp_path, capsys):
    out = tmp_path / "x.toml"
    assert main(["import-model", str(KIMI), "--name", "Bad Name", "--out", str(out)]) == 2
    assert "model name" in capsys.readouterr().err
    assert main(["import-model", str(KIMI), "--source", "ftp://x", "--out", str(out)]) == 2
    assert "--source" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
