"""Fidelity: calibration and validation of the cost model against measurements.

* :mod:`~search.fidelity.problem` — measured rows as stacked model inputs;
* :mod:`~search.fidelity.map_fit` — the hierarchical MAP fit per hardware × software;
* :mod:`~search.fidelity.lbfgs` — the optimiser it uses (one evaluation per iteration);
* :mod:`~search.fidelity.leave_out` — leave-one-row/family-out predictions, prior scale;
* :mod:`~search.fidelity.calibrate` — fit and summarise (``tpsopt calibrate``);
* :mod:`~search.fidelity.validate` — the validation report (``tpsopt validate``);
* :mod:`~search.fidelity.collective_checks` — collective latencies against measurements;
* :mod:`~search.fidelity.kernel_fit` — kernel-level fits to measured kernel tables.

Stored calibrated parameters are data: :mod:`hardware_db.calibration` reads, writes and
looks them up.
"""
