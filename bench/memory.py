"""Memory designs on the suite's memory tasks: none, the oracle, window, gru, hand-set PAOM, and the
design an ALMA sweep over memory designs finds.

Per memory task (``openclaw-bench list``: the ``memory`` tier):

1. An ALMA sweep (``hydra/sweeper=alma``, 2 workers, sweep seed 0) over
   ``policy/memory=choice(none, window, trace, gru, paom)`` and the designs' parameters (``SPACE``), at a
   fixed compute budget: ``--sweep-trials`` trials, each training its design ``--sweep-steps`` env steps on
   each of training seeds ``SWEEP_SEEDS`` (the sweeper's ``tasks``), its score the mean validation excess
   log return. ALMA's baseline trial is the ``none`` design (the config's default). The best trial's design
   is the ``alma`` row.
2. Every row trains ``--steps`` env steps (default IPA, one torch thread) on training seeds
   1..``--seeds`` (none of the sweep's): ``none``; ``oracle`` (``none`` seeing the true regime,
   ``env.observe_regime=true``: what memory could at best recover); ``window`` (16 frames); ``gru``
   (64 units); ``trace`` (its defaults: half-lives 64, 16 and 4); ``paom`` (its defaults: 16 records,
   attention read, merge_similar); ``alma``.
3. Each checkpoint is scored by ``run_benchmark`` on the task's test split (tier ``memory``: 8 seeds x
   64 markets), and reported by ``memory_report`` on 64 validation markets (probe of the regime from
   the memory state and from the observation, compression ratio).

Per row: the test excess log return over buy-and-hold, mean ± sd and a 95% t-interval over the training
seeds; paired differences (same training seed) of alma to gru, window, trace and paom, and none - oracle (the
task needs memory when this is clearly negative).

    python bench/memory.py [--seeds 5] [--steps 2000000] [--sweep-trials 16] [--sweep-steps 1000000] [--algo ipa]
    python bench/memory.py --quick     # a check that the script works (~2 minutes)

The budgets: at 500,000 steps (``--steps 500000 --sweep-steps 300000 --name memory_500k``) no memory
design separated from ``none`` on suite 1.2's tasks; at 2,000,000 they do (development runs on the
validation split, training seed 0). The sweep scored each trial on one training seed (0) until the
trace design came: one seed's score was noisier than the designs' differences.

``--algo ppo`` runs everything (sweep and rows) with that learner instead of IPA. ``--promotion`` runs the
sweep with successive halving (ALMA's ``promotion``), e.g. ``--promotion --sweep-trials 48 --sweep-steps
100000 --tasks memory_trend --name memory_trend_promotion``: the same sweep compute as the default. Run dirs:
bench/runs/NAME/ (ignored by git, replaced on each run). Writes bench/results/NAME.{json,md} (NAME:
memory, memory_ppo for --algo ppo, or memory_quick).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml

from common import machine, mean_sd, write_results
from openclaw_rl.backtest.run import load_policy
from openclaw_rl.benchmark import stats
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.suite import run_benchmark
from openclaw_rl.benchmark.tasks import TASKS, TIERS
from openclaw_rl.configs import compose_config
from openclaw_rl.memory.designs import DESIGN_KEYS
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.evaluate import EVAL_SEED_BASE, validation_env
from openclaw_rl.roll.memory_eval import memory_report
from openclaw_rl.roll.pipeline import run

ROOT = Path(__file__).resolve().parent.parent
MEMORY_TASKS = [name for name, task in TASKS.items() if task.family == "memory"]
ROWS = {
    "none": [],
    "oracle": ["env.observe_regime=true"],
    "window": ["policy/memory=window", "policy.memory.frames=16"],
    "gru": ["policy/memory=gru"],
    "trace": ["policy/memory=trace"],
    "paom": ["policy/memory=paom"],
}
SPACE = ["policy/memory=choice(none, window, trace, gru, paom)", "policy.memory.frames=tag(log, range(2, 64))",
         "policy.memory.half_life=tag(log, interval(4, 512))", "policy.memory.traces=range(1, 4)",
         "policy.memory.hidden=choice(16, 32, 64, 128)", "policy.memory.capacity=range(4, 48)",
         "policy.memory.record_size=choice(8, 16, 32)", "policy.memory.observer=choice(bars, all)",
         "policy.memory.reflector=choice(merge_similar, merge_oldest, evict_oldest)",
         "policy.memory.read=choice(attention, pooled, both)"]
PAIRS = (("gru", "alma"), ("window", "alma"), ("trace", "alma"), ("paom", "alma"), ("oracle", "none"))  # (a, b): b - a
WORKERS = 2
SWEEP_SEEDS = (100, 101)  # a sweep trial's score: the mean over these training seeds (not the rows' 1..seeds)


def env_overrides(values: dict, prefix: str = "env") -> list[str]:
    """A task's env (``Task.env``) as command-line overrides."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += env_overrides(value, f"{prefix}.{key}")
        elif isinstance(value, (list, tuple)):
            out.append(f"{prefix}.{key}=[{','.join(map(str, value))}]")
        else:
            out.append(f"{prefix}.{key}={value}")
    return out


def common_overrides(task: str, steps: int, algo: str) -> list[str]:
    return [*env_overrides(dict(TASKS[task].env)), f"algo={algo}", f"trainer.total_steps={steps}", "trainer.threads=1",
            "trainer.progress=log", "eval.objective=excess_log_return"]


def train(job: tuple[list[str], Path]) -> dict:
    """One training run from command-line overrides (in a worker process)."""
    overrides, run_dir = job
    logging.disable(logging.INFO)
    torch.set_num_threads(1)
    config = RunConfig.from_mapping(compose_config(overrides))
    result = run(config, run_dir)
    return {"validation": result.objective}  # throughput: bench/memory_sps.py (these runs share the cores)


def alma_sweep(task: str, trials: int, steps: int, algo: str, sweep_dir: Path, promotion: bool) -> dict:
    """The ALMA sweep over memory designs; its best design as overrides. ``promotion``: successive halving
    (the sweep's trials then run with ``algo.anneal_lr=false``; the design is retrained with the default)."""
    halving = ["hydra.sweeper.promotion.enabled=true", "hydra.sweeper.n_initial=4", "algo.anneal_lr=false"] if promotion else []
    command = [sys.executable, "-m", "openclaw_rl.train", "-m", f"hydra.sweep.dir={sweep_dir}", "hydra/sweeper=alma",
               "hydra.sweeper.proposer=alma", f"hydra.sweeper.budget={trials}", "hydra.sweeper.seed=0", f"hydra.sweeper.n_workers={WORKERS}",
               f"hydra.sweeper.tasks=[{','.join(repr(f'seed={seed}') for seed in SWEEP_SEEDS)}]",
               *common_overrides(task, steps, algo), *halving, *SPACE]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ALMA sweep on {task} failed:\n{result.stderr[-3000:]}")
    summary = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    design = [o for o in summary["best_trial"]["overrides"] if o.startswith("policy")]
    chosen = next((o.split("=")[1] for o in design if o.startswith("policy/memory=")), "none")
    design = [o for o in design if o.startswith("policy/memory=") or  # the chosen design's own keys only
              o.split("=")[0].removeprefix("policy.memory.") in DESIGN_KEYS[chosen]]
    return {"design": design, "validation": summary["best_evaluated_result"],
            "baseline_validation": summary.get("baseline_result"), "trials": summary["trials"]}


def score(run_dir: Path, task: str, bench_dir: Path) -> dict:
    """Test-split score (run_benchmark) and validation memory report of one checkpoint."""
    results = run_benchmark(BenchConfig(checkpoint=str(run_dir), tier="memory", tasks=[task]), bench_dir, bar=False)
    policy, config = load_policy(run_dir, torch.device("cpu"))
    report = memory_report(policy, validation_env(config.env, 64), EVAL_SEED_BASE, torch.device("cpu"))
    overall = report.get("overall", {})
    return {"test": results["tasks"][task]["excess_log_return"],
            "probe_regime_memory": overall.get("memory/regime_accuracy"),
            "probe_regime_observation": overall.get("observation/regime_accuracy"),
            "compression_ratio": overall.get("compression_ratio")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--sweep-trials", type=int, default=16)
    parser.add_argument("--sweep-steps", type=int, default=1_000_000)
    parser.add_argument("--tasks", nargs="+", default=MEMORY_TASKS, choices=MEMORY_TASKS)
    parser.add_argument("--algo", default="ipa", choices=["ipa", "ppo", "grpo", "reinforce"])
    parser.add_argument("--promotion", action="store_true",
                        help="the sweep with successive halving (e.g. --sweep-trials 48 --sweep-steps 100000: the same compute)")
    parser.add_argument("--name", help="of the results files (default: memory, memory_ALGO or memory_quick)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a check that the script works")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.sweep_trials, args.sweep_steps, args.tasks = 2, 16_384, 3, 8_192, MEMORY_TASKS[:1]
    name = args.name or ("memory_quick" if args.quick else "memory" if args.algo == "ipa" else f"memory_{args.algo}")
    runs = ROOT / "bench" / "runs" / name
    shutil.rmtree(runs, ignore_errors=True)
    payload = {"date": datetime.date.today().isoformat(), "machine": machine(), "algo": args.algo, "seeds": args.seeds,
               "steps": args.steps,
               "sweep": {"trials": args.sweep_trials, "steps": args.sweep_steps, "seeds": list(SWEEP_SEEDS), "space": SPACE,
                         "promotion": args.promotion},
               "tasks": {}}
    for task in args.tasks:
        found = alma_sweep(task, args.sweep_trials, args.sweep_steps, args.algo, runs / task / "sweep", args.promotion)
        print(task, "ALMA found", found["design"], flush=True)
        rows = {**ROWS, "alma": found["design"]}
        jobs = [(row, seed) for seed in range(1, args.seeds + 1) for row in rows]
        with ProcessPoolExecutor(WORKERS) as pool:
            trained = list(pool.map(train, [([*common_overrides(task, args.steps, args.algo), *rows[row], f"seed={seed}"],
                                              runs / task / f"{row}_{seed}") for row, seed in jobs]))
        per_row: dict[str, list[dict]] = {row: [] for row in rows}
        for (row, seed), result in zip(jobs, trained):
            scored = score(runs / task / f"{row}_{seed}", task, runs / task / f"bench_{row}_{seed}")
            per_row[row].append({"seed": seed, **result, **scored})
        summary = {}
        for row, results in per_row.items():
            test = np.array([r["test"] for r in results])
            mean, low, high = stats.mean_ci(test)
            summary[row] = {"overrides": rows[row], "test_mean": mean, "test_sd": float(test.std()), "test_low": low,
                            "test_high": high, "runs": results}
        pairs = {f"{b} - {a}": stats.paired_difference([r["test"] for r in per_row[a]], [r["test"] for r in per_row[b]])
                 for a, b in PAIRS}
        payload["tasks"][task] = {"about": TASKS[task].about, "alma": found, "rows": summary, "pairs": pairs}
        print(task, {row: f"{s['test_mean']:+.4f}" for row, s in summary.items()}, flush=True)
    print(write_results(name, payload, report(payload)))


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.4f}"


def _mean(values) -> str:
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.2f}" if values else "-"


def report(payload: dict) -> str:
    tier = TIERS["memory"]
    lines = ["# Memory designs on the memory tasks (test split)", "",
             f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores by `bench/memory.py`. Each row: "
             f"default {payload['algo'].upper()}, {payload['steps']:,} env steps, training seeds 1-{payload['seeds']}; scored by `run_benchmark` "
             f"on the task's test split ({tier.n_seeds} seeds x {tier.n_markets} markets). `alma`: the best design of an "
             f"ALMA sweep over memory designs ({payload['sweep']['trials']} trials x {payload['sweep']['steps']:,} steps, "
             + ("successive halving (a promoted trial continues its run; sweep trials with algo.anneal_lr=false), "
                if payload["sweep"].get("promotion") else "")
             + f"2 workers, each trial's score the mean validation score over training seeds "
             f"{', '.join(map(str, payload['sweep'].get('seeds', [0])))}), retrained on the rows' seeds. Probe: ridge probe of the "
             "hidden regime at chunk ends, from the memory state (from the observation alone in brackets), on 64 "
             "validation markets; compression: history floats received / floats kept."]
    for task, t in payload["tasks"].items():
        lines += ["", f"## {task}: {t['about']}", "",
                  f"ALMA's design: `{' '.join(t['alma']['design']) or '(none)'}` (validation {t['alma']['validation']:+.4f}; "
                  f"its baseline, the none design: {_signed(t['alma']['baseline_validation'])})", "",
                  "| design | test excess log return (mean ± sd) | 95% CI | regime probe: memory (observation) | "
                  "compression |", "|---|---:|---:|---:|---:|"]
        for row, s in t["rows"].items():
            runs = s["runs"]
            lines.append(f"| {row} | {mean_sd([r['test'] for r in runs])} | [{s['test_low']:+.4f}, {s['test_high']:+.4f}] | "
                         f"{_mean(r['probe_regime_memory'] for r in runs)} ({_mean(r['probe_regime_observation'] for r in runs)}) | "
                         f"{_mean(r['compression_ratio'] for r in runs)} |")
        lines += ["", "Paired by training seed (95% t-interval):", ""]
        for pair, d in t["pairs"].items():
            verdict = "above 0" if d["low"] > 0 else "below 0" if d["high"] < 0 else "within the noise"
            lines.append(f"- {pair}: {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] ({verdict})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
