"""Unit strings → SI (hardware_db.units): closed-form conversion table and errors."""

import math

import pytest

from hardware_db.units import UnitError, dimension_of, human, to_si

TABLE = [
    # capacities (decimal and binary)
    ("80 GB", "bytes", 80e9),
    ("500 MB", "bytes", 500e6),
    ("2 KB", "bytes", 2000.0),
    ("2 kB", "bytes", 2000.0),
    ("1 TB", "bytes", 1e12),
    ("1 B", "bytes", 1.0),
    ("1 KiB", "bytes", 1024.0),
    ("1 MiB", "bytes", 2.0**20),
    ("95 GiB", "bytes", 95 * 2.0**30),
    ("1 TiB", "bytes", 2.0**40),
    ("0.5625 B", "bytes", 0.5625),
    # bandwidths, bytes and bits
    ("3.35 TB/s", "bytes_per_s", 3.35e12),
    ("900 GB/s", "bytes_per_s", 900e9),
    ("1 PB/s", "bytes_per_s", 1e15),
    ("12 MB/s", "bytes_per_s", 12e6),
    ("7 B/s", "bytes_per_s", 7.0),
    ("400 Gb/s", "bytes_per_s", 50e9),
    ("400 Gbps", "bytes_per_s", 50e9),
    ("1.6 Tb/s", "bytes_per_s", 200e9),
    ("1 GiB/s", "bytes_per_s", 2.0**30),
    # compute
    ("989.4 TFLOP/s", "flops_per_s", 989.4e12),
    ("989.4 TFLOPS", "flops_per_s", 989.4e12),
    ("1.23 PFLOP/s", "flops_per_s", 1.23e15),
    ("2 EFLOP/s", "flops_per_s", 2e18),
    ("5 GFLOP/s", "flops_per_s", 5e9),
    ("3 kFLOP/s", "flops_per_s", 3e3),
    ("7 MFLOP/s", "flops_per_s", 7e6),
    ("393 TOPS", "flops_per_s", 393e12),
    # time
    ("1 s", "s", 1.0),
    ("1.5 ms", "s", 1.5e-3),
    ("1.5 us", "s", 1.5e-6),
    ("1.5 µs", "s", 1.5e-6),
    ("1.5 μs", "s", 1.5e-6),
    ("30 ns", "s", 30e-9),
    ("100 ns", "s", 1e-7),
    # power and energy
    ("700 W", "w", 700.0),
    ("1.2 kW", "w", 1200.0),
    ("4 pJ/B", "j_per_byte", 4e-12),
    ("4 pJ/byte", "j_per_byte", 4e-12),
    ("0.5 pJ/bit", "j_per_byte", 4e-12),
    ("1 J/B", "j_per_byte", 1.0),
    ("0.3 pJ/FLOP", "j_per_flop", 0.3e-12),
    # counts, ratios, zero, inf
    (72, "count", 72.0),
    ("72", "count", 72.0),
    ("inf", "count", math.inf),
    (0.5625, "ratio", 0.5625),
    (0, "bytes_per_s", 0.0),
    ("0", "flops_per_s", 0.0),
    ("0 s", "s", 0.0),
    ("1e3 GB/s", "bytes_per_s", 1e12),
]


@pytest.mark.parametrize("text,dim,expected", TABLE)
def test_conversion_table(text, dim, expected):
    assert to_si(text, dim) == pytest.approx(expected, rel=1e-15)


def test_conversion_is_exact_decimal():
    # rational arithmetic before rounding: no 1.0000000000000001e-07
    assert to_si("100 ns", "s") == 1e-7
    assert to_si("30 ns", "s") == 3e-8
    assert to_si("0.1 us", "s") == 1e-7


@pytest.mark.parametrize(
    "text,dim,needle",
    [
        ("3 GB", "bytes_per_s", "unit 'GB' in '3 GB' is a capacity (bytes), not a bandwidth"),
        ("3 TB/s", "bytes", "is a bandwidth (bytes/s), not a capacity"),
        ("1 us", "bytes_per_s", "is a time (seconds), not a bandwidth"),
        ("2 TFLOP/s", "s", "is a compute rate (FLOP/s), not a time"),
        ("3 tb/s", "bytes_per_s", "unknown unit 'tb/s' in '3 tb/s' (did you mean TB/s or Tb/s?)"),
        ("3 furlongs", "bytes", "unknown unit 'furlongs'"),
        ("fast", "s", "cannot read 'fast' as a number with a unit"),
        (3.35, "bytes_per_s", "bare number 3.35 has no unit"),
        ("3.35", "bytes_per_s", "'3.35' has no unit"),
        (True, "count", "is a boolean"),
        ([1], "count", "is a list"),
    ],
)
def test_conversion_errors(text, dim, needle):
    with pytest.raises(UnitError) as e:
        to_si(text, dim)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_wrong_unit_lists_allowed_units():
    with pytest.raises(UnitError, match=r"allowed units: B/s, KB/s, MB/s, GB/s, TB/s"):
        to_si("3 GB", "bytes_per_s")


@pytest.mark.parametrize(
    "field,dim",
    [
        ("peak_flops_per_s_bf16", "flops_per_s"),
        ("hbm_bw_bytes_per_s", "bytes_per_s"),
        ("hbm_capacity_bytes", "bytes"),
        ("kv_bytes", "bytes"),
        ("hop_latency_s", "s"),
        ("overhead_s", "s"),
        ("tdp_w", "w"),
        ("hbm_energy_j_per_byte", "j_per_byte"),
        ("flop_energy_j_per_flop", "j_per_flop"),
        ("domain_chips", "count"),
        ("max_chips", "count"),
        ("max_context_tokens", "count"),
        ("attn_compute_bits", "ratio"),
        ("n_layers", "ratio"),
    ],
)
def test_dimension_of(field, dim):
    assert dimension_of(field) == dim


@pytest.mark.parametrize(
    "x,dim,text",
    [
        (3.35e12, "bytes_per_s", "3.35 TB/s"),
        (80e9, "bytes", "80 GB"),
        (1e-7, "s", "100 ns"),
        (1e-6, "s", "1 µs"),
        (0.0, "s", "0 s"),
        (math.inf, "count", "inf"),
        (72.0, "count", "72"),
        (4e-12, "j_per_byte", "4 pJ/B"),
    ],
)
def test_human(x, dim, text):
    assert human(x, dim) == text
