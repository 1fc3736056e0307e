"""A benchmark run's outputs (``results.json``, ``results.md``, ``intervals.png``, TensorBoard
scalars) and ``compare``, the regression gate: per task, B - A over training seeds (several runs a
side) or over market seeds (one run a side: the fixed-weights test)."""

from __future__ import annotations

import glob
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
             f"({results['n_seeds']} seeds x {results['n_markets']} markets per task, {results.get('split', 'test')} split)", "",
             "| task | excess log return vs buy-and-hold (95% CI) | log return | buy-and-hold | Sharpe | max drawdown "
             "| deflated Sharpe | |", "|---|---|---|---|---|---|---|---|"]
    for name, t in results["tasks"].items():
        mark = "contaminated" if t["contaminated"] else ""
        if t.get("independent_episodes", 2) < 2:
            mark = ", ".join(filter(None, [mark, f"too short for an interval ({t['independent_episodes']:.1f} "
                                                 "independent episodes)"]))
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
    ax.set_xlabel(f"excess log return over buy-and-hold, {results.get('split', 'test')} split (95% CI over seeds)")
    ax.set_title(f"{results['agent']}: suite {results['suite_version']}, tier {results['tier']}", fontsize=10)
    figure.tight_layout()
    return figure


def load_results(folder: str | Path) -> dict:
    path = Path(folder) / RESULTS
    if not path.is_file():
        raise ConfigError(f"{folder}: no {RESULTS} (not a finished benchmark run)")
    return json.loads(path.read_text())


def result_dirs(spec: str | Path) -> list[Path]:
    """The finished runs one side of ``compare`` names: a run dir, a dir holding run dirs (one per
    training seed), or several of these separated by commas (``[a,b]`` or globs too)."""
    found: list[Path] = []
    for item in str(spec).strip().removeprefix("[").removesuffix("]").split(","):
        item = item.strip()
        paths = sorted(map(Path, glob.glob(item))) if any(c in item for c in "*?[") else [Path(item)]
        if not paths:
            raise ConfigError(f"{item}: matches no path")
        for path in paths:
            if (path / RESULTS).is_file() or not path.is_dir():
                found.append(path)  # a missing one fails with its own message when loaded
            else:
                below = sorted(result.parent for result in path.rglob(RESULTS))
                if not below:
                    raise ConfigError(f"{path}: no {RESULTS} in or below it (not a finished benchmark run)")
                found += below
    return found


AGGREGATE = "aggregate"  # compare's row for the suite's aggregate (normalized excess), in the family of tests


def side_scores(runs: list[dict], fixed_weights: bool) -> dict[str, np.ndarray]:
    """Per task and the aggregate, the values compared: one run's per-seed scores (the fixed-weights
    test), or one score per run (a training seed each)."""
    if fixed_weights:
        (run,) = runs
        tasks = {name: np.array(t["seeds"]["excess_log_return"]) for name, t in run["tasks"].items()}
        normalized = np.mean([t["seeds"]["normalized_excess"] for t in run["tasks"].values()], axis=0)
        return {**tasks, AGGREGATE: normalized}
    tasks = {name: np.array([r["tasks"][name]["excess_log_return"] for r in runs]) for name in runs[0]["tasks"]}
    return {**tasks, AGGREGATE: np.array([r["aggregate"]["mean"] for r in runs])}


def _check_comparable(a_dirs: list[Path], a: list[dict], b_dirs: list[Path], b: list[dict]) -> None:
    """Every run of both sides scored the same suite, tier, salt, markets and tasks; in a seed-level
    gate, no checkpoint twice."""
    first_dir, first = a_dirs[0], a[0]
    for folder, run in zip(a_dirs[1:] + b_dirs, a[1:] + b):
        for key, what in (("suite_version", "suite versions"), ("tier", "tiers"), ("salt_fingerprint", "salts"),
                          ("n_seeds", "numbers of seeds"), ("n_markets", "numbers of markets")):
            if first[key] != run[key]:
                raise ConfigError(f"{first_dir} and {folder} come from different {what} ({first[key]} vs {run[key]}); "
                                  "compare runs of the same suite version and tier")
        if set(first["tasks"]) != set(run["tasks"]):
            raise ValueError(f"tasks differ: {sorted(set(first['tasks']) ^ set(run['tasks']))}")
        for name, task in run["tasks"].items():
            if task.get("identity") != first["tasks"][name].get("identity"):
                raise ConfigError(f"task {name}: {first_dir} and {folder} scored different tasks under one name "
                                  "(another env or other data); compare runs of the same task")
    agents = [run["agent"] for run in a + b]
    if len(agents) > 2 and len(set(agents)) < len(agents):
        twice = sorted({agent for agent in agents if agents.count(agent) > 1})
        raise ConfigError(f"{twice[0]} is scored more than once; give each checkpoint (training seed) once")


def compare(a_dirs: list[str | Path], b_dirs: list[str | Path], level: float = 0.95) -> tuple[str, list[str]]:
    """(a markdown table, the rows that regressed) of side B against side A, per task and for the
    aggregate, with intervals at the Bonferroni-corrected level over those rows; a row regresses when
    its whole interval lies below 0.

    Several runs a side (one checkpoint per training seed, the same markets): Welch's t over the
    training seeds, the gate for "did my change make training worse?". One run a side: the
    fixed-weights test, paired over the tier's market seeds; it sees market noise only.
    """
    a_dirs, b_dirs = [Path(d) for d in a_dirs], [Path(d) for d in b_dirs]
    if not a_dirs or not b_dirs:
        raise ConfigError("compare needs at least one run a side")
    fixed_weights = len(a_dirs) == len(b_dirs) == 1
    if not fixed_weights and min(len(a_dirs), len(b_dirs)) < 2:
        raise ConfigError(f"A has {len(a_dirs)} run(s) and B {len(b_dirs)}: give each side 2 or more (one checkpoint "
                          "per training seed; 5 or more recommended), or one each for the fixed-weights test")
    a, b = [load_results(d) for d in a_dirs], [load_results(d) for d in b_dirs]
    _check_comparable(a_dirs, a, b_dirs, b)
    scores = [side_scores(runs, fixed_weights) for runs in (a, b)]
    diffs = stats.compare_tasks(*scores, level=level, paired=fixed_weights)
    head = a[0]
    if fixed_weights:
        title = f"# {b[0]['agent']} ({b_dirs[0]}) vs {a[0]['agent']} ({a_dirs[0]})"
        about = ("Fixed-weights test: one checkpoint a side, paired over the tier's market seeds. It covers market "
                 "noise only, not training's: to ask whether a change made training worse, give each side several "
                 "checkpoints, one per training seed.")
    else:
        title = f"# B ({len(b_dirs)} checkpoints) vs A ({len(a_dirs)} checkpoints)"
        about = (f"Seed-level gate: Welch's t over training seeds (A: {', '.join(map(str, a_dirs))}; "
                 f"B: {', '.join(map(str, b_dirs))}).")
    lines = [f"{title}: suite {head['suite_version']}, tier {head['tier']}", "", about, "",
             f"| task | A | B | B - A ({100 * level:g}% CI, Bonferroni over {len(diffs)}) "
             "| smallest regression it detects (80% power) | |", "|---|---|---|---|---|---|"]
    for name in [*sorted(head["tasks"]), AGGREGATE]:
        d = diffs[name]
        marks = ["**regressed**" if d["regressed"] else "improved" if d["improved"] else ""]
        for side, runs in (("A", a), ("B", b)):
            tasks = [name] if name != AGGREGATE else list(head["tasks"])
            if any(run["tasks"][task]["contaminated"] for run in runs for task in tasks):
                marks.append(f"contaminated {side}")
        lines.append(f"| {name} | {_number(np.mean(scores[0][name]))} | {_number(np.mean(scores[1][name]))} "
                     f"| {_number(d['mean'])} [{_number(d['low'])}, {_number(d['high'])}] "
                     f"| {d['detectable']:.4f} | {', '.join(m for m in marks if m)} |")
    lines += ["", "The aggregate is the mean normalized excess over the tasks (units of episode volatility); "
              "the others are excess log returns."]
    return "\n".join(lines) + "\n", [name for name, d in diffs.items() if d["regressed"]]
