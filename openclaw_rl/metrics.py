"""The metrics quants read, computed for many equity curves at once.

Inputs are time-major: ``equity [T+1, N]`` (the first row is the starting equity) and
``positions [T, N]`` (the position held over each bar). Returns are simple per-bar returns;
annualization uses ``bars_per_year``; the risk-free rate is 0.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329


def metrics(equity: np.ndarray, positions: np.ndarray, bars_per_year: float) -> dict[str, np.ndarray]:
    """Per-market metrics ``{name: [N]}``."""
    equity = np.asarray(equity, dtype=np.float64)
    returns = equity[1:] / equity[:-1] - 1.0
    bars = returns.shape[0]
    growth = equity[-1] / equity[0]
    mean, std = returns.mean(axis=0), returns.std(axis=0, ddof=1)
    downside = np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2, axis=0))
    annualized = np.where(growth > 0, np.abs(growth) ** (bars_per_year / bars) - 1.0, -1.0)
    drawdown = max_drawdown(equity)
    held = np.abs(positions) > 0
    changes = np.abs(np.diff(np.concatenate([np.zeros((1, positions.shape[1])), positions]), axis=0))
    return {
        "total_return": growth - 1.0,
        "annualized_return": annualized,
        "volatility": std * math.sqrt(bars_per_year),
        "sharpe": _ratio(mean, std) * math.sqrt(bars_per_year),
        "sortino": _ratio(mean, downside) * math.sqrt(bars_per_year),
        "max_drawdown": drawdown,
        "calmar": _ratio(annualized, drawdown),
        "turnover": changes.sum(axis=0) / bars * bars_per_year,  # position changes per year
        "exposure": held.mean(axis=0),  # share of bars with a position
        "win_rate": _ratio(((returns > 0) & held).sum(axis=0), held.sum(axis=0)),  # winning bars in the market
    }


def episode_log_return(final_equity: np.ndarray, initial_equity: float, ruin_fraction: float) -> np.ndarray:
    """Log growth of equity over an episode as the env's reward counts it: equity at or below the ruin
    level (negative, after a gap through a short position) counts as the ruin level."""
    floor = initial_equity * (ruin_fraction if ruin_fraction > 0 else 1e-12)
    return np.log(np.maximum(final_equity, floor) / initial_equity)


def max_drawdown(equity: np.ndarray) -> np.ndarray:
    """Largest peak-to-trough fall, as a fraction of the peak."""
    peaks = np.maximum.accumulate(equity, axis=0)
    return np.max(1.0 - equity / peaks, axis=0)


def _ratio(numerator, denominator):
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    safe = denominator > 0
    return np.where(safe, numerator / np.where(safe, denominator, 1.0), 0.0)


def deflated_sharpe_ratio(returns: np.ndarray, n_trials: int, sharpe_variance: float) -> float:
    """Probability that the true Sharpe ratio exceeds the best one expected by luck among
    ``n_trials`` strategies (Bailey & Lopez de Prado, 2014).

    ``returns``: the selected strategy's per-bar returns; ``sharpe_variance``: the variance of
    the per-bar Sharpe ratios across the trials. Skewness and kurtosis of the returns enter the
    standard error of the Sharpe ratio. NaN when the returns do not vary (an agent that never holds a
    position has no Sharpe ratio).
    """
    returns = np.asarray(returns, dtype=float)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    bars = len(returns)
    std = returns.std(ddof=1)
    if not std > 0:
        return math.nan
    sharpe = returns.mean() / std
    z = (returns - returns.mean()) / returns.std(ddof=0)
    skew, kurtosis = float(np.mean(z**3)), float(np.mean(z**4))
    normal = NormalDist()
    if n_trials == 1:
        expected_max = 0.0
    else:
        expected_max = math.sqrt(sharpe_variance) * (
            (1 - EULER_GAMMA) * normal.inv_cdf(1 - 1 / n_trials)
            + EULER_GAMMA * normal.inv_cdf(1 - 1 / (n_trials * math.e))
        )
    scale = math.sqrt(1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2)
    return normal.cdf((sharpe - expected_max) * math.sqrt(bars - 1) / scale)
