"""``tpsopt sweep --plot`` and ``tpsopt target --plot``: files written, non-empty, right format.

Small scenarios (Llama-3.1-8B on 8 H100s, three or four points) keep these fast; the plots'
content is checked by eye in the notebooks, here only that a valid file appears (and that a
bad file name writes nothing and exits 2).
"""

from __future__ import annotations

import json

import pytest

from search.cli import main

SCENARIO = ["--model", "llama-3.1-8b", "--system", "hgx-h100-8", "--context", "4096"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def check_file(path):
    data = path.read_bytes()
    assert len(data) > 1000, f"{path} is nearly empty ({len(data)} bytes)"
    if path.suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    elif path.suffix == ".svg":
        assert b"<svg" in data[:2000]
    elif path.suffix == ".pdf":
        assert data.startswith(b"%PDF")
    return data


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_sweep_plot_written(capsys, tmp_path, suffix):
    plot = tmp_path / f"sweep.{suffix}"
    rc, out, err = run(
        capsys, "sweep", *SCENARIO, "--param", "latency_scale", "--range", "0.1:10:3", "--log",
        "--plot", str(plot), "--json",
    )  # fmt: skip
    assert rc == 0, err
    data = json.loads(out)
    assert data["path"] == "latency_scale" and len(data["values"]) == 3
    check_file(plot)


def test_sweep_plot_tier_field(capsys, tmp_path):
    """A tier field (the issue's example path) plots too, with the table output."""
    plot = tmp_path / "hop.png"
    rc, out, err = run(
        capsys, "sweep", *SCENARIO, "--param", "tiers.nvlink.hop_latency_s",
        "--range", "1e-8:1e-6:3", "--log", "--plot", str(plot),
    )  # fmt: skip
    assert rc == 0, err
    assert "plot written" in out
    check_file(plot)


@pytest.mark.parametrize(("knob", "suffix"), [("latency", "png"), ("chips", "svg")])
def test_target_plot_written(capsys, tmp_path, knob, suffix):
    plot = tmp_path / f"target.{suffix}"
    rc, out, err = run(
        capsys, "target", *SCENARIO, "--utps", "200:1500:4", "--knob", knob,
        "--plot", str(plot), "--json",
    )  # fmt: skip
    assert rc == 0, err
    answers = json.loads(out)["answers"]
    assert len(answers) == 4 and any(a["status"] == "reachable" for a in answers)
    check_file(plot)


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", *SCENARIO, "--param", "latency_scale", "--range", "0.5:2:2"],
        ["target", *SCENARIO, "--utps", "500"],
    ],
)
def test_bad_plot_name_writes_nothing(capsys, tmp_path, argv):
    plot = tmp_path / "figure.jpg"
    rc, out, err = run(capsys, *argv, "--plot", str(plot))
    assert rc == 2
    assert out == ""
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "--plot" in err
    assert not plot.exists()
    assert list(tmp_path.iterdir()) == []
