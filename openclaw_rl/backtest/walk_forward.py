"""Walk-forward evaluation on historical data, with purged and embargoed splits.

Each split trains on bars ``[train_start, train_end)`` and tests on the later bars
``[test_start, test_end)``. ``purge`` bars are dropped between the two, so that no training
episode, which may sample any window inside its range, reaches the test window. ``embargo``
bars are dropped after each test window before the next one starts. The test window carries
``window`` bars of history for its first observation, taken from the purge gap, never from
training-only bars past the gap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openclaw_rl.backtest.run import STRATEGY_CHOICES, backtest_policy, backtest_strategy, make_strategy
from openclaw_rl.rock import ConfigError
from openclaw_rl.rock.historical import DataError, load_series
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.pipeline import run
from openclaw_rl.strategies.v7 import RegimeEnsemble


@dataclass(frozen=True)
class Split:
    train: tuple[int, int]  # [start, end) bar indices
    test: tuple[int, int]


def walk_forward_splits(n_bars: int, n_splits: int, test_bars: int, min_train_bars: int, purge: int = 0,
                        embargo: int = 0, anchored: bool = True) -> list[Split]:
    """Splits whose test windows tile the end of the series, oldest first.

    ``anchored``: training starts at bar 0 (an expanding window); otherwise each training window
    has ``min_train_bars`` bars (a rolling window).
    """
    span = n_splits * test_bars + (n_splits - 1) * embargo
    first_test = n_bars - span
    if first_test - purge < min_train_bars:
        raise DataError(f"walk-forward: {n_bars} bars cannot hold {n_splits} test windows of {test_bars} bars "
                        f"(embargo {embargo}) after {min_train_bars} training bars and a purge of {purge}")
    splits = []
    for k in range(n_splits):
        test_start = first_test + k * (test_bars + embargo)
        train_end = test_start - purge
        train_start = 0 if anchored else train_end - min_train_bars
        splits.append(Split((train_start, train_end), (test_start, test_start + test_bars)))
    return splits


def walk_forward(config: RunConfig, run_dir: Path, n_splits: int, purge: int | None = None, embargo: int = 0,
                 n_test_markets: int = 1, strategies: tuple[str, ...] = ()) -> list[dict]:
    """Train on each split's training bars and backtest the policy on its test bars, beside the
    V7 ``strategies`` on the same bars (``regime_ensemble`` is fitted on the split's training bars).

    ``config.env`` must replay historical data; each test window is one episode of
    ``env.episode_bars`` bars (plus ``env.window`` bars of history from the purge gap).
    """
    unknown = [name for name in strategies if name not in STRATEGY_CHOICES]
    if unknown:
        raise ConfigError(f"strategies: unknown strategy {unknown[0]!r}; allowed: {', '.join(STRATEGY_CHOICES)}")
    env = config.env
    if env.market.get("kind") != "historical":
        raise DataError("walk-forward needs historical data: env/market=historical with env.data.path or env.data.builtin")
    series = load_series(env.data)
    purge = env.bars_per_episode if purge is None else purge
    if purge < env.window:
        raise DataError(f"walk-forward: purge={purge} must cover env.window={env.window} (the test's first observation)")
    splits = walk_forward_splits(len(series), n_splits, env.episode_bars + 1, env.bars_per_episode, purge, embargo)
    stamps = [str(t) for t in series.time]
    results = []
    for k, split in enumerate(splits):
        train_data = dataclasses.replace(env.data, start=stamps[split.train[0]], end=stamps[split.train[1] - 1], split="all")
        train_config = dataclasses.replace(config, env=dataclasses.replace(env, data=train_data))
        trained = run(train_config, Path(run_dir) / f"split_{k}")
        history = split.test[0] - env.window
        test_data = dataclasses.replace(env.data, start=stamps[history], end=stamps[split.test[1] - 1], sampling="first",
                                        split="all")
        test_env = dataclasses.replace(env, data=test_data)
        _, m = backtest_policy(Path(run_dir) / f"split_{k}", test_env, n_test_markets, 0)
        compared = {}
        for name in strategies:
            train_closes = series.close[split.train[0] : split.train[1], None]
            strategy = RegimeEnsemble.fit(train_closes) if name == "regime_ensemble" else make_strategy(name, env, 0, 1)
            compared[name] = _means(backtest_strategy(strategy, test_env, n_test_markets, 0)[1])
        results.append({"split": k, "train": split.train, "test": split.test, "train_objective": trained.objective,
                        **_means(m), "strategies": compared})
    return results


def _means(metrics: dict) -> dict[str, float]:
    return {key: float(np.mean(value)) for key, value in metrics.items()}
