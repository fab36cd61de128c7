"""User-facing errors: one line, naming what is wrong and what is allowed."""


class UserError(ValueError):
    """Bad input from a user (flag, file, field). The CLI prints it as one line, exit 2."""
