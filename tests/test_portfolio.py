"""The portfolio env: accounting by hand, missing bars, splits, look-ahead, batched == single, errors,
the baseline strategies, and Gymnasium / Stable-Baselines3 compatibility."""

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import openclaw_rl  # noqa: F401  (registers the envs)
from openclaw_rl.errors import ConfigError, DataError
from openclaw_rl.rock import PORTFOLIO_ID, PortfolioEnv, PortfolioVecEnv
from openclaw_rl.rock.portfolio import PortfolioObs, PortfolioSettings, project_weights, target_weights, unpack
from openclaw_rl.rock.portfolio_data import FactorModel, PanelReplay, load_panel
from openclaw_rl.rock.splits import overlap
from openclaw_rl.strategies.portfolio import BuyAndHold, EqualWeight, InverseVolatility, MinimumVariance

SHORT = dict(market=FactorModel(n_assets=3), window=4, episode_bars=10)
DAYS = pd.date_range("2024-01-01", periods=5, freq="D").strftime("%Y-%m-%d")
# (open, close) per symbol and day; B has a holiday on day 3.
BARS = {
    "A": [(10, 10), (10, 10.5), (10.4, 11), (11.2, 11.5), (11.4, 12)],
    "B": [(20, 20), (20, 19), (19.2, 18.5), None, (18, 18.8)],
    "C": [(5, 5), (5, 5.1), (5.1, 5.2), (5.25, 5.3), (5.3, 5.25)],
}


def long_format(bars: dict, days) -> pd.DataFrame:
    rows = [{"time": day, "symbol": symbol, "open": ohlc[0], "high": max(ohlc) + 0.1, "low": min(ohlc) - 0.1,
             "close": ohlc[1], "volume": 1.0}
            for symbol, series in bars.items() for day, ohlc in zip(days, series) if ohlc is not None]
    return pd.DataFrame(rows)


def write(tmp_path, frame, name="bars.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def replay(path, sampling="first"):
    return PanelReplay(load_panel(path), split="all", sampling=sampling)


# ---------------------------------------------------------------------------------------------- accounting
def test_equity_by_hand_with_fees_slippage_borrow_cash_rate_and_a_holiday(tmp_path):
    env = PortfolioEnv(market=replay(write(tmp_path, long_format(BARS, DAYS))), window=1, episode_bars=3,
                       mode="long_short", max_gross=1.5, trade_threshold=0.05, fee_bps=(10, 20, 5),
                       slippage_bps=(5, 0, 10), borrow_bps_per_year=1000, cash_rate_bps_per_year=500,
                       bars_per_year=2, initial_equity=1000.0, ruin_fraction=0.0)
    borrow, interest = 1.1**0.5 - 1, 1.05**0.5 - 1
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, [math.log(10.5 / 10) * 100, math.log(19 / 20) * 100, math.log(5.1 / 5) * 100,
                                     0, 0, 0, 1], rtol=1e-6)

    # Step 1 fills at day 2's open: all three assets trade (B sold short); marked at day 2's close.
    a, b, c = 0.5 * 1000 / 10.4, -0.3 * 1000 / 19.2, 0.2 * 1000 / 5.1
    na, nb, nc = a * 10.4 * 1.0005, b * 19.2 * 1.0, c * 5.1 * 1.001
    cash = 1000 - (na + nb + nc) - (abs(na) * 0.001 + abs(nb) * 0.002 + abs(nc) * 0.0005)
    cash = cash * (1 + interest) - borrow * -b * 18.5
    equity1 = cash + a * 11 + b * 18.5 + c * 5.2
    obs, reward, terminated, truncated, info = env.step([0.5, -0.3, 0.2])
    assert info["equity"] == pytest.approx(equity1, abs=1e-9) and info["chunk_end"]
    assert reward == pytest.approx(math.log(equity1 / 1000), abs=1e-12)
    assert not (terminated or truncated)

    # Step 2, day 3: B has no bar: its order waits, it is marked at its last close 18.5 (log return 0)
    # and still pays borrow; A is sold down to 0.2; C's held weight is within trade_threshold of 0.2.
    equity_open = cash + a * 11.2 + b * 18.5 + c * 5.25
    a2 = 0.2 * equity_open / 11.2
    na = (a2 - a) * 11.2 * (1 - 0.0005)
    cash = (cash - na - abs(na) * 0.001) * (1 + interest) - borrow * -b * 18.5
    equity2 = cash + a2 * 11.5 + b * 18.5 + c * 5.3
    obs, reward, _, _, info = env.step([0.2, 0.4, 0.2])
    assert info["equity"] == pytest.approx(equity2, abs=1e-9)
    assert obs[1] == 0.0 and obs[4] == pytest.approx(b * 18.5 / equity2, rel=1e-6)

    # Step 3, day 4: B trades again (short covered, now long 0.4); A and C stay; no short, no borrow.
    equity_open = cash + a2 * 11.4 + b * 18 + c * 5.3
    b2 = 0.4 * equity_open / 18
    nb = (b2 - b) * 18
    cash = (cash - nb - abs(nb) * 0.002) * (1 + interest)
    equity3 = cash + a2 * 12 + b2 * 18.8 + c * 5.25
    obs, reward, terminated, truncated, info = env.step([0.2, 0.4, 0.2])
    assert info["equity"] == pytest.approx(equity3, abs=1e-9)
    assert obs[1] == pytest.approx(math.log(18.8 / 18.5) * 100, rel=1e-6)
    assert truncated and not terminated
    np.testing.assert_allclose(env.engine.units[0], [a2, b2, c], rtol=1e-12)
    with pytest.raises(gym.error.ResetNeeded, match="after the episode ended"):
        env.step([0.2, 0.4, 0.2])


def test_ruin_terminates_and_the_single_env_then_needs_a_reset(tmp_path):
    env = PortfolioEnv(market=replay(write(tmp_path, long_format(BARS, DAYS))), window=1, episode_bars=3,
                       mode="long_short", ruin_fraction=0.95, fee_bps=0, slippage_bps=0)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step([-1.0, 0.0, 0.0])  # short A at 10.4, marked at 11
    assert terminated and not truncated
    units, borrow = -100_000 / 10.4, 1.005 ** (1 / 252) - 1  # the default borrow: 50 bps a year
    assert info["equity"] == pytest.approx(100_000 - units * 10.4 + units * 11 - borrow * -units * 11, abs=1e-6)
    with pytest.raises(gym.error.ResetNeeded, match="after the episode ended"):
        env.step([0.0, 0.0, 0.0])


def test_a_symbol_listed_later_cannot_trade_and_reads_zero_returns_until_it_has_history(tmp_path):
    late = dict(BARS, C=[None, None, None, (5.25, 5.3), (5.3, 5.25)])
    panel = load_panel(write(tmp_path, long_format(late, DAYS)))
    np.testing.assert_array_equal(panel.tradable[:, 2], [False, False, False, True, True])
    np.testing.assert_array_equal(panel.ret_pct[:4, 2], [0, 0, 0, 0])  # day 3 is its first close: no return yet
    assert panel.ret_pct[4, 2] == pytest.approx(math.log(5.25 / 5.3) * 100)
    env = PortfolioEnv(market=PanelReplay(panel, split="all", sampling="first"), window=1, episode_bars=3)
    env.reset(seed=0)
    _, _, _, _, info = env.step([0.3, 0.3, 0.3])  # fills on day 2: C waits, A and B trade
    e = env.engine
    assert e.units[0, 2] == 0 and (e.units[0, :2] > 0).all() and info["chunk_end"]
    equity_open = e.cash[0] + e.units[0, 0] * 11.2 + e.units[0, 1] * 18.5  # day 3: B's holiday, its last close
    env.step([0.3, 0.3, 0.3])  # C trades on its first bar
    assert e.units[0, 2] == pytest.approx(0.3 * equity_open / 5.25, rel=1e-12)


def test_softmax_mode_holds_the_scores_softmax_scaled_to_max_gross():
    settings = PortfolioSettings(mode="softmax", max_gross=0.9, market=FactorModel(n_assets=3))
    w = target_weights(np.array([[0.0, 0.0, 0.0], [np.log(2.0), 0.0, 0.0], [50.0, -50.0, 0.0]]), settings)
    np.testing.assert_allclose(w[:2], [[0.3, 0.3, 0.3], [0.45, 0.225, 0.225]], rtol=1e-12)
    assert w[2].sum() == pytest.approx(0.9) and w[2][1] / w[2][2] == pytest.approx(np.exp(-10.0))  # scores clipped to +-10
    env = PortfolioEnv(settings)
    assert env.action_space.low.min() == -10.0 and env.action_space.high.max() == 10.0
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    env.step(np.zeros(3, dtype=np.float32))
    held = env.engine.weights[0]
    np.testing.assert_allclose(held, held.sum() / 3, rtol=0.05)  # equal weight, drifted one bar
    assert held.sum() == pytest.approx(0.9, rel=0.05)


def test_weights_beyond_the_cap_are_rescaled_and_long_only_clips_shorts():
    np.testing.assert_allclose(project_weights(np.array([[3.0, -3.0, 0.0]]), False, 1.5), [[0.75, -0.75, 0.0]])
    np.testing.assert_allclose(project_weights(np.array([[-1.0, 2.0, 2.0]]), True, 1.0), [[0.0, 0.5, 0.5]])
    np.testing.assert_array_equal(project_weights(np.array([[0.2, 0.3, -0.1]]), True, 1.0), [[0.2, 0.3, 0.0]])
    env = PortfolioEnv(**SHORT, mode="long_short", max_gross=2.0, fee_bps=0, slippage_bps=0)
    env.reset(seed=1)
    env.step([4.0, -4.0, 0.0])
    open_ = env.engine.open[env.engine.window + 1]
    np.testing.assert_allclose(env.engine.units[0] * open_ / 100_000, [1.0, -1.0, 0.0], rtol=1e-12)


# ---------------------------------------------------------------------------------------- Gymnasium API
def test_check_env_passes_synthetic_long_short_and_replay(tmp_path):
    check_env(PortfolioEnv(**SHORT))
    check_env(PortfolioEnv(**SHORT, mode="long_short", max_gross=2.0))
    check_env(PortfolioEnv(market=replay(write(tmp_path, long_format(BARS, DAYS)), sampling="random"), window=1,
                           episode_bars=2))


def test_gym_make_and_make_vec_use_our_envs():
    env = gym.make(PORTFOLIO_ID, **SHORT)
    obs, _ = env.reset(seed=0)
    assert isinstance(env.unwrapped, PortfolioEnv) and obs.shape == ((4 + 1) * 3 + 1,) and obs.dtype == np.float32
    envs = gym.make_vec(PORTFOLIO_ID, num_envs=5, vectorization_mode="vector_entry_point", **SHORT)
    assert isinstance(envs, PortfolioVecEnv) and envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    parts = unpack(obs, 3)
    assert parts.returns_pct.shape == (5, 4, 3) and (parts.time_left == 1).all()


def test_markets_from_plain_data_as_in_a_yaml_or_json_config(tmp_path):
    path = write(tmp_path, long_format(BARS, DAYS))
    env = gym.make(PORTFOLIO_ID, market={"path": str(path), "symbols": ["A", "C"], "split": "all", "sampling": "first"},
                   window=1, episode_bars=3, fee_bps=[1.0, 2.0])
    assert env.unwrapped.settings.market.panel.symbols == ("A", "C")
    env = PortfolioEnv(market={"n_assets": 2, "beta": [0.5, 1.5]}, window=2, episode_bars=3)
    assert env.settings.market == FactorModel(n_assets=2, beta=(0.5, 1.5))
    with pytest.raises(ConfigError, match="market.betas: unknown key; allowed: n_assets, mu, sigma, beta"):
        PortfolioEnv(market={"betas": 1.0})
    with pytest.raises(ConfigError, match="market.symbol: unknown key; allowed: path, symbols, time_format, split"):
        PortfolioEnv(market={"path": str(path), "symbol": ["A"]})


def assert_same(a, b):
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[4]["equity"], b[4]["equity"])
    np.testing.assert_array_equal(a[4]["chunk_end"], b[4]["chunk_end"])
    done = a[2] | a[3]
    if done.any():
        np.testing.assert_array_equal(a[4]["final_obs"][done], np.stack(b[4]["final_obs"][done]))
    return int(done.sum())


@pytest.mark.parametrize("source", ["synthetic", "replay"])
def test_vector_env_equals_single_envs_across_autoresets(tmp_path, source):
    n = 5
    if source == "synthetic":
        config = dict(SHORT, mode="long_short", max_gross=2.0, ruin_fraction=0.5)
        actions = np.random.default_rng(1).normal(0, 2.0, (25, n, 3))  # beyond the cap: rescaled
    else:
        days = pd.date_range("2024-01-01", periods=40, freq="D").strftime("%Y-%m-%d")
        prices = np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.02, (40, 3)), axis=0)) * 50
        bars = {s: [(p, p * 1.01) for p in prices[:, k]] for k, s in enumerate("ABC")}
        bars["B"][7] = None
        config = dict(market=replay(write(tmp_path, long_format(bars, days)), sampling="random"), window=3,
                      episode_bars=10)
        actions = np.random.default_rng(1).random((25, n, 3))
    ours = PortfolioVecEnv(n, **config)
    reference = SyncVectorEnv([lambda: PortfolioEnv(**config) for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)
    np.testing.assert_array_equal(ours.reset(seed=11)[0], reference.reset(seed=11)[0])
    ended = sum(assert_same(ours.step(a), reference.step(a)) for a in actions)
    assert ended >= n  # every portfolio went through an autoreset


def test_synthetic_markets_do_not_depend_on_the_batch():
    keys = np.arange(6, dtype=np.uint64) * np.uint64(7919)
    model = FactorModel(n_assets=4)
    log_open, log_close = model.paths(keys, 30)
    one_open, one_close = model.paths(keys[[4]], 30)
    np.testing.assert_array_equal(log_close[:, 4], one_close[:, 0])
    np.testing.assert_array_equal(log_open[:, 4], one_open[:, 0])


def test_factor_model_returns_load_on_the_market_with_their_betas():
    model = FactorModel(n_assets=3, mu=(0.0, 0.0, 0.0), sigma=0.02, beta=(0.5, 1.0, 2.0), factor_sigma=0.3)
    _, log_close = model.paths(np.array([1, 2], dtype=np.uint64), 4000)
    returns = np.diff(log_close[:, 0], axis=0)
    corr = np.corrcoef(returns.T)
    assert corr[0, 1] > 0.9 and corr[1, 2] > 0.9
    cov = np.cov(returns.T)
    assert cov[2, 1] / cov[1, 1] == pytest.approx(2.0, rel=0.05)
    assert returns[:, 0].std() == pytest.approx(math.hypot(0.5 * 0.3, 0.02) / math.sqrt(252), rel=0.05)


def test_snapshot_restore_replays_the_same_steps_through_autoreset():
    envs = PortfolioVecEnv(4, **SHORT)
    envs.reset(seed=3)
    actions = np.random.default_rng(0).random((15, 4, 3))
    for a in actions[:5]:
        envs.step(a)
    state = envs.snapshot()
    first = [envs.step(a) for a in actions[5:]]
    envs.restore(state)
    for a, b in zip((envs.step(a) for a in actions[5:]), first):
        assert_same(a, b)
    with pytest.raises(ValueError, match="another n"):
        PortfolioVecEnv(3, **SHORT).restore(state)


# -------------------------------------------------------------------------------------------- look-ahead
def test_changing_every_future_bar_leaves_past_observations_bit_identical(tmp_path):
    days = pd.date_range("2024-01-01", periods=30, freq="D").strftime("%Y-%m-%d")
    rng = np.random.default_rng(5)
    prices = np.exp(np.cumsum(rng.normal(0, 0.02, (30, 3)), axis=0)) * 50
    bars = {s: [(p * 0.999, p) for p in prices[:, k]] for k, s in enumerate("ABC")}
    bars["C"][12] = None
    cut = 15  # days >= cut are replaced
    future = {s: series[:cut] + [(p * 1.1, p * 1.3) for p in rng.uniform(10, 90, 30 - cut)] for s, series in bars.items()}
    config = dict(window=4, episode_bars=20, mode="long_short", max_gross=1.5)
    runs = []
    for name, data in (("a.csv", bars), ("b.csv", future)):
        env = PortfolioEnv(market=replay(write(tmp_path, long_format(data, days), name)), **config)
        obs = [env.reset(seed=0)[0]]
        for a in np.random.default_rng(0).normal(0, 1, (cut, 3)):
            obs.append(env.step(a)[0])  # the replaced bars may ruin a portfolio: stop before
        runs.append(obs)
    seen = cut - 1 - config["window"]  # observations after this many steps show bars up to cut - 1
    for step in range(seen + 1):
        np.testing.assert_array_equal(runs[0][step], runs[1][step])
    assert not np.array_equal(runs[0][seen + 1], runs[1][seen + 1])


# ------------------------------------------------------------------------------------------------ splits
def test_time_splits_hold_per_symbol_and_episodes_stay_inside_their_split(tmp_path):
    days = pd.date_range("2024-01-01", periods=100, freq="D").strftime("%Y-%m-%d")
    bars = {s: [(50.0 + i % 7, 50.5 + (i * k) % 5) for i in range(100)] for k, s in enumerate("AB")}
    bars["B"][30:34] = [None] * 4
    panel = load_panel(write(tmp_path, long_format(bars, days)))
    splits = {name: PanelReplay(panel, split=name, embargo=5) for name in ("train", "validation", "test")}
    assert splits["train"].bars == (0, 54) and splits["validation"].bars == (59, 77)
    touched = {name: r.touched() for name, r in splits.items()}
    assert set(touched["train"]) == {"A", "B"}
    assert overlap(touched["train"]["B"], touched["train"]["B"])
    assert not overlap(touched["train"]["A"], touched["test"]["A"])
    envs = PortfolioVecEnv(16, market=splits["validation"], window=3, episode_bars=10)
    envs.reset(seed=0)
    assert (envs.engine.base >= 59).all() and (envs.engine.base + 3 + 10 + 1 <= 77).all()
    assert len(set(envs.engine.base)) > 1  # seeded random starts
    with pytest.raises(DataError, match="split=validation has 18"):
        PortfolioEnv(market=splits["validation"], window=10, episode_bars=10)


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("edit, message", [
    (lambda f: f.assign(close=f["close"].where(f.index != 4, np.nan)), r"column 'close': missing or non-numeric .* row 5"),
    (lambda f: f.assign(open=f["open"].where(f.index != 6, -1.0)), r"column 'open': non-positive price -1.0 at row 7"),
    (lambda f: pd.concat([f, f.iloc[[2]]], ignore_index=True), r"duplicate \(time, symbol\) at row 15 .*row 3"),
    (lambda f: f.iloc[[0, 2, 1, *range(3, len(f))]].reset_index(drop=True), r"earlier than the symbol's previous row at row 3"),
    (lambda f: f.drop(columns="high"), r"missing column\(s\) high"),
])
def test_bad_files_are_one_error_naming_file_column_row_and_fix(tmp_path, edit, message):
    path = write(tmp_path, edit(long_format(BARS, DAYS)))
    with pytest.raises(DataError, match=message) as error:
        load_panel(path)
    assert str(path) in str(error.value)


def test_an_unknown_symbol_lists_the_files_symbols_and_parquet_reads_as_csv(tmp_path):
    frame = long_format(BARS, DAYS)
    path = write(tmp_path, frame)
    with pytest.raises(DataError, match=r"no rows of \['ZZZ'\]; the file's symbols are \['A', 'B', 'C'\]"):
        load_panel(path, symbols=["A", "ZZZ"])
    picked = load_panel(path, symbols=["C", "A"])
    assert picked.symbols == ("C", "A") and len(picked) == 5 and picked.tradable.all()
    frame.to_parquet(tmp_path / "bars.parquet")
    parquet = load_panel(tmp_path / "bars.parquet", symbols=["C", "A"])
    np.testing.assert_array_equal(parquet.close, picked.close)
    np.testing.assert_array_equal(parquet.time, picked.time)


def test_bad_actions_and_settings_name_the_fix():
    env = PortfolioEnv(**SHORT)
    with pytest.raises(gym.error.ResetNeeded, match="before reset"):
        env.step([0.1, 0.1, 0.1])
    env.reset(seed=0)
    for bad in ([np.nan, 0.1, 0.1], [0.1, np.inf, 0.1]):
        with pytest.raises(ValueError, match="must be finite; portfolio 0, asset"):
            env.step(bad)
    with pytest.raises(ValueError, match="needs 3 target weights"):
        env.step([0.1, 0.1])
    envs = PortfolioVecEnv(2, **SHORT)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="portfolio 1, asset 2"):
        envs.step([[0.1, 0.1, 0.1], [0.1, 0.1, np.nan]])
    with pytest.raises(ConfigError, match="fee_bps: needs one finite number or n_assets=3"):
        PortfolioEnv(**SHORT, fee_bps=(1.0, 2.0))
    with pytest.raises(ConfigError, match="mode: unknown mode 'short'; allowed: long_only, long_short"):
        PortfolioEnv(**SHORT, mode="short")
    with pytest.raises(ConfigError, match="windw: unknown key; allowed: market, window"):
        PortfolioEnv(windw=3)


# ------------------------------------------------------------------------------------------- strategies
def view(returns, weights=None, time_left=0.5) -> PortfolioObs:
    returns = np.asarray(returns, dtype=np.float32)[None]
    k = returns.shape[-1]
    return PortfolioObs(returns, np.zeros((1, k), np.float32) if weights is None else weights, np.array([time_left]))


def test_inverse_volatility_and_minimum_variance_on_known_covariances():
    returns = np.array([[1, 2, 0], [-1, 2, 0], [1, -2, 0], [-1, -2, 0]])  # variances 1, 4 and no history
    np.testing.assert_allclose(InverseVolatility().weights(view(returns)), [[2 / 3, 1 / 3, 0]], rtol=1e-6)
    np.testing.assert_allclose(MinimumVariance().weights(view(returns)), [[0.8, 0.2, 0]], atol=1e-6)
    np.testing.assert_array_equal(InverseVolatility().weights(view(np.zeros((4, 3)))), np.zeros((1, 3)))


def test_minimum_variance_is_long_only_and_no_worse_than_a_grid():
    returns = np.random.default_rng(3).normal(0, 1, (40, 3))
    returns[:, 2] = 1.5 * returns[:, 0] + 0.1 * returns[:, 2]  # unconstrained, asset 2 would be shorted
    strategy = MinimumVariance(shrinkage=0.0, iterations=2000)
    w = strategy.weights(view(returns))[0]
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    cov = np.cov(np.asarray(returns, dtype=np.float32).astype(np.float64).T, bias=True)
    grid = [np.array([x, y, 1 - x - y]) for x in np.linspace(0, 1, 101) for y in np.linspace(0, 1, 101) if x + y <= 1]
    assert w @ cov @ w <= min(g @ cov @ g for g in grid) + 1e-9


def test_buy_and_hold_never_rebalances_and_equal_weight_does():
    config = dict(market=FactorModel(n_assets=4), window=4, episode_bars=30)
    for strategy, trades_after_first in ((BuyAndHold(), 0), (EqualWeight(), 29)):
        envs = PortfolioVecEnv(3, **config, trade_threshold=0.0 if isinstance(strategy, EqualWeight) else 1e-4)
        obs, _ = envs.reset(seed=0)
        trades = []
        for _ in range(30):
            obs, _, _, truncated, info = envs.step(strategy.weights(unpack(obs, 4)))
            trades.append(info["final_info"]["chunk_end"] if truncated.any() else info["chunk_end"])
        assert truncated.all() and np.all(trades[0]) and np.sum(trades[1:]) == trades_after_first * 3


# -------------------------------------------------------------------------------------- Stable-Baselines3
def test_sb3_ppo_trains_on_the_portfolio_env():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", PortfolioEnv(market=FactorModel(n_assets=3), window=4, episode_bars=32), n_steps=128,
                batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256


def test_our_trainer_trains_on_the_portfolio_env_through_gym_id_and_its_kwargs(tmp_path):
    """A K-weight Box action is one Gaussian per asset; env.gym_kwargs reach the env's constructor."""
    from openclaw_rl.roll.config import RunConfig
    from openclaw_rl.roll.trainer import run_training

    run = RunConfig.from_mapping({
        "env": {"gym_id": "openclaw_rl/Portfolio-v0", "continuous": True, "n_envs": 4,
                "gym_kwargs": {"market": {"n_assets": 3}, "window": 4, "episode_bars": 16}},
        "eval": {"objective": "episodic_return", "n_envs": 2}, "algo": {"name": "ipa", "num_minibatches": 2},
        "trainer": {"rollout_steps": 16, "total_steps": 256}})
    assert (run.env.obs_dim, run.env.action_dim) == ((4 + 1) * 3 + 1, 3)
    result = run_training(run, tmp_path / "run")
    assert np.isfinite(result.objective)
    with pytest.raises(ConfigError, match=r"env.gym_id=openclaw_rl/Portfolio-v0: cannot make it: .*mode: unknown mode"):
        RunConfig.from_mapping({"env": {"gym_id": "openclaw_rl/Portfolio-v0", "continuous": True,
                                        "gym_kwargs": {"mode": "levered"}}})


def test_the_command_line_sets_the_portfolio_envs_keyword_arguments():
    """`openclaw-train ... 'env.gym_kwargs={mode: softmax}'`: keys no schema knows, set as the docs show."""
    from openclaw_rl.api import make_config

    config = make_config(["env.gym_id=openclaw_rl/Portfolio-v0", "env.continuous=true", "eval.objective=episodic_return",
                          "env.gym_kwargs={mode: softmax, window: 8}"])
    assert config.env.gym_kwargs == {"mode": "softmax", "window": 8}
    assert config.env.obs_dim == (8 + 1) * 8 + 1
