"""The ``tpsopt`` command line.

Each sub-command lives in its own module in this package and exposes ``register(sub)``,
which adds its parser to the ``argparse`` sub-parsers and sets ``func`` to its runner
``run(args) -> int``. Bad input raises :class:`search.errors.UserError` or
:class:`hardware_db.DbError`; :func:`main` prints it as one line on stderr (an API
argument's name replaced by its flag, :mod:`search.cli.flags`) and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from search import _devices  # importing search has set the default device count

COMMANDS = (
    "list_cmd",
    "show_cmd",
    "import_cmd",
    "eval_cmd",
    "grid_cmd",
    "optimize_cmd",
    "codesign_cmd",
    "target_cmd",
    "sensitivity_cmd",
    "sweep_cmd",
    "validate_cmd",
    "calibrate_cmd",
)
"""Modules of this package that provide sub-commands, in the order of ``--help``."""


DEVICES_HELP = (
    "JAX CPU devices to shard over (default: env TPSOPT_DEVICES, else one per available "
    "core; 1 = a single device)"
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _Version(argparse.Action):
    """``--version``: looks the version up only when asked (``importlib.metadata`` is slow
    to import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("tpsopt")
        except PackageNotFoundError:  # running from a source tree
            ver = "0+unknown"
        parser.exit(0, f"tpsopt {ver}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tpsopt",
        description="Decode cost model and search: single-user tokens/s, what limits it, "
        "and what the interconnect would have to become to go faster.",
    )
    parser.add_argument("--version", action=_Version, help="show program's version number and exit")
    parser.add_argument("--devices", default=None, metavar="N", help=DEVICES_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"search.cli.{name}").register(sub)
    for p in sub.choices.values():  # also after the command: tpsopt grid --devices 4 ...
        p.add_argument("--devices", default=argparse.SUPPRESS, metavar="N", help=DEVICES_HELP)
    return parser


def main(argv=None) -> int:
    from hardware_db import DbError
    from hardware_db.loader import snapshot
    from search.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.devices is not None or os.environ.get(_devices.ENV):
            _devices.configure(args.devices)  # before any command imports JAX
        with snapshot():  # one view of the database per command (files stat-ed once)
            return int(args.func(args) or 0)
    except (UserError, DbError) as e:
        from search.cli.flags import flag_message

        print(f"tpsopt {args.command}: error: {flag_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tpsopt {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
