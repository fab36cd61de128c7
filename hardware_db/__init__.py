"""Hardware, system and model database: sourced TOML data, loaders, validation, import."""


class DbError(ValueError):
    """Bad or missing database entry or input file; the message is one line naming the
    file, the field, the value and what is allowed."""
