"""Equity and drawdown curves a person would rather look at than read."""

from __future__ import annotations

import numpy as np


def equity_figure(records: dict):
    """Mean equity (growth of 1) and mean drawdown over markets, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for name, record in records.items():
        growth = record.equity / record.equity[0]
        drawdown = 1.0 - growth / np.maximum.accumulate(growth, axis=0)
        bars = np.arange(len(growth))
        top.plot(bars, growth.mean(axis=1), label=name)
        bottom.plot(bars, -100 * drawdown.mean(axis=1), label=name)
    top.set_ylabel("equity (mean over markets)")
    top.axhline(1.0, color="grey", linewidth=0.5)
    top.legend(fontsize=8)
    bottom.set_ylabel("drawdown %")
    bottom.set_xlabel("bar")
    fig.tight_layout()
    return fig
