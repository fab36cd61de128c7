"""The search engine over the cost model: grid, gradient, targets, sensitivity.

Calibration and validation live in :mod:`search.fidelity`, the command line in
:mod:`search.cli`.

Entry points::

    import search.grid, search.space
    res = search.grid(search.space.make_space("kimi-k2.5", "gb200-nvl72"))   # grid search
    from search.scenario import scenario            # named records from the database
    from search.optimize import main_job            # best split, targets, sensitivities
    from search.gradient import optimize            # gradient search / co-design
    from search.target import solve_targets         # inverse design
    from search.sensitivity import elasticities     # d log UTPS / d log x
    from hardware_db.calibration import efficiency_for  # calibrated mode

Importing this package splits a CPU into one JAX device per available core (before JAX
starts; ``TPSOPT_DEVICES=N`` chooses N, 1 keeps a single device), so the grid engine uses
every core: see :mod:`search._devices`.
"""

from search import _devices

_devices.configure(strict=False)
