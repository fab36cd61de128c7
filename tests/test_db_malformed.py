"""Malformed database files: each fails with one line naming file, field and what is allowed.

Every case writes a small database folder under ``tmp_path`` (kinds it lacks fall back to
the packaged data) and asserts the exact content of the one-line :class:`DbError`.
"""

import pytest

import hardware_db as db
from hardware_db import DbError

CHIP = """\
name = "toy"
display_name = "Toy chip"
aliases = ["toy-chip"]
[fields]
peak_flops_per_s_bf16 = { value = "1 PFLOP/s", source = "https://example.org/toy", grade = "S" }
peak_flops_per_s_fp8 = { value = "2 PFLOP/s", source = "https://example.org/toy", grade = "S" }
peak_flops_per_s_fp4 = { value = 0, source = "https://example.org/toy", grade = "S" }
hbm_capacity_bytes = { value = "100 GB", source = "https://example.org/toy", grade = "R" }
hbm_bw_bytes_per_s = { value = "5 TB/s", source = "https://example.org/toy", grade = "R" }
"""

SYSTEM = """\
name = "toy-8"
display_name = "Toy system"
chip = "h100-sxm"
max_chips = { value = 8, source = "https://example.org/toy", grade = "S" }

[[tiers]]
name = "die"
topology = "switch"
hop_latency_s = { value = 0, source = "convention", grade = "A", note = "not modelled" }
overhead_s = { value = 0, source = "convention", grade = "A", note = "not modelled" }
bw_bytes_per_s = { value = "3 TB/s", source = "convention", grade = "A", note = "placeholder" }
domain_chips = { value = 1, source = "convention", grade = "A", note = "one chip" }

[[tiers]]
name = "link"
topology = "switch"
hop_latency_s = { value = "100 ns", source = "https://example.org/toy", grade = "S" }
overhead_s = { value = "100 ns", source = "https://example.org/toy", grade = "S" }
bw_bytes_per_s = { value = "450 GB/s", source = "https://example.org/toy", grade = "S" }
domain_chips = { value = 8, source = "https://example.org/toy", grade = "S" }
"""


def write(root, kind, name, text, encoding="utf-8"):
    d = root / kind
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.toml"
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def error(fn, *args, **kw) -> str:
    with pytest.raises(DbError) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def chip_error(tmp_path, text, name="toy"):
    write(tmp_path, "chips", name, text)
    return error(db.load_chip, name, root=tmp_path)


def system_error(tmp_path, text):
    write(tmp_path, "systems", "toy-8", text)
    return error(db.load_system, "toy-8", root=tmp_path)


def test_valid_fixtures_load(tmp_path):
    write(tmp_path / "a", "chips", "toy", CHIP)
    assert db.load_chip("toy-chip", root=tmp_path / "a").hbm_bw_bytes_per_s == 5e12
    # a folder without chips/ falls back to the packaged chips
    write(tmp_path / "b", "systems", "toy-8", SYSTEM)
    s = db.load_system("toy-8", root=tmp_path / "b")
    assert s.tiers[1].hop_latency_s == 1e-7 and s.chip.peak_flops_per_s_bf16 == 989.4e12
    # a folder with both: the system's chip must be in that folder
    write(tmp_path / "a", "systems", "toy-8", SYSTEM.replace('"h100-sxm"', '"toy"'))
    assert db.load_system("toy-8", root=tmp_path / "a").chip.hbm_capacity_bytes == 100e9


def test_missing_required_field(tmp_path):
    text = "\n".join(line for line in CHIP.splitlines() if not line.startswith("hbm_bw"))
    msg = chip_error(tmp_path, text)
    assert msg.endswith("toy.toml: fields.hbm_bw_bytes_per_s: missing required field")


def test_unknown_field_suggests_closest(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace("hbm_bw_bytes_per_s", "hbm_bw_bytes_per_sec"))
    assert "toy.toml: fields.hbm_bw_bytes_per_sec: unknown field; did you mean " in msg
    assert "did you mean hbm_bw_bytes_per_s?" in msg
    assert "(allowed: " in msg and "peak_flops_per_s_bf16" in msg


def test_unknown_top_level_key(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace("aliases =", "alias ="))
    assert "toy.toml: alias: unknown field; did you mean aliases?" in msg


def test_wrong_unit_for_bandwidth(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('"5 TB/s"', '"3 GB"'))
    assert "toy.toml: fields.hbm_bw_bytes_per_s.value: " in msg
    assert "unit 'GB' in '3 GB' is a capacity (bytes), not a bandwidth (bytes/s)" in msg
    assert "allowed units: B/s, KB/s, MB/s, GB/s, TB/s, PB/s, Gb/s, Tb/s" in msg


def test_bare_number_needs_unit(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('"5 TB/s"', "5e12"))
    assert "fields.hbm_bw_bytes_per_s.value: bare number 5000000000000.0 has no unit" in msg


def test_negative_bandwidth(tmp_path):
    msg = system_error(tmp_path, SYSTEM.replace('"450 GB/s"', '"-450 GB/s"'))
    assert "toy-8.toml: tiers[1] (link).bw_bytes_per_s.value: '-450 GB/s'" in msg
    assert "is not allowed; allowed: 0 B/s < x (one-way bandwidth per chip)" in msg


def test_zero_bandwidth(tmp_path):
    msg = system_error(tmp_path, SYSTEM.replace('"450 GB/s"', '"0 GB/s"'))
    assert "tiers[1] (link).bw_bytes_per_s.value: '0 GB/s' = 0 B/s is not allowed" in msg
    assert "allowed: 0 B/s < x" in msg


def test_latency_of_a_second_or_more(tmp_path):
    msg = system_error(
        tmp_path, SYSTEM.replace('value = "100 ns", source', 'value = "2 s", source', 1)
    )
    assert "toy-8.toml: tiers[1] (link).hop_latency_s.value: '2 s' = 2 s is not allowed" in msg
    assert "allowed: 0 s ≤ x < 1 s (per hop / per step, not total)" in msg


def test_negative_latency(tmp_path):
    msg = system_error(tmp_path, SYSTEM.replace('"100 ns", source', '"-5 ns", source', 1))
    assert "hop_latency_s.value: '-5 ns'" in msg and "allowed: 0 s ≤ x < 1 s" in msg


def test_chip_without_any_capacity(tmp_path):
    text = CHIP.replace('"100 GB"', "0").replace('"5 TB/s"', "0")
    msg = chip_error(tmp_path, text)
    assert msg.endswith(
        "toy.toml: fields.hbm_capacity_bytes: a chip needs HBM or SRAM capacity > 0 (both are 0)"
    )


def test_capacity_without_bandwidth(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('"5 TB/s"', "0"))
    assert "fields.hbm_bw_bytes_per_s: HBM capacity is 1e+11 B but bandwidth is 0 B/s" in msg
    assert "both must be > 0 or both 0" in msg


def test_unknown_topology(tmp_path):
    msg = system_error(
        tmp_path,
        SYSTEM.replace(
            'topology = "switch"\nhop_latency_s = { value = "100',
            'topology = "torus"\nhop_latency_s = { value = "100',
        ),
    )
    assert "toy-8.toml: tiers[1] (link).topology: unknown topology 'torus'; did you mean" in msg
    assert "(allowed: switch, full, ring, torus2d, torus3d, mesh2d)" in msg


def test_unknown_grade(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('grade = "R" }', 'grade = "X" }', 1))
    assert "toy.toml: fields.hbm_capacity_bytes.grade: unknown grade 'X'; allowed: R (" in msg
    assert "D (derived" in msg and "A (named assumption" in msg


def test_missing_source(tmp_path):
    msg = chip_error(
        tmp_path,
        CHIP.replace(
            '{ value = "100 GB", source = "https://example.org/toy", ', '{ value = "100 GB", '
        ),
    )
    assert "toy.toml: fields.hbm_capacity_bytes.source: missing source" in msg


def test_secondary_grade_needs_url(tmp_path):
    msg = chip_error(
        tmp_path, CHIP.replace('"https://example.org/toy", grade = "R"', '"a blog", grade = "R"', 1)
    )
    assert "fields.hbm_capacity_bytes.source: grade R needs an http(s):// address" in msg


def test_derived_grade_needs_note(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('grade = "R" }', 'grade = "D" }', 1))
    assert "fields.hbm_capacity_bytes.note: grade D needs a note stating the arithmetic" in msg


def test_nan_rejected(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('"5 TB/s"', '"nan TB/s"'))
    assert "fields.hbm_bw_bytes_per_s.value: 'nan TB/s' is NaN" in msg


def test_inf_rejected_where_not_allowed(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('"5 TB/s"', '"inf TB/s"'))
    assert (
        "fields.hbm_bw_bytes_per_s.value: 'inf TB/s' = inf is not allowed; allowed: 0 B/s ≤ x"
        in msg
    )


def test_inf_domain_only_on_outermost_tier(tmp_path):
    text = SYSTEM.replace("domain_chips = { value = 1,", 'domain_chips = { value = "inf",')
    msg = system_error(tmp_path, text)
    assert "tiers[0] (die).domain_chips.value: 'inf' = inf is not allowed" in msg


def test_truncated_toml_gives_parser_line(tmp_path):
    msg = chip_error(tmp_path, CHIP[: CHIP.index("[fields]") + 5])
    assert "toy.toml: invalid TOML:" in msg and "line 4" in msg


def test_unparseable_value(tmp_path):
    msg = chip_error(tmp_path, CHIP.replace('"5 TB/s"', "5 TB/s"))
    assert "toy.toml: invalid TOML:" in msg and "line 9" in msg


def test_non_utf8_bytes(tmp_path):
    p = write(tmp_path, "chips", "toy", CHIP.replace("Toy chip", "Toy chip é"), encoding="latin-1")
    msg = error(db.load_chip, "toy", root=tmp_path)
    offset = p.read_bytes().index(b"\xe9")
    assert msg.endswith(
        f"toy.toml: not UTF-8 text: byte 0xe9 at offset {offset}; save the file as UTF-8"
    )


def test_directory_where_file_expected(tmp_path):
    (tmp_path / "chips" / "oops.toml").mkdir(parents=True)
    msg = error(db.load_chip, "h100", root=tmp_path)
    assert msg.endswith("oops.toml: is a directory; expected a .toml file")
    msg = error(db.load_model, tmp_path)
    assert "is a directory; expected a model .toml or a config.json" in msg
    (tmp_path / "cfg.json").mkdir()
    assert "is a directory" in error(db.load_model, str(tmp_path / "cfg.json"))


def test_missing_model_file(tmp_path):
    msg = error(db.load_model, str(tmp_path / "nope.toml"))
    assert msg.endswith("nope.toml: no such file; expected a model .toml or a config.json")


def test_system_with_unknown_chip(tmp_path):
    msg = system_error(tmp_path, SYSTEM.replace('chip = "h100-sxm"', 'chip = "h10"'))
    assert msg.endswith("toy-8.toml: chip: unknown chip 'h10'; did you mean h100-sxm?")


def test_name_must_match_file(tmp_path):
    msg = chip_error(tmp_path, CHIP, name="other")
    assert msg.endswith("other.toml: name: 'toy' differs from the file name; rename one to 'other'")


def test_first_tier_must_be_die(tmp_path):
    msg = system_error(tmp_path, SYSTEM.replace('name = "die"', 'name = "chip"'))
    assert (
        "tiers[0] (chip).name: the first tier must be the on-die network 'die', got 'chip'" in msg
    )


def test_domains_must_grow(tmp_path):
    msg = system_error(
        tmp_path, SYSTEM.replace("domain_chips = { value = 8,", "domain_chips = { value = 1,")
    )
    assert "tiers[1] (link).domain_chips: 1 must exceed the previous tier's 1" in msg


def test_max_chips_within_outer_domain(tmp_path):
    msg = system_error(
        tmp_path, SYSTEM.replace("max_chips = { value = 8,", "max_chips = { value = 16,")
    )
    assert msg.endswith("toy-8.toml: max_chips: 16 exceeds the outermost tier's domain_chips 8")


def test_fractional_count(tmp_path):
    msg = system_error(
        tmp_path, SYSTEM.replace("max_chips = { value = 8,", "max_chips = { value = 7.5,")
    )
    assert "max_chips.value: '7.5' = 7.5 is not allowed; allowed: an integer 1 ≤ x (or inf)" in msg


def test_duplicate_alias(tmp_path):
    write(tmp_path, "chips", "toy", CHIP)
    write(
        tmp_path,
        "chips",
        "toy2",
        CHIP.replace('name = "toy"', 'name = "toy2"').replace("Toy chip", "Toy 2"),
    )
    msg = error(db.load_chip, "toy", root=tmp_path)
    assert "toy2.toml: aliases: 'toy-chip' is already a name of toy" in msg


PRECISIONS = """\
[formats.bf16]
value = "2 B"
source = "https://example.org/bf16"
grade = "R"

[recipes.half]
display_name = "half"
source = "https://example.org/half"
grade = "R"
attn_weight_bytes = "bf16"
ffn_weight_bytes = "bf16"
expert_weight_bytes = "bf16"
embed_weight_bytes = "bf16"
kv_bytes = "bf16"
act_bytes = "bf16"
state_bytes = "bf16"
attn_compute_bits = 16
ffn_compute_bits = 16
expert_compute_bits = 16
"""


def precision_error(tmp_path, text):
    (tmp_path / "precisions.toml").write_text(text)
    return error(db.load_precision, "half", root=tmp_path)


def test_precision_fixture_loads(tmp_path):
    (tmp_path / "precisions.toml").write_text(PRECISIONS)
    assert db.load_precision("half", root=tmp_path).kv_bytes == 2


def test_precision_unknown_format(tmp_path):
    msg = precision_error(tmp_path, PRECISIONS.replace('kv_bytes = "bf16"', 'kv_bytes = "bf61"'))
    assert msg.endswith(
        "precisions.toml: recipes.half.kv_bytes: unknown format 'bf61'; did you mean bf16? (allowed: bf16)"
    )


def test_precision_compute_bits(tmp_path):
    msg = precision_error(
        tmp_path, PRECISIONS.replace("ffn_compute_bits = 16", "ffn_compute_bits = 6")
    )
    assert msg.endswith(
        "recipes.half.ffn_compute_bits: 6 is not allowed; allowed: 4, 8 or 16 (which peak applies)"
    )


def test_precision_format_range(tmp_path):
    msg = precision_error(tmp_path, PRECISIONS.replace('"2 B"', '"0 B"'))
    assert (
        "precisions.toml: formats.bf16.value: '0 B' = 0 B is not allowed; allowed: 0 B < x ≤ 8 B"
        in msg
    )


MODEL = """\
name = "toy-model"
source = "https://example.org/toy-model/config.json"
grade = "C"
precision = "bf16"
[architecture]
n_layers = 2
d_model = 64
vocab_size = 100
"""


def model_error(tmp_path, text):
    write(tmp_path, "models", "toy-model", text)
    return error(db.load_model, "toy-model", root=tmp_path)


def test_model_unknown_architecture_field(tmp_path):
    msg = model_error(tmp_path, MODEL.replace("n_layers", "n_layer"))
    assert "toy-model.toml: architecture.n_layer: unknown field; did you mean n_layers?" in msg


def test_model_unknown_precision(tmp_path):
    msg = model_error(tmp_path, MODEL.replace('"bf16"', '"nvfp5"'))
    assert msg.endswith("toy-model.toml: precision: unknown precision 'nvfp5'; did you mean nvfp4?")


def test_model_non_number(tmp_path):
    msg = model_error(tmp_path, MODEL.replace("d_model = 64", 'd_model = "64"'))
    assert msg.endswith("toy-model.toml: architecture.d_model: expected a plain number, got '64'")


def test_model_zero_layers(tmp_path):
    msg = model_error(tmp_path, MODEL.replace("n_layers = 2", "n_layers = 0"))
    assert "architecture.n_layers: '0' = 0 is not allowed; allowed: 0 < x" in msg


def test_model_missing_grade(tmp_path):
    msg = model_error(tmp_path, MODEL.replace('grade = "C"\n', ""))
    assert msg.endswith("toy-model.toml: grade: missing required field")
