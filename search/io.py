"""Atomic output files: write to a temporary file in the same folder, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
    """Write ``data`` to ``path`` atomically (no half-written file on error or Ctrl-C).

    Raises :class:`UserError` naming ``flag`` if the folder does not exist or the path is a
    directory. The file gets the permissions a plain ``open(path, "w")`` would give
    (``0o666`` less the umask; ``mkstemp`` alone would leave it owner-only).
    """
    path = check_output_path(path, flag)
    folder = path.parent
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


PLOT_SUFFIXES = ("png", "svg", "pdf")


def check_plot_path(path, flag: str = "--plot") -> str:
    """Validate a plot file name up front (suffix, folder); return the format."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in PLOT_SUFFIXES:
        raise UserError(f"{flag} {path}: unsupported format; use a .png, .svg or .pdf file name")
    check_output_path(path, flag)
    return suffix
