"""Bad input, end to end: one table of malformed inputs across every surface.

Each CLI case runs ``search.cli.main`` in-process and must exit with status 2, print
exactly one line on stderr (``tpsopt <command>: error: ...``) naming what is wrong and
what is allowed (the expected fragments), print nothing on stdout, and leave no file
behind in the test's folder. Each API case must raise :class:`search.errors.UserError`
or :class:`hardware_db.DbError` with a one-line message holding the fragments. A few
cases also run as a subprocess to check that no traceback reaches stderr, and an
unreachable target is an answer (exit 0), not an error.

Malformed inputs already covered elsewhere (not repeated here):
``tests/test_db_malformed.py`` (broken TOML database files: missing fields, units, NaN
and inf unit strings, truncated files, non-UTF-8, directories, unknown keys),
``tests/test_db_cli.py`` and ``tests/test_db_names.py`` (unknown names with suggestions,
bad ``--db`` folders, bad kinds), ``tests/test_import_errors.py`` (malformed
``config.json``: truncated, empty, missing/negative/zero/string fields, inconsistent
heads, unsupported quantisation, non-UTF-8, directory, ``--out`` into a missing folder),
``tests/test_cases.py`` (``--cases`` files: missing, directory, non-UTF-8, truncated CSV,
short rows, unknown columns, empty file, atomic ``--out``),
``tests/test_grid_cli.py`` (grid axes, budgets, ``--top``/``--chunk``/``--time-limit``,
``--objective``, ``--plot``/``--csv`` paths), ``tests/test_cli_plots.py`` (bad plot
names), ``tests/test_validate.py`` (bad grades and plot formats),
``tests/test_space.py`` and ``tests/test_grid.py`` (API errors of spaces and grids),
``tests/test_db_data.py`` (bad ``max_chips`` overrides), ``tests/test_measurements.py``
(bad measurement files and cells).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hardware_db as db
from hardware_db import DbError
from search.cli import main
from search.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
TINY = str(DATA / "db" / "models" / "tiny-moe.toml")
LLAMA_CFG = json.loads(
    (DATA / "hf_configs" / "meta-llama--Meta-Llama-3.1-8B_config.json").read_text()
)
L8 = ["--model", "llama-3.1-8b", "--system", "hgx-h100-8"]
RETICLE = ["--system", "reticle-die", "--chips", "4096"]


# --------------------------------------------------------------------------- fixtures


def _config(folder: Path, name: str, **changes) -> str:
    cfg = dict(LLAMA_CFG)
    cfg.update(changes)
    p = folder / name
    p.write_text(json.dumps(cfg))
    return str(p)


def _db_copy(folder: Path, name: str) -> Path:
    out = folder / name
    shutil.copytree(DATA / "db", out)
    return out


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict:
    """Broken inputs, made once: ``{name: path}``; each lives outside the per-test folder
    so that a test can check that nothing new appears there."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "a_dir").mkdir()
    latin = d / "latin_config.json"
    latin.write_bytes('{"model_type": "llama", "name": "caf\xe9"}'.encode("latin-1"))
    trunc = d / "trunc_config.json"
    trunc.write_text('{"model_type": "llama", "hidden_size": 4096, "num_hid')
    cases = d / "cases.csv"
    cases.write_text("model,system,batch\nllama-3.1-8b,hgx-h100-8,1\n")
    meas = d / "latin.csv"
    meas.write_bytes("id,model\nD01,caf\xe9\n".encode("latin-1"))
    nan_text = json.dumps(LLAMA_CFG).replace('"hidden_size": 4096', '"hidden_size": NaN')
    (d / "nan_config.json").write_text(nan_text)
    db_nan = _db_copy(d, "db_nan")
    model = db_nan / "models" / "tiny-moe.toml"
    model.write_text(model.read_text().replace("n_layers = 2", "n_layers = nan"))
    db_latin = _db_copy(d, "db_latin")
    (db_latin / "chips").mkdir()
    (db_latin / "chips" / "bad.toml").write_bytes(b'name = "bad"\nnote = "caf\xe9"\n')
    db_dir = _db_copy(d, "db_dir")
    (db_dir / "models" / "tiny-moe.toml").unlink()
    (db_dir / "models" / "tiny-moe.toml").mkdir()
    return {
        "dir": str(d / "a_dir"),
        "missing": str(d / "no_such_folder"),
        "latin": str(latin),
        "trunc": str(trunc),
        "cases": str(cases),
        "meas_latin": str(meas),
        "nan_cfg": str(d / "nan_config.json"),
        "huge_cfg": _config(d, "huge_config.json", num_hidden_layers=10**30),
        "deep_cfg": _config(d, "deep_config.json", num_hidden_layers=10**6),
        "float_cfg": _config(d, "float_config.json", hidden_size=1e300),
        "ok_cfg": _config(d, "ok_config.json"),
        "db_nan": str(db_nan),
        "db_latin": str(db_latin),
        "db_dir": str(db_dir),
    }


# --------------------------------------------------------------------------- CLI table

# (id, argv with {placeholders} from ``fx`` and {out} = the test's own folder, fragments)
CLI = [
    # names and typos
    ("eval-model-typo", ["eval", "--model", "kimi-k2.6"], ["unknown model", "did you mean kimi-k2.5"]),
    ("eval-system-typo", ["eval", "--system", "gb200-nvl27"], ["did you mean gb200-nvl72"]),
    ("eval-precision-typo", ["eval", *L8, "--precision", "fp9"], ["unknown precision", "did you mean fp8"]),
    ("eval-software-typo", ["eval", *L8, "--mode", "calibrated", "--software", "vlm"], ["--software", "did you mean vllm"]),
    ("grid-model-choice-typo", ["grid", "--model", TINY, "--system", "hgx-h100-8", "--axis", "model=llama-3.1-8b,kimi-k2.6"], ["did you mean kimi-k2.5"]),
    ("sweep-param-typo", ["sweep", *L8, "--param", "chip.hbm_bw", "--range", "1:2"], ["unknown axis path", "did you mean", "hbm_bw_bytes_per_s"]),
    ("target-tier-typo", ["target", *L8, "--utps", "100", "--tier", "nvlnk"], ["--tier 'nvlnk'", "has tiers die, nvlink, scale-out"]),
    # negative / zero / NaN / inf / huge / fractional numbers
    ("eval-batch-zero", ["eval", *L8, "--batch", "0"], ["--batch '0'", "allowed [1, "]),
    ("eval-batch-nan", ["eval", *L8, "--batch", "nan"], ["--batch 'nan'", "must be finite"]),
    ("eval-context-inf", ["eval", *L8, "--context", "inf"], ["--context 'inf'", "must be finite"]),
    ("eval-context-huge", ["eval", *L8, "--context", "1e30"], ["--context '1e30'", "out of range"]),
    ("eval-batch-fraction", ["eval", *L8, "--batch", "2.5"], ["--batch '2.5'", "must be an integer"]),
    ("eval-acceptance-above-one", ["eval", *L8, "--acceptance", "1.5"], ["--acceptance", "allowed [0, 1]"]),
    ("eval-imbalance-below-one", ["eval", *L8, "--imbalance", "0.5"], ["--imbalance", "allowed [1, 100]"]),
    ("eval-tp-zero", ["eval", *L8, "--tp", "0"], ["--tp '0'", "allowed [1, 10000000] (an integer)"]),
    ("eval-chips-zero", ["eval", "--model", "llama-3.1-8b", "--system", "reticle-die", "--chips", "0"], ["--chips '0'", "allowed [1, "]),
    ("optimize-chips-max-zero", ["optimize", *L8, "--chips-max", "0"], ["--chips-max '0'", "allowed [1, "]),
    ("optimize-chips-max-nan", ["optimize", *L8, "--chips-max", "nan"], ["--chips-max 'nan'", "must be finite"]),
    ("optimize-multiples-zero", ["optimize", *L8, "--multiples", "0,2"], ["--multiples '0,2'", "numbers > 0"]),
    ("target-utps-negative", ["target", *L8, "--utps", "-5"], ["--utps '-5'", "values in (0, 1e9]"]),
    ("target-utps-huge", ["target", *L8, "--utps", "1e12"], ["--utps '1e12'", "values in (0, 1e9]"]),
    ("sensitivity-top-zero", ["sensitivity", *L8, "--top", "0"], ["--top '0'", "allowed [1, "]),
    ("sweep-range-reversed", ["sweep", *L8, "--param", "latency_scale", "--range", "2:1"], ["HI must be ≥ LO"]),
    ("sweep-range-huge-n", ["sweep", *L8, "--param", "latency_scale", "--range", "1:2:1e9"], ["--range '1e9'", "allowed [1, 10000]"]),
    ("sweep-log-from-zero", ["sweep", *L8, "--param", "latency_scale", "--range", "0:1", "--log"], ["--log needs LO > 0"]),
    ("grid-batch-huge", ["grid", "--model", TINY, "--system", "hgx-h100-8", "--axis", "batch=1:1e12:3"], ["workload.batch", "out of range"]),
    ("grid-min-utps-nan", ["grid", "--model", TINY, "--system", "hgx-h100-8", "--min-utps", "nan"], ["--min-utps 'nan'", "must be finite"]),
    ("grid-time-limit-inf", ["grid", "--model", TINY, "--system", "hgx-h100-8", "--time-limit", "inf"], ["--time-limit 'inf'", "finite"]),
    # wrong units
    ("eval-latency-scale-units", ["eval", *L8, "--latency-scale", "1us"], ["--latency-scale '1us'", "not a number", "allowed (0, "]),
    ("grid-axis-wrong-unit", ["grid", "--model", TINY, "--system", "hgx-h100-8", "--axis", "tiers.nvlink.hop_latency_s=1 GB/s"], ["'GB/s'", "not a time", "allowed units: s, ms, us"]),
    ("sweep-range-units", ["sweep", *L8, "--param", "chip.hbm_bw_bytes_per_s", "--range", "1 TB/s:2 TB/s"], ["--range", "plain numbers in SI units"]),
    # degrees that break the model's rules, more chips than the system has
    ("eval-tp-not-dividing-heads", ["eval", *L8, "--tp", "3"], ["attn_tp does not divide the attention heads", "allowed attn_tp: 1, 2, 4, 8, 16, 32"]),
    ("eval-ep-not-dividing-experts", ["eval", "--model", "kimi-k2.5", "--system", "gb200-nvl72", "--tp", "8", "--ep", "7"], ["ep does not divide the experts", "allowed ep: divisors of 384 experts"]),
    ("eval-pp-above-layers", ["eval", "--model", "llama-3.1-8b", *RETICLE, "--tp", "8", "--pp", "64"], ["pp exceeds the number of layers", "allowed pp ≤ 32 layers"]),
    ("eval-more-chips-than-system", ["eval", *L8, "--tp", "8", "--pp", "4"], ["more chips than the system has", "uses 32 chips, the system has 8"]),
    ("eval-kvp-above-context", ["eval", "--model", "llama-3.1-8b", *RETICLE, "--context", "1024", "--kvp", "2048"], ["kvp exceeds the context", "allowed kvp ≤ the context (1024 tokens)"]),
    ("eval-dp-not-dividing-batch", ["eval", *L8, "--batch", "3", "--attn-dp", "2"], ["attn_dp does not divide the batch", "divisors of the batch (1, 3)"]),
    ("sensitivity-invalid-split", ["sensitivity", *L8, "--tp", "3"], ["attn_tp does not divide the attention heads"]),
    ("target-chips-with-split", ["target", *L8, "--utps", "100", "--knob", "chips", "--tp", "8"], ["--knob chips", "drop the degree flags"]),
    ("optimize-free-chip-count", ["optimize", "--model", "llama-3.1-8b", "--system", "reticle-die"], ["free chip count", "--chips"]),
    # missing required flags
    ("target-missing-utps", ["target", *L8], ["required: --utps"]),
    ("sweep-missing-param-range", ["sweep", *L8], ["required: --param, --range"]),
    ("show-missing-name", ["show"], ["required: name"]),
    # files: a directory where a file is expected, non-UTF-8, truncated, NaN, huge
    ("eval-model-directory", ["eval", "--model", "{dir}", "--system", "hgx-h100-8"], ["is a directory", "model .toml or a config.json"]),
    ("eval-config-non-utf8", ["eval", "--model", "{latin}", "--system", "hgx-h100-8"], ["not UTF-8 text", "byte 0xe9"]),
    ("eval-config-truncated", ["eval", "--model", "{trunc}", "--system", "hgx-h100-8"], ["invalid JSON at line 1"]),
    ("import-config-nan", ["import-model", "{nan_cfg}"], ["'hidden_size' is nan", "finite number"]),
    ("import-config-huge-int", ["import-model", "{huge_cfg}"], ["'num_hidden_layers'", "integer ≤ 2147483647"]),
    ("import-config-huge-float", ["import-model", "{float_cfg}"], ["'hidden_size' is 1e+300", "integer ≤ 2147483647"]),
    ("import-config-too-many-layers", ["import-model", "{deep_cfg}"], ["'num_hidden_layers' is 1000000", "at most 100000 layers"]),
    ("validate-measurements-missing", ["validate", "--measurements", "{missing}/m.csv"], ["no such file"]),
    ("validate-measurements-non-utf8", ["validate", "--measurements", "{meas_latin}"], ["not UTF-8 text"]),
    ("validate-grade-empty", ["validate", "--grade", ""], ["is not a grade", "allowed: A, B, C"]),
    ("show-db-nan-field", ["show", "tiny-moe", "--db", "{db_nan}"], ["architecture.n_layers", "is NaN", "allowed: 0 < x"]),
    ("list-db-non-utf8-file", ["list", "chips", "--db", "{db_latin}"], ["bad.toml", "not UTF-8 text"]),
    ("show-db-directory-as-file", ["show", "tiny-moe", "--db", "{db_dir}"], ["tiny-moe.toml", "directory"]),
    # output paths: missing folder, a directory
    ("eval-cases-out-directory", ["eval", "--cases", "{cases}", "--out", "{out}"], ["--out", "is a directory"]),
    ("eval-cases-out-missing-folder", ["eval", "--cases", "{cases}", "--out", "{missing}/r.csv"], ["--out", "does not exist"]),
    ("import-out-directory", ["import-model", "{ok_cfg}", "--out", "{out}"], ["--out", "is a directory"]),
    ("grid-csv-directory", ["grid", "--model", TINY, "--system", "hgx-h100-8", "--csv", "{out}"], ["--csv", "is a directory"]),
    ("target-plot-directory", ["target", *L8, "--utps", "100", "--plot", "{out}"], ["--plot", ".png, .svg or .pdf"]),
    ("sweep-plot-missing-folder", ["sweep", *L8, "--param", "latency_scale", "--range", "1:2", "--plot", "{missing}/p.png"], ["--plot", "does not exist"]),
    ("grid-distributed-malformed", ["grid", "--model", TINY, "--system", "hgx-h100-8", "--distributed", "host"], ["--distributed 'host'", "COORD:PORT,NUM_PROCESSES,PROCESS_ID"]),
]  # fmt: skip


def _argv(argv, fx, out: Path) -> list[str]:
    return [a.format(out=out, **fx) for a in argv]


def _cli(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse errors
        return e.code


@pytest.mark.parametrize("argv, words", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_bad_input(capsys, tmp_path, fx, argv, words):
    argv = _argv(argv, fx, tmp_path)
    rc = _cli(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"tpsopt {argv[0]}: error: "), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert out == ""
    assert list(tmp_path.iterdir()) == []  # no output file, no temporary file


# --------------------------------------------------------------------------- API table


def _tiny_scenario():
    from search.scenario import scenario

    return scenario(TINY, "hgx-h100-8", context=1024)


def _space(**kw):
    from search.space import make_space

    return make_space(TINY, "hgx-h100-8", **kw)


def _grid(**kw):
    from search.grid import grid

    return grid(kw.pop("space", None) or _space(), **kw)


def _main_job(**kw):
    from search.optimize import main_job

    return main_job(_tiny_scenario(), **kw)


def _solve(targets, **kw):
    from search.optimize import as_parallelism, split_table
    from search.target import solve_targets

    sc = _tiny_scenario()
    return solve_targets(sc, as_parallelism(split_table(sc)), targets, **kw)


def _scenario(**kw):
    from search.scenario import scenario

    return scenario(TINY, "hgx-h100-8", **kw)


API = [
    ("scenario-batch-nan", lambda fx: _scenario(batch=math.nan), ["batch nan", "must be finite"]),
    ("scenario-mode-typo", lambda fx: _scenario(mode="calibrate"), ["mode 'calibrate'", "allowed sol, calibrated"]),
    ("scenario-latency-scale-negative", lambda fx: _scenario(latency_scale=-1), ["latency_scale -1", "allowed (0, "]),
    ("space-min-utps-nan", lambda fx: _space(min_utps=math.nan), ["min_utps nan", "must be finite"]),
    ("space-min-system-tps-negative", lambda fx: _space(min_system_tps=-1.0), ["min_system_tps -1.0", "allowed [0, inf]"]),
    ("space-axis-not-a-number", lambda fx: _space(axes={"batch": ["a"]}), ["axis batch='a'", "not a number"]),
    ("space-ep-not-dividing-experts", lambda fx: _space(axes={"ep": [3]}).subgrids(), ["zero valid splits", "degrees must divide"]),
    ("space-chips-over-budget", lambda fx: _space(axes={"chips": [16]}).subgrids(), ["zero valid splits", "within 8 chips", "chips in {16}"]),
    ("grid-not-a-space", lambda fx: _grid(space="kimi-k2.5"), ["expected a Space", "make_space"]),
    ("grid-top-bool", lambda fx: _grid(top=True), ["top True", "integer in [1, "]),
    ("main-job-chips-max-nan", lambda fx: _main_job(chips_max=math.nan), ["chips_max nan", "must be finite"]),
    ("main-job-multiples-negative", lambda fx: _main_job(multiples=(-2.0,)), ["multiples -2.0", "allowed (0, "]),
    ("main-job-top-negative", lambda fx: _main_job(top_sensitivities=-1), ["top_sensitivities -1", "allowed [0, 1000]"]),
    ("main-job-objective", lambda fx: _main_job(objective="energy"), ["objective 'energy'", "allowed utps"]),
    ("solve-targets-nan", lambda fx: _solve([math.nan]), ["targets [nan]", "finite numbers > 0"]),
    ("solve-targets-zero", lambda fx: _solve([100.0, 0.0]), ["finite numbers > 0"]),
    ("solve-targets-tier-typo", lambda fx: _solve([100.0], tier="nvlnk"), ["tier 'nvlnk'", "has tiers die, nvlink, scale-out"]),
    ("solve-targets-knob-typo", lambda fx: _solve([100.0], knob="latncy"), ["knob 'latncy'", "allowed latency, bandwidth"]),
    ("load-model-nan-field", lambda fx: db.load_model("tiny-moe", root=fx["db_nan"]), ["n_layers", "is NaN"]),
    ("load-precision-typo", lambda fx: db.load_precision("int3"), ["unknown precision 'int3'", "did you mean int8"]),
    ("load-model-root-is-a-file", lambda fx: db.load_model("tiny-moe", root=fx["cases"]), ["database folder does not exist or is not a folder"]),
    ("load-model-config-huge", lambda fx: db.load_model(fx["huge_cfg"]), ["integer ≤ 2147483647"]),
]  # fmt: skip


@pytest.mark.parametrize("call, words", [c[1:] for c in API], ids=[c[0] for c in API])
def test_api_bad_input(fx, call, words):
    with pytest.raises((UserError, DbError)) as e:
        call(fx)
    msg = str(e.value)
    assert len(msg.strip().splitlines()) == 1, msg
    for w in words:
        assert w in msg, (w, msg)


def test_table_size():
    """The issue asks for at least 40 malformed inputs in this table."""
    assert len(CLI) + len(API) >= 40
    assert len({c[0] for c in CLI + API}) == len(CLI) + len(API)


# --------------------------------------------------------------------------- answers


def test_unreachable_target_is_an_answer(capsys):
    """A target no latency reaches is an answer (exit 0, status and reason), not an error."""
    rc = main(["target", *L8, "--context", "4096", "--utps", "1000,1e8", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    answers = json.loads(out)["answers"]
    assert [a["status"] for a in answers] == ["reachable", "unreachable"]
    assert "weight read alone takes" in answers[1]["why"] and "budget" in answers[1]["why"]


# --------------------------------------------------------------------------- subprocess

SUBPROCESS = ["eval-model-typo", "import-config-huge-int", "list-db-non-utf8-file"]


@pytest.mark.parametrize("case", SUBPROCESS)
def test_no_traceback_from_the_console_script(fx, tmp_path, case):
    """The same inputs through a fresh interpreter: exit 2, one line, no traceback."""
    argv, words = next(c[1:] for c in CLI if c[0] == case)
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from search.cli import main; sys.exit(main())"]
        + _argv(argv, fx, tmp_path),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if not ln.startswith("WARNING")]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert all(w in lines[0] for w in words), lines[0]
