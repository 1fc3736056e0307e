"""Causal rolling statistics over time-major arrays ``[T, ...]`` (used by the engine's features
and by the strategies)."""

from __future__ import annotations

import numpy as np


def cumsum_time(x: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 0 (time) of a time-major array.

    For wide batches a loop of row additions is ~20x faster than ``np.cumsum(axis=0)``,
    which accumulates each column separately with strided access.
    """
    if x.ndim < 2 or x.shape[1] < 64:
        return np.cumsum(x, axis=0)
    out = np.empty_like(x)
    out[0] = x[0]
    for t in range(1, len(x)):
        np.add(out[t - 1], x[t], out=out[t])
    return out


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` rows at each row; NaN until ``window`` rows exist."""
    sums = cumsum_time(x)
    out = np.full_like(sums, np.nan)
    if window > len(x):  # never enough history
        return out
    out[window - 1] = sums[window - 1]
    out[window:] = sums[window:] - sums[:-window]
    return out / window


def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Population std of the last ``window`` rows at each row; NaN until ``window`` rows exist."""
    mean = rolling_mean(x, window)
    return np.sqrt(np.maximum(rolling_mean(x * x, window) - mean * mean, 0.0))
