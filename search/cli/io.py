"""Output files of the command line: paths checked before a long run, written atomically."""

from __future__ import annotations

from pathlib import Path

from hardware_db.textfile import write_atomic
from search.errors import UserError


def check_output_path(path, flag: str = "--out") -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file can be written there (its folder
    exists and it is not a directory); a one-line :class:`UserError` naming ``flag``
    otherwise. Commands call it before a long run so bad paths fail fast."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: folder {folder} does not exist")
    return path


def atomic_write(path, data: str | bytes, flag: str = "--out") -> Path:
    """Write ``data`` to ``path`` atomically (:func:`hardware_db.textfile.write_atomic`)
    after :func:`check_output_path`: a bad path is a one-line :class:`UserError` naming
    ``flag``."""
    return write_atomic(check_output_path(path, flag), data)


PLOT_SUFFIXES = ("png", "svg", "pdf")


def check_plot_path(path, flag: str = "--plot") -> str:
    """Validate a plot file name up front (suffix, folder); return the format."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in PLOT_SUFFIXES:
        raise UserError(f"{flag} {path}: unsupported format; use a .png, .svg or .pdf file name")
    check_output_path(path, flag)
    return suffix
