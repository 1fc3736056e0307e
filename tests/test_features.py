"""Observation features: file columns, ta indicators by name, user functions; no look-ahead, warm-up,
normalization saved with the policy, and one clear error for each bad input."""

import numpy as np
import pandas as pd
import pytest
import ta

import user_features  # noqa: F401  (the user's feature functions)
from openclaw_rl import learn, load_policy
from openclaw_rl.errors import ConfigError, DataError
from openclaw_rl.export import observation_names
from openclaw_rl.rock import MarketEnv, MarketVecEnv, indicators, rng
from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.features import pipeline

N_BARS = 300
WINDOW = 5


def write_csv(path, n=N_BARS, seed=0, lead_nan=0):
    gen = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(gen.normal(0, 0.01, n)))
    frame = pd.DataFrame({
        "date": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "open": close * np.exp(gen.normal(0, 0.002, n)), "close": close,
        "volume": gen.lognormal(10, 0.3, n), "sentiment": gen.normal(0, 1, n), "bid_ask": gen.uniform(0.01, 0.05, n),
    })
    frame["high"] = frame[["open", "close"]].max(axis=1) * 1.004
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.996
    frame.loc[: lead_nan - 1, "sentiment"] = np.nan
    frame.to_csv(path, index=False)
    return frame


def env_values(path, features=(), columns=(), **extra):
    return dict(market={"kind": "historical"}, window=WINDOW, episode_bars=40,
                data={"path": str(path), "split": "all", "sampling": "first", "features": list(columns)},
                features=list(features), **extra)


FEATURES = [{"name": "rsi", "window": 14}, {"fn": "user_features:momentum", "span": 3},
            {"fn": "user_features:spread_ratio"}]


def test_file_columns_and_indicators_are_observed_at_their_bar(tmp_path):
    frame = write_csv(tmp_path / "bars.csv")
    env = MarketEnv(**env_values(tmp_path / "bars.csv", FEATURES, ["sentiment", "bid_ask"]))
    names = env.config.feature_names
    assert names == ("sentiment", "bid_ask", "rsi(window=14)", "user_features:momentum(span=3)",
                     "user_features:spread_ratio()")
    assert env.observation_space.shape == (WINDOW + 5 + 5,)
    # computed over the whole file: the first episode starts where bar 14, the first with an RSI, is observed
    assert env.engine.lead == 0 and env.engine.market.start == 14 - WINDOW
    first = 14  # the bar observed at reset
    rsi = ta.momentum.rsi(frame["close"], 14).to_numpy()
    obs, _ = env.reset(seed=0)
    for t in range(10):
        bar = first + t
        expected = [frame["sentiment"][bar], frame["bid_ask"][bar], rsi[bar],
                    np.log(frame["close"][bar] / frame["close"][bar - 3]), frame["bid_ask"][bar] / frame["close"][bar]]
        np.testing.assert_allclose(obs[WINDOW + 5:], expected, rtol=1e-5)
        assert obs[env.config.feature("time_left")] == pytest.approx(1 - t / 40)
        obs, *_ = env.step(1)


def test_no_look_ahead_replacing_every_future_bar_leaves_the_past_observations_bit_identical(tmp_path):
    frame = write_csv(tmp_path / "bars.csv")
    values = env_values(tmp_path / "bars.csv", [*FEATURES, {"name": "macd_diff"}, {"name": "average_true_range"},
                                                {"name": "on_balance_volume"}], ["sentiment", "bid_ask"])
    cut = 60  # file bars after this one are replaced
    other = write_csv(tmp_path / "other.csv", seed=1)
    changed = frame.copy()
    changed.iloc[cut + 1:, 1:] = other.iloc[cut + 1:, 1:].to_numpy()
    changed.to_csv(tmp_path / "changed.csv", index=False)
    envs = [MarketEnv(**{**values, "data": {**values["data"], "path": str(tmp_path / name)}})
            for name in ("bars.csv", "changed.csv")]
    first = WINDOW + envs[0].engine.market.start
    runs = [[env.reset(seed=0)[0]] + [env.step(t % 3)[0] for t in range(40)] for env in envs]
    seen = cut - first  # observations 0..seen see bars up to the cut
    assert seen > 5
    for t in range(seen + 1):
        assert runs[0][t].tobytes() == runs[1][t].tobytes(), t
    assert runs[0][seen + 1].tobytes() != runs[1][seen + 1].tobytes()  # the changed bars are seen after it


@pytest.mark.parametrize("fn", ["centered", "whole_series_zscore"])
def test_functions_that_look_ahead_are_refused_before_any_work(fn):
    with pytest.raises(ConfigError, match=rf"env.features\[0\] \(user_features:{fn}\(\)\) looks ahead: its value at bar"):
        EnvConfig.from_mapping(features=[{"fn": f"user_features:{fn}"}])


def test_synthetic_markets_expose_the_same_indicators_with_warmup_bars_before_each_path():
    config = EnvConfig.from_mapping(n_envs=4, window=8, episode_bars=30,
                                    features=[{"name": "rsi", "window": 20}, {"name": "average_true_range", "window": 25}])
    envs = MarketVecEnv(config=config)
    engine = envs.engine
    assert engine.lead == 25 - 8  # ATR reads 0, not NaN, during its window: its window counts as warm-up
    obs, _ = envs.reset(seed=3)
    # the episode's bars, lead included, as the market draws them: the features are ta's on them
    bars = engine.market.sample(rng.episode_keys(engine.keys, engine.episodes), engine.lead + config.bars_per_episode)
    np.testing.assert_allclose(np.exp(bars.log_close[engine.lead:]), engine.close, rtol=1e-12)
    close, high, low = (pd.DataFrame(np.exp(x)) for x in (bars.log_close, bars.log_high, bars.log_low))
    for t in range(20):
        bar = engine.lead + 8 + t
        rsi = [ta.momentum.rsi(close[j], 20)[bar] for j in range(4)]
        atr = [ta.volatility.average_true_range(high[j], low[j], close[j], 25)[bar] for j in range(4)]
        np.testing.assert_allclose(obs[:, -2:], np.stack([rsi, atr], 1), rtol=1e-5)
        assert (obs[:, -1] > 0).all()  # never a warm-up zero
        obs, *_ = envs.step(np.ones(4, dtype=np.int64))
    single = MarketEnv(config=config)
    first, _ = single.reset(seed=5)
    np.testing.assert_array_equal(first, MarketVecEnv(config=config).reset(seed=2)[0][3])


def test_leading_gaps_of_a_file_column_are_not_played_and_later_gaps_are_named(tmp_path):
    write_csv(tmp_path / "bars.csv", lead_nan=30)
    env = MarketEnv(**env_values(tmp_path / "bars.csv", columns=["sentiment"]))
    assert env.engine.market.start == 30 - WINDOW  # bar 30, the first with a value, is the first observed
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs).all()
    frame = pd.read_csv(tmp_path / "bars.csv")
    frame.loc[100, "sentiment"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(DataError, match=r"column 'sentiment' \(env.data.features\): missing or non-numeric value nan "
                                        r"at row 101 .*fill it in the file"):
        MarketEnv(**env_values(tmp_path / "gap.csv", columns=["sentiment"]))


def test_snapshot_restore_carries_the_feature_paths(tmp_path):
    write_csv(tmp_path / "bars.csv")
    env = MarketEnv(**{**env_values(tmp_path / "bars.csv", FEATURES[:2], ["sentiment"]),
                       "data": {"path": str(tmp_path / "bars.csv"), "split": "all", "features": ["sentiment"]}})
    env.reset(seed=1)
    state = env.snapshot()
    assert state["features"].shape[-1] == 3
    after = [env.step(t % 3)[0] for t in range(5)]
    env.reset(seed=2)
    env.restore(state)
    np.testing.assert_array_equal(after, [env.step(t % 3)[0] for t in range(5)])


@pytest.mark.parametrize("values, error, message", [
    (dict(features=[{"name": "rsii"}]), ConfigError, r"env.features\[0\].name: 'rsii' is not a function of ta"),
    (dict(features=[{"name": "rsi", "span": 3}]), ConfigError,
     r"env.features\[0\].span: unknown parameter of ta's rsi; allowed: window"),
    (dict(features=[{"name": "rsi", "fn": "a:b"}]), ConfigError, r"needs exactly one of name"),
    (dict(features=[{"fn": "user_features:nope"}]), ConfigError, r"env.features\[0\].fn: cannot import user_features:nope"),
    (dict(features=[{"fn": "user_features"}]), ConfigError, r"must be module:function"),
    (dict(features=[{"fn": "user_features:one_value"}]), ConfigError, r"must return one value per bar \(1024\)"),
    (dict(features=[{"name": "on_balance_volume"}]), ConfigError, r"reads volume, which these bars lack"),
    (dict(features=[{"name": "rsi"}, {"name": "rsi"}]), ConfigError, r"rsi\(\) appears twice"),
    (dict(data={"features": ["x"]}), ConfigError, r"env.data.features: columns of a file need env.market.kind=historical"),
    (dict(features=[{"name": "rsi"}], gym_id="CartPole-v1"), ConfigError, r"env.features: observation features belong"),
])
def test_bad_feature_configs_get_one_clear_error(values, error, message):
    with pytest.raises(error, match=message):
        EnvConfig.from_mapping(values)


def test_a_column_the_file_lacks_is_named(tmp_path):
    write_csv(tmp_path / "bars.csv")
    with pytest.raises(DataError, match=r"missing column\(s\) mood \(env.data.features\)"):
        MarketEnv(**env_values(tmp_path / "bars.csv", columns=["mood"]))


def test_no_features_no_change():
    assert pipeline([], ()) is None
    config = EnvConfig.from_mapping(window=8)
    assert config.obs_dim == 8 + 5 and "features" not in MarketEnv(config=config).snapshot()


def test_one_command_trains_on_a_files_columns_and_rsi_and_the_policy_keeps_their_scaling(tmp_path):
    write_csv(tmp_path / "bars.csv", n=600)
    overrides = ["env/market=historical", f"env.data.path={tmp_path / 'bars.csv'}", "env.data.features=[sentiment,bid_ask]",
                 "env.features=[{name:rsi,window:14}]", "env.n_envs=4", "env.window=8", "env.episode_bars=20",
                 "trainer.rollout_steps=16", "trainer.total_steps=256", "algo.num_minibatches=2", "eval.n_envs=4"]
    result = learn(overrides, run_dir=tmp_path / "run", verbose=False)
    assert np.isfinite(result.objective)
    assert result.config.env.feature_names == ("sentiment", "bid_ask", "rsi(window=14)")
    policy = load_policy(tmp_path / "run")
    rsi = result.config.env.obs_dim - 1
    # the normalizer saw training observations only, and travels with the weights: RSI's scale, not 0/1
    assert 20 < policy.norm.mean[rsi].item() < 80 and policy.norm.var[rsi].item() > 10
    assert observation_names(result.config.env)[-3:] == ["sentiment", "bid_ask", "rsi(window=14)"]
    env = MarketEnv(config=result.config.env)
    action, _ = policy.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


@pytest.mark.parametrize("name", sorted(indicators.BATCHED))
def test_each_batched_indicator_is_tas_on_many_markets_at_once(name):
    """rock/indicators.py against ta itself, market by market: the same parameters and defaults, the same
    numbers (to rounding: pandas' rolling sums are online), NaN where ta has NaN."""
    import inspect

    ours, theirs = indicators.BATCHED[name], next(getattr(getattr(ta, m), name) for m in ("momentum", "trend", "volatility")
                                                   if hasattr(getattr(ta, m), name))
    expected = {k: v.default for k, v in inspect.signature(theirs).parameters.items() if k != "fillna"}
    assert {k: v.default for k, v in inspect.signature(ours).parameters.items()} == expected
    gen = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(gen.normal(0, 0.02, (300, 5)), 0))
    close[:, 4] = 100.0  # a flat market: ranges and bands of width 0
    prices = {"close": close, "high": close * np.exp(np.abs(gen.normal(0, 0.01, close.shape))),
              "low": close * np.exp(-np.abs(gen.normal(0, 0.01, close.shape)))}
    inputs = [p for p in expected if p in prices]
    for params in ({}, {"window": 5} if "window" in expected else {}):
        got = ours(**{p: prices[p] for p in inputs}, **params)
        want = np.stack([theirs(**{p: pd.Series(prices[p][:, j]) for p in inputs}, **params).to_numpy(dtype=float)
                         for j in range(5)], 1)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
