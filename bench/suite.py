"""The benchmark-suite table of the README: trained algorithms and the V7 strategies on the suite's tasks.

Trained: IPA, PPO, GRPO (trainer.group_size=8: it needs groups), REINFORCE and the SFT then IPA
pipeline (``conf/experiment/sft_then_ipa.yaml``: its teacher's dataset generated once, on
training-range markets), each with its default config for TOTAL_STEPS env steps (the pipeline's RL
stage too) on training seeds 0..SEEDS-1, torch threads 1. Every checkpoint and every strategy of
``benchmark.agents.AGENTS`` is then scored by ``run_benchmark`` on the full tier (test split).

The peer: Stable-Baselines3's PPO with its defaults (lr 3e-4, 10 epochs, minibatch 64, gamma 0.99,
GAE 0.95, clip 0.2, no entropy bonus) on the same env through ``openclaw_rl.rock.sb3.SB3VecEnv``, 64
markets and 128 steps per rollout (our rollout's size), the same env steps and training seeds' markets
(seeds from ``seed * TRAIN_SEED_STRIDE``), saved as a ``.zip`` and scored as ``agent=...zip`` with
that declared lineage.

Per task: the excess log return over buy-and-hold. A trained algorithm's is the mean over its training
seeds with a 95% t-interval over them (``stats.mean_ci`` of the per-checkpoint scores); a strategy is
deterministic, so its interval is the run's own, over the tier's eval seeds. Aggregate: the normalized
excess (mean, IQM), likewise. Also timed: ``run_benchmark`` of one checkpoint on the full and the smoke tier.

    python bench/suite.py            # hours: 25 training runs of 500,000 steps
    python bench/suite.py --quick    # a check that the script works (under a minute): tiny budgets, smoke tier

Run dirs: bench/runs/NAME/ (ignored by git, replaced on each run). Writes bench/results/NAME.{json,md}
(NAME: suite, or suite_quick).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from common import machine, write_results
from openclaw_rl.api import make_config
from openclaw_rl.backtest.run import make_strategy, strategy_env
from openclaw_rl.benchmark import stats
from openclaw_rl.benchmark.agents import AGENTS
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.suite import run_benchmark
from openclaw_rl.benchmark.tasks import SUITE_VERSION, TIERS
from openclaw_rl.data.trajectories import generate
from openclaw_rl.episodes import strategy_actor
from openclaw_rl.roll.pipeline import run
from openclaw_rl.roll.config import TRAIN_SEED_STRIDE
from openclaw_rl.roll.cores import TORCH_THREADS

TOTAL_STEPS = 500_000
SEEDS = 5
TRAJECTORIES = 4096  # teacher trajectories in the SFT dataset (as the preset's comment generates)
DATA_SEED = 10**9  # teacher markets: training range, apart from the runs' own (seed * 1e5 + i)
ALGOS = {
    "ipa": ["algo=ipa"],
    "ppo": ["algo=ppo"],
    "grpo": ["algo=grpo", "trainer.group_size=8"],
    "reinforce": ["algo=reinforce"],
    "sft_then_ipa": ["+experiment=sft_then_ipa"],  # plus sft.datasets=[the generated dataset]
}
REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "bench" / "runs"


@dataclass(frozen=True)
class Budget:
    name: str  # of the run dir and the results files
    total_steps: int
    seeds: int
    trajectories: int
    sft_updates: int | None  # None: the preset's
    tier: str


FULL = Budget("suite", TOTAL_STEPS, SEEDS, TRAJECTORIES, None, "full")
QUICK = Budget("suite_quick", 8192, 2, 256, 20, "smoke")


def overrides(algo: str, seed: int, budget: Budget, data: Path) -> list[str]:
    """A training run's Hydra overrides: what ``openclaw-train`` would run with them."""
    sft = [f"sft.datasets=[{data}]"] + ([f"sft.updates={budget.sft_updates}"] if budget.sft_updates else [])
    return [*ALGOS[algo], f"seed={seed}", f"trainer.total_steps={budget.total_steps}", "trainer.threads=1",
            "trainer.progress=log", *(sft if algo == "sft_then_ipa" else [])]


def train_sb3(seed: int, budget: Budget, folder: Path) -> tuple[Path, Path]:
    """SB3's PPO (its defaults; our rollout's size) on the default env's training markets: the model
    file and the lineage file declaring those markets."""
    import yaml
    from stable_baselines3 import PPO

    from openclaw_rl.rock import MarketVecEnv
    from openclaw_rl.rock.sb3 import SB3VecEnv

    config = make_config(overrides("ppo", seed, budget, folder))
    first = seed * TRAIN_SEED_STRIDE
    envs = SB3VecEnv(MarketVecEnv(config=config.env))
    model = PPO("MlpPolicy", envs, n_steps=128, seed=first, device="cpu", verbose=0)
    model.learn(budget.total_steps)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.zip")
    (folder / "lineage.yaml").write_text(yaml.safe_dump([{"seeds": [first, first + config.env.n_envs]}]))
    return folder / "model.zip", folder / "lineage.yaml"


def teacher_dataset(budget: Budget, data: Path) -> str:
    """Generate the pipeline's SFT dataset from its teacher (``resample.teacher``) into ``data``; its name."""
    config = make_config(overrides("sft_then_ipa", 0, budget, data))
    teacher = config.resample.teacher
    markets = strategy_env(config.env, min(budget.trajectories, 4096))  # teachers trade their own position sizes
    generate(strategy_actor(make_strategy(teacher, markets, DATA_SEED, markets.n_envs)), markets, budget.trajectories,
             DATA_SEED, data, teacher)
    return teacher


def score(out: Path, tier: str, **agent) -> tuple[dict, float]:
    """``run_benchmark`` of a checkpoint or strategy on ``tier`` into ``out``: its results and wall seconds."""
    start = time.perf_counter()
    results = run_benchmark(BenchConfig(tier=tier, **agent), out, bar=False)
    return results, time.perf_counter() - start


def trained_row(runs: list[dict]) -> dict:
    """Per task and aggregate: (mean, low, high) over training seeds, a 95% t-interval."""
    results = [r["results"] for r in runs]
    return {"tasks": {task: stats.mean_ci([r["tasks"][task]["excess_log_return"] for r in results])
                      for task in results[0]["tasks"]},
            "mean": stats.mean_ci([r["aggregate"]["mean"] for r in results]),
            "iqm": stats.mean_ci([r["aggregate"]["iqm"] for r in results])}


def strategy_row(results: dict) -> dict:
    """Per task and aggregate: (mean, low, high), the run's own intervals over eval seeds."""
    a = results["aggregate"]
    return {"tasks": {task: (t["excess_log_return"], t["low"], t["high"]) for task, t in results["tasks"].items()},
            "mean": (a["mean"], a["mean_low"], a["mean_high"]), "iqm": (a["iqm"], a["iqm_low"], a["iqm_high"])}


def number(x: float) -> str:
    return f"{x:+.3f}" if math.isfinite(x) else "n/a"


def interval(cell: tuple[float, float, float]) -> str:
    mean, low, high = cell
    return f"{number(mean)} [{number(low)}, {number(high)}]"


def half_width(cell: tuple[float, float, float]) -> str:
    mean, low, high = cell
    return f"±{(high - low) / 2:.3f}" if math.isfinite(high - low) else "n/a"


def report(payload: dict) -> str:
    b, rows, seconds = payload["budget"], payload["rows"], payload["scoring_seconds"]
    tasks = list(next(iter(rows.values()))["tasks"])
    spec = TIERS[b["tier"]]
    head = "| agent | " + " | ".join(tasks)
    lines = [
        "# Benchmark suite: trained algorithms and V7 strategies", "",
        f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores (torch threads 1) by `bench/suite.py`: "
        f"suite {payload['suite_version']}, tier {b['tier']} ({spec.n_seeds} seeds x {spec.n_markets} markets per "
        "task). Each task's number is the **excess log return over buy-and-hold on the test split**.", "",
        f"Trained algorithms: the default config (regime-switching markets, 64 envs) for {b['total_steps']:,} env steps, "
        f"the mean over {b['seeds']} training seeds (0..{b['seeds'] - 1}) with 95% t-intervals over those seeds; GRPO "
        f"with trainer.group_size=8; sft_then_ipa: `+experiment=sft_then_ipa` (sparse terminal reward; SFT on "
        f"{b['trajectories']:,} {payload['teacher']} trajectories, then IPA with resampling from the same teacher for "
        f"{b['total_steps']:,} env steps); sb3_ppo: Stable-Baselines3's PPO with its defaults, 128-step rollouts of "
        f"the same 64 markets, the same env steps and training seeds' markets, scored as a declared-lineage agent. "
        "Strategies are deterministic: their intervals are over the tier's eval seeds (historical tasks: over the "
        "independent episodes their test range holds). "
        "Aggregate: the excess in units of each task's buy-and-hold spread (normalized), mean and IQM over tasks, "
        "95% CIs in brackets.", "",
        "Scoring one checkpoint (wall time of `run_benchmark`, targets on 2 cores: full tier <= 300 s, smoke <= 60 s): "
        + ", ".join(f"{tier} tier {np.median(s):.1f} s (median of {len(s)}, max {max(s):.1f} s)"
                    for tier, s in seconds.items()) + ".", "",
        head + " | aggregate mean | aggregate IQM |", "|---|" + "---:|" * (len(tasks) + 2),
        *(f"| {agent} | " + " | ".join(number(row["tasks"][t][0]) for t in tasks)
          + f" | {interval(row['mean'])} | {interval(row['iqm'])} |" for agent, row in rows.items()), "",
        "Per task, the half-width of the 95% interval:", "",
        head + " |", "|---|" + "---:|" * len(tasks),
        *(f"| {agent} | " + " | ".join(half_width(row["tasks"][t]) for t in tasks) + " |" for agent, row in rows.items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budgets and the smoke tier: checks the script works")
    budget = QUICK if parser.parse_args().quick else FULL
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)  # scoring as training: one thread
    root = RUNS / budget.name
    data = root / "data"
    shutil.rmtree(root, ignore_errors=True)
    teacher = teacher_dataset(budget, data)

    strategies = {name: score(root / "bench" / name, budget.tier, strategy=name)[0] for name in AGENTS}
    trained: dict[str, list[dict]] = {algo: [] for algo in ALGOS}
    seconds: dict[str, list[float]] = {budget.tier: []}
    for algo in ALGOS:
        for seed in range(budget.seeds):
            start = time.perf_counter()
            result = run(make_config(overrides(algo, seed, budget, data)), root / algo / f"seed{seed}")
            train_s = time.perf_counter() - start
            results, score_s = score(root / "bench" / f"{algo}-seed{seed}", budget.tier, checkpoint=str(result.run_dir))
            seconds[budget.tier].append(score_s)
            trained[algo].append({"checkpoint": str(result.run_dir.relative_to(REPO)), "train_seconds": train_s,
                                  "train_metrics": result.metrics, "results": results})
            print(f"{algo} seed {seed}: aggregate {results['aggregate']['mean']:+.3f} (trained in {train_s:.0f} s, "
                  f"scored in {score_s:.0f} s)", flush=True)
    trained["sb3_ppo"] = []
    for seed in range(budget.seeds):
        start = time.perf_counter()
        model, lineage = train_sb3(seed, budget, root / "sb3_ppo" / f"seed{seed}")
        train_s = time.perf_counter() - start
        results, _ = score(root / "bench" / f"sb3_ppo-seed{seed}", budget.tier, agent=str(model), lineage=str(lineage))
        trained["sb3_ppo"].append({"checkpoint": str(model.relative_to(REPO)), "train_seconds": train_s,
                                   "results": results})
        print(f"sb3_ppo seed {seed}: aggregate {results['aggregate']['mean']:+.3f} (trained in {train_s:.0f} s)", flush=True)
    if "smoke" not in seconds:  # the smoke tier's time too, on one checkpoint
        first = REPO / trained["ipa"][0]["checkpoint"]
        seconds["smoke"] = [score(root / "bench" / "smoke", "smoke", checkpoint=str(first))[1]]

    rows = {**{algo: trained_row(runs) for algo, runs in trained.items()},
            **{name: strategy_row(results) for name, results in strategies.items()}}
    payload = {"machine": {**machine(), "torch_default_threads": TORCH_THREADS}, "torch_threads": 1,
               "date": str(datetime.date.today()), "suite_version": SUITE_VERSION, "budget": asdict(budget),
               "teacher": teacher, "data_seed": DATA_SEED,
               "overrides": {algo: overrides(algo, 0, budget, data) for algo in ALGOS},
               "scoring_seconds": seconds, "rows": rows, "trained": trained, "strategies": strategies}
    print(f"wrote {write_results(budget.name, payload, report(payload))}")


if __name__ == "__main__":
    main()
