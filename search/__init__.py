"""Searches over the cost model: grid, gradient, targets, sensitivity, calibration, CLI."""
