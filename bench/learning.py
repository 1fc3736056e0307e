"""Learning benchmarks (not timed): does each algorithm learn, and how stable is it?

1. Trending market (env.regime=bull): every algorithm vs a uniformly random policy and
   buy-and-hold, held-out log return.
2. Long horizon, sparse terminal reward (env.reward=terminal_excess, 252-bar episodes,
   regime switching): IPA vs step-level PPO vs GRPO vs REINFORCE over seeds: held-out excess log
   return over buy-and-hold.
For every run: the gradient norm before clipping, its max over all minibatches of the run and its
median over updates (of each update's mean), and their ratio (spikes).

Every run's config is composed by Hydra from command-line overrides (``openclaw_rl.api.make_config``),
so each run is exactly what ``openclaw-train <the same overrides>`` runs: the algorithms' own defaults
(e.g. PPO's advantage normalization) included. All runs share env, network, rollout, epochs,
minibatches, trainer.group_size=4 (GRPO needs groups) and one torch thread (results that do not depend
on the machine's load); only ``algo`` changes.

    python bench/learning.py [--steps 1000000] [--seeds 5]
    python bench/learning.py --steps 4096 --seeds 1 --trend-seeds 1 --n-envs 8 --eval-envs 8 --results learning_smoke

Writes bench/results/RESULTS.{json,md} (default: learning).
"""

from __future__ import annotations

import argparse
import datetime
import tempfile

import numpy as np
import torch

from common import grad_norm_summary, machine, mean_sd, write_results
from openclaw_rl.api import make_config
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.evaluate import evaluate
from openclaw_rl.roll.pipeline import run
from openclaw_rl.roll.policy import ActorCritic

ALGOS = ("ipa", "ppo", "grpo", "reinforce")
TREND = ["env.regime=bull"]
SPARSE = ["env.reward=terminal_excess", "env.episode_bars=252"]


def shared(args) -> list[str]:
    """The overrides every run shares (besides algo, seed, steps and the task's), then ``--override``s."""
    return [f"env.n_envs={args.n_envs}", "trainer.group_size=4", "trainer.threads=1", "trainer.progress=log",
            "trainer.checkpoint_every=1000000", f"eval.n_envs={args.eval_envs}", *args.override]


def overrides(algo: str, seed: int, steps: int, task: list[str], args) -> list[str]:
    return [f"algo={algo}", f"seed={seed}", f"trainer.total_steps={steps}", *shared(args), *task]


def train(algo: str, seed: int, task: list[str], args) -> dict:
    config = make_config(overrides(algo, seed, args.steps, task, args))
    with tempfile.TemporaryDirectory() as run_dir:
        result = run(config, run_dir)
    return {**result.metrics, **grad_norm_summary(result.history)}


def random_policy(seed: int, task: list[str], args) -> dict:
    """A uniformly random policy (zeroed actor head, sampled actions) on the held-out markets."""
    config: RunConfig = make_config(overrides("ipa", seed, args.n_envs * 128, task, args))
    torch.manual_seed(seed)
    policy = ActorCritic.for_env(config.env, config.policy)
    torch.nn.init.zeros_(policy.actor_head.weight)
    torch.nn.init.zeros_(policy.actor_head.bias)
    return evaluate(policy, config.env, config.eval.n_envs, torch.device("cpu"), deterministic=False)


def table(runs: dict[str, list[dict]], score: str, random_mean: float | None = None) -> list[str]:
    head = f"| algo | held-out {score} | grad-norm max | grad-norm median | max / median |"
    lines = [head + (" beats random |" if random_mean is not None else ""), "|---|---:|---:|---:|---:|"
             + ("---|" if random_mean is not None else "")]
    for algo, rs in runs.items():
        row = (f"| {algo} | {mean_sd([r[score] for r in rs])} | {mean_sd([r['grad_norm_max'] for r in rs])} "
               f"| {mean_sd([r['grad_norm_median'] for r in rs])} | {mean_sd([r['grad_spike'] for r in rs])} |")
        if random_mean is not None:
            row += " yes |" if np.mean([r[score] for r in rs]) > random_mean else " no |"
        lines.append(row)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per training run")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the sparse-reward task")
    parser.add_argument("--trend-seeds", type=int, default=5, help="seeds of the trending-market task")
    parser.add_argument("--n-envs", type=int, default=64, help="training envs (env.n_envs)")
    parser.add_argument("--eval-envs", type=int, default=256, help="held-out markets (eval.n_envs)")
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--override", action="append", default=[],
                        help="an extra override for every run, e.g. --override algo.update_epochs=1 (repeatable)")
    parser.add_argument("--skip-trend", action="store_true", help="only the sparse-reward task")
    parser.add_argument("--results", default="learning", help="bench/results/RESULTS.{json,md}")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every run (trainer.threads=1): the same rounding whatever the machine's load
    if args.skip_trend:
        args.trend_seeds = 0
    trend = {algo: [train(algo, s, TREND, args) for s in range(args.trend_seeds)] for algo in args.algos}
    random = [random_policy(s, TREND, args) for s in range(args.trend_seeds)]
    for algo, runs in trend.items() if args.trend_seeds else ():
        print(f"trend {algo}: log return {mean_sd([r['log_return'] for r in runs])}, "
              f"grad spike {mean_sd([r['grad_spike'] for r in runs])}", flush=True)
    sparse = {algo: [train(algo, s, SPARSE, args) for s in range(args.seeds)] for algo in args.algos}
    for algo, runs in sparse.items():
        print(f"sparse {algo}: excess {mean_sd([r['excess_log_return'] for r in runs])}, "
              f"grad spike {mean_sd([r['grad_spike'] for r in runs])}", flush=True)
    example = " ".join(overrides(args.algos[0], 0, args.steps, SPARSE if args.skip_trend else TREND, args))
    lines = [
        "# Learning benchmarks", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/learning.py`: {args.steps:,} env "
        f"steps per run. Every config is composed by Hydra from command-line overrides, exactly what "
        f"`openclaw-train` runs with them (each algorithm's own defaults included), e.g. `{example}`. Shared: "
        f"{args.n_envs} envs, the default network, rollout, epochs and minibatches, trainer.group_size=4, one torch "
        f"thread; held-out "
        f"evaluation on {args.eval_envs} markets (seeds disjoint from training), greedy actions. Mean ± std over "
        "seeds. Gradient norms are before clipping: the max over every minibatch of a run, the median over updates.", "",
    ]
    if random:
        buy_and_hold = random[0]["log_return"] - random[0]["excess_log_return"]
        random_mean = float(np.mean([r["log_return"] for r in random]))
        lines += [
            f"## Trending market ({' '.join(TREND)}), {args.trend_seeds} seeds", "",
            f"Buy-and-hold on the same held-out markets: {buy_and_hold:+.4f} log return; a uniformly random policy: "
            f"{mean_sd([r['log_return'] for r in random])}.", "",
            *table(trend, "log_return", random_mean), "",
        ]
    lines += [
        f"## Long horizon, sparse terminal reward ({' '.join(SPARSE)}), {args.seeds} seeds", "",
        *table(sparse, "excess_log_return"),
    ]
    payload = {"machine": machine(), "date": str(datetime.date.today()), "args": vars(args), "shared": shared(args),
               "trend": trend, "random": random, "sparse": sparse}
    print(f"wrote {write_results(args.results, payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
