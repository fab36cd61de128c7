"""Output files: atomic, with ordinary permissions, and checked before a long run."""

from __future__ import annotations

import os
import stat

import pytest

from search.cli.io import atomic_write, check_output_path, check_plot_path
from search.errors import UserError


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    out = atomic_write(tmp_path / "out.txt", "hello")
    assert out.read_text() == "hello"
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["out.txt", "plain.txt"]  # no temporary left


def test_atomic_write_leaves_nothing_when_writing_fails(tmp_path):
    with pytest.raises(TypeError):
        atomic_write(tmp_path / "bad.bin", object())  # not str/bytes: the write raises
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("old content that is longer\n")
    atomic_write(p, b"new\n")
    assert p.read_bytes() == b"new\n"


@pytest.mark.parametrize(
    ("check", "name", "expect"),
    [
        (check_output_path, "{dir}", "is a directory"),
        (check_output_path, "{dir}/missing/x.csv", "does not exist"),
        (check_plot_path, "{dir}/x.jpg", "unsupported format; use a .png, .svg or .pdf"),
        (check_plot_path, "{dir}/missing/x.png", "does not exist"),
    ],
)
def test_bad_output_paths_name_the_flag(tmp_path, check, name, expect):
    with pytest.raises(UserError, match="--flag") as e:
        check(name.format(dir=tmp_path), "--flag")
    assert expect in str(e.value)


def test_plot_format_is_the_suffix(tmp_path):
    assert check_plot_path(tmp_path / "a.SVG") == "svg"
