"""Measurements as data: the packaged CSV, its conversions, and one-line errors on bad files."""

import csv
import io
import math

import pytest

import hardware_db as db
from hardware_db.collective_measurements import load_collective_measurements
from hardware_db.extra_models import load_model_any, resolve_model_any
from hardware_db.measurements import (
    COLUMNS,
    MEASUREMENTS_CSV,
    acceptance_from_tokens,
    closed_form_step_s,
    load_measurements,
    software_slug,
    tokens_per_step,
)

ROWS = load_measurements()
USABLE = [m for m in ROWS if m.usable]


def test_packaged_file_covers_every_reference_row():
    assert [m.id for m in ROWS] == [f"D{i:02d}" for i in range(1, 89)]
    assert len(USABLE) >= 50
    for m in ROWS:
        assert m.usable or m.exclusion_reason
        assert m.source and m.grade in "ABC"


def test_usable_rows_are_complete_and_consistent():
    for m in USABLE:
        assert m.attn_tp * m.attn_dp * m.kvp * m.pp == m.chips, m.id
        assert m.ep * m.moe_tp == m.attn_tp * m.attn_dp * m.kvp, m.id
        assert 1e-4 < m.step_time_s < 1.0, m.id
        assert math.isclose(tokens_per_step(m.mtp_depth, m.acceptance), m.tokens_per_step,
                            rel_tol=1e-3), m.id  # fmt: skip
        expect = closed_form_step_s(m.metric, m.value, m.unit, m.tokens_per_step)
        if expect is not None:
            assert math.isclose(expect, m.step_time_s, rel_tol=1e-3), m.id
        else:
            assert "step" in m.notes, m.id
        load_model_any(m.model)
        db.load_system(m.system)


def test_known_conversions():
    by = {m.id: m for m in ROWS}
    # MTP3 at 2.82 accepted tokens per step and 253 tok/s/user → 11.15 ms per step
    assert math.isclose(by["D02"].step_time_s, 2.82 / 253, rel_tol=1e-4)
    assert by["D02"].mtp_depth == 3 and math.isclose(by["D02"].tokens_per_step, 2.82)
    assert math.isclose(by["D59"].step_time_s, 20.98e-3, rel_tol=1e-6)  # printed per step
    assert math.isclose(by["D16"].step_time_s, 1 / 17.0, rel_tol=1e-4)  # decode tok/s
    # FasterTransformer by differences: (5609 - T(80, 20)) / 180 with T interpolated
    t80 = 560 + 20 / 68 * 6
    assert math.isclose(by["D27"].step_time_s, (5609 - t80) / 180 * 1e-3, rel_tol=1e-4)
    assert not by["D09"].usable and "accepted length" in by["D09"].exclusion_reason
    assert not by["D69"].usable and "chip count" in by["D69"].exclusion_reason


def test_acceptance_inverse():
    for k, tau in ((1, 1.92), (3, 2.82), (5, 3.01)):
        a = acceptance_from_tokens(tau, k)
        assert 0 < a < 1 and math.isclose(tokens_per_step(k, a), tau, rel_tol=1e-9)
    assert acceptance_from_tokens(1.0, 0) == 0.0
    with pytest.raises(ValueError):
        acceptance_from_tokens(4.5, 3)


def test_software_slugs_and_extra_models():
    assert software_slug("TensorRT-LLM") == "trtllm" and software_slug("vllm") == "vllm"
    with pytest.raises(db.DbError, match="did you mean vllm"):
        software_slug("vlm")
    assert resolve_model_any("meta-llama/Llama-2-70b-hf") == "llama-2-70b"
    assert resolve_model_any("kimi-k2.5") == "kimi-k2.5"
    spec, _ = load_model_any("megatron-530b")
    assert float(spec.d_model) == 20480 and float(spec.n_layers) == 105
    with pytest.raises(db.DbError, match="did you mean llama-2-70b"):
        resolve_model_any("llama-2-70c")


def test_collective_measurements_load():
    rows = load_collective_measurements()
    assert {"C01a", "C07a", "C09-512-tp8", "C13a"} <= {r.id for r in rows}
    assert all(0 < r.latency_s < 1e-3 for r in rows)


# ----------------------------------------------------------------------------- malformed


def _text(rows, header=COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _good_row(rid="D46") -> dict:
    with open(MEASUREMENTS_CSV, encoding="utf-8") as f:
        return next(r for r in csv.DictReader(f) if r["id"] == rid)


def _write(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _bad(path, *fragments):
    with pytest.raises(db.DbError) as e:
        load_measurements(path)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_bad_files(tmp_path):
    _bad(tmp_path / "nope.csv", "no such file")
    _bad(tmp_path, "is a directory")
    p = tmp_path / "latin1.csv"
    p.write_bytes("id,model\nD1,caf\xe9\n".encode("latin-1"))
    _bad(p, "not UTF-8", "offset")
    _bad(_write(tmp_path, ""), "empty file")
    _bad(_write(tmp_path, _text([], COLUMNS[:-1])), "missing column", "notes")
    hdr = ["id", "modle"] + list(COLUMNS[2:])
    _bad(_write(tmp_path, _text([], hdr)), "unknown column 'modle'", "did you mean model?")
    _bad(_write(tmp_path, _text([])), "no data rows")


@pytest.mark.parametrize(
    "column,value,fragments",
    [
        ("usable", "maybe", ["usable", "allowed: yes, no"]),
        ("batch", "one", ["line 2 (D46)", "batch", "not a number"]),
        ("chips", "2.5", ["chips", "integer"]),
        ("model", "llama-3.1-7b", ["model", "did you mean"]),
        ("system", "hgx-h100-9", ["system", "did you mean hgx-h100-8"]),
        ("software", "tensorrt", ["software", "did you mean trtllm"]),
        ("attn_tp", "2", ["chips", "attn_tp·attn_dp·kvp·pp"]),
        ("step_time_s", "0.01", ["step_time_s", "tok/s with τ = 1 gives 0.0588"]),
        ("grade", "Z", ["grade", "allowed: A, B, C"]),
        ("metric", "tpott", ["did you mean tpot"]),
        ("exclusion_reason", "why not", ["must be empty on a usable row"]),
    ],
)
def test_bad_cells(tmp_path, column, value, fragments):
    row = _good_row("D16" if column == "step_time_s" else "D46")
    row[column] = value
    _bad(_write(tmp_path, _text([[row[c] for c in COLUMNS]])), *fragments)


def test_bad_rows(tmp_path):
    row = _good_row()
    vals = [row[c] for c in COLUMNS]
    _bad(_write(tmp_path, _text([vals, vals])), "line 3 (D46)", "duplicate id")
    _bad(_write(tmp_path, _text([vals[:-3]])), "fields, expected", "truncated")
    text = _text([vals]).rstrip("\n") + ',"unterminated\n'
    _bad(_write(tmp_path, text), "line 2")
    no = dict(row, usable="no", exclusion_reason="")
    _bad(_write(tmp_path, _text([[no[c] for c in COLUMNS]])), "needs a one-line reason")
    mtp = dict(row, mtp_depth="3", tokens_per_step="2.82", acceptance="0.5")
    _bad(_write(tmp_path, _text([[mtp[c] for c in COLUMNS]])), "acceptance", "tokens per step")
