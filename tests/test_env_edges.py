"""Misuse at the front door fails loudly: stepping without a reset, non-finite actions, render
modes, non-finite config values, empty or close-only data files."""

import logging
import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

import openclaw_rl  # noqa: F401  (registers the env id)
from openclaw_rl.rock import ENV_ID, ConfigError, DataError, MarketEnv, MarketVecEnv
from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.env import RenderModeError
from openclaw_rl.rock.historical import DataConfig, load_series

SHORT = dict(window=8, episode_bars=20)
ResetNeeded = gym.error.ResetNeeded


# ----------------------------------------------------------------- step without reset
def test_single_env_step_before_reset_says_to_reset():
    with pytest.raises(ResetNeeded, match=r"^MarketEnv\.step\(\) called before reset\(\); call env\.reset\(seed=\.\.\.\) first$"):
        MarketEnv(**SHORT).step(1)


def test_single_env_step_after_truncation_needs_a_reset_then_steps_again():
    env = MarketEnv(**SHORT)
    env.reset(seed=0)
    for _ in range(19):
        assert not env.step(1)[3]
    assert env.step(1)[3]  # truncated at episode_bars
    with pytest.raises(ResetNeeded, match=r"after the episode truncated \(episode_bars=20 steps\); call env\.reset\(\)"):
        env.step(1)
    env.reset()
    assert env.step(1)[:4][2:] == (False, False)


def test_single_env_step_after_ruin_needs_a_reset():
    env = MarketEnv(fee_bps=200.0, ruin_fraction=0.99, **SHORT)  # the first trade's fee is a 2% loss
    env.reset(seed=0)
    assert env.step(2)[2]  # terminated
    with pytest.raises(ResetNeeded, match=r"after the episode terminated \(equity fell to ruin_fraction=0\.99 of initial_equity\)"):
        env.step(1)


def test_vector_env_step_before_reset_says_to_reset():
    envs = MarketVecEnv(num_envs=3, **SHORT)
    with pytest.raises(ResetNeeded, match=r"^MarketVecEnv\.step\(\) called before reset\(\); call envs\.reset\(seed=\.\.\.\) first$"):
        envs.step(np.array([0, 1, 2]))


@pytest.mark.parametrize("make,action", [
    (lambda: MarketEnv(**SHORT), 2),
    (lambda: MarketVecEnv(num_envs=3, **SHORT), np.array([2, 0, 1])),
])
def test_restore_into_an_env_never_reset_makes_it_steppable(make, action):
    source, target = make(), make()
    source.reset(seed=4)
    source.step(action)
    with pytest.raises(ResetNeeded):
        target.step(action)
    target.restore(source.snapshot())
    for a, b in zip(source.step(action)[:4], target.step(action)[:4]):
        np.testing.assert_array_equal(a, b)


def test_single_env_restored_to_an_ended_episode_needs_a_reset():
    env = MarketEnv(**SHORT)
    env.reset(seed=0)
    for _ in range(20):
        env.step(1)
    ended = env.snapshot()
    env.reset(seed=1)
    env.step(1)
    env.restore(ended)
    with pytest.raises(ResetNeeded, match="truncated"):
        env.step(1)


# ----------------------------------------------------------------- non-finite actions
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_single_env_rejects_a_non_finite_continuous_action(bad):
    env = MarketEnv(continuous=True, **SHORT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"^MarketEnv\.step: a continuous action must be a finite target position, got array\(\[ *{bad}\]"):
        env.step(np.array([bad], dtype=np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_vector_env_names_the_env_with_a_non_finite_continuous_action(bad):
    envs = MarketVecEnv(num_envs=4, continuous=True, **SHORT)
    envs.reset(seed=0)
    actions = np.array([[0.5], [1.0], [bad], [np.nan]], dtype=np.float32)
    message = rf"^MarketVecEnv\.step: continuous actions must be finite target positions; env 2 got {bad}$"
    with pytest.raises(ValueError, match=message):
        envs.step(actions)


# ----------------------------------------------------------------------- render_mode
def test_render_mode_none_is_accepted_everywhere():
    assert MarketEnv(render_mode=None, **SHORT).render_mode is None
    assert MarketVecEnv(num_envs=2, render_mode=None, **SHORT).render_mode is None
    assert gym.make(ENV_ID, render_mode=None, **SHORT).render_mode is None
    assert gym.make_vec(ENV_ID, num_envs=2, render_mode=None, **SHORT).render_mode is None
    check_env(MarketEnv(render_mode=None, **SHORT))


@pytest.mark.parametrize("make,owner", [
    (lambda mode: MarketEnv(render_mode=mode), "MarketEnv"),
    (lambda mode: MarketVecEnv(num_envs=2, render_mode=mode), "MarketVecEnv"),
])
def test_an_unsupported_render_mode_lists_the_supported_ones(make, owner):
    with pytest.raises(RenderModeError, match=rf"^{owner}: render_mode='human' is not supported; supported render modes: none"):
        make("human")
    # A TypeError too: SB3's make_vec_env asks for rgb_array and, on a TypeError, retries without it.
    with pytest.raises(TypeError):
        make("rgb_array")


# ------------------------------------------------------------ non-finite config values
@pytest.mark.parametrize("values,message", [
    ({"fee_bps": math.inf}, "env.fee_bps: must be a finite number, got inf"),
    ({"slippage_bps": math.nan}, "env.slippage_bps: must be a finite number, got nan"),
    ({"initial_equity": math.inf}, "env.initial_equity: must be a finite number, got inf"),
    ({"max_position": math.inf}, "env.max_position: must be a finite number, got inf"),
    ({"bars_per_year": math.inf}, "env.bars_per_year: must be a finite number, got inf"),
    ({"trade_threshold": -math.inf}, "env.trade_threshold: must be a finite number, got -inf"),
    ({"actions": [0.0, math.nan]}, "env.actions[1]: must be a finite number, got nan"),
    ({"market": {"kind": "gbm", "mu": math.nan}}, "env.market.mu: must be a finite number, got nan"),
    ({"market": {"kind": "gbm", "mu": "abc"}}, "env.market.mu: must be a finite number, got 'abc'"),
    ({"market": {"kind": "heston", "theta": math.inf}}, "env.market.theta: must be a finite number, got inf"),
    ({"market": {"kind": "merton", "sigma": math.inf}}, "env.market.sigma: must be a finite number, got inf"),
    ({"market": {"kind": "garch", "nu": math.inf}}, "env.market.nu: must be a finite number, got inf"),
    ({"market": {"kind": "regime_switching", "regimes": {"bull": {"mean_pct": math.nan}}}},
     "env.market.regimes.bull.mean_pct: must be a finite number, got nan"),
    ({"market": {"kind": "regime_switching", "regimes": {"crash": {"vol_pct": math.inf}}}},
     "env.market.regimes.crash.vol_pct: must be a finite number, got inf"),
    ({"market": {"kind": "regime_switching", "regimes": {"sideways": {"duration_bars": math.inf}}}},
     "env.market.regimes.sideways.duration_bars: must be a finite number, got inf"),
    ({"market": {"kind": "regime_switching", "jump_lead_bars": -1}}, "env.market.jump_lead_bars: must be a whole number >= 0, got -1"),
    ({"market": {"kind": "regime_switching", "jump_lead_bars": 2.5}}, "env.market.jump_lead_bars: must be a whole number >= 0, got 2.5"),
])
def test_non_finite_config_values_name_the_key(values, message):
    with pytest.raises(ConfigError) as err:
        EnvConfig.from_mapping(values)
    assert str(err.value) == message


@pytest.mark.parametrize("key,value", [("fee_bps", "abc"), ("dsr_eta", None), ("initial_equity", True)])
def test_validate_rejects_a_non_number_with_a_config_error(key, value):
    with pytest.raises(ConfigError) as err:
        EnvConfig(**{key: value}).validate()
    assert str(err.value) == f"env.{key}: must be a finite number, got {value!r}"


def test_a_string_for_a_number_from_python_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^env\.fee_bps: must be a "):
        MarketEnv(fee_bps="abc")


# --------------------------------------------------------------------- historical data
def close_only_csv(tmp_path, n=40, blank=()):
    close = 50 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, n)))
    frame = pd.DataFrame({"date": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"), "price": close})
    frame["price"] = frame["price"].astype(object)
    for row in blank:
        frame.loc[row, "price"] = None
    path = tmp_path / "gold.csv"
    frame.to_csv(path, index=False)
    return path, close


CLOSE_ONLY = {"time": "date", "open": None, "high": None, "low": None, "close": "price", "volume": None}


def test_empty_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=rf"^{empty}: the file is empty \(0 bytes\)$"):
        load_series(DataConfig(path=str(empty)))
    header = tmp_path / "header.csv"
    header.write_text("Date,Open,High,Low,Close,Volume\n")
    with pytest.raises(DataError, match=rf"^{header}: no data rows \(the file has only a header\)$"):
        load_series(DataConfig(path=str(header)))
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")
    with pytest.raises(DataError, match=rf"^{blank}: the file is empty \(no header, no rows\)$"):
        load_series(DataConfig(path=str(blank)))


def test_close_only_series_derives_open_high_low_from_closes(tmp_path):
    path, close = close_only_csv(tmp_path)
    series = load_series(DataConfig(path=str(path), columns=CLOSE_ONLY))
    np.testing.assert_allclose(series.close, close)
    np.testing.assert_allclose(series.open, np.r_[close[0], close[:-1]])  # previous close; row 1: its own
    np.testing.assert_allclose(series.high, np.maximum(series.open, close))
    np.testing.assert_allclose(series.low, np.minimum(series.open, close))
    assert series.volume is None
    env = MarketEnv(market={"kind": "historical"}, data={"path": str(path), "columns": CLOSE_ONLY, "sampling": "first", "split": "all"},
                    window=4, episode_bars=10)
    env.reset(seed=0)
    np.testing.assert_allclose(env.engine.open[1:, 0], env.engine.close[:-1, 0])  # fills at the previous close


def test_close_only_needs_all_three_of_open_high_low_null(tmp_path):
    path, _ = close_only_csv(tmp_path)
    with pytest.raises(DataError, match=r"^env\.data\.columns: map open, high and low all to columns, or all to null for "
                                        r"a close-only series; got open='price', high=None, low=None$"):
        load_series(DataConfig(path=str(path), columns={**CLOSE_ONLY, "open": "price"}))
    hint = r"missing column\(s\) Open \(field open\), .*for a close-only series map open, high and low to null$"
    with pytest.raises(DataError, match=hint):
        load_series(DataConfig(path=str(path), columns={**CLOSE_ONLY, "open": "Open", "high": "High", "low": "Low"}))


def test_missing_prices_are_an_error_unless_drop_missing(tmp_path, caplog):
    path, close = close_only_csv(tmp_path, blank=(7, 20))
    with pytest.raises(DataError, match=rf"^{path}: column 'price': missing or non-numeric value nan at row 8 \(index 7\); "
                                        r"env\.data\.drop_missing=true drops rows with missing prices$"):
        load_series(DataConfig(path=str(path), columns=CLOSE_ONLY))
    with caplog.at_level(logging.WARNING, logger="openclaw_rl.rock"):
        series = load_series(DataConfig(path=str(path), columns=CLOSE_ONLY, drop_missing=True))
    assert caplog.messages == [f"{path}: dropped 2 of 40 rows with a missing price (env.data.drop_missing=true); "
                               "the first: row 8 (index 7)"]
    kept = np.delete(close, [7, 20])
    np.testing.assert_allclose(series.close, kept)
    np.testing.assert_allclose(series.open[8], kept[7])  # the bar after the gap opens at the close before it


def test_errors_after_dropping_rows_still_name_the_files_row(tmp_path):
    path, _ = close_only_csv(tmp_path, blank=(3,))
    frame = pd.read_csv(path)
    frame.loc[10, "date"] = frame.loc[9, "date"]
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'date': duplicate timestamp 2021-01-10 .* at row 11 \(index 10\)$"):
        load_series(DataConfig(path=str(path), columns=CLOSE_ONLY, drop_missing=True))


def test_drop_missing_must_be_a_bool():
    config = EnvConfig(market={"kind": "historical"}, data=DataConfig(path="bars.csv", drop_missing="yes"))
    with pytest.raises(ConfigError, match=r"^env\.data\.drop_missing: must be true or false, got 'yes'$"):
        config.validate()
