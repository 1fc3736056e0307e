"""Learning benchmarks (not timed): does each algorithm learn, and how stable is it?

1. Trending market (env.regime=bull): every algorithm vs a uniformly random policy and
   buy-and-hold, held-out log return.
2. Long horizon, sparse terminal reward (env.reward=terminal_excess, 252-bar episodes,
   regime switching): IPA vs step-level PPO vs GRPO over seeds: held-out excess log return
   over buy-and-hold, and gradient-norm spikes (max over minibatches / median over updates
   of the mean gradient norm, before clipping).
All runs share env, network, rollout, epochs, minibatches and trainer.group_size=4 (GRPO
needs groups); only ``algo`` changes.

    python bench/learning.py [--steps 1000000] [--seeds 5]

Writes bench/results/learning.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile

import numpy as np
import torch

from common import machine, mean_sd, write_results
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.evaluate import evaluate
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.trainer import run_training

BASE = {"env": {"n_envs": 64}, "trainer": {"group_size": 4, "progress": "log", "checkpoint_every": 10**6},
        "eval": {"n_envs": 256}}


def config_for(algo: str, seed: int, steps: int, env: dict) -> RunConfig:
    return RunConfig.from_mapping({**BASE, "seed": seed, "env": {**BASE["env"], **env}, "algo": {"name": algo},
                                   "trainer": {**BASE["trainer"], "total_steps": steps}})


def train(algo: str, seed: int, steps: int, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        result = run_training(config_for(algo, seed, steps, env), run_dir)
    norms = np.array([h["losses/grad_norm"] for h in result.history])
    peaks = np.array([h["losses/grad_norm_max"] for h in result.history])
    return {**result.metrics, "grad_spike": float(peaks.max() / np.median(norms))}


def random_policy(seed: int, env: dict) -> dict:
    """A uniformly random policy (zeroed actor head, sampled actions) on the held-out markets."""
    config = config_for("ipa", seed, BASE["env"]["n_envs"] * 128, env)
    torch.manual_seed(seed)
    policy = ActorCritic.for_env(config.env, config.policy)
    torch.nn.init.zeros_(policy.actor_head.weight)
    torch.nn.init.zeros_(policy.actor_head.bias)
    return evaluate(policy, config.env, config.eval.n_envs, torch.device("cpu"), deterministic=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per training run")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    trend_env = {"regime": "bull"}
    sparse_env = {"reward": "terminal_excess", "episode_bars": 252}
    trend = {algo: [train(algo, s, args.steps, trend_env) for s in seeds[:3]] for algo in ("ipa", "ppo", "grpo", "reinforce")}
    trend["random"] = [random_policy(s, trend_env) for s in seeds[:3]]
    for algo, runs in trend.items():
        print(f"trend {algo}: log return {mean_sd([r['log_return'] for r in runs])}", flush=True)
    sparse = {algo: [train(algo, s, args.steps, sparse_env) for s in seeds] for algo in ("ipa", "ppo", "grpo")}
    for algo, runs in sparse.items():
        print(f"sparse {algo}: excess {mean_sd([r['excess_log_return'] for r in runs])}, "
              f"spike {mean_sd([r['grad_spike'] for r in runs])}", flush=True)
    buy_and_hold = trend["random"][0]["log_return"] - trend["random"][0]["excess_log_return"]
    lines = [
        "# Learning benchmarks", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/learning.py`: {args.steps:,} env "
        f"steps per run, 64 envs, rollout 128, 4 epochs x 4 minibatches, 64x64 tanh, group_size 4; held-out "
        f"evaluation on {BASE['eval']['n_envs']} markets (seeds disjoint from training), greedy actions. Mean ± std over seeds.", "",
        f"## Trending market (env.regime=bull), {min(3, args.seeds)} seeds", "",
        f"Buy-and-hold on the same held-out markets: {buy_and_hold:+.4f} log return.", "",
        "| policy | held-out log return | held-out Sharpe | beats random |", "|---|---:|---:|:---:|",
    ]
    random_mean = np.mean([r["log_return"] for r in trend["random"]])
    for algo, runs in trend.items():
        beats = "" if algo == "random" else ("yes" if np.mean([r["log_return"] for r in runs]) > random_mean else "no")
        lines.append(f"| {algo} | {mean_sd([r['log_return'] for r in runs])} | {mean_sd([r['sharpe'] for r in runs])} | {beats} |")
    lines += [
        "", f"## Long horizon, sparse terminal reward (env.reward=terminal_excess, 252 bars), {args.seeds} seeds", "",
        "| algo | held-out excess log return vs buy-and-hold | held-out log return | grad-norm spike (max / median) |",
        "|---|---:|---:|---:|",
    ]
    for algo, runs in sparse.items():
        lines.append(f"| {algo} | {mean_sd([r['excess_log_return'] for r in runs])} | {mean_sd([r['log_return'] for r in runs])} "
                     f"| {mean_sd([r['grad_spike'] for r in runs])} |")
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps, "trend": trend, "sparse": sparse}
    print(f"wrote {write_results('learning', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
