"""A scenario: the named records one evaluation or search starts from.

``Scenario`` bundles a model, its precision recipe, a system and a workload (plus names,
for reports), resolved from the database. It is the host-side object the CLI commands
and the Python API share::

    from search.scenario import scenario
    sc = scenario("kimi-k2.5", "gb200-nvl72", batch=1, context=8192)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax

import hardware_db as db
from costmodel.specs import (
    SOL,
    Efficiency,
    ModelSpec,
    Precision,
    SystemSpec,
    Workload,
)
from search.errors import UserError, check_number
from search.paths import scale_system


@dataclass(frozen=True)
class Scenario:  # registered as a pytree below: records are leaves, names are static
    """Named records for one evaluation (host-side; records are float pytrees)."""

    model_name: str
    model: ModelSpec
    precision_name: str
    precision: Precision
    system_name: str
    system: SystemSpec
    workload: Workload
    mode: Efficiency = SOL
    mode_name: str = "sol"
    notes: tuple[str, ...] = field(default_factory=tuple)
    interval: tuple[float, ...] = ()  # log(t/t̂) quantiles of the calibrated mode's 80 % band

    def replace(self, **kw) -> Scenario:
        return replace(self, **kw)

    @property
    def max_chips(self) -> float:
        return float(self.system.max_chips)


jax.tree_util.register_dataclass(
    Scenario,
    data_fields=["model", "precision", "system", "workload", "mode"],
    meta_fields=["model_name", "precision_name", "system_name", "mode_name", "notes", "interval"],
)


def make_workload(
    batch=1, context=8192, mtp=0, acceptance=0.0, overlap=0.0, imbalance=1.0
) -> Workload:
    """A validated :class:`Workload` (errors name these arguments)."""
    return Workload(
        batch=check_number("batch", batch, 1, 1e9, integer=True),
        context_tokens=check_number("context", context, 1, 1e9, integer=True),
        mtp_depth=check_number("mtp", mtp, 0, 16, integer=True),
        acceptance_rate=check_number("acceptance", acceptance, 0, 1),
        overlap=check_number("overlap", overlap, 0, 1),
        moe_imbalance=check_number("imbalance", imbalance, 1, 100),
    )


def scenario(
    model: str = db.DEFAULT_MODEL,
    system: str = db.DEFAULT_SYSTEM,
    precision: str | None = None,
    chips: float | None = None,
    batch=1,
    context=8192,
    mtp=0,
    acceptance=0.0,
    overlap=0.0,
    imbalance=1.0,
    mode: str = "sol",
    software: str | None = None,
    latency_scale: float = 1.0,
) -> Scenario:
    """Resolve names from the database and build a :class:`Scenario`.

    *Length:* Name resolution for each record in turn; half of it is documentation.

    ``model`` may be a name, alias, Hugging Face id or a path to a ``config.json``;
    ``precision`` overrides the model's native recipe; ``chips`` overrides the system's
    chip count (for systems whose die count is free); ``latency_scale`` multiplies every
    per-hop latency and per-step overhead; ``mode`` is ``"sol"`` or ``"calibrated"``
    (see :func:`calibrated_mode`).
    """
    spec, native = db.load_model(model)
    if str(model).endswith((".json", ".toml")):
        from pathlib import Path

        model_name = Path(model).stem.removesuffix("_config")
        native_name = "config.json" if str(model).endswith(".json") else "file"
        if str(model).endswith(".toml"):
            native_name = db.loader.load_model_file(model).precision
    else:
        model_name = db.resolve("models", model)
        native_name = db.describe("models", model_name).get("precision", "native")
    prec_name = precision or native_name
    prec = db.load_precision(precision) if precision else native
    if chips is not None:
        chips = check_number("chips", chips, 1, 1e9, integer=True)
    sys_name = db.resolve("systems", system)
    sysrec = db.load_system(sys_name, max_chips=chips)
    scale = check_number("latency_scale", latency_scale, 0, 1e6, lo_open=True)
    if scale != 1.0:
        sysrec = scale_system(sysrec, "latency", scale)
    wl = make_workload(batch, context, mtp, acceptance, overlap, imbalance)
    eff, mode_name, notes, interval = SOL, "sol", (), ()
    if mode == "calibrated":
        eff, mode_name, notes, interval = calibrated_mode(sys_name, software, prec)
    elif mode != "sol":
        raise UserError(f"mode {mode!r}: allowed sol, calibrated", arg="mode")
    return Scenario(
        model_name=model_name,
        model=spec,
        precision_name=str(prec_name),
        precision=prec,
        system_name=sys_name,
        system=sysrec,
        workload=wl,
        mode=eff,
        mode_name=mode_name,
        notes=tuple(notes),
        interval=tuple(interval),
    )


def calibrated_mode(sys_name: str, software: str | None, prec: Precision):
    """``(mode record, mode_name, notes, interval)`` of ``--mode calibrated``.

    The kernel-level mode (:class:`costmodel.kernel_mode.KernelCalibration`, composed by
    :func:`hardware_db.e2e_calibration.kernel_values_for`: kernel-table prior plus offsets
    fitted end to end to 2026 serving measurements; hardware never measured is
    *transferred* from the nearest measured one) whenever that calibration is stored and
    the software is one it was fitted on (trtllm, vllm, sglang) or not given. Otherwise —
    other software families, or no stored end-to-end fit — the older six-scalar
    :class:`Efficiency` of :func:`hardware_db.calibration.efficiency_for`, with a note.
    ``interval`` holds the log-residual quantiles of the 80 % band (empty for the older
    mode).
    """
    from costmodel.kernel_mode import from_values
    from hardware_db import e2e_calibration as ec
    from hardware_db.calibration import efficiency_for
    from hardware_db.measurements import software_slug

    sw = None
    if software:
        try:
            sw = software_slug(software)
        except db.DbError as e:
            raise UserError(f"software: {e}", arg="software") from None
    why = None
    try:
        fitted = ec.load_e2e()["software"]
        if sw is not None and sw not in fitted:
            why = f"software {sw} not in the kernel-level fit ({', '.join(sorted(fitted))})"
    except db.DbError as e:
        why = str(e)
    if why is None:
        vals, mode_name, notes, q = ec.kernel_values_for(sys_name, sw, prec)
        return from_values(vals), mode_name, notes, q
    eff, mode_name, notes = efficiency_for(sys_name, software)
    return eff, mode_name, (f"{why}: six-scalar calibration used", *notes), ()
