"""``tpsopt eval --cases``: good and bad rows, vectorised == one by one, bad files, atomic output."""

import csv
import io

import numpy as np
import pytest

from search.cli import main
from search.defaults import complete_parallelism
from search.defaults import eval_one as jit_decode_step  # shares its compilations
from search.scenario import scenario
from search.stacking import Config, canonical_system, evaluate

HEADER = "id,model,system,precision,batch,context,tp,ep,pp,mtp,acceptance,software,mode"
ROWS = [
    "dense,llama-3.1-70b,hgx-h100-8,,1,2048,8,,,,,,sol",
    "moe,deepseek-r1,hgx-b200-8,nvfp4-moe,1,2048,8,4,1,3,0.77,trtllm,calibrated",
    "extra,llama-2-70b,pcie-a100-8,,1,135,8,,,,,mlc,calibrated",
    "hfid,meta-llama/Llama-3.1-8B,mi300x-8,,4,4096,,,,,,,sol",
    "badmodel,nosuchmodel,hgx-h100-8,,1,2048,,,,,,,sol",
    "badbatch,llama-3.1-70b,hgx-h100-8,,-3,2048,,,,,,,sol",
    "badtp,llama-3.1-8b,hgx-h100-8,,1,2048,3,,,,,,sol",
    "pp,kimi-k2.5,hgx-h100-8,,1,8192,4,,,,,,sol",
]


def write(tmp_path, lines, name="cases.csv"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def run(capsys, *argv):
    rc = main(["eval", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    d = tmp_path_factory.mktemp("cases")
    src = write(d, [HEADER, *ROWS])
    out = d / "out.csv"
    assert main(["eval", "--cases", str(src), "--out", str(out)]) == 0
    with open(out, encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_good_and_bad_rows(table):
    assert list(table) == [r.split(",")[0] for r in ROWS]  # order kept, every row out
    for rid in ("dense", "moe", "extra", "hfid", "pp"):
        r = table[rid]
        assert float(r["utps"]) > 0 and float(r["step_time_s"]) > 0, r
        assert r["reason"] == "" or r["fits"] == "no"
        parts = sum(
            float(r[k]) for k in r if k.endswith("_s") and k not in ("tpot_s", "step_time_s")
        )
        assert np.isclose(parts, float(r["step_time_s"]), rtol=1e-5)
    assert table["badmodel"]["reason"].startswith("error: unknown model 'nosuchmodel'")
    assert table["badbatch"]["reason"].startswith("error: batch '-3'")
    for rid in ("badmodel", "badbatch"):
        assert table[rid]["utps"] == "" and table[rid]["fits"] == ""
    assert table["badtp"]["fits"] == "no" and "heads" in table["badtp"]["reason"]
    assert table["moe"]["mode_used"] == "kernel:b200_sxm/trtllm"
    assert table["extra"]["mode_used"] == "calibrated:pcie-a100/mlc"
    assert table["dense"]["split"].startswith("attn_tp=8 ")
    assert table["moe"]["model"] == "deepseek-r1"  # input columns unchanged


def _direct(model, system, precision, batch, context, mode="sol", software=None, **deg):
    sc = scenario(model, system, precision, batch=batch, context=context, mode=mode,
                  software=software)  # fmt: skip
    par = complete_parallelism(sc, **deg)
    return jit_decode_step(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode), par


def test_vectorised_equals_one_by_one(table):
    r, _ = _direct("llama-3.1-70b", "hgx-h100-8", None, 1, 2048, tp=8)
    assert np.isclose(float(table["dense"]["step_time_s"]), float(r.step_time_s), rtol=1e-5)
    r, _ = _direct("meta-llama/Llama-3.1-8B", "mi300x-8", None, 4, 4096)
    assert np.isclose(float(table["hfid"]["step_time_s"]), float(r.step_time_s), rtol=1e-5)
    r, par = _direct("kimi-k2.5", "hgx-h100-8", None, 1, 8192, tp=4)
    assert table["pp"]["split"].endswith(f"pp={int(par.pp)}")  # same pipeline rule
    assert np.isclose(float(table["pp"]["step_time_s"]), float(r.step_time_s), rtol=1e-5)


def test_canonical_systems_are_exact():
    cfgs = []
    for model, system in (("llama-3.1-8b", "hgx-a100-8"), ("mixtral-8x7b", "mi300x-8")):
        sc = scenario(model, system)
        par = complete_parallelism(sc)
        cfgs.append(Config(sc.model, sc.precision, sc.system, par, sc.workload, sc.mode))
        assert len(canonical_system(sc.system).tiers) == 3
    res = evaluate(cfgs)
    for k, c in enumerate(cfgs):
        ref = jit_decode_step(*c)
        np.testing.assert_allclose(res.step_time_s[k], ref.step_time_s, rtol=1e-6)
        np.testing.assert_allclose(
            res.memory_per_chip_bytes[k], ref.memory_per_chip_bytes, rtol=1e-9
        )


def test_stdout_defaults_and_aliases(capsys, tmp_path):
    src = write(tmp_path, ["label,model,attn_tp,batch", "x,llama-3.1-8b,2,", "y,,,2"])
    rc, out, err = run(capsys, "--cases", str(src), "--system", "hgx-h100-8", "--context", "1024")
    assert rc == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["label"] for r in rows] == ["x", "y"]
    assert rows[0]["split"].startswith("attn_tp=2 ")
    assert float(rows[1]["utps"]) > 0  # model from --model's default (kimi-k2.5)


def _bad(capsys, tmp_path, src, *fragments):
    out = tmp_path / "never.csv"
    rc, so, err = run(capsys, "--cases", str(src), "--out", str(out))
    assert rc == 2 and so == "", (so, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]  # no temp file


def test_bad_files(capsys, tmp_path):
    _bad(capsys, tmp_path, tmp_path / "missing.csv", "no such file")
    _bad(capsys, tmp_path, tmp_path, "is a directory")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("model\ncaf\xe9\n".encode("latin-1"))
    _bad(capsys, tmp_path, latin, "not UTF-8")
    _bad(capsys, tmp_path, write(tmp_path, [HEADER, ROWS[0][:30] + ',"cut'], "t.csv"),
         "malformed CSV", "truncated")  # fmt: skip
    _bad(capsys, tmp_path, write(tmp_path, [HEADER, "a,llama-3.1-8b"], "r.csv"), "row 2", "fields")
    _bad(capsys, tmp_path, write(tmp_path, ["model,sytem", "x,y"], "u.csv"),
         "unknown column 'sytem'", "did you mean system?")  # fmt: skip
    _bad(capsys, tmp_path, write(tmp_path, [""], "e.csv"), "empty file")


def test_atomic_output(capsys, tmp_path):
    src = write(tmp_path, ["model,system,batch", "llama-3.1-8b,hgx-h100-8,1"])
    out = tmp_path / "res.csv"
    out.write_text("old\n")
    rc, so, err = run(capsys, "--cases", str(src), "--out", str(out))
    assert rc == 0 and so == "" and err == ""
    assert out.read_text().startswith("model,system,batch,utps,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv", "res.csv"]
