"""``tpsopt calibrate [--level six|e2e] [--write] [--out FILE]``: refit the calibrated mode.

``--level six`` (default): the six scalars per hardware × software family
(``calibration.toml``). ``--level e2e``: the kernel-level mode's offsets fitted end to end
to the serving measurements with leave-one-model-out validation
(``e2e_calibration.toml``, :mod:`search.fidelity.e2e_fit`); the report goes to stderr.
"""

from __future__ import annotations


def register(sub) -> None:
    from hardware_db.loader import CALIBRATION_TOML  # not .calibration: it imports JAX

    p = sub.add_parser(
        "calibrate",
        help="refit the calibrated mode to the measurements (prints or writes the TOML)",
        description="Fit efficiencies and fixed overheads per hardware x software family to "
        "hardware_db/data/measurements.csv (hierarchical MAP, prior scale by leave-out error) "
        "and print the calibration TOML, or write it with --write.",
    )
    p.add_argument(
        "--level",
        choices=("six", "e2e"),
        default="six",
        help="six: six scalars per family (calibration.toml); e2e: kernel-level offsets "
        "fitted to the serving measurements (e2e_calibration.toml)",
    )
    p.add_argument("--write", action="store_true", help=f"write {CALIBRATION_TOML.name}")
    p.add_argument("--out", default=None, help="where --write writes (default: the level's file)")
    p.set_defaults(func=run)


def run(args) -> int:
    from hardware_db.calibration import CALIBRATION_TOML, to_toml
    from search.cli.io import check_output_path
    from search.fidelity.calibrate import calibrate

    if args.level == "e2e":
        return _run_e2e(args)
    out = args.out or str(CALIBRATION_TOML)
    if args.write:
        check_output_path(out)
    text = to_toml(calibrate())
    return _emit(args.write, out, text)


def _run_e2e(args) -> int:
    import json
    import sys

    import jax

    from hardware_db.e2e_calibration import E2E_TOML
    from search.cli.io import check_output_path
    from search.fidelity import e2e_fit

    out = args.out or str(E2E_TOML)
    if args.write:
        check_output_path(out)
    with jax.enable_x64(True):
        pb, params, rep = e2e_fit.run()
    text = e2e_fit.to_toml(pb, params, rep)
    print(json.dumps(rep, indent=1), file=sys.stderr)
    return _emit(args.write, out, text)


def _emit(write: bool, out: str, text: str) -> int:
    """Write ``text`` to ``out`` atomically (``--write``) or print it."""
    from search.cli.io import atomic_write

    if write:
        atomic_write(out, text)
        print(f"wrote {out}")
    else:
        print(text, end="")
    return 0
