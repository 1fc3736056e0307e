"""A benchmark run's outputs (``results.json``, ``results.md``, ``intervals.png``, TensorBoard
scalars) and ``compare``: per-task paired differences of two runs, the regression gate."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from openclaw_rl.atomic import atomic_write
from openclaw_rl.benchmark import stats
from openclaw_rl.errors import ConfigError

RESULTS = "results.json"


def write_outputs(results: dict, out: Path) -> None:
    """The figure, table and TensorBoard scalars first, ``results.json`` last and atomically: a
    directory with a ``results.json`` holds a finished run."""
    from torch.utils.tensorboard import SummaryWriter

    out.mkdir(parents=True, exist_ok=True)
    figure = intervals_figure(results)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write(out / "intervals.png", buffer.getvalue())
    atomic_write(out / "results.md", table(results))
    with SummaryWriter(str(out / "tb")) as writer:
        for name, task in results["tasks"].items():
            for key in ("excess_log_return", "log_return", "sharpe", "max_drawdown", "deflated_sharpe"):
                writer.add_scalar(f"bench/{name}/{key}", task[key], 0)
        for key, value in results["aggregate"].items():
            writer.add_scalar(f"bench/aggregate/{key}", value, 0)
        writer.add_figure("bench/intervals", figure)
    atomic_write(out / RESULTS, json.dumps(results, indent=1))


def _number(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def table(results: dict) -> str:
    """The per-task markdown table and the aggregate."""
    a = results["aggregate"]
    lines = [f"# {results['agent']}: suite {results['suite_version']}, tier {results['tier']} "
             f"({results['n_seeds']} seeds x {results['n_markets']} markets per task, test split)", "",
             "| task | excess log return vs buy-and-hold (95% CI) | log return | buy-and-hold | Sharpe | max drawdown "
             "| deflated Sharpe | |", "|---|---|---|---|---|---|---|---|"]
    for name, t in results["tasks"].items():
        mark = "contaminated" if t["contaminated"] else ""
        lines.append(f"| {name} | {_number(t['excess_log_return'])} [{_number(t['low'])}, {_number(t['high'])}] "
                     f"| {_number(t['log_return'])} | {_number(t['buy_and_hold'])} | {_number(t['sharpe'], 2)} "
                     f"| {100 * t['max_drawdown']:.1f}% | {t['deflated_sharpe']:.2f} | {mark} |")
    lines += ["", f"Aggregate over {a['n_tasks']} tasks, excess over buy-and-hold in units of the task's "
              f"episode volatility: mean {_number(a['mean'], 3)} [{_number(a['mean_low'], 3)}, "
              f"{_number(a['mean_high'], 3)}], IQM {_number(a['iqm'], 3)} [{_number(a['iqm_low'], 3)}, "
              f"{_number(a['iqm_high'], 3)}] (95% CIs; deflated Sharpe with N = {results['n_trials']} designs tried)."]
    return "\n".join(lines) + "\n"


def intervals_figure(results: dict):
    """Per-task mean excess log return with its 95% interval, as rliable's interval plots."""
    from matplotlib.figure import Figure

    names = list(results["tasks"])
    figure = Figure(figsize=(6.5, 0.45 * len(names) + 1.2))
    ax = figure.subplots()
    for y, name in enumerate(names):
        t = results["tasks"][name]
        color = "tab:red" if t["contaminated"] else "tab:blue"
        if math.isfinite(t["low"]):
            ax.plot([t["low"], t["high"]], [y, y], color=color, linewidth=6, alpha=0.4, solid_capstyle="butt")
        ax.plot([t["excess_log_return"]], [y], "|", color=color, markersize=14)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("excess log return over buy-and-hold, test split (95% CI over seeds)")
    ax.set_title(f"{results['agent']}: suite {results['suite_version']}, tier {results['tier']}", fontsize=10)
    figure.tight_layout()
    return figure


def load_results(folder: str | Path) -> dict:
    path = Path(folder) / RESULTS
    if not path.is_file():
        raise ConfigError(f"{folder}: no {RESULTS} (not a finished benchmark run)")
    return json.loads(path.read_text())


def compare(a_dir: str | Path, b_dir: str | Path, level: float = 0.95) -> tuple[str, list[str]]:
    """(a markdown table, the tasks that regressed) of B against A: per task, the difference of the
    excess log return paired by seed, with a Bonferroni-corrected interval over the tasks; a task
    regresses when its whole interval lies below 0."""
    a, b = load_results(a_dir), load_results(b_dir)
    for key, what in (("suite_version", "suite versions"), ("tier", "tiers"), ("salt_fingerprint", "salts"),
                      ("n_seeds", "numbers of seeds"), ("n_markets", "numbers of markets")):
        if a[key] != b[key]:
            raise ConfigError(f"{a_dir} and {b_dir} come from different {what} ({a[key]} vs {b[key]}); "
                              "compare runs of the same suite version and tier")
    scores = [{name: np.array(t["seeds"]["excess_log_return"]) for name, t in r["tasks"].items()} for r in (a, b)]
    diffs = stats.compare_tasks(*scores, level=level)
    lines = [f"# {b['agent']} ({b_dir}) vs {a['agent']} ({a_dir}): suite {a['suite_version']}, tier {a['tier']}", "",
             f"| task | A | B | B - A ({100 * level:g}% CI, Bonferroni over {len(diffs)} tasks) | |", "|---|---|---|---|---|"]
    for name, d in diffs.items():
        verdict = "**regressed**" if d["regressed"] else "improved" if d["improved"] else ""
        lines.append(f"| {name} | {_number(a['tasks'][name]['excess_log_return'])} "
                     f"| {_number(b['tasks'][name]['excess_log_return'])} "
                     f"| {_number(d['mean'])} [{_number(d['low'])}, {_number(d['high'])}] | {verdict} |")
    return "\n".join(lines) + "\n", [name for name, d in diffs.items() if d["regressed"]]
