"""Design search at equal compute: ALMA (one level, two levels, successive halving) vs Optuna TPE vs random search.

Every sweeper searches the same space for the suite's ``switching`` task (the default env: the
regime-switching chain) with the same compute: ``trials`` trials of ``steps`` env steps each, 2 at
a time, per sweep seed. A trial's objective is its validation excess log return over buy-and-hold
(the trainer's end-of-run evaluation on validation markets). Each sweep's chosen design, its best
trial, is then scored by ``run_benchmark`` on the task's test split: the sweep's test score.

Sweepers:

- ``alma``: ALMA's rule (``proposer=alma``), every trial from scratch;
- ``alma_two_level``: ``inherit_weights=true``, a child starts from its parent's final weights
  (``trainer.init_from``) while ALMA changes the design, or keeps it with the ``continue`` operator;
  ``n_initial=4`` designs from scratch;
- ``alma_promotion``: successive halving (``promotion.enabled=true``): a trial in the top half of the
  finished trials of its rung continues exactly from its checkpoint for one more trial-length (ASHA's
  rule); otherwise ALMA proposes a new design, trained from scratch; ``n_initial=4``;
- ``random_promotion``: ``alma_promotion`` with ``proposer=random`` (new designs drawn uniformly, not by
  ALMA's rule): ASHA with random sampling, the ablation of ALMA's rule;
- ``tpe`` and ``random``: hydra-optuna-sweeper's samplers, batches of 2 through Hydra's joblib launcher;
- ``tpe_anneal``: ``tpe`` with the trainer's default ``algo.anneal_lr=true``, which every other
  sweeper's trials turn off (a promoted run's prefix must not depend on its length).

Every trial, promoted or new, trains ``steps`` env steps: equal compute is equal trial counts. Sweeps
run one after another. Steady-state worker utilization = sum of job durations / (2 x
the window from the first job's start to the last job's end), every job timed the same way (from its
.hydra/config.yaml to its train.log's last write); the whole sweep's (start-up and exit included)
and ALMA's own figure (optimization_results.yaml) are kept for reference.

    python bench/alma_vs.py [--seeds 5] [--budget 20] [--first-seed 10] [--sweepers ...] [--add]   # ~25 minutes on 2 cores
    python bench/alma_vs.py --quick                      # a check that the script works (~2 minutes)

Writes bench/results/NAME.{json,md,png} (NAME: alma_vs, or alma_vs_quick).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from common import RESULTS, machine, mean_sd, write_results
from openclaw_rl.atomic import atomic_write
from openclaw_rl.benchmark import stats
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.suite import run_benchmark
from openclaw_rl.benchmark.tasks import TIERS

ROOT = Path(__file__).resolve().parent.parent
TASK = "switching"  # the suite's task whose env is the default one: training runs need no env override
SPACE = ["algo.lr=tag(log, interval(1e-5, 3e-2))", "algo.ent_coef=interval(0.0, 0.05)",
         "algo.gamma=interval(0.9, 0.999)", "ipa.chunker=choice(trade, fixed, step, episode)",
         "algo.update_epochs=range(1, 9)"]
OBJECTIVE = re.compile(r"objective excess_log_return = (\S+)")
WORKERS = 2
SWEEPERS = {
    "alma": "ALMA (defaults, steady state)",
    "alma_two_level": "ALMA two-level (inherit_weights=true, n_initial=4)",
    "alma_promotion": "ALMA + successive halving (promotion.enabled=true, n_initial=4)",
    "random_promotion": "random designs + successive halving (proposer=random, promotion.enabled=true, n_initial=4)",
    "tpe": "Optuna TPE (joblib, batches of 2)",
    "tpe_anneal": "Optuna TPE, trials with algo.anneal_lr=true (joblib, batches of 2)",
    "random": "random search (Optuna, joblib, batches of 2)",
}
PAIRS = (("alma_promotion", "random_promotion"), ("alma_promotion", "tpe"), ("alma_promotion", "tpe_anneal"), ("alma_promotion", "random"), ("alma_two_level", "tpe"), ("alma", "tpe"))  # (a, b): a - b, paired by sweep seed


@dataclass(frozen=True)
class Budget:
    name: str  # of the results files
    seeds: int  # sweep seeds first_seed..first_seed+seeds-1
    trials: int  # per sweep
    steps: int  # env steps per trial
    tier: str  # of the test scoring
    first_seed: int = 0


HALVING = ["hydra.sweeper.promotion.enabled=true", "hydra.sweeper.n_initial=4"]  # new designs from scratch
ALMA_SETTINGS = {  # hydra/sweeper=alma's settings per sweeper of ours (the others are Optuna's)
    "alma": ["hydra.sweeper.proposer=alma"],
    # two levels: children inherit weights; fewer designs from scratch leave more generations
    "alma_two_level": ["hydra.sweeper.proposer=alma", "hydra.sweeper.inherit_weights=true", "hydra.sweeper.n_initial=4"],
    "alma_promotion": [*HALVING, "hydra.sweeper.proposer=alma"],
    "random_promotion": [*HALVING, "hydra.sweeper.proposer=random"],
}


def ours(name: str) -> bool:
    """Whether a sweeper is ALMA's (hydra/sweeper=alma), not Optuna's."""
    return name in ALMA_SETTINGS


def task_overrides(steps: int) -> list[str]:
    """What every trial trains with (besides the searched keys): a few seconds per run."""
    return ["env.n_envs=32", "trainer.rollout_steps=64", f"trainer.total_steps={steps}", "eval.n_envs=64",
            "eval.objective=excess_log_return", "trainer.progress=log", "trainer.threads=1",
            "algo.anneal_lr=false"]  # a run's prefix independent of its length, as successive halving assumes


def sweeper_overrides(name: str, trials: int, seed: int) -> list[str]:
    if ours(name):
        return ["hydra/sweeper=alma", f"hydra.sweeper.budget={trials}", f"hydra.sweeper.seed={seed}",
                f"hydra.sweeper.n_workers={WORKERS}", *ALMA_SETTINGS[name]]
    anneal = ["algo.anneal_lr=true"] if name == "tpe_anneal" else []  # the trainer's default, for TPE's sake
    return [*anneal, "hydra/sweeper=optuna", f"hydra/sweeper/sampler={name.split('_')[0]}", "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={WORKERS}", f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.n_jobs={WORKERS}",
            "hydra.sweeper.direction=maximize", f"hydra.sweeper.sampler.seed={seed}"]


def job_dirs(name: str, sweep_dir: Path) -> list[Path]:
    """The sweep's job dirs in the order their trials started."""
    if ours(name):
        with sqlite3.connect(sweep_dir / "archive.sqlite") as db:
            rows = db.execute("SELECT id FROM trials WHERE kind = 'search' ORDER BY id").fetchall()
        return [sweep_dir / f"trial_{r[0]:04d}" / "task_0" for r in rows]
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def validation(job: Path) -> float:
    """The job's validation objective, from its train.log (NaN for a failed trial)."""
    log = job / "train.log"
    found = OBJECTIVE.findall(log.read_text()) if log.is_file() else []
    return float(found[-1]) if found else math.nan


def span(job: Path) -> tuple[float, float] | None:
    """(start, end) of a job: its .hydra/config.yaml written, its log's last write."""
    log, config = job / "train.log", job / ".hydra" / "config.yaml"
    return (config.stat().st_mtime, log.stat().st_mtime) if log.is_file() and config.is_file() else None


def steady_state_utilization(jobs: list[Path]) -> float:
    """Sum of job durations / (workers x the window from the first job's start to the last job's end):
    how busy the workers are once the sweep runs, without the sweeper's own start-up and exit."""
    spans = [s for s in map(span, jobs) if s is not None]
    window = max(end for _, end in spans) - min(start for start, _ in spans)
    return sum(end - start for start, end in spans) / (WORKERS * window)


def chosen(name: str, sweep_dir: Path, jobs: list[Path], scores: list[float]) -> Path:
    """The job dir of the sweep's best trial: ALMA's own choice, else the best parsed objective."""
    if ours(name):
        best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["best_trial"]
        return Path(best["run_dir"]) / "task_0"
    if not np.isfinite(scores).any():
        raise RuntimeError(f"{sweep_dir}: no trial finished")
    return jobs[int(np.nanargmax(scores))]


def best_so_far(scores: list[float]) -> list[float]:
    """Best finite objective among the first k trials, k = 1..n (NaN before the first)."""
    best = np.fmax.accumulate(np.nan_to_num(scores, nan=-np.inf))
    return np.where(np.isfinite(best), best, np.nan).tolist()


def sweep(name: str, budget: Budget, seed: int) -> dict:
    """One sweep, then its chosen design scored on the test split (while its job dirs exist)."""
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = Path(tmp) / "sweep"
        command = [sys.executable, "-m", "openclaw_rl.train", "-m", f"hydra.sweep.dir={sweep_dir}",
                   *task_overrides(budget.steps), *sweeper_overrides(name, budget.trials, seed), *SPACE]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{name} seed {seed} failed:\n{result.stderr[-3000:]}")
        jobs = job_dirs(name, sweep_dir)
        scores = [validation(j) for j in jobs]
        busy = sum(end - start for start, end in filter(None, map(span, jobs)))
        steady = steady_state_utilization(jobs)
        best = chosen(name, sweep_dir, jobs, scores)
        overrides = best / ".hydra" / "overrides.yaml"
        design = yaml.safe_load(overrides.read_text()) if overrides.is_file() else None
        own = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text()).get("worker_utilization") \
            if ours(name) else None
        start = time.perf_counter()
        results = run_benchmark(BenchConfig(checkpoint=str(best), tier=budget.tier, tasks=[TASK]), Path(tmp) / "bench",
                                bar=False)
        scoring = time.perf_counter() - start
    task = results["tasks"][TASK]
    return {"seed": seed, "validation": scores, "best_so_far": best_so_far(scores),
            "chosen": {"start_index": jobs.index(best), "overrides": design, "validation": scores[jobs.index(best)]},
            "test": task["excess_log_return"], "test_interval": [task["low"], task["high"]],
            "test_seeds": task["seeds"]["excess_log_return"], "test_buy_and_hold": task["buy_and_hold"],
            "wall_s": wall, "utilization": steady, "sweep_utilization": busy / (WORKERS * wall),
            "alma_utilization": own, "scoring_s": scoring}


def trained_steps(run: dict, steps: int) -> int:
    """Env steps behind a sweep's chosen checkpoint: its last trainer.total_steps override (a promoted trial's
    raised length), else one trial-length."""
    lengths = [int(o.split("=")[1]) for o in run["chosen"]["overrides"] or [] if o.startswith("trainer.total_steps=")]
    return lengths[-1] if lengths else steps


def marks(trials: int) -> list[int]:
    """Trials done at 25, 50, 75 and 100% of a sweep's compute."""
    return sorted({max(1, math.ceil(trials * q)) for q in (0.25, 0.5, 0.75, 1.0)})


def number(x: float) -> str:
    return f"{x:+.4f}" if math.isfinite(x) else "n/a"


def verdict(a: str, b: str, d: dict) -> str:
    """One sentence from a paired difference ``a - b``: who is ahead, and whether the interval excludes 0."""
    if d["mean"] == 0:
        return f"`{a}` and `{b}` tie on the test split (mean over {d['n']} sweep seeds)."
    ahead, behind = (a, b) if d["mean"] > 0 else (b, a)
    text = f"`{ahead}` is ahead of `{behind}` on the test split by {abs(d['mean']):.4f} (mean over {d['n']} sweep seeds)"
    if not math.isfinite(d["low"]):
        return text + "; one sweep seed gives no interval."
    ci = f"the 95% interval [{number(d['low'])}, {number(d['high'])}]"
    if d["low"] > 0 or d["high"] < 0:
        return text + f"; {ci} excludes 0."
    return text + f", but {ci} includes 0: no significant difference."


def figure(payload: dict) -> bytes:
    """Best validation objective so far vs env steps spent, mean ± sd over sweep seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = payload["budget"]
    steps = b["steps"] * np.arange(1, b["trials"] + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, runs in payload["runs"].items():
        curves = np.array([r["best_so_far"] for r in runs])
        mean, sd = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
        (line,) = ax.plot(steps, mean, drawstyle="steps-post", marker=".", label=SWEEPERS[name])
        ax.fill_between(steps, mean - sd, mean + sd, step="post", color=line.get_color(), alpha=0.15)
    ax.set_xlabel(f"env steps of finished trials, in start order ({b['steps']:,} per trial, {WORKERS} workers)")
    ax.set_ylabel("best validation excess log return so far")
    ax.set_title(f"Design search on `{TASK}`: mean ± sd over {b['seeds']} sweep seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def report(payload: dict) -> str:
    b, runs, spec = payload["budget"], payload["runs"], TIERS[payload["budget"]["tier"]]
    ks = marks(b["trials"])
    lines = [
        "# Design search at equal compute: ALMA vs Optuna TPE vs random search", "",
        f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores by `bench/alma_vs.py`: "
        f"{b['trials']} trials of {b['steps']:,} env steps per sweep ({b['trials'] * b['steps']:,} env steps), "
        f"{WORKERS} workers, sweep seeds {b['first_seed']}..{b['first_seed'] + b['seeds'] - 1}, one sweep at a time. Task: the suite's `{TASK}` (the "
        "default env, regime switching). Objective: the validation excess log return over buy-and-hold (the trainer's "
        "end-of-run evaluation on 64 validation markets). Test score: the chosen design's (the best validation "
        f"trial's) excess log return over buy-and-hold on the test split of `{TASK}` (`run_benchmark`, tier "
        f"{b['tier']}: the mean over {spec.n_seeds} seeds x {spec.n_markets} markets). Trials: "
        + " ".join(f"`{o}`" for o in task_overrides(b["steps"])) + ". Space: " + ", ".join(f"`{s}`" for s in SPACE)
        + ".", "",
        "Per sweeper: mean ± sd over sweep seeds; the test score's 95% t-interval over sweep seeds in brackets. "
        "Best so far: the best validation objective after that share of the sweep's env steps. Utilization "
        f"(steady state): sum of job durations / ({WORKERS} x the window from the first job's start to the last "
        "job's end), the same measure for every sweeper; in parentheses the whole sweep's (the sweeper's start-up "
        "and exit included). Chosen steps: the env steps of the chosen checkpoint's own run (min-max over sweep seeds; "
        "a promoted trial's run continues its parent's; a two-level child's weights started from its parent's "
        f"before its own {b['steps']:,}).", "",
        "| sweeper | test score | 95% CI | best validation | "
        + " | ".join(f"best so far @{k / b['trials']:.0%}" for k in ks) + " | chosen steps | utilization | sweep wall (s) |",
        "|---|" + "---:|" * (len(ks) + 6),
    ]
    for name, results in runs.items():
        mean, low, high = stats.mean_ci([r["test"] for r in results])
        trained = [trained_steps(r, b["steps"]) for r in results]
        span = f"{min(trained):,}" if min(trained) == max(trained) else f"{min(trained):,}-{max(trained):,}"
        utilization = f"{np.mean([r['utilization'] for r in results]):.0%} ({np.mean([r['sweep_utilization'] for r in results]):.0%})"
        lines.append(
            f"| {SWEEPERS[name]} | {mean_sd([r['test'] for r in results])} | [{number(low)}, {number(high)}] | "
            f"{mean_sd([r['chosen']['validation'] for r in results])} | "
            + " | ".join(mean_sd([r["best_so_far"][k - 1] for r in results]) for k in ks)
            + f" | {span}"
            + f" | {utilization} | {np.mean([r['wall_s'] for r in results]):.0f} |")
    lines += ["", "Test-score differences, paired by sweep seed (95% t-intervals):", "",
              "| difference | mean | 95% CI |", "|---|---:|---:|"]
    pairs = [(a, b_, payload["paired"][f"{a}-{b_}"]) for a, b_ in PAIRS if f"{a}-{b_}" in payload["paired"]]
    for a, b_, d in pairs:
        lines.append(f"| {a} − {b_} | {number(d['mean'])} | [{number(d['low'])}, {number(d['high'])}] |")
    lines += [""] + [verdict(a, b_, d) for a, b_, d in pairs]
    lines += ["", f"![best so far vs compute]({b['name']}.png)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="how many sweep seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="sweep seeds FIRST_SEED..FIRST_SEED+SEEDS-1")
    parser.add_argument("--budget", type=int, default=20, help="trials per sweep")
    parser.add_argument("--name", default="alma_vs", help="of the results files")
    parser.add_argument("--sweepers", nargs="+", choices=list(SWEEPERS), default=list(SWEEPERS), help="which to run")
    parser.add_argument("--add", action="store_true",
                        help="keep the other sweepers' runs of NAME.json (the same budget), replacing these sweepers'")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 4 trials of 8,192 steps, smoke tier")
    args = parser.parse_args()
    budget = Budget("alma_vs_quick", 2, 4, 8192, "smoke") if args.quick \
        else Budget(args.name, args.seeds, args.budget, 40960, "full", args.first_seed)
    torch.set_num_threads(1)  # scoring as training: one thread
    runs: dict[str, list[dict]] = {}
    if args.add and (RESULTS / f"{budget.name}.json").is_file():
        previous = json.loads((RESULTS / f"{budget.name}.json").read_text())
        if previous["budget"] != asdict(budget):
            parser.error(f"--add: {budget.name}.json was measured with {previous['budget']}, not {asdict(budget)}")
        runs = {name: r for name, r in previous["runs"].items() if name not in args.sweepers}
    for name in args.sweepers:
        runs[name] = []
        for seed in range(budget.first_seed, budget.first_seed + budget.seeds):
            runs[name].append(r := sweep(name, budget, seed))
            print(f"{name} seed {seed}: validation {r['chosen']['validation']:+.4f}, test {r['test']:+.4f}, "
                  f"utilization {r['utilization']:.0%}, sweep {r['wall_s']:.0f} s, scored in {r['scoring_s']:.0f} s",
                  flush=True)
    runs = {name: runs[name] for name in SWEEPERS if name in runs}  # the table's order
    paired = {f"{a}-{b}": stats.paired_difference([r["test"] for r in runs[b]], [r["test"] for r in runs[a]])
              for a, b in PAIRS if a in runs and b in runs}
    payload = {"machine": machine(), "date": str(datetime.date.today()), "budget": asdict(budget), "task": TASK,
               "space": SPACE, "task_overrides": task_overrides(budget.steps), "workers": WORKERS,
               "sweepers": {name: sweeper_overrides(name, budget.trials, 0) for name in runs},
               "paired": paired, "runs": runs}
    written = write_results(budget.name, payload, report(payload))
    atomic_write(RESULTS / f"{budget.name}.png", figure(payload))
    print(f"wrote {written} and {budget.name}.png")


if __name__ == "__main__":
    main()
