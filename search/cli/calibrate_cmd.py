"""``tpsopt calibrate [--write] [--out FILE]``: refit the calibrated mode's parameters."""

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
    p.add_argument("--write", action="store_true", help=f"write {CALIBRATION_TOML.name}")
    p.add_argument("--out", default=str(CALIBRATION_TOML), help="where --write writes")
    p.set_defaults(func=run)


def run(args) -> int:
    from hardware_db.calibration import to_toml
    from search.cli.io import atomic_write, check_output_path
    from search.fidelity.calibrate import calibrate

    if args.write:
        check_output_path(args.out)
    text = to_toml(calibrate())
    if args.write:
        atomic_write(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
