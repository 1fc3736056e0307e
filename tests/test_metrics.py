"""Backtest metrics against hand-computed values."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from openclaw_rl.metrics import EULER_GAMMA, deflated_sharpe_ratio, episode_log_return, max_drawdown, metrics

# One market, four bars: equity 100 -> 110 -> 99 -> 108.9 -> 108.9
EQUITY = np.array([[100.0], [110.0], [99.0], [108.9], [108.9]])
POSITIONS = np.array([[1.0], [1.0], [0.5], [0.0]])
RETURNS = [0.10, -0.10, 0.10, 0.0]


def test_metrics_by_hand():
    m = {k: float(v[0]) for k, v in metrics(EQUITY, POSITIONS, bars_per_year=4).items()}
    mean = sum(RETURNS) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in RETURNS) / 3)
    downside = math.sqrt((0.1**2) / 4)
    assert m["total_return"] == pytest.approx(0.089)
    assert m["annualized_return"] == pytest.approx(0.089)  # 4 bars at 4 bars a year: one year
    assert m["volatility"] == pytest.approx(std * 2)
    assert m["sharpe"] == pytest.approx(mean / std * 2)
    assert m["sortino"] == pytest.approx(mean / downside * 2)
    assert m["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    assert m["calmar"] == pytest.approx(0.089 / 0.1)
    assert m["turnover"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4 * 4)
    assert m["exposure"] == pytest.approx(3 / 4)
    assert m["win_rate"] == pytest.approx(2 / 3)  # bars in the market: +10%, -10%, +10%


def test_max_drawdown_per_market():
    equity = np.array([[1.0, 1.0], [2.0, 0.5], [1.0, 0.25], [3.0, 1.0]])
    np.testing.assert_allclose(max_drawdown(equity), [0.5, 0.75])


def test_deflated_sharpe_ratio_by_hand():
    rng = np.random.default_rng(0)
    returns = rng.normal(0.001, 0.01, 500)
    n_trials, variance = 20, 0.002
    sharpe = returns.mean() / returns.std(ddof=1)
    z = (returns - returns.mean()) / returns.std()
    skew, kurt = np.mean(z**3), np.mean(z**4)
    nd = NormalDist()
    sr0 = math.sqrt(variance) * ((1 - EULER_GAMMA) * nd.inv_cdf(1 - 1 / 20) + EULER_GAMMA * nd.inv_cdf(1 - 1 / (20 * math.e)))
    expected = nd.cdf((sharpe - sr0) * math.sqrt(499) / math.sqrt(1 - skew * sharpe + (kurt - 1) / 4 * sharpe**2))
    assert deflated_sharpe_ratio(returns, n_trials, variance) == pytest.approx(expected)
    # more strategies tried -> a higher bar -> a lower probability
    assert deflated_sharpe_ratio(returns, 1000, variance) < deflated_sharpe_ratio(returns, 20, variance)
    # one trial: the probabilistic Sharpe ratio against 0
    assert deflated_sharpe_ratio(returns, 1, variance) > 0.5


def test_episode_log_return_counts_ruin_as_the_ruin_level():
    final = np.array([110_000.0, 5_000.0, 4_000.0, -14_438.0])  # a gap through a short can leave equity negative
    got = episode_log_return(final, 100_000.0, 0.05)
    np.testing.assert_allclose(got, [math.log(1.1), math.log(0.05), math.log(0.05), math.log(0.05)])
    assert np.isfinite(episode_log_return(np.array([-1.0]), 100_000.0, 0.0)).all()  # no ruin level: a tiny floor


def test_returns_that_do_not_vary_have_no_deflated_sharpe_ratio_and_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a division by a zero std would warn
        assert math.isnan(deflated_sharpe_ratio(np.zeros(50), 3, 0.01))
