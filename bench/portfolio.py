"""Learned portfolios against the portfolio baselines on the test split (bench/PROTOCOL.md, ``portfolio.py``).

PPO and IPA at the framework's defaults train on ``openclaw_rl/Portfolio-v0`` through ``env.gym_id``
(5 training seeds), with target weights as the action (round 1) and with scores whose softmax is held
(round 2); they and the four baselines then play the same 512 test portfolios once.

    python bench/portfolio.py [--steps 524288] [--seeds 0 1 2 3 4]

Writes bench/results/portfolio.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time

import numpy as np
import torch

from common import machine, write_results
from openclaw_rl.benchmark.stats import mean_ci
from openclaw_rl.rock import PortfolioVecEnv
from openclaw_rl.rock.portfolio import unpack
from openclaw_rl.rock.splits import seed_range
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import run_training
from openclaw_rl.api import load_policy
from openclaw_rl.strategies.portfolio import STRATEGIES

TEST_PORTFOLIOS = 512
ARMS = (("ppo", "long_only"), ("ipa", "long_only"), ("ppo", "softmax"), ("ipa", "softmax"))  # (algo, env mode)


def play(weights_of, mode: str = "long_only") -> np.ndarray:
    """Each test portfolio's log equity growth over its first episode under ``weights_of(obs) -> [N, K]``
    (the action of the env's ``mode``)."""
    envs = PortfolioVecEnv(num_envs=TEST_PORTFOLIOS, mode=mode)
    obs, _ = envs.reset(seed=seed_range("test")[0])
    total, done = np.zeros(TEST_PORTFOLIOS), np.zeros(TEST_PORTFOLIOS, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, _ = envs.step(weights_of(obs))
        total += np.where(done, 0.0, reward)
        done |= terminated | truncated
    return total


def train(algo: str, mode: str, seed: int, steps: int) -> np.ndarray:
    config = RunConfig.from_mapping({
        "env": {"gym_id": "openclaw_rl/Portfolio-v0", "continuous": True, "n_envs": 64, "gym_kwargs": {"mode": mode}},
        "algo": {"name": algo}, "eval": {"objective": "episodic_return", "n_envs": 64},
        "seed": seed, "trainer": {"total_steps": steps, "checkpoint_every": 10**6, "progress": "log", "threads": 1},
    })
    with tempfile.TemporaryDirectory() as run_dir:
        run_training(config, run_dir)
        policy = load_policy(run_dir)
    return play(lambda obs: policy.predict(obs, deterministic=True)[0], mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=524_288)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    k = PortfolioVecEnv(num_envs=1).engine.n_assets
    baselines = {name: play(lambda obs, rule=cls(): rule.weights(unpack(obs, k))) for name, cls in STRATEGIES.items()}
    equal = baselines["equal_weight"]
    rows = []
    for algo, mode in ARMS:
        start = time.perf_counter()
        per_seed = {seed: train(algo, mode, seed, args.steps) for seed in args.seeds}
        scores = np.array([s.mean() for s in per_seed.values()])
        excess = np.array([(s - equal).mean() for s in per_seed.values()])
        rows.append({"arm": f"{algo}, {mode.replace('_', '-')} weights" if mode == "long_only" else f"{algo}, softmax of scores",
                     "scores": scores.tolist(), "ci": mean_ci(scores), "excess_ci": mean_ci(excess),
                     "minutes": (time.perf_counter() - start) / 60})
        print(f"{rows[-1]['arm']}: {rows[-1]['ci']} vs equal weight {rows[-1]['excess_ci']}", flush=True)
    for name, scores in baselines.items():
        rows.append({"arm": name, "ci": mean_ci(scores), "excess_ci": mean_ci(scores - equal) if name != "equal_weight" else None})

    def cell(ci) -> str:
        return "—" if ci is None else f"{ci[0]:+.4f} [{ci[1]:+.4f}, {ci[2]:+.4f}]"

    lines = [
        "# Learned portfolios against the portfolio baselines (test split)", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/portfolio.py` (protocol: "
        f"bench/PROTOCOL.md): `openclaw_rl/Portfolio-v0` at its defaults (8 assets, one-factor model), "
        f"{args.steps:,} training steps, training seeds {args.seeds}; {TEST_PORTFOLIOS} test portfolios, one "
        "252-bar episode each. Score: mean episode log equity growth; agents' intervals over training seeds, "
        "baselines' over the test portfolios; the last column is the paired difference with equal weight.", "",
        "| arm | log growth, 95% CI | minus equal weight, 95% CI |", "|---|---:|---:|",
    ]
    lines += [f"| {r['arm']} | {cell(r['ci'])} | {cell(r['excess_ci'])} |" for r in rows]
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps, "seeds": args.seeds,
               "rows": rows}
    print(f"wrote {write_results('portfolio', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
