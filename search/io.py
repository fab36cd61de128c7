"""Atomic output files: write to a temporary file in the same folder, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from search.errors import UserError


def atomic_write(path, data: str | bytes, flag: str = "--out") -> Path:
    """Write ``data`` to ``path`` atomically (no half-written file on error or Ctrl-C).

    Raises :class:`UserError` naming ``flag`` if the folder does not exist or the path is a
    directory.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: folder {folder} does not exist")
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


PLOT_SUFFIXES = ("png", "svg", "pdf")


def check_plot_path(path, flag: str = "--plot") -> str:
    """Validate a plot file name up front (suffix, folder); return the format."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in PLOT_SUFFIXES:
        raise UserError(f"{flag} {path}: use a .png, .svg or .pdf file name")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: folder {folder} does not exist")
    return suffix
