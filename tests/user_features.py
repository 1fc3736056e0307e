"""Feature functions a user might write (``env.features=[{fn: user_features:NAME}]``): causal ones, and
ones that look ahead, which the env must refuse."""

import numpy as np


def momentum(bars, span: int = 5):
    """Log return over the last ``span`` bars: causal."""
    return np.log(bars["close"]).diff(span)


def spread_ratio(bars):
    """A function of the file's own columns (``env.data.features``): causal."""
    return bars["bid_ask"] / bars["close"]


def centered(bars):
    """A centered moving average: reads the next bars."""
    return bars["close"].rolling(5, center=True).mean()


def whole_series_zscore(bars):
    """Standardized with the mean and std of the whole path, future bars included."""
    close = bars["close"]
    return (close - close.mean()) / close.std()


def one_value(bars):
    """Not one value per bar."""
    return 1.0
