"""Every CPU core by default: how many JAX CPU devices the searches shard over.

JAX gives a CPU one device, so the grid engine (which shards candidates over
``jax.devices()``) and vectorised evaluation would use one core's worth of devices. Before
the JAX backend starts, :func:`configure` splits the CPU into ``N`` devices by adding
``--xla_force_host_platform_device_count=N`` to ``XLA_FLAGS``, with ``N``:

1. ``configure(n)`` / ``tpsopt --devices N`` (``n`` given), else
2. the environment variable ``TPSOPT_DEVICES=N``, else
3. ``XLA_FLAGS`` already naming the flag: left as the user set it, else
4. the CPUs this process may use (``len(os.sched_getaffinity(0))``, else
   ``os.cpu_count()``).

``N = 1`` keeps JAX's single device (no flag is added). Results do not depend on ``N``: the
grid engine returns the same top-k, counts and fronts on any number of devices.

It runs once when :mod:`search` is imported (``import search.grid`` etc.), and again in the
``tpsopt`` entry point once ``--devices`` is parsed. It changes nothing:

* when ``JAX_PLATFORMS`` names an accelerator (``gpu``, ``cuda``, ``rocm``, ``tpu``) and
  not ``cpu``;
* when JAX's backends are already initialised (e.g. ``jax.devices()`` was called before
  ``import search``): the device count is fixed from then on, so call it earlier or set
  ``XLA_FLAGS`` / ``jax.config.update("jax_num_cpu_devices", N)`` yourself;
* when ``jax_num_cpu_devices`` was set through ``jax.config`` (it takes precedence over
  ``XLA_FLAGS`` in JAX itself).

The flag goes into this process's environment, so child processes inherit it (as a user's
setting: rule 3).
"""

from __future__ import annotations

import os
import sys

from search.errors import UserError

FLAG = "--xla_force_host_platform_device_count"
ENV = "TPSOPT_DEVICES"
ACCELERATORS = ("gpu", "cuda", "rocm", "tpu")

_ours: str | None = None
"""The ``FLAG=N`` item this module added to ``XLA_FLAGS`` (so a later call may replace it)."""

state: str = "not configured"
"""What the last :func:`configure` did, in words."""


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else all of the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_devices(value, name: str = "devices", arg: str | None = "devices") -> int:
    """``value`` as a device count ≥ 1, else a one-line :class:`UserError` starting with
    ``name`` (``arg``: the API argument, for the CLI's flag names)."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise UserError(f"{name} {value!r}: expected a whole number of devices ≥ 1", arg=arg)
    return n


def _flag_items() -> list[str]:
    return os.environ.get("XLA_FLAGS", "").split()


def _jax_initialised() -> bool:
    xb = sys.modules.get("jax._src.xla_bridge")
    if xb is None:
        return False
    try:
        return bool(xb.backends_are_initialized())
    except AttributeError:  # pragma: no cover - older JAX
        return bool(getattr(xb, "_backends", None))


def _cpu_platform() -> bool:
    names = [p.strip().lower() for p in os.environ.get("JAX_PLATFORMS", "").split(",")]
    names = [p for p in names if p]
    return not names or "cpu" in names or not any(p in ACCELERATORS for p in names)


def configure(n=None, *, strict: bool = True) -> str:
    """Set the number of JAX CPU devices (see the module docstring); returns what it did.

    Args:
      n: the device count (``tpsopt --devices``); ``None``: ``$TPSOPT_DEVICES``, the
        user's ``XLA_FLAGS`` or the available CPUs.
      strict: raise :class:`UserError` on a bad ``n`` or ``$TPSOPT_DEVICES``; otherwise
        (at ``import search``) ignore a bad environment value and use the default.
    """
    global _ours, state
    env = os.environ.get(ENV)
    explicit = None
    if n is not None:
        explicit = check_devices(n, "devices")
    elif env not in (None, ""):
        try:
            explicit = check_devices(env, ENV, arg=None)
        except UserError:
            if strict:
                raise
    if not _cpu_platform():
        state = f"JAX_PLATFORMS={os.environ['JAX_PLATFORMS']}: CPU devices left as they are"
        return state
    if _jax_initialised():
        state = "JAX already initialised: device count left as it is"
        return state
    items = _flag_items()
    users = [x for x in items if x.startswith(FLAG) and x != _ours]
    if explicit is None and users:
        state = f"XLA_FLAGS sets {users[-1]}: left as it is"
        return state
    count = explicit if explicit is not None else available_cpus()
    items = [x for x in items if not x.startswith(FLAG)]
    _ours = None
    if count > 1:
        _ours = f"{FLAG}={count}"
        items.append(_ours)
    if items:
        os.environ["XLA_FLAGS"] = " ".join(items)
    else:
        os.environ.pop("XLA_FLAGS", None)
    state = f"{count} CPU device(s)"
    return state
