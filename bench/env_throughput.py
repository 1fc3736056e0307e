"""Env steps per second: our batched MarketVecEnv vs SyncVectorEnv over our single env vs
gym-anytrading's stocks-v0, measured side by side in one run (random actions, autoreset included).

    python bench/env_throughput.py [--seconds 2] [--sizes 1 64 1024 4096]

Writes bench/results/env_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import openclaw_rl  # noqa: F401  (registers the envs)
from openclaw_rl.rock import MarketEnv, MarketVecEnv

from common import machine, rate, write_results


def stepper(envs, n: int, n_actions: int):
    """A closure that steps ``envs`` with pre-drawn random actions."""
    actions = np.random.default_rng(0).integers(0, n_actions, (512, n))
    counter = iter(range(10**12))

    def step():
        envs.step(actions[next(counter) % 512])
    return step


def anytrading_env():
    import gym_anytrading  # noqa: F401  (registers stocks-v0)

    return gym.make("stocks-v0").unwrapped  # the env itself, no checker/order wrappers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum seconds per measurement window")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024, 4096])
    args = parser.parse_args()

    def sync(make, n):
        return SyncVectorEnv([make] * n, autoreset_mode=AutoresetMode.SAME_STEP)

    rows = []
    for n in args.sizes:
        row = {"n_envs": n}
        candidates = {
            "ours_batched": lambda n=n: MarketVecEnv(num_envs=n),
            "sync_over_our_single_env": lambda n=n: sync(MarketEnv, n),
            "sync_over_gym_anytrading": lambda n=n: sync(anytrading_env, n),
        }
        for name, make in candidates.items():
            envs = make()
            envs.reset(seed=0)
            row[name] = rate(stepper(envs, n, 2 if "anytrading" in name else 3), n, args.seconds)
            envs.close()
            print(f"N={n:5d} {name:26s} {row[name]:14,.0f} steps/s", flush=True)
        rows.append(row)
    single = anytrading_env()
    single.reset(seed=0)
    actions = iter(np.random.default_rng(0).integers(0, 2, 10**8))

    def step_single():
        *_, terminated, truncated, _ = single.step(int(next(actions)))
        if terminated or truncated:
            single.reset()

    anytrading_single = rate(step_single, 1, args.seconds)
    print(f"gym-anytrading stocks-v0 single env {anytrading_single:,.0f} steps/s")

    lines = [
        "# Env throughput (env-steps/s, random actions, autoreset included)",
        "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/env_throughput.py` "
        f"(median of 3 windows of >= {args.seconds:g} s). Peer: gym-anytrading `stocks-v0` "
        f"single env: **{anytrading_single:,.0f} steps/s**.",
        "",
        "| N envs | ours (MarketVecEnv) | SyncVectorEnv(our MarketEnv) | SyncVectorEnv(stocks-v0) | ours / stocks-v0 single env | ours / Sync(ours) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n_envs']} | {row['ours_batched']:,.0f} | {row['sync_over_our_single_env']:,.0f} | "
            f"{row['sync_over_gym_anytrading']:,.0f} | {row['ours_batched'] / anytrading_single:,.1f}x | "
            f"{row['ours_batched'] / row['sync_over_our_single_env']:,.1f}x |"
        )
    payload = {"machine": machine(), "date": str(datetime.date.today()), "seconds": args.seconds,
               "anytrading_single_env": anytrading_single, "rows": rows}
    path = write_results("env_throughput", payload, "\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
