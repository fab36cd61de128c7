"""Fidelity: calibration and validation of the cost model against measurements."""
