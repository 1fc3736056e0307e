"""Equity and drawdown figures a quant would keep.

Per strategy (or policy): the median over markets as a line and the interquartile range
(25th to 75th percentile) as a band, for equity as a multiple of the starting equity and for the
drawdown from the running peak in percent. Where every market replays the same historical bars
(``env.data.sampling=first``) the x axis is the bars' dates; otherwise it counts bars since the
episode start, and the title says why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openclaw_rl.rock import EnvConfig


def growth_and_drawdown(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equity ``[T+1, N]`` as a multiple of its first row, and the drawdown from the running peak
    in percent (``<= 0``), both ``[T+1, N]``."""
    growth = equity / equity[0]
    return growth, 100.0 * (growth / np.maximum.accumulate(growth, axis=0) - 1.0)


def episode_dates(env: EnvConfig) -> np.ndarray | None:
    """The timestamps ``[episode_bars + 1]`` of the equity rows when every market replays the same
    historical bars (``sampling=first``: from the split's first bar), else None. Equity row ``k`` is
    marked at the close of bar ``window + k`` of the episode: the first ``window`` bars only fill the
    observation."""
    if env.market.get("kind") != "historical" or env.data.sampling != "first":
        return None
    replay = env.make_market()
    first = replay.start + env.window
    return replay.series.time[first : first + env.episode_bars + 1]


def market_name(env: EnvConfig) -> str:
    """The model (``regime_switching``, with a fixed regime if any) or the historical data's name."""
    kind = env.market.get("kind")
    if kind == "historical":
        return env.data.builtin or Path(env.data.path or "?").name
    return f"{kind} (regime {env.regime})" if env.regime is not None else str(kind)


def backtest_title(env: EnvConfig, n_markets: int, dates: np.ndarray | None = None) -> str:
    """Market, number of markets, and the period: dates, or the episode length in bars."""
    if dates is not None:
        period = f"{np.datetime_as_string(dates[0], unit='D')} to {np.datetime_as_string(dates[-1], unit='D')}"
    else:
        years = float(f"{env.episode_bars / env.bars_per_year:.2g}")
        period = f"{env.episode_bars} bars ({years:g} year{'' if years == 1 else 's'})"
        if env.market.get("kind") == "historical":
            period += " from random start dates"
    return f"{market_name(env)}, {n_markets} market{'' if n_markets == 1 else 's'}, {period}"


def equity_figure(records: dict, title: str, dates: np.ndarray | None = None):
    """Median and interquartile band over markets of equity (multiple of start) and drawdown (%),
    one colour per entry of ``records`` (name -> ``EpisodeRecord``); x: ``dates`` or bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for name, record in records.items():
        for ax, values in zip((top, bottom), growth_and_drawdown(record.equity)):
            x = dates if dates is not None else np.arange(len(values))
            (line,) = ax.plot(x, np.median(values, axis=1), label=name, linewidth=1.5)
            low, high = np.percentile(values, [25, 75], axis=1)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    top.axhline(1.0, color="grey", linewidth=0.6)
    top.set_ylabel("equity (multiple of start)")
    top.legend(fontsize=8, title="median over markets,\nband: 25th-75th pct", title_fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown from peak (%)")
    bottom.grid(alpha=0.3)
    if dates is not None:
        locator = mdates.AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        bottom.set_xlabel("date (bar close)")
    else:
        bottom.set_xlabel("bars since episode start")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
