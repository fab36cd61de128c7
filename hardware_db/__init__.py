"""Hardware, system and model database: sourced TOML data, loaders, validation, import.

Every number in ``hardware_db/data`` carries its source and evidence grade; unit strings
are converted to SI once, when a file is loaded (:mod:`hardware_db.units`), and every file
is validated there (:mod:`hardware_db.validate`, :mod:`hardware_db.schema`). The loaders
return the records of ``costmodel.specs``::

    from hardware_db import load_model, load_system
    model, precision = load_model("kimi-k2.5")
    system = load_system("reticle-die", max_chips=2048)
"""


class DbError(ValueError):
    """Bad or missing database entry or input file; the message is one line naming the
    file, the field, the value and what is allowed."""


from hardware_db.loader import (  # noqa: E402  (DbError must exist before the loader)
    DATA_ROOT,
    DEFAULT_MODEL,
    DEFAULT_SYSTEM,
    KINDS,
    describe,
    list_names,
    load_chip,
    load_model,
    load_precision,
    load_system,
    resolve,
)

__all__ = [
    "DATA_ROOT",
    "DEFAULT_MODEL",
    "DEFAULT_SYSTEM",
    "KINDS",
    "DbError",
    "describe",
    "list_names",
    "load_chip",
    "load_model",
    "load_precision",
    "load_system",
    "resolve",
]
