"""Design search against no search, at equal compute: ALMA, random search, successive halving, Optuna TPE
with Hyperband pruning, and the default design trained for the whole budget.

Two tasks: the suite's ``switching`` (the default env) and ``memory_trend`` (its env as overrides; the space
adds ``policy/memory``). Each arm spends the same compute per sweep seed: ``lengths`` trial-lengths of
``steps`` env steps (20 x 40,960 = 819,200), on 2 workers. Every training run, of every arm, trains with
``seed=<sweep seed>`` and ``alma_vs.task_overrides`` (``algo.anneal_lr=false``: a run's prefix does not depend
on its length), plus the task's env. A trial's objective is its validation excess log return over buy-and-hold
(the trainer's end-of-run evaluation on 64 validation markets). Each arm's chosen checkpoint is scored once
by ``run_benchmark`` on the task's test split.

Arms:

- ``no_search``: the default design (no searched key overridden), one run of the whole budget
  (``trainer.total_steps=lengths x steps``, one worker): the simplest strong alternative;
- ``random``: ``hydra/sweeper=alma`` with ``proposer=random``: uniform designs, every trial from scratch;
- ``alma``: ``hydra/sweeper=alma`` with its defaults;
- ``alma_promotion``: + successive halving (``promotion.enabled=true``, ``n_initial=4``);
- ``random_promotion``: ``alma_promotion`` with ``proposer=random``: the ablation of ALMA's rule;
- ``tpe_pruned``: Optuna through its own API, as its authors recommend for parallel pruned search:
  ``TPESampler(n_startup_trials=5, multivariate=True, constant_liar=True)``, ``HyperbandPruner(min_resource=1,
  max_resource=4, reduction_factor=2)`` over trial-lengths, ``study.optimize(n_jobs=2)``, the default design
  enqueued first. A trial trains in segments of one trial-length (a resumed run, ``trainer.resume=auto``),
  reports each segment's validation objective and stops when pruned or after 4. The study stops when the
  segments trained reach the budget; no segment starts past it. Chosen: the trial whose last report is best.

The ALMA arms choose ``optimization_results.yaml``'s best trial. Train share: per training run (a sweep's
trial, a TPE segment, the no-search run), its training span (train.log, from its ``torch threads:`` line
to its last line, the end-of-run evaluation included) over its wall time (the archive's started..ended for
an ALMA trial, the subprocess for the others); the median over the arm's runs. Sweeps run one at a time.

    python bench/design_search.py [--seeds 5] [--first-seed 20] [--tasks ...] [--arms ...] [--results NAME]
    python bench/design_search.py --quick   # a check that the script works: 2 seeds, 4 x 8,192 steps

Writes bench/results/NAME.{json,md} after every sweep (NAME: design_search, or design_search_quick).
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from alma_vs import ALMA_SETTINGS as ALMA_VS_SETTINGS, OBJECTIVE, SPACE, task_overrides, validation, verdict
from common import machine, mean_sd, write_results
from memory import env_overrides
from openclaw_rl.alma.space import Choice, SearchSpace
from openclaw_rl.api import make_config
from openclaw_rl.benchmark import stats
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.suite import run_benchmark
from openclaw_rl.benchmark.tasks import TASKS, TIERS

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
SPACES = {
    "switching": SPACE,
    "memory_trend": ["policy/memory=choice(none, window, trace, gru)", "algo.lr=tag(log, interval(1e-5, 3e-2))",
                     "algo.ent_coef=interval(0.0, 0.05)", "algo.gamma=interval(0.9, 0.999)",
                     "algo.update_epochs=range(1, 9)"],
}
TIER = {"switching": "full", "memory_trend": "memory"}  # of the test scoring (--quick: smoke for switching)
ARMS = {
    "no_search": "no search: the default design, one run of the whole budget",
    "random": "random search (alma sweeper, proposer=random)",
    "alma": "ALMA (defaults)",
    "alma_promotion": "ALMA + successive halving (promotion, n_initial=4)",
    "random_promotion": "random + successive halving (proposer=random, promotion, n_initial=4)",
    "tpe_pruned": "Optuna TPE + Hyperband (its API, n_jobs=2)",
}
ALMA_SETTINGS = {"random": ["hydra.sweeper.proposer=random"],  # hydra/sweeper=alma's settings per arm
                 **{arm: ALMA_VS_SETTINGS[arm] for arm in ("alma", "alma_promotion", "random_promotion")}}
PAIRS = [*((arm, "no_search") for arm in ARMS if arm != "no_search"),  # (a, b): a - b, paired by sweep seed
         ("alma_promotion", "random_promotion"), ("alma", "random"), ("alma_promotion", "tpe_pruned")]
MAX_LENGTHS = 4  # tpe_pruned: a trial's most segments (Hyperband's max_resource)
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", re.MULTILINE)


@dataclass(frozen=True)
class Budget:
    name: str  # of the results files
    seeds: int  # sweep seeds first_seed..first_seed+seeds-1
    lengths: int  # trial-lengths per sweep
    steps: int  # env steps per trial-length
    tpe_startup: int  # TPESampler's n_startup_trials
    first_seed: int
    quick: bool

    @property
    def total(self) -> int:
        return self.lengths * self.steps

    def tier(self, task: str) -> str:
        return "smoke" if self.quick and task == "switching" else TIER[task]


def env_of(task: str) -> list[str]:
    return [] if task == "switching" else env_overrides(dict(TASKS[task].env))


def trial_overrides(task: str, steps: int, seed: int) -> list[str]:
    """What every run of every arm trains with, besides the searched keys."""
    return [*task_overrides(steps), *env_of(task), f"seed={seed}"]


def train_command(overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "openclaw_rl.train", *overrides]


def stamps(text: str) -> list[float]:
    return [datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in STAMP.findall(text)]


def training_span(text: str) -> float:
    """Seconds from a run's (its last) ``torch threads:`` line to its last line, in train.log's text."""
    start = text.rfind("torch threads:")
    if start < 0:
        return math.nan
    line = text.rfind("\n", 0, start) + 1
    times = stamps(text[line:])
    return times[-1] - times[0] if times else math.nan


def run_logged(overrides: list[str], run_dir: Path) -> dict:
    """One training subprocess; its validation objective, wall and training span from the text it added to
    ``run_dir``/train.log (a resumed run appends)."""
    log = run_dir / "train.log"
    offset = log.stat().st_size if log.is_file() else 0
    start = time.perf_counter()
    result = subprocess.run(train_command([*overrides, f"hydra.run.dir={run_dir}"]), cwd=ROOT, capture_output=True,
                            text=True)
    wall = time.perf_counter() - start
    text = log.read_bytes()[offset:].decode(errors="replace") if log.is_file() else ""
    found = OBJECTIVE.findall(text)
    value = float(found[-1]) if found and result.returncode == 0 else math.nan
    return {"validation": value, "wall_s": wall, "train_s": training_span(text), "returncode": result.returncode,
            "error": None if result.returncode == 0 else result.stderr[-2000:]}


def share(runs: list[dict]) -> float:
    shares = [r["train_s"] / r["wall_s"] for r in runs if math.isfinite(r["train_s"]) and r["wall_s"] > 0]
    return float(np.median(shares)) if shares else math.nan


# ------------------------------------------------------------------ arms
def no_search(task: str, budget: Budget, seed: int, work: Path) -> dict:
    run_dir = work / "no_search"
    segment = run_logged(trial_overrides(task, budget.total, seed), run_dir)
    if not math.isfinite(segment["validation"]):
        raise RuntimeError(f"no_search seed {seed} failed:\n{segment['error']}")
    return {"chosen_dir": str(run_dir), "validation": segment["validation"], "env_steps_spent": budget.total,
            "chosen_steps": budget.total, "wall_s": segment["wall_s"], "train_s": segment["train_s"],
            "train_share": share([segment]), "setup_share": 1 - share([segment]), "design": []}


def alma_arm(name: str):
    def arm(task: str, budget: Budget, seed: int, work: Path) -> dict:
        sweep_dir = work / "sweep"
        command = train_command(["-m", f"hydra.sweep.dir={sweep_dir}", *trial_overrides(task, budget.steps, seed),
                                 "hydra/sweeper=alma", f"hydra.sweeper.budget={budget.lengths}",
                                 f"hydra.sweeper.seed={seed}", f"hydra.sweeper.n_workers={WORKERS}",
                                 *ALMA_SETTINGS[name], *SPACES[task]])
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{name} seed {seed} failed:\n{result.stderr[-3000:]}")
        summary = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
        best = summary["best_trial"]
        job = Path(best["run_dir"]) / "task_0"
        lengths = [int(o.split("=")[1]) for o in best["overrides"] if o.startswith("trainer.total_steps=")]
        with sqlite3.connect(sweep_dir / "archive.sqlite") as db:
            rows = db.execute("SELECT id, status, started, ended FROM trials WHERE kind = 'search' ORDER BY id").fetchall()
        runs = []
        for trial, status, started, ended in rows:
            log = sweep_dir / f"trial_{trial:04d}" / "task_0" / "train.log"
            if status == "finished" and started and ended and log.is_file():
                runs.append({"wall_s": ended - started, "train_s": training_span(log.read_text())})
        started = sum(1 for r in rows if r[2] is not None)
        return {"chosen_dir": str(job), "validation": validation(job), "env_steps_spent": started * budget.steps,
                "chosen_steps": lengths[-1] if lengths else budget.steps, "wall_s": wall,
                "train_share": share(runs), "setup_share": 1 - share(runs), "trials": summary["trials"],
                "trial_lengths_started": started, "alma_validation": summary["best_evaluated_result"],
                "baseline_validation": summary.get("baseline_result"),
                "design": [o for o in best["overrides"] if o.split("=")[0] in {s.split("=")[0] for s in SPACES[task]}]}
    return arm


def default_design(task: str, space: SearchSpace) -> dict:
    """The config's own value of each searched key (``policy/memory``: the group's chosen option)."""
    config = make_config(env_of(task))
    design = {}
    for dim in space.dims:
        value = config
        for part in dim.key.replace("/", ".").split("."):
            value = getattr(value, part)
        value = getattr(value, "name", value)  # a config group: its option's name
        design[dim.key] = dim.canonical(value)
    if not space.contains(design):
        raise ValueError(f"the default design {design} is outside the space {SPACES[task]}")
    return design


def tpe_pruned(task: str, budget: Budget, seed: int, work: Path) -> dict:
    try:
        import optuna
    except ImportError:
        raise RuntimeError("tpe_pruned needs Optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    space = SearchSpace(SPACES[task])
    lock, spent, committed, segments, dirs = threading.Lock(), [0], [0], [], {}

    def suggest(trial, dim):
        if isinstance(dim, Choice):
            return trial.suggest_categorical(dim.key, list(dim.options))
        if dim.step is not None:
            return trial.suggest_int(dim.key, int(dim.low), int(dim.high), step=dim.step, log=dim.log)
        return trial.suggest_float(dim.key, dim.low, dim.high, log=dim.log)

    def objective(trial):
        design = {dim.key: suggest(trial, dim) for dim in space.dims}
        run_dir = dirs[trial.number] = work / f"trial_{trial.number:04d}"
        value = math.nan
        for k in range(1, MAX_LENGTHS + 1):
            with lock:  # no segment past the budget
                if committed[0] + budget.steps > budget.total:
                    break
                committed[0] += budget.steps
            segment = run_logged([*trial_overrides(task, k * budget.steps, seed), *space.overrides(design),
                                  *(["trainer.resume=auto"] if k > 1 else [])], run_dir)
            with lock:
                spent[0] += budget.steps
            segments.append({"trial": trial.number, "length": k, **segment})
            value = segment["validation"]
            if not math.isfinite(value):
                return value  # a failed run: the trial fails
            trial.set_user_attr("steps", k * budget.steps)
            trial.report(value, k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        if math.isnan(value):  # the budget was spent before its first segment
            trial.study.stop()
            raise optuna.TrialPruned()
        return value

    def stop(study, trial):
        if spent[0] >= budget.total:
            study.stop()

    sampler = optuna.samplers.TPESampler(n_startup_trials=budget.tpe_startup, multivariate=True, constant_liar=True,
                                         seed=seed)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_LENGTHS, reduction_factor=2)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.enqueue_trial(default_design(task, space))
    start = time.perf_counter()
    study.optimize(objective, n_jobs=WORKERS, callbacks=[stop])
    wall = time.perf_counter() - start
    reported = [t for t in study.trials if t.intermediate_values and t.state != optuna.trial.TrialState.FAIL]
    if not reported:
        raise RuntimeError(f"tpe_pruned seed {seed}: no trial finished a segment")
    last = {t.number: t.intermediate_values[max(t.intermediate_values)] for t in reported}
    best = max(reported, key=lambda t: last[t.number])
    states = [t.state.name.lower() for t in study.trials]
    log = [{"number": t.number, "lengths": len(t.intermediate_values),
            "state": t.state.name.lower() if t.intermediate_values or t.state.name != "PRUNED" else "unstarted",
            "last": last.get(t.number)} for t in study.trials]
    return {"chosen_dir": str(dirs[best.number]), "validation": last[best.number], "env_steps_spent": spent[0],
            "chosen_steps": max(best.intermediate_values) * budget.steps, "wall_s": wall,
            "train_share": share(segments), "setup_share": 1 - share(segments),
            "trials": {s: states.count(s) for s in sorted(set(states))}, "segments": len(segments),
            "trial_log": log,
            "design": space.overrides(best.params), "optuna": optuna.__version__}


ARM_FUNCTIONS = {"no_search": no_search, "tpe_pruned": tpe_pruned, **{name: alma_arm(name) for name in ALMA_SETTINGS}}


def sweep(task: str, arm: str, budget: Budget, seed: int) -> dict:
    """One arm's sweep, then its chosen checkpoint scored on the test split (while its dirs exist)."""
    with tempfile.TemporaryDirectory() as tmp:
        found = ARM_FUNCTIONS[arm](task, budget, seed, Path(tmp))
        start = time.perf_counter()
        results = run_benchmark(BenchConfig(checkpoint=found["chosen_dir"], tier=budget.tier(task), tasks=[task]),
                                Path(tmp) / "bench", bar=False)
        scoring = time.perf_counter() - start
    scored = results["tasks"][task]
    return {"seed": seed, **found, "test": scored["excess_log_return"], "test_interval": [scored["low"], scored["high"]],
            "test_buy_and_hold": scored["buy_and_hold"], "scoring_s": scoring}


# ------------------------------------------------------------------ report
def number(x: float) -> str:
    return f"{x:+.4f}" if x is not None and math.isfinite(x) else "n/a"


def paired(runs: dict) -> dict:
    """``a - b`` of the test scores for each pair of arms, over the sweep seeds both have."""
    out = {}
    for a, b in PAIRS:
        if a in runs and b in runs:
            by_a, by_b = {r["seed"]: r["test"] for r in runs[a]}, {r["seed"]: r["test"] for r in runs[b]}
            seeds = sorted(set(by_a) & set(by_b))
            if seeds:
                out[f"{a}-{b}"] = stats.paired_difference([by_b[s] for s in seeds], [by_a[s] for s in seeds])
    return out


def report(payload: dict) -> str:
    b = payload["budget"]
    budget = Budget(**b)
    seeds = f"{b['first_seed']}..{b['first_seed'] + b['seeds'] - 1}"
    lines = [
        "# Design search against no search, at equal compute", "",
        f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores ({payload['machine']['cpu']}, torch "
        f"{payload['machine']['torch']}) by `bench/design_search.py`"
        + (" in `--quick` mode (a check of the script, not a result)" if b["quick"] else "") + ". "
        f"Budget per sweep seed and arm: {b['lengths']} trial-lengths of {b['steps']:,} env steps "
        f"({budget.total:,} env steps), {WORKERS} workers for the sweeps (`no_search`: one run, one worker), one "
        f"sweep at a time. Sweep seeds {seeds}; every run trains with `seed=<sweep seed>`. Objective: the "
        "validation excess log return over buy-and-hold (64 validation markets, the trainer's end-of-run "
        "evaluation). Test score: the chosen checkpoint's excess log return over buy-and-hold on the task's test "
        "split (`run_benchmark`, one score per sweep seed). Every run: "
        + " ".join(f"`{o}`" for o in task_overrides(b["steps"])) + " (`trainer.total_steps` raised for longer runs) "
        "and the task's env. Arms: " + "; ".join(f"`{k}`: {v}" for k, v in ARMS.items() if k in payload["arms"])
        + f". TPE: `TPESampler(n_startup_trials={b['tpe_startup']}, multivariate=True, constant_liar=True, "
        f"seed=<sweep seed>)`, `HyperbandPruner(min_resource=1, max_resource={MAX_LENGTHS}, reduction_factor=2)`, "
        f"Optuna {payload.get('optuna') or 'n/a'}.", "",
        "Per arm: mean ± sd over sweep seeds and the 95% t-interval of the test score; the chosen checkpoint's "
        "validation objective; its env steps (min-max over seeds); env steps spent (mean); the median train share "
        "of its runs (training span in train.log / the run's wall time); the sweep's wall time (mean).",
    ]
    for task, runs in payload["runs"].items():
        spec = TIERS[budget.tier(task)]
        lines += ["", f"## `{task}`", "",
                  f"Space: {', '.join(f'`{s}`' for s in SPACES[task])}. Test: tier {budget.tier(task)} "
                  f"({spec.n_seeds} seeds x {spec.n_markets} markets).", "",
                  "| arm | seeds | test | 95% CI | chosen validation | chosen steps | env steps spent | train share | "
                  "sweep wall (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for arm, results in runs.items():
            tests = [r["test"] for r in results]
            _, low, high = stats.mean_ci(tests)
            steps = [r["chosen_steps"] for r in results]
            chosen = f"{min(steps):,}" if min(steps) == max(steps) else f"{min(steps):,}-{max(steps):,}"
            lines.append(f"| {arm} | {len(results)} | {mean_sd(tests)} | [{number(low)}, {number(high)}] | "
                         f"{mean_sd([r['validation'] for r in results])} | {chosen} | "
                         f"{np.mean([r['env_steps_spent'] for r in results]):,.0f} | "
                         f"{np.nanmedian([r['train_share'] for r in results]):.0%} | "
                         f"{np.mean([r['wall_s'] for r in results]):.0f} |")
        pairs = [(a, b_, payload["paired"][task][f"{a}-{b_}"]) for a, b_ in PAIRS if f"{a}-{b_}" in payload["paired"][task]]
        if pairs:
            lines += ["", "Test-score differences, paired by sweep seed (95% t-intervals):", "",
                      "| difference | mean | 95% CI |", "|---|---:|---:|"]
            lines += [f"| {a} − {b_} | {number(d['mean'])} | [{number(d['low'])}, {number(d['high'])}] |"
                      for a, b_, d in pairs]
            lines += [""] + [verdict(a, b_, d) for a, b_, d in pairs]
    if payload["errors"]:
        lines += ["", "## Failed sweeps", ""] + [f"- `{e['task']}` `{e['arm']}` seed {e['seed']}: {e['error']}"
                                                  for e in payload["errors"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="how many sweep seeds")
    parser.add_argument("--first-seed", type=int, default=20, help="sweep seeds FIRST_SEED..FIRST_SEED+SEEDS-1")
    parser.add_argument("--tasks", nargs="+", choices=list(SPACES), default=list(SPACES))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--quick", action="store_true", help="2 seeds, 4 trial-lengths of 8,192 steps")
    parser.add_argument("--results", help="bench/results/RESULTS.{json,md} (default: design_search[_quick])")
    args = parser.parse_args()
    budget = Budget(args.results or "design_search_quick", 2, 4, 8192, 2, args.first_seed, True) if args.quick \
        else Budget(args.results or "design_search", args.seeds, 20, 40960, 5, args.first_seed, False)
    torch.set_num_threads(1)  # scoring as training: one thread
    try:
        import optuna

        version = optuna.__version__
    except ImportError:
        version = None
    payload = {"machine": machine(), "date": str(datetime.date.today()), "budget": asdict(budget), "optuna": version,
               "spaces": {t: SPACES[t] for t in args.tasks}, "arms": args.arms, "workers": WORKERS,
               "runs": {}, "paired": {}, "errors": []}
    for task in args.tasks:
        runs = payload["runs"].setdefault(task, {})
        for arm in args.arms:
            for seed in range(budget.first_seed, budget.first_seed + budget.seeds):
                try:
                    r = sweep(task, arm, budget, seed)
                except Exception as err:  # noqa: BLE001 - recorded, the other sweeps go on
                    payload["errors"].append({"task": task, "arm": arm, "seed": seed, "error": str(err)[-1500:]})
                    print(f"{task} {arm} seed {seed}: FAILED {str(err)[-500:]}", flush=True)
                else:
                    runs.setdefault(arm, []).append(r)
                    print(f"{task} {arm} seed {seed}: validation {r['validation']:+.4f}, test {r['test']:+.4f}, "
                          f"chosen steps {r['chosen_steps']:,}, spent {r['env_steps_spent']:,}, train share "
                          f"{r['train_share']:.0%}, wall {r['wall_s']:.0f} s, scored in {r['scoring_s']:.0f} s",
                          flush=True)
                payload["paired"][task] = paired(runs)
                write_results(budget.name, payload, report(payload))
    print(f"wrote {(Path(__file__).parent / 'results' / budget.name).with_suffix('.md')}")


if __name__ == "__main__":
    main()
