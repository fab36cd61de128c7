"""User-facing errors: one line, naming what is wrong and what is allowed; the one number
validator (:func:`check_number`)."""

import math


class UserError(ValueError):
    """Bad input from a user (argument, flag, file, field); the CLI prints it as one line
    and exits with status 2.

    A library function names its own API argument at the start of the message and passes
    it as ``arg`` (``UserError("top 0: must be ≥ 1", arg="top")``); the command line
    replaces that leading name with the flag that feeds it (``--top 0: must be ≥ 1``,
    :func:`search.cli.flags.flag_message`).
    """

    def __init__(self, message: str, arg: str | None = None):
        super().__init__(message)
        self.arg = arg


def check_number(
    arg: str, value, lo=None, hi=None, *, integer=False, lo_open=False, allow_inf=False, sep=" "
) -> float:
    """``value`` as a float if it is a number in range; else a one-line :class:`UserError`.

    The message starts ``"<arg><sep><value!r>: "`` and says what is allowed; ``arg`` names
    what was given (an API argument such as ``top``, or ``axis system.max_chips`` with
    ``sep="="``). ``lo``/``hi`` bound the value (``lo_open``: ``lo`` itself excluded);
    ``integer`` asks for a whole number; ``allow_inf`` lets ``±inf`` through (e.g. an
    unbounded chip count). ``None`` bounds are open.

    >>> check_number("batch", "8", 1, 1e9, integer=True)
    8.0
    >>> check_number("batch", 1.5, 1, 1e9, integer=True)
    Traceback (most recent call last):
    ...
    search.errors.UserError: batch 1.5: must be an integer in [1, 1000000000]
    """

    def show(x, none):
        if x is None:
            return none
        return str(int(x)) if integer and math.isfinite(x) else str(x)

    rng = f"{'(' if lo_open else '['}{show(lo, '-inf')}, {show(hi, 'inf')}]"
    head = f"{arg}{sep}{value!r}"
    key = arg.split()[0].split("=")[0]
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{head}: not a number; allowed {rng}", arg=key) from None
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise UserError(f"{head}: must be finite", arg=key)
    if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
        raise UserError(f"{head}: out of range; allowed {rng}{' (an integer)' * integer}", arg=key)
    if integer and math.isfinite(v) and v != round(v):
        raise UserError(f"{head}: must be an integer in {rng}", arg=key)
    return v
