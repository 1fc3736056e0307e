"""``ta``'s most used indicators over many markets at once: the same arithmetic as ``ta`` (``fillna=False``),
on time-major ``[T, n]`` arrays instead of one ``pandas.Series`` per market.

``ta`` computes one market per call, and its cost on a 300-bar path is mostly pandas' per-call
overhead (0.4 ms for an RSI), paid again for every synthetic path at every reset. These take every
market in one pass of numpy expressions over time; ``tests/test_features.py`` checks each against
``ta`` on random paths, NaN for NaN. Indicators not here run through ``ta`` itself, market by market.
Each function takes the price arrays by name and ``ta``'s own parameters, with ``ta``'s defaults.
"""

from __future__ import annotations

import numpy as np


def ewm(x: np.ndarray, alpha: float, min_periods: int) -> np.ndarray:
    """pandas' ``ewm(alpha=..., adjust=False, min_periods=...).mean()`` down each column of ``[T, n]``:
    the mean starts at a column's first number and is NaN until ``min_periods`` numbers were seen.
    NaN may stand only before a column's first number (as in every indicator here)."""
    out = np.empty_like(x)
    missing = np.isnan(x)
    last_gap = int(np.flatnonzero(missing.any(1))[-1]) if missing.any() else -1
    keep, take = 1.0 - alpha, alpha
    mean = x[0].copy()
    out[0] = mean
    for t in range(1, last_gap + 2):  # a column may start here: pandas' rules, where by where
        current = x[t]
        step = (keep * mean + take * current) / (keep + take)
        moved = np.where(~missing[t] & (mean != current), step, mean)
        mean = np.where(np.isnan(mean), current, moved)
        out[t] = mean
    weighted = take * x
    for t in range(max(last_gap + 2, 1), len(x)):  # every column started: the recursion alone, in place
        mean *= keep
        mean += weighted[t]
        mean /= keep + take
        out[t] = mean
    return np.where(np.cumsum(~missing, axis=0) >= min_periods, out, np.nan)


def rolling(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of the last ``window`` rows of each column (NaN before ``window`` rows)."""
    mean, std = np.full_like(x, np.nan), np.full_like(x, np.nan)
    if window <= len(x):
        stacked = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # [T - window + 1, n, window]
        mean[window - 1 :] = stacked.mean(-1)
        std[window - 1 :] = stacked.std(-1)
    return mean, std


def _shift(x: np.ndarray, periods: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[periods:] = x[:-periods] if periods else x
    return out


def _ema(x: np.ndarray, window: int) -> np.ndarray:
    return ewm(x, 2.0 / (window + 1), window)  # pandas' span


def rsi(close, window=14):
    diff = close - _shift(close, 1)
    up = np.where(diff > 0, diff, 0.0)
    down = -np.where(diff < 0, diff, 0.0)
    up, down = ewm(up, 1 / window, window), ewm(down, 1 / window, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(down == 0, 100.0, 100 - 100 / (1 + up / down))


def roc(close, window=12):
    before = _shift(close, window)
    return (close - before) / before * 100


def sma_indicator(close, window=12):
    return rolling(close, window)[0]


def ema_indicator(close, window=12):
    return _ema(close, window)


def macd(close, window_slow=26, window_fast=12):
    return _ema(close, window_fast) - _ema(close, window_slow)


def _macd(close, window_slow, window_fast, window_sign):
    line = macd(close, window_slow, window_fast)
    return line, _ema(line, window_sign)


def macd_signal(close, window_slow=26, window_fast=12, window_sign=9):
    return _macd(close, window_slow, window_fast, window_sign)[1]


def macd_diff(close, window_slow=26, window_fast=12, window_sign=9):
    line, signal = _macd(close, window_slow, window_fast, window_sign)
    return line - signal


def _bands(close, window, window_dev):
    mean, std = rolling(close, window)
    return mean, mean + window_dev * std, mean - window_dev * std


def bollinger_mavg(close, window=20):
    return rolling(close, window)[0]


def bollinger_pband(close, window=20, window_dev=2):
    _, high, low = _bands(close, window, window_dev)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (close - low) / np.where(high != low, high - low, np.nan)


def bollinger_wband(close, window=20, window_dev=2):
    mean, high, low = _bands(close, window, window_dev)
    return (high - low) / mean * 100


def average_true_range(high, low, close, window=14):
    previous = _shift(close, 1)
    with np.errstate(invalid="ignore"):  # the first bar has no previous close: its range is high - low
        true_range = np.fmax(high - low, np.fmax(np.abs(high - previous), np.abs(low - previous)))
    atr = np.zeros_like(close)
    if window <= len(close):
        atr[window - 1] = true_range[:window].mean(0)
        for t in range(window, len(close)):
            atr[t] = (atr[t - 1] * (window - 1) + true_range[t]) / float(window)
    return atr


BATCHED = {fn.__name__: fn for fn in (rsi, roc, sma_indicator, ema_indicator, macd, macd_signal, macd_diff,
                                      bollinger_mavg, bollinger_pband, bollinger_wband, average_true_range)}
