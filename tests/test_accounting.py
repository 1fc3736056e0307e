"""Hand-computed fills, costs, borrow, rewards and chunk boundaries on scripted bars."""

import math

import numpy as np
import pytest

# window=2: bars 0..1 are history, the agent first sees the close of bar 2 and its first
# order fills at the open of bar 3.
OPENS = [100, 100, 100, 102, 108, 115, 120]
CLOSES = [100, 100, 100, 105, 110, 118, 121]


def step(engine, target):
    return engine.step(np.array([float(target)]))


def test_long_fills_at_next_open_and_marks_at_close(scripted):
    engine = scripted(OPENS, CLOSES)
    reward, term, trunc, chunk_end = step(engine, 1)
    units = 100_000 / 102  # all equity at the open of bar 3
    assert engine.units[0] == pytest.approx(units, rel=1e-15)
    assert engine.equity[0] == pytest.approx(units * 105, rel=1e-15)
    assert reward[0] == pytest.approx(math.log(105 / 102), rel=1e-12)
    assert chunk_end[0] and not term[0] and not trunc[0]


def test_fee_and_slippage_in_bps_of_traded_notional(scripted):
    engine = scripted(OPENS, CLOSES, fee_bps=10.0, slippage_bps=20.0)
    step(engine, 1)
    units = 100_000 / 102
    fill = 102 * 1.002
    cash = 100_000 - units * fill - units * fill * 0.001
    assert engine.cash[0] == pytest.approx(cash, rel=1e-12)
    assert engine.equity[0] == pytest.approx(cash + units * 105, rel=1e-12)
    # closing the long: the sell fills 20 bps below the open of bar 4 and pays 10 bps
    step(engine, 0)
    sell = 108 * 0.998
    cash += units * sell - units * sell * 0.001
    assert engine.units[0] == 0.0
    assert engine.cash[0] == pytest.approx(cash, rel=1e-12)
    assert engine.equity[0] == pytest.approx(cash, rel=1e-12)


def test_borrow_on_shorts_is_charged_every_bar_on_close_notional(scripted):
    engine = scripted(OPENS, CLOSES, borrow_bps_per_year=500.0, bars_per_year=252.0)
    rate = 1.05 ** (1 / 252) - 1
    step(engine, -1)
    units = -100_000 / 102
    cash = 100_000 - units * 102 - rate * (-units) * 105
    assert engine.cash[0] == pytest.approx(cash, rel=1e-12)
    step(engine, -1)  # still short: no trade, another bar of borrow at the new close
    cash -= rate * (-units) * 110
    assert engine.cash[0] == pytest.approx(cash, rel=1e-12)
    assert engine.equity[0] == pytest.approx(cash + units * 110, rel=1e-12)


def test_no_rebalancing_while_target_unchanged(scripted):
    engine = scripted(OPENS, CLOSES)
    _, _, _, first = step(engine, 1)
    units = engine.units[0]
    _, _, _, second = step(engine, 1)
    assert first[0] and not second[0]
    assert engine.units[0] == units


def test_no_look_ahead_profit_starts_at_the_next_open(scripted):
    """The bar the agent just saw (close 100 -> its decision) never enters its PnL."""
    engine = scripted(OPENS, CLOSES)
    rewards = [step(engine, 1)[0][0] for _ in range(3)]
    # long from the open of bar 3: the gap 100 -> 102 (bar 2 close to bar 3 open) is not earned
    expected = [math.log(105 / 102), math.log(110 / 105), math.log(118 / 110)]
    assert rewards == pytest.approx(expected, rel=1e-12)
    assert sum(rewards) == pytest.approx(math.log(118 / 102), rel=1e-12)


def test_chunk_end_marks_exactly_the_steps_with_an_order(scripted):
    engine = scripted(OPENS + [121, 122], CLOSES + [122, 123])
    flags = [bool(step(engine, a)[3][0]) for a in (1, 1, -1, 0, 0, 1)]
    assert flags == [True, False, True, True, False, True]


def test_truncation_after_episode_bars(scripted):
    engine = scripted(OPENS, CLOSES)  # episode_bars = 4
    outcomes = [step(engine, 0)[2][0] for _ in range(4)]
    assert outcomes == [False, False, False, True]


def test_ruin_terminates(scripted):
    engine = scripted([100, 100, 100, 100, 300, 300, 300], [100, 100, 100, 250, 300, 300, 300], ruin_fraction=0.05)
    reward, term, trunc, _ = step(engine, -1)  # short 1000 units at 100, close 250: equity -50k
    assert term[0] and not trunc[0]
    assert np.isfinite(reward[0])


def test_terminal_excess_reward_is_paid_once_at_the_end(scripted):
    engine = scripted(OPENS, CLOSES, reward="terminal_excess")
    rewards = [step(engine, a)[0][0] for a in (1, 1, 0, 0)]
    assert rewards[:3] == [0.0, 0.0, 0.0]
    equity = 100_000 / 102 * 115  # bought at the open of bar 3 (102), sold at the open of bar 5 (115)
    assert rewards[3] == pytest.approx(math.log(equity / 100_000) - math.log(121 / 100), rel=1e-12)


def test_differential_sharpe_ratio_matches_moody_saffell(scripted):
    eta = 0.1
    engine = scripted(OPENS, CLOSES, reward="dsr", dsr_eta=eta)
    a = b = 0.0
    equity = 100_000.0
    units = 100_000 / 102
    for k, close in enumerate(CLOSES[3:7]):
        reward = step(engine, 1)[0][0]
        new_equity = units * close
        ret = new_equity / equity - 1
        var = b - a * a
        expected = 0.0 if var <= 1e-12 else (b * (ret - a) - 0.5 * a * (ret * ret - b)) / var**1.5
        assert reward == pytest.approx(expected, rel=1e-9, abs=1e-12), k
        a, b, equity = a + eta * (ret - a), b + eta * (ret * ret - b), new_equity


def test_observation_layout(scripted):
    engine = scripted(OPENS, CLOSES)
    obs = engine.obs[0]
    # window of 2 log returns (%): bars 1 and 2 are flat
    assert obs[:2] == pytest.approx([0.0, 0.0])
    step(engine, 1)
    obs = engine.obs[0]
    assert obs[0] == pytest.approx(0.0)
    assert obs[1] == pytest.approx(100 * math.log(105 / 100), rel=1e-6)
    assert obs[4] == 1.0  # position
    assert obs[5] == pytest.approx(100 * (105 / 102 - 1), rel=1e-5)  # unrealized PnL since the order
    assert obs[6] == pytest.approx(1 - 1 / 4)  # fraction of the episode left


def test_longs_pay_no_borrow(scripted):
    engine = scripted(OPENS, CLOSES, borrow_bps_per_year=500.0, bars_per_year=252.0)
    step(engine, 1)
    step(engine, 1)  # two bars long: borrow is for shorts only
    units = 100_000 / 102
    assert engine.cash[0] == pytest.approx(100_000 - units * 102, abs=1e-9)
    assert engine.equity[0] == pytest.approx(units * 110, rel=1e-12)


def test_unrealized_pnl_feature_is_measured_from_the_equity_at_the_last_order(scripted):
    engine = scripted(OPENS + [121, 122], CLOSES + [122, 123], fee_bps=10.0)
    step(engine, 1)  # long at the open of bar 3 (102)
    step(engine, 1)  # held
    long_units = 100_000 / 102
    cash = 100_000 - long_units * 102 * 1.001
    step(engine, -1)  # flip short at the open of bar 5 (115), marked at its close (118)
    short_units = -(cash + long_units * 115) / 115
    cash -= (short_units - long_units) * 115 + abs(short_units - long_units) * 115 * 0.001
    entry = cash + short_units * 115  # the equity right after the order's fill
    equity = cash + short_units * 118
    assert engine.equity[0] == pytest.approx(equity, rel=1e-12)
    assert engine.obs[0][5] == pytest.approx(100 * (equity / entry - 1), rel=1e-5)
    assert abs(equity / entry - equity / 100_000) > 1e-3  # against the initial equity it would differ
