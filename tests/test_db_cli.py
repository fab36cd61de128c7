"""``tpsopt list`` and ``tpsopt show``: output, plain JSON, and exit status 2 on bad input."""

import json
from pathlib import Path

import pytest

from search.cli import main

FIXTURES = str(Path(__file__).parent / "data" / "db")


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def bad(capsys, *argv):
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert out == ""
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("kind", ["chips", "systems", "precisions"])
def test_list_table(capsys, kind):
    rc, out, err = run(capsys, "list", kind)
    assert rc == 0 and err == ""
    assert "grade" in out
    assert "\x1b[" not in out  # no colour codes when not a terminal


@pytest.mark.parametrize("kind", ["models", "chips", "systems", "precisions"])
def test_plain_table_text_is_rich_byte_for_byte(capsys, kind):
    """``list`` prints its tables without rich when the plain text is exact: the same
    bytes as rich's render of the same table (a colourless console 400 wide)."""
    from search.cli import list_cmd

    cols, rows, right, _ = list_cmd.ROWS[kind](None)
    list_cmd.console().print(list_cmd.table(f"{kind} (n)", cols, rows, right))
    expect, _ = capsys.readouterr()
    assert list_cmd.table_text(f"{kind} (n)", cols, rows, right) == expect
    rc, out, _ = run(capsys, "list", kind)
    lines = expect.splitlines()
    assert rc == 0 and out.splitlines()[1 : len(lines)] == lines[1:]  # titles differ


def test_plain_table_text_declines_what_only_rich_lays_out():
    from search.cli.list_cmd import table_text

    assert table_text("t", ["a", "b"], [["x", "1"]], {"b"}) == (
        "t      \n       \n a   b \n ───── \n x   1 \n       \n"
    )
    assert table_text("t", ["a"], [], ()) is None  # no rows
    assert table_text("t", ["a", "note"], [["x", "y"]]) is None  # a folding column
    assert table_text("t", ["a"], [["漢字"]]) is None  # two cells per character
    assert table_text("t", ["a"], [["x" * 500]]) is None  # wider than the console
    assert table_text("t", ["a"], [["1 µs"]]) is not None  # µ is one cell


def test_list_chips_numbers(capsys):
    _, out, _ = run(capsys, "list", "chips")
    row = next(line for line in out.splitlines() if line.strip().startswith("h100-sxm"))
    assert row.split()[1:7] == ["0.989", "1.98", "-", "80", "3.35", "-"]
    assert "reticle-sram-die (hypothetical)" in out


def test_list_systems_tiers(capsys):
    _, out, _ = run(capsys, "list", "systems")
    assert "cross-die" in out and "1.25 TB/s" in out and "inf" in out


def test_list_json_is_plain(capsys):
    rc, out, _ = run(capsys, "list", "systems", "--json")
    assert rc == 0
    data = json.loads(out)
    reticle = next(d for d in data if d["name"] == "reticle-die")
    assert reticle["max_chips"]["value"] == "inf"  # JSON has no Infinity
    assert reticle["tiers"][1]["fields"]["overhead_s"]["value"] == 1e-6


def test_list_models_fixture(capsys):
    rc, out, _ = run(capsys, "list", "models", "--db", FIXTURES)
    assert rc == 0 and "tiny-moe" in out and "GQA" in out and "4/2+1" in out
    rc, out, _ = run(capsys, "list", "models", "--db", FIXTURES, "--json")
    (d,) = json.loads(out)
    assert d["derived"]["total_params"] == 208128


def test_show_chip(capsys):
    rc, out, _ = run(capsys, "show", "h100")
    assert rc == 0
    assert "h100-sxm" in out and "3.35 TB/s" in out and "glennklockwood" in out


def test_show_system_json(capsys):
    rc, out, _ = run(capsys, "show", "gb200-nvl72", "--json")
    d = json.loads(out)
    assert d["kind"] == "systems" and d["chip"] == "gb200"
    assert d["tiers"][1]["fields"]["bw_bytes_per_s"]["value"] == 900e9


def test_show_precision(capsys):
    rc, out, _ = run(capsys, "show", "nvfp4-moe")
    assert rc == 0 and "nvfp4" in out and "0.5625" in out


def test_show_model_derived(capsys):
    rc, out, _ = run(capsys, "show", "tiny-moe", "--db", FIXTURES, "--json")
    d = json.loads(out)["derived"]
    assert d["weight_bytes"]["routed_experts"] == 4 * 3 * 64 * 32 * 0.5625
    assert d["weight_bytes"]["attention"] == 2 * 3 * 4096 * 2
    assert d["kv_bytes_per_token"] == 2 * 2 * 32 * 2
    rc, out, _ = run(capsys, "show", "test/tiny-moe", "--db", FIXTURES)
    assert rc == 0 and "routed_experts" in out and "KV per token" in out


def test_show_ambiguous_asks_for_kind(capsys):
    err = bad(capsys, "show", "tpu-v5p")
    assert "'tpu-v5p' names a chip and a system; pass --kind chips or --kind systems" in err
    rc, out, _ = run(capsys, "show", "tpu-v5p", "--kind", "systems")
    assert rc == 0 and "torus3d" in out


def test_show_unknown_suggests(capsys):
    err = bad(capsys, "show", "gb200-nvl27")
    assert err.startswith(
        "tpsopt show: error: unknown name 'gb200-nvl27'; did you mean gb200-nvl72"
    )
    err = bad(capsys, "show", "gb200-nvl27", "--kind", "systems")
    assert "unknown system 'gb200-nvl27'; did you mean gb200-nvl72?" in err


def test_bad_db_folder(capsys, tmp_path):
    err = bad(capsys, "list", "chips", "--db", str(tmp_path / "nope"))
    assert "database folder does not exist" in err


def test_broken_file_is_one_line(capsys, tmp_path):
    (tmp_path / "chips").mkdir()
    (tmp_path / "chips" / "x.toml").write_text('name = "x"\n[fields\n')
    err = bad(capsys, "list", "chips", "--db", str(tmp_path))
    assert "x.toml: invalid TOML:" in err


def test_bad_kind_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["list", "gpus"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
