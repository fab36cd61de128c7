"""Reading a user's or the database's text file: one clear line for every way it can fail.

Shared by the TOML loader, the measurement CSVs, ``config.json`` import and
``tpsopt eval --cases``: a directory where a file is expected, a missing or unreadable
file, and bytes that are not UTF-8 each give one line naming the file (and the byte and
offset), raised as ``error`` (:class:`~hardware_db.DbError` by default; the CLI's
``UserError`` for flags). Every file the project writes goes through
:func:`write_atomic`.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

from hardware_db import DbError
from hardware_db.validate import where


def decode_utf8(
    raw: bytes, path, name: str | None = None, error: type[Exception] = DbError, bom=True
) -> str:
    """``raw`` (the bytes of the file at ``path``) decoded as UTF-8, a leading byte-order
    mark dropped if ``bom``; otherwise ``error("<name>: not UTF-8 text: byte 0x.. at
    offset N; save the file as UTF-8")``, ``name`` defaulting to the path as
    :func:`~hardware_db.validate.where` gives it (computed only on error)."""
    try:
        return raw.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as e:
        at = f"byte 0x{raw[e.start]:02x} at offset {e.start}"
        raise error(
            f"{name or where(path)}: not UTF-8 text: {at}; save the file as UTF-8"
        ) from None


def check_file(path, expected: str, name: str | None = None, error=DbError) -> Path:
    """``path`` as a :class:`Path` if it is an existing file; otherwise one line naming it
    (``name``, default the path relative to the working directory) and ``expected``
    (e.g. ``"a .csv file"``)."""
    p = Path(path)
    if p.is_file():  # the common case: no name needed
        return p
    name = name or where(p)
    if p.is_dir():
        raise error(f"{name}: is a directory; expected {expected}")
    if not p.exists():
        raise error(f"{name}: no such file; expected {expected}")
    raise error(f"{name}: not a regular file; expected {expected}")


def read_text(path, expected: str, name: str | None = None, error=DbError) -> str:
    """The UTF-8 text of the file at ``path``, with :func:`check_file`'s and
    :func:`decode_utf8`'s one-line errors (and ``cannot read: <reason>`` for an OS error)."""
    p = check_file(path, expected, name, error)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise error(f"{name or where(p)}: cannot read: {e.strerror}") from None
    return decode_utf8(raw, p, name, error)


def csv_rows(text: str, path, columns) -> csv.DictReader:
    """A ``csv.DictReader`` over ``text`` whose header has every name of ``columns``;
    otherwise a :class:`DbError` naming the file, line 1 and the missing columns."""
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in columns if c not in header]
    if missing:
        raise DbError(f"{where(path)}:1: header: missing column(s) {', '.join(missing)}")
    return reader


def write_atomic(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then
    ``os.replace`` (no half-written file on error or Ctrl-C). The file gets the
    permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask;
    ``mkstemp`` alone would leave it owner-only). The folder must exist."""
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
