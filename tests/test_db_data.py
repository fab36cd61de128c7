"""The shipped database: every file loads, every number is sourced, key values are right."""

import dataclasses
import math

import pytest

import hardware_db as db
from costmodel.specs import TOPOLOGIES, ChipSpec, Precision, SystemSpec
from hardware_db.loader import DATA_ROOT, describe
from hardware_db.validate import GRADES

CHIPS = db.list_names("chips")
SYSTEMS = db.list_names("systems")
PRECISIONS = db.list_names("precisions")
MODELS = db.list_names("models")

REQUIRED_CHIPS = [
    "a100",
    "h100-sxm",
    "h200",
    "b200",
    "b300",
    "gb200",
    "gb300",
    "mi300x",
    "mi325x",
    "mi355x",
    "tpu-v5e",
    "tpu-v5p",
    "tpu-v6e",
    "tpu-ironwood",
    "gaudi3",
    "lpu-lp30",
    "reticle-sram-die",
]
REQUIRED_SYSTEMS = [
    "hgx-h100-8",
    "hgx-h200-8",
    "hgx-b200-8",
    "hgx-b300-8",
    "gb200-nvl72",
    "gb300-nvl72",
    "mi300x-8",
    "tpu-v5p-pod",
    "lpu-rack",
    "reticle-die",
]
REQUIRED_PRECISIONS = [
    "bf16",
    "fp8",
    "fp8-kv",
    "nvfp4",
    "nvfp4-moe",
    "fp8-block",
    "int4-experts",
    "mxfp4-experts",
    "int8",
    "int4-awq",
]


def test_required_entries_exist():
    assert set(REQUIRED_CHIPS) <= set(CHIPS)
    assert set(REQUIRED_SYSTEMS) <= set(SYSTEMS)
    assert set(REQUIRED_PRECISIONS) <= set(PRECISIONS)


def test_every_file_is_indexed():
    """Every data file is reachable by name; models also from ``extra_models/`` (hand-written
    models without a config.json copy, e.g. Llama-2-70B of the measurement set)."""
    for kind in ("chips", "systems", "models"):
        files = list((DATA_ROOT / kind).glob("*.toml"))
        if kind == "models":
            files += list((DATA_ROOT / "extra_models").glob("*.toml"))
        assert sorted(p.stem for p in files) == db.list_names(kind)


@pytest.mark.parametrize("name", CHIPS)
def test_chip_loads(name):
    c = db.load_chip(name)
    assert isinstance(c, ChipSpec)
    assert c.peak_flops_per_s_bf16 > 0
    assert c.hbm_capacity_bytes > 0 or c.sram_capacity_bytes > 0
    for f in ("peak_flops_per_s_fp8", "peak_flops_per_s_fp4", "hbm_bw_bytes_per_s"):
        assert math.isfinite(getattr(c, f)) and getattr(c, f) >= 0


@pytest.mark.parametrize("name", SYSTEMS)
def test_system_loads(name):
    s = db.load_system(name)
    assert isinstance(s, SystemSpec)
    assert s.tiers[0].name == "die" and s.tiers[0].domain_chips == 1
    domains = [t.domain_chips for t in s.tiers]
    assert domains == sorted(domains)
    for t in s.tiers:
        assert t.topology in TOPOLOGIES
        assert 0 <= t.hop_latency_s < 1 and 0 <= t.overhead_s < 1
        assert t.bw_bytes_per_s > 0
        assert t.domain_chips <= s.max_chips


@pytest.mark.parametrize("name", PRECISIONS)
def test_precision_loads(name):
    p = db.load_precision(name)
    assert isinstance(p, Precision)
    for f in ("attn_compute_bits", "ffn_compute_bits", "expert_compute_bits"):
        assert getattr(p, f) in (4.0, 8.0, 16.0)


@pytest.mark.parametrize("name", MODELS)
def test_model_loads(name):
    spec, prec = db.load_model(name)
    assert spec.n_layers > 0 and spec.d_model > 0 and spec.vocab_size > 0
    assert isinstance(prec, Precision)


def _numbers(d: dict):
    """Every (label, field dict) stated in a described entry."""
    if d["kind"] == "systems":
        yield "max_chips", d["max_chips"]
        for t in d["tiers"]:
            for k, f in t["fields"].items():
                yield f"{t['name']}.{k}", f
    elif d["kind"] == "models":
        for k, f in d["published"].items():
            yield k, f
    else:
        yield from d["fields"].items()


ALL = [(k, n) for k in ("chips", "systems", "precisions", "models") for n in db.list_names(k)]


@pytest.mark.parametrize("kind,name", ALL)
def test_every_number_has_source_and_grade(kind, name):
    d = describe(kind, name)
    for label, f in _numbers(d):
        if not f["text"]:  # optional field left at its record default
            assert f["value"] == 0 and f["grade"] == "", label
            continue
        assert f["source"].strip(), label
        assert f["grade"] in GRADES, label
        if f["grade"] in ("D", "A"):
            assert f["note"].strip(), f"{label}: grade {f['grade']} needs a note"
        if f["grade"] in ("R", "C", "S", "U"):
            assert "http" in f["source"], label
    if kind in ("precisions", "models"):
        assert d["source"] and d["grade"] in GRADES


# ----------------------------------------------------------------------------- values


def test_h100_values():
    c = db.load_chip("h100-sxm")
    assert c.peak_flops_per_s_bf16 == 989.4e12
    assert c.peak_flops_per_s_fp8 == 1978.9e12
    assert c.peak_flops_per_s_fp4 == 0  # no FP4 on Hopper
    assert c.hbm_bw_bytes_per_s == 3.35e12
    assert c.hbm_capacity_bytes == 80e9
    assert c.sram_capacity_bytes == 0  # L2 is a cache, not a placement tier
    assert c.tdp_w == 700


def test_sram_chips_hold_weights_in_sram():
    """LP30 is SRAM-only; the hypothetical reticle die adds a named-assumption DRAM
    backing store (half a B200: 96 GB, 4 TB/s) so that die counts below the fit exist."""
    assert db.load_chip("lpu-lp30").hbm_capacity_bytes == 0
    reticle = db.load_chip("reticle-sram-die")
    assert reticle.hbm_capacity_bytes == 96e9 and reticle.hbm_bw_bytes_per_s == 4e12
    for name in ("lpu-lp30", "reticle-sram-die"):
        c = db.load_chip(name)
        assert c.sram_capacity_bytes == 500e6
        assert c.sram_bw_bytes_per_s == 150e12
        assert c.peak_flops_per_s_fp8 == 1.23e15  # 315 PF / 256, rounded


def test_reticle_die_is_hypothetical():
    assert describe("chips", "reticle-sram-die")["hypothetical"] is True
    assert describe("chips", "lpu-lp30")["hypothetical"] is False


def test_one_way_bandwidths_are_half_of_bidirectional():
    assert db.load_system("gb200-nvl72").tiers[1].bw_bytes_per_s == 1.8e12 / 2
    assert db.load_system("hgx-h100-8").tiers[1].bw_bytes_per_s == 900e9 / 2
    assert db.load_system("lpu-rack").tiers[1].bw_bytes_per_s == 2.5e12 / 2
    assert db.load_system("reticle-die").tiers[1].bw_bytes_per_s == 2.5e12 / 2
    assert db.load_system("mi300x-8").tiers[1].bw_bytes_per_s == 7 * 128e9 / 2
    # TPU v5p: 90 GB/s one-way per link x 6 links
    assert db.load_system("tpu-v5p-pod").tiers[1].bw_bytes_per_s == 6 * 90e9


def test_max_chips_and_domains():
    assert db.load_system("hgx-h100-8").max_chips == 8
    assert db.load_system("gb200-nvl72").max_chips == 72
    assert db.load_system("lpu-rack").max_chips == 256
    assert db.load_system("gb200-nvl72").tiers[1].domain_chips == 72


def test_tpu_v5p_pod():
    s = db.load_system("tpu-v5p-pod")
    ici = s.tiers[1]
    assert ici.topology == "torus3d"
    assert ici.hop_latency_s == 1e-6


def test_reticle_die_free_variable():
    s = db.load_system("reticle-die")
    assert math.isinf(s.max_chips) and math.isinf(s.tiers[-1].domain_chips)
    die, cross = s.tiers
    assert die.hop_latency_s == 30e-9  # Dally corner-to-corner
    assert cross.overhead_s == 1e-6  # LIMINAL ~1 us exposed sync
    s2 = db.load_system("reticle-die", max_chips=2048)
    assert s2.max_chips == 2048 and s2.tiers[-1].domain_chips == 2048


def test_max_chips_override_clips_domains():
    s = db.load_system("gb200-nvl72", max_chips=144)
    assert s.max_chips == 144
    assert [t.domain_chips for t in s.tiers] == [1, 72, 144]
    s = db.load_system("gb200-nvl72", max_chips=36)
    assert [t.domain_chips for t in s.tiers] == [1, 36, 36]


@pytest.mark.parametrize("bad", [0, -3, float("nan"), 1e9, "many"])
def test_max_chips_override_rejected(bad):
    with pytest.raises(db.DbError, match="max_chips"):
        db.load_system("lpu-rack", max_chips=bad)


def test_scale_up_latency_is_below_measured_small_collectives():
    """SOL must be a lower bound: hop + overhead of every NVLink/xGMI tier sits below the
    fastest measured small all-reduce (0.5 us, 4xH800 in a CUDA graph, measurements C13)."""
    for name in SYSTEMS:
        for t in db.load_system(name).tiers:
            if t.name in ("nvlink", "xgmi"):
                assert t.hop_latency_s + t.overhead_s < 0.5e-6, (name, t.name)
                assert 2 * (t.hop_latency_s + t.overhead_s) < 0.5e-6  # two-shot too
            if t.name == "scale-out":
                # IB 64 B same-leaf end-to-end 2.8 us (measurements C17)
                assert t.hop_latency_s + t.overhead_s < 2.8e-6, name


def test_gpu_die_tiers_are_not_modelled():
    for name in SYSTEMS:
        s = db.load_system(name)
        if s.chip.sram_capacity_bytes == 0:
            assert s.tiers[0].hop_latency_s == 0 and s.tiers[0].overhead_s == 0


def test_fp8_ffn_recipe():
    """Meta's Llama-3.1 FP8 recipe: FP8 feed-forward weights and compute, BF16 attention,
    embedding and KV (Llama 3 paper section 6.2); ``fp8`` quantises every linear layer."""
    ffn, all8 = db.load_precision("fp8-ffn"), db.load_precision("fp8")
    assert (ffn.attn_weight_bytes, ffn.ffn_weight_bytes, ffn.kv_bytes) == (2.0, 1.0, 2.0)
    assert (ffn.attn_compute_bits, ffn.ffn_compute_bits) == (16, 8)
    same = dataclasses.replace(ffn, attn_weight_bytes=1.0, attn_compute_bits=8)
    assert dataclasses.asdict(same) == dataclasses.asdict(all8)


def test_precision_format_arithmetic():
    assert db.load_precision("nvfp4").expert_weight_bytes == 0.5 + 1 / 16
    assert db.load_precision("mxfp4-experts").expert_weight_bytes == 0.5 + 1 / 32
    assert db.load_precision("int4-experts").expert_weight_bytes == 0.5 + 2 / 32
    assert db.load_precision("fp8-block").ffn_weight_bytes == 1 + 4 / 16384
    assert db.load_precision("int4-awq").attn_weight_bytes == 0.5 + 2.5 / 128


def test_precision_recipes():
    p = db.load_precision("int4-experts")
    assert (p.attn_weight_bytes, p.ffn_weight_bytes, p.kv_bytes) == (2, 2, 2)
    assert p.expert_compute_bits == 16  # W4A16
    p = db.load_precision("nvfp4-moe")
    assert p.attn_compute_bits == 16 and p.ffn_compute_bits == 4 and p.expert_compute_bits == 4
    assert db.load_precision("fp8-kv").kv_bytes == 1 and db.load_precision("fp8").kv_bytes == 2
    n = db.load_precision("nvfp4")
    assert n.kv_bytes == n.embed_weight_bytes == 0.5625 and n.attn_compute_bits == 4


def test_defaults_are_exported():
    assert db.DEFAULT_SYSTEM in SYSTEMS
    assert db.DEFAULT_MODEL == "kimi-k2.5"
    if db.DEFAULT_MODEL in MODELS:  # the model files are written separately
        spec, prec = db.load_model("moonshotai/Kimi-K2.5")
        assert spec.n_layers == 61


def test_loading_is_cached():
    """Repeated loads re-stat the files but neither re-read nor re-validate them (the
    parsed TOML and the validated index are cached on each file's mtime and size)."""
    from hardware_db import loader

    def loads():
        return db.load_system("gb200-nvl72"), db.load_chip("h100"), db.load_precision("bf16")

    first = loads()
    parsed, built = loader._parse.cache_info().misses, loader._build_index.cache_info().misses
    for _ in range(5):
        assert loads() == first
    assert loader._parse.cache_info().misses == parsed
    assert loader._build_index.cache_info().misses == built
