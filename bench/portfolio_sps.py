"""Portfolio-steps per second of ``openclaw_rl/Portfolio-v0``: our batched ``PortfolioVecEnv`` against a
plain Python loop over single ``PortfolioEnv``s, side by side in one run. Random target weights
(long-only, projected by the env), synthetic one-factor markets, autoreset included.

    python bench/portfolio_sps.py [--assets 32] [--portfolios 1024] [--steps 756] [--single-steps 20000]

Ours: ``--steps`` steps of all portfolios (756 = three episodes of 252 bars, so three autoresets of
every portfolio), timed three times; the median pass is reported, with the steps that reset
separated from the others. The loop: ``--single-steps`` steps spread over 16 single envs. A step
is numpy element-wise loops and row sums, one thread whatever the BLAS/OpenMP settings, and torch
is not used: no thread setting applies. Writes bench/results/portfolio_sps.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import time

import numpy as np

from common import machine, write_results
from openclaw_rl.rock import PortfolioEnv, PortfolioVecEnv
from openclaw_rl.rock.portfolio_data import FactorModel


def batched(settings: dict, n: int, steps: int) -> dict:
    """One timed pass of ``steps`` steps of ``n`` portfolios: seconds in steps that reset a portfolio, and in the others."""
    envs = PortfolioVecEnv(n, **settings)
    envs.reset(seed=0)
    actions = np.random.default_rng(0).random((64, n, settings["market"].n_assets), dtype=np.float32)
    envs.step(actions[0])  # first touch of the buffers
    timed = {"reset_seconds": 0.0, "step_seconds": 0.0, "reset_steps": 0}
    for i in range(steps):
        start = time.perf_counter()
        _, _, terminated, truncated, _ = envs.step(actions[i % 64])
        elapsed = time.perf_counter() - start
        resets = bool((terminated | truncated).any())
        timed["reset_seconds" if resets else "step_seconds"] += elapsed
        timed["reset_steps"] += resets
    timed["rate"] = steps * n / (timed["reset_seconds"] + timed["step_seconds"])
    timed["rate_without_resets"] = (steps - timed["reset_steps"]) * n / timed["step_seconds"]
    return timed


def single_loop(settings: dict, n: int, steps: int) -> float:
    """Portfolio-steps/s of ``n`` single envs stepped one after another in Python."""
    envs = [PortfolioEnv(**settings) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    actions = np.random.default_rng(0).random((64, settings["market"].n_assets), dtype=np.float32)
    start = time.perf_counter()
    for i in range(steps // n):
        for env in envs:
            *_, terminated, truncated, _ = env.step(actions[i % 64])
            if terminated or truncated:
                env.reset()
    return steps // n * n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=32)
    parser.add_argument("--portfolios", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=756)
    parser.add_argument("--single-steps", type=int, default=20_000)
    args = parser.parse_args()
    settings = {"market": FactorModel(n_assets=args.assets), "window": 16, "episode_bars": 252}

    passes = sorted((batched(settings, args.portfolios, args.steps) for _ in range(3)), key=lambda p: p["rate"])
    ours = passes[1]
    loop = single_loop(settings, 16, args.single_steps)
    reset_ms = ours["reset_seconds"] / max(ours["reset_steps"], 1) * 1e3
    print(f"ours: {ours['rate']:,.0f} portfolio-steps/s ({ours['rate_without_resets']:,.0f} in steps without a "
          f"reset; a step that resets all {args.portfolios}: {reset_ms:.0f} ms)")
    print(f"single-env loop: {loop:,.0f} portfolio-steps/s")

    lines = [
        "# Portfolio env throughput (portfolio-steps/s, random target weights, autoreset included)",
        "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/portfolio_sps.py` (one "
        f"thread): K = {args.assets} assets, window 16, episodes of 252 bars, synthetic one-factor markets "
        f"(drawn at every reset).",
        "",
        "| | portfolios | steps | portfolio-steps/s |",
        "|---|---:|---:|---:|",
        f"| ours (`PortfolioVecEnv`), autoresets included | {args.portfolios} | {args.steps} (median of 3 passes) | "
        f"**{ours['rate']:,.0f}** |",
        f"| ours, steps without a reset | {args.portfolios} | {args.steps - ours['reset_steps']} | "
        f"{ours['rate_without_resets']:,.0f} |",
        f"| plain loop over single `PortfolioEnv`s | 16 | {args.single_steps // 16 * 16} | {loop:,.0f} |",
        "",
        f"A step in which all {args.portfolios} portfolios reset (new {args.assets}-asset paths of "
        f"{16 + 252 + 1} bars each) took {reset_ms:.0f} ms. Ours / loop: {ours['rate'] / loop:,.0f}x.",
    ]
    payload = {"machine": machine(), "date": str(datetime.date.today()), "args": vars(args), "passes": passes,
               "single_env_loop": loop}
    print(f"wrote {write_results('portfolio_sps', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
