"""hardware_db.loader.snapshot: one view of the database per CLI command."""

from __future__ import annotations

from hardware_db import loader


def _count_listings(monkeypatch):
    calls = []
    real = loader._kind_files

    def counted(kind, root):
        calls.append(kind)
        return real(kind, root)

    monkeypatch.setattr(loader, "_kind_files", counted)
    return calls


def test_files_listed_once_per_kind_inside_a_snapshot(monkeypatch):
    calls = _count_listings(monkeypatch)
    with loader.snapshot():
        for _ in range(5):
            loader.index("models")
        loader.index("precisions")
    assert sorted(calls) == ["models", "precisions"]
    assert not loader._SNAPSHOT  # popped on exit


def test_outside_a_snapshot_every_lookup_checks_the_files(monkeypatch):
    calls = _count_listings(monkeypatch)
    for _ in range(3):
        loader.index("models")
    assert calls.count("models") == 3
