r"""Which hardware number is worth improving: elasticities of UTPS.

For every float leaf x of the chip and of every interconnect tier,

    e_x = ∂ log UTPS / ∂ log x = (x / UTPS) · ∂UTPS/∂x                     (dimensionless)

computed with one reverse-mode ``jax.grad`` in float64 at a fixed split. ``e = 0.3`` means
1 % more of x gives 0.3 % more UTPS; latencies have negative elasticities. Leaves whose
value is 0 (absent tiers, unmodelled energies) have no elasticity and are skipped, as are
``domain_chips`` (a structural count, not a design knob). Gradients at the model's kinks
are the documented subgradients (:mod:`costmodel.smooth`).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from costmodel.decode import decode_step
from costmodel.specs import Parallelism
from search.jit import jit_fast_compile
from search.scenario import Scenario

SKIP = {"domain_chips"}


def hardware_paths(system) -> list[tuple[str, tuple]]:
    """``(name, accessor)`` of every hardware float leaf: chip fields and tier fields.

    Names are ``chip.<field>`` and ``tiers.<tier name>.<field>``.
    """
    out = []
    for f in system.chip.__dataclass_fields__:
        out.append((f"chip.{f}", ("chip", f)))
    for i, t in enumerate(system.tiers):
        for f in t.__dataclass_fields__:
            if f in ("topology", "name") or f in SKIP:
                continue
            out.append((f"tiers.{t.name}.{f}", ("tiers", i, f)))
    return out


def _get(system, acc):
    if acc[0] == "chip":
        return getattr(system.chip, acc[1])
    return getattr(system.tiers[acc[1]], acc[2])


@dataclass
class Elasticity:
    name: str
    value: float  # the hardware number (SI)
    elasticity: float  # d log UTPS / d log x


def elasticities(sc: Scenario, par: Parallelism) -> list[Elasticity]:
    """Elasticities of UTPS for every non-zero hardware number, sorted by |e| descending."""
    with jax.enable_x64(True):
        system = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), sc.system)
        model, prec, wl, eff = (
            jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), r)
            for r in (sc.model, sc.precision, sc.workload, sc.mode)
        )
        par64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), par)

        def log_utps(s):
            return jnp.log(decode_step(model, prec, s, par64, wl, eff).utps)

        g = jit_fast_compile(jax.grad(log_utps))(system)
        out = []
        for name, acc in hardware_paths(system):
            x = float(_get(system, acc))
            if x == 0.0 or not jnp.isfinite(x):
                continue
            out.append(Elasticity(name, x, float(_get(g, acc)) * x))
    out.sort(key=lambda e: -abs(e.elasticity))
    return out
