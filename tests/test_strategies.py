"""V7 strategies: hand-checked signals, causality (the future never changes the past), the ensemble."""

import numpy as np
import pytest

from openclaw_rl.rock import rng
from openclaw_rl.rock.markets import REGIME_NAMES, RegimeSwitching
from openclaw_rl.rock.rolling import rolling_mean, rolling_std
from openclaw_rl.strategies.v7 import (
    BuyAndHold, MeanReversion, Momentum, RegimeClassifier, RegimeEnsemble, TrendFollowing, VolatilityTargeting,
)

CLOSES = np.exp(RegimeSwitching().sample(rng.seed_keys(np.arange(64)), 400).log_close)


def test_rolling_windows_by_hand():
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    assert np.isnan(rolling_mean(x, 3)[1, 0])
    assert rolling_mean(x, 3)[2:, 0].tolist() == [2.0, 3.0]
    assert rolling_std(x, 2)[3, 0] == pytest.approx(0.5)
    assert np.isnan(rolling_mean(x, 5)).all()  # a window longer than the history
    assert TrendFollowing(slow=50).positions(np.ones((10, 2))).tolist() == np.zeros((10, 2)).tolist()


def test_signals_by_hand():
    up = np.array([[100.0], [101.0], [102.0], [103.0], [104.0]])
    assert Momentum(lookback=2).positions(up)[:, 0].tolist() == [0, 0, 1, 1, 1]
    assert TrendFollowing(fast=1, slow=3).positions(up)[:, 0].tolist() == [0, 0, 1, 1, 1]
    down = up[::-1].copy()
    assert TrendFollowing(fast=1, slow=3, allow_short=False).positions(down)[:, 0].tolist() == [0, 0, 0, 0, 0]
    spike = np.array([[100.0], [100.0], [100.0], [130.0]])
    assert MeanReversion(window=4, entry_z=1.0).positions(spike)[3, 0] == -1.0  # far above its mean: short
    flat_vol = np.exp(np.cumsum(np.tile([[0.01], [-0.01]], (20, 1)), axis=0))
    size = VolatilityTargeting(target_vol=0.08, window=10, bars_per_year=252).positions(flat_vol)[-1, 0]
    assert size == pytest.approx(0.08 / (0.01 * np.sqrt(252)), rel=1e-6)


@pytest.mark.parametrize("strategy", [BuyAndHold(), TrendFollowing(), Momentum(), MeanReversion(), VolatilityTargeting(),
                                      RegimeEnsemble.fit(CLOSES)])
def test_positions_never_depend_on_the_future(strategy):
    cut = 250
    future = CLOSES.copy()
    future[cut + 1:] *= np.exp(np.random.default_rng(0).normal(0, 0.05, future[cut + 1:].shape))
    np.testing.assert_array_equal(strategy.positions(CLOSES)[: cut + 1], strategy.positions(future)[: cut + 1])


def test_regime_classifier_reads_trends_and_crashes():
    bull = np.exp(np.cumsum(np.full((60, 1), 0.002), axis=0))
    crash = np.exp(np.cumsum(np.full((60, 1), -0.01), axis=0))
    classifier = RegimeClassifier(window=20)
    assert classifier.regimes(bull)[-1, 0] == REGIME_NAMES.index("bull")
    assert classifier.regimes(crash)[-1, 0] == REGIME_NAMES.index("crash")
    assert classifier.regimes(bull)[5, 0] == -1  # not enough history


def test_ensemble_mixes_members_with_the_given_weights():
    ensemble = RegimeEnsemble({"bull": {"trend": 3.0, "vol_target": 1.0}})
    regime = ensemble.classifier.regimes(CLOSES)
    trend, vol = TrendFollowing().positions(CLOSES), VolatilityTargeting().positions(CLOSES)
    expected = np.where(regime == REGIME_NAMES.index("bull"), 0.75 * trend + 0.25 * vol, 0.0)
    np.testing.assert_allclose(ensemble.positions(CLOSES), expected)


def test_fitted_ensemble_weights_are_distributions_over_members():
    ensemble = RegimeEnsemble.fit(CLOSES)
    assert ensemble.weights
    for weights in ensemble.weights.values():
        assert set(weights) == {"trend", "momentum", "mean_reversion", "vol_target"}
        assert sum(weights.values()) == pytest.approx(1.0)
