"""Calibration measures and the calibration table, in plain numpy (no scikit-learn).

ECE and Brier follow ``docs/metrics.md`` § Calibration exactly (10 equal bins
``[0, 0.1) … [0.9, 1.0]``, ECE = Σ n_b/n · |win rate_b − mean confidence_b|), so that a
model card's holdout figures and the live calibration report measure the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def expected_calibration_error(confidence: Floats, hits: Floats, bins: int = 10) -> float:
    """ECE over equal-width bins (the last bin closed at 1.0); NaN for no rows."""
    if confidence.shape[0] == 0:
        return math.nan
    edges = np.arange(1, bins, dtype=np.float64) / bins
    member = np.searchsorted(edges, confidence, side="right")
    counts = np.bincount(member, minlength=bins)
    conf_sums = np.bincount(member, weights=confidence, minlength=bins)
    hit_sums = np.bincount(member, weights=hits, minlength=bins)
    used = counts > 0
    gaps = np.abs(hit_sums[used] - conf_sums[used]) / confidence.shape[0]
    return math.fsum(gaps.tolist())


def brier_score(confidence: Floats, hits: Floats) -> float:
    """mean((confidence − hit)²); NaN for no rows."""
    if confidence.shape[0] == 0:
        return math.nan
    return float(np.mean((confidence - hits) ** 2))


def apply_table(
    raw: Floats, table_raw: Sequence[float], table_calibrated: Sequence[float]
) -> Floats:
    """Calibrated confidence: the table's piecewise-linear map of ``raw`` (clipped at its ends).

    This is exactly how an isotonic regression fitted with ``out_of_bounds="clip"``
    predicts, so a table taken from one gives the same numbers without scikit-learn.
    """
    calibrated: Floats = np.interp(raw, np.asarray(table_raw), np.asarray(table_calibrated))
    return calibrated


def table_problem(table_raw: Sequence[float], table_calibrated: Sequence[float]) -> str | None:
    """Why a calibration table is unusable, or ``None``."""
    raw = np.asarray(table_raw, dtype=np.float64)
    cal = np.asarray(table_calibrated, dtype=np.float64)
    if raw.ndim != 1 or raw.shape != cal.shape or raw.shape[0] < 2:
        return "the calibration table needs two equal lists of at least two points"
    if not (np.all(np.isfinite(raw)) and np.all(np.isfinite(cal))):
        return "the calibration table has a value that is not a finite number"
    if np.any(np.diff(raw) <= 0) or np.any(np.diff(cal) < 0):
        return "the calibration table is not increasing"
    if cal[0] < 0 or cal[-1] > 1:
        return "the calibration table maps outside [0, 1]"
    return None
