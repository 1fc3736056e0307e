"""Backtest figures: median and interquartile band over markets, titles, units, dates; the sweep's
best-so-far plot."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from openclaw_rl.alma.archive import Archive  # noqa: E402
from openclaw_rl.alma.config import ALMASweeperConf  # noqa: E402
from openclaw_rl.alma.results import best_so_far_figure, write_results  # noqa: E402
from openclaw_rl.backtest.plots import backtest_title, episode_dates, equity_figure, growth_and_drawdown  # noqa: E402
from openclaw_rl.backtest.run import backtest_strategy  # noqa: E402
from openclaw_rl.episodes import EpisodeRecord  # noqa: E402
from openclaw_rl.rock import EnvConfig  # noqa: E402
from openclaw_rl.strategies.v7 import BuyAndHold, TrendFollowing  # noqa: E402


def record(equity: np.ndarray) -> EpisodeRecord:
    t, n = equity.shape[0] - 1, equity.shape[1]
    zeros = np.zeros((t, n))
    return EpisodeRecord(equity, zeros, zeros, np.zeros(n), np.full(n, t), zeros)


def line(ax, label: str):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def test_growth_and_drawdown_by_hand():
    equity = np.array([[100.0, 50.0], [120.0, 50.0], [90.0, 25.0], [130.0, 100.0]])
    growth, drawdown = growth_and_drawdown(equity)
    np.testing.assert_allclose(growth[:, 0], [1.0, 1.2, 0.9, 1.3])
    np.testing.assert_allclose(drawdown[:, 0], [0.0, 0.0, -25.0, 0.0])
    np.testing.assert_allclose(drawdown[:, 1], [0.0, 0.0, -50.0, 0.0])


def test_the_lines_are_medians_over_markets_with_an_interquartile_band():
    rng = np.random.default_rng(0)
    equity = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (51, 9)), axis=0))  # skewed across markets
    equity[0] = 100.0
    other = equity * 1.01
    fig = equity_figure({"trend": record(equity), "momentum": record(other)}, "gbm, 9 markets, 50 bars")
    top, bottom = fig.axes
    growth, drawdown = growth_and_drawdown(equity)
    np.testing.assert_allclose(line(top, "trend").get_ydata(), np.median(growth, axis=1))
    np.testing.assert_allclose(line(bottom, "trend").get_ydata(), np.median(drawdown, axis=1))
    assert not np.allclose(line(top, "trend").get_ydata(), growth.mean(axis=1))  # a mean line would fail
    band = top.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(np.percentile(growth, 25, axis=1).min())
    assert band.max() == pytest.approx(np.percentile(growth, 75, axis=1).max())
    assert "multiple of start" in top.get_ylabel() and "%" in bottom.get_ylabel()
    assert bottom.get_xlabel() == "bars since episode start"
    assert fig._suptitle.get_text() == "gbm, 9 markets, 50 bars"


def test_historical_replay_from_the_first_bar_is_plotted_against_dates(tmp_path):
    days = pd.bdate_range("2015-01-02", periods=80)
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(1).normal(0.0, 0.01, 80)))
    open_ = np.r_[close[0], close[:-1]]  # no overnight gaps: an order fills at the previous close
    pd.DataFrame({"Date": days, "Open": open_, "High": np.maximum(open_, close) * 1.01, "Low": np.minimum(open_, close) * 0.99,
                  "Close": close, "Volume": 1e6}).to_csv(tmp_path / "spy.csv", index=False)
    env = EnvConfig.from_mapping(market={"kind": "historical"}, window=8, episode_bars=40,
                                 data={"path": str(tmp_path / "spy.csv"), "sampling": "first", "split": "all"})
    dates = episode_dates(env)
    assert len(dates) == 41 and dates[0] == np.datetime64(days[8]) and dates[-1] == np.datetime64(days[48])
    title = backtest_title(env, 4, dates)
    assert title == f"spy.csv, 4 markets, {days[8].date()} to {days[48].date()}" == "spy.csv, 4 markets, 2015-01-14 to 2015-03-11"
    records = {"buy_and_hold": backtest_strategy(BuyAndHold(), env, 4, seed=0)[0],
               "trend": backtest_strategy(TrendFollowing(fast=2, slow=5), env, 4, seed=0)[0]}
    fig = equity_figure(records, title, dates)
    top, bottom = fig.axes
    assert isinstance(bottom.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    assert bottom.get_xlabel().startswith("date")
    x = line(top, "buy_and_hold").get_xdata()
    assert mdates.num2date(mdates.date2num(x[0])).date() == days[8].date()
    # Equity row k, plotted at dates[k], is marked at that bar's close: buy and hold is the price path (costs aside).
    np.testing.assert_allclose(line(top, "buy_and_hold").get_ydata(), close[8:49] / close[8], rtol=1e-3)

    random_starts = EnvConfig.from_mapping(market={"kind": "historical"}, window=8, episode_bars=40,
                                           data={"path": str(tmp_path / "spy.csv"), "split": "all"})
    assert episode_dates(random_starts) is None
    assert backtest_title(random_starts, 4) == "spy.csv, 4 markets, 40 bars (0.16 years) from random start dates"
    assert backtest_title(EnvConfig(regime="crash"), 64) == "regime_switching (regime crash), 64 markets, 252 bars (1 year)"


def test_best_so_far_marks_the_baseline_initial_and_proposed_trials(tmp_path):
    archive = Archive(tmp_path / "archive.sqlite")
    plan = [("baseline", 0.10), ("initial", 0.05), ("initial", 0.20), ("perturb", 0.15), ("crossover", 0.30),
            ("resample", None), ("perturb", 0.25)]
    for k, (mutation, score) in enumerate(plan):
        trial = archive.add("search", {"x": k}, [f"x={k}"], mutation, parent=1 if mutation != "initial" else None)
        if score is None:
            archive.fail(trial, "boom")
        else:
            archive.finish(trial, score, [score])
    fig = best_so_far_figure(archive.trials(kind="search"), "sharpe")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "sharpe" and "sharpe" in ax.get_title()
    np.testing.assert_allclose(line(ax, "best so far").get_ydata(), [0.10, 0.10, 0.20, 0.20, 0.30, 0.30, 0.30])
    np.testing.assert_allclose(line(ax, "baseline design").get_ydata(), [0.10])
    np.testing.assert_allclose(line(ax, "initial (space-filling)").get_xdata(), [2, 3])
    np.testing.assert_allclose(line(ax, "proposed (ALMA rule)").get_ydata(), [0.15, 0.30, 0.25])
    assert line(ax, "initial (space-filling)").get_marker() != line(ax, "proposed (ALMA rule)").get_marker()
    (baseline,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("baseline score")]
    assert set(baseline.get_ydata()) == {0.10}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["best so far", "baseline design"] and "proposed (ALMA rule)" in legend

    # A baseline killed in flight and rerun under a new id (as sweeps before resume-in-place did) is still the baseline.
    resumed = Archive(tmp_path / "resumed.sqlite")
    first = resumed.add("search", {"x": 0}, ["x=0"], "baseline")
    resumed.fail(first, "killed", status="interrupted")
    resumed.finish(resumed.add("search", {"x": 0}, ["x=0"], "retry", retry_of=first), 0.12, [0.12])
    (ax,) = best_so_far_figure(resumed.trials(kind="search")).axes
    np.testing.assert_allclose(line(ax, "baseline design").get_ydata(), [0.12])
    assert ax.get_ylabel() == "objective"
    assert write_results(resumed, tmp_path / "resumed", ALMASweeperConf())["baseline_result"] == 0.12

    results = write_results(archive, tmp_path, ALMASweeperConf(proposer="alma"), objective="sharpe")
    assert results["objective"] == "sharpe" and not (tmp_path / "best_so_far.png").exists()  # after each trial: no figure
    write_results(archive, tmp_path, ALMASweeperConf(proposer="alma"), utilization=0.9, objective="sharpe")  # the sweep's end
    assert (tmp_path / "best_so_far.png").stat().st_size > 0
