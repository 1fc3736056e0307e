"""Walk-forward splits never let training see the bars it is tested on."""

import numpy as np
import pandas as pd
import pytest

from openclaw_rl.backtest.walk_forward import walk_forward, walk_forward_splits
from openclaw_rl.rock import ConfigError, DataError
from openclaw_rl.roll.config import RunConfig


@pytest.mark.parametrize("anchored", [True, False])
def test_splits_are_purged_embargoed_and_ordered(anchored):
    splits = walk_forward_splits(1000, n_splits=4, test_bars=100, min_train_bars=300, purge=30, embargo=10,
                                 anchored=anchored)
    assert [s.test for s in splits] == [(570, 670), (680, 780), (790, 890), (900, 1000)]
    for s in splits:
        assert s.train[1] + 30 == s.test[0]  # purge gap
        assert s.train[1] - s.train[0] >= 300
        assert s.train[0] == 0 if anchored else s.train[1] - s.train[0] == 300
    for a, b in zip(splits, splits[1:]):
        assert b.test[0] - a.test[1] == 10  # embargo after each test window


def test_splits_that_do_not_fit_are_refused():
    with pytest.raises(DataError, match="cannot hold 5 test windows of 100 bars"):
        walk_forward_splits(600, n_splits=5, test_bars=100, min_train_bars=200, purge=10)


def test_walk_forward_trains_before_and_tests_after(tmp_path):
    n = 400
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0.0005, 0.01, n)))
    pd.DataFrame({"Date": pd.date_range("2015-01-01", periods=n, freq="D").strftime("%Y-%m-%d"), "Open": close,
                  "High": close * 1.01, "Low": close * 0.99, "Close": close, "Volume": 1.0}).to_csv(tmp_path / "p.csv", index=False)
    config = RunConfig.from_mapping({
        "env": {"market": {"kind": "historical"}, "data": {"path": str(tmp_path / "p.csv")}, "window": 8,
                "episode_bars": 40, "n_envs": 8},
        "trainer": {"rollout_steps": 16, "total_steps": 256, "progress": "log"}, "algo": {"num_minibatches": 2},
        "eval": {"n_envs": 2},
    })
    results = walk_forward(config, tmp_path / "wf", n_splits=2, strategies=("buy_and_hold", "regime_ensemble"))
    assert [r["test"] for r in results] == [(318, 359), (359, 400)]
    for r in results:
        assert r["train"][1] + 49 == r["test"][0]  # purge = window + episode + 1: no training episode reaches the test
        assert np.isfinite(r["sharpe"]) and -1 < r["total_return"] < 1
        # buy-and-hold on the test bars only: bought at the open after the first observation (open = close
        # here), held to the last close, less entry costs of a few bps
        start, end = r["test"][0], r["test"][1] - 1
        assert r["strategies"]["buy_and_hold"]["total_return"] == pytest.approx(close[end] / close[start + 1] - 1, abs=5e-4)
        assert np.isfinite(r["strategies"]["regime_ensemble"]["sharpe"])
    with pytest.raises(ConfigError, match="unknown strategy 'oracle'"):
        walk_forward(config, tmp_path / "bad", n_splits=2, strategies=("oracle",))
    assert not (tmp_path / "bad").exists()
