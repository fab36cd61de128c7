"""API argument names → command-line flags, for error messages.

Library functions name their own arguments in errors (``top 0: must be ≥ 1``,
:class:`search.errors.UserError` with ``arg="top"``); the command line shows the flag
that fed the argument instead (``--top 0: must be ≥ 1``).

>>> from search.errors import UserError
>>> flag_message(UserError("top_sensitivities 2000: out of range", arg="top_sensitivities"))
'--top 2000: out of range'
>>> flag_message(UserError("chips_max 0: must be ≥ 1", arg="chips_max"))
'--chips-max 0: must be ≥ 1'
"""

from __future__ import annotations

FLAGS = {
    "axis": "--axis",
    "targets": "--utps",
    "time_limit_s": "--time-limit",
    "top_sensitivities": "--top",
    "values": "--range",
    "n_starts": "--starts",
    "rows": "--measurements",
}
"""Arguments whose flag is not ``--`` + the name with ``_`` → ``-``."""


def flag_of(arg: str) -> str:
    """The flag of API argument ``arg``."""
    return FLAGS.get(arg, "--" + arg.replace("_", "-"))


def flag_message(e: Exception) -> str:
    """The first line of ``e``'s message, its leading argument name replaced by the flag."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    arg = getattr(e, "arg", None)
    if arg and not arg.startswith("-") and msg.startswith(arg):
        rest = msg[len(arg) :]
        if not rest or rest[0] in " =:":
            return flag_of(arg) + rest
    return msg
