"""The post-training report: RL from scratch vs SFT alone vs SFT then IPA (with and without
chunk-level initialized resampling), on held-out markets.

Every variant is the pipeline config ``openclaw_rl/conf/experiment/sft_then_ipa.yaml`` with overrides
(composed through Hydra as ``python -m openclaw_rl.train +experiment=sft_then_ipa ...`` would):
the sparse task (the episode's log return over buy-and-hold, paid once at the end of a 252-bar
regime-switching episode), a V7 volatility-targeting teacher, its dataset generated once.
The teacher and buy-and-hold are scored on the same held-out markets, with the teacher's
positions mapped to the policy's actions (-1, 0, +1).

    python bench/post_training.py [--steps 1000000] [--seeds 5]

Writes bench/results/post_training.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine, mean_sd, write_results
from openclaw_rl.backtest.run import strategy_env
from openclaw_rl.data.trajectories import generate
from openclaw_rl.episodes import run_episodes, strategy_actor
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.evaluate import EVAL_SEED_BASE
from openclaw_rl.roll.resample import teacher_actions
from openclaw_rl.api import make_config
from openclaw_rl.roll.pipeline import run as run_training
from openclaw_rl.strategies.v7 import VolatilityTargeting

VARIANTS = {
    "RL from scratch (IPA)": ["trainer.stage=rl", "resample.teacher=null", "resample.scan_every=0"],
    "SFT alone": ["trainer.stage=sft"],
    "SFT then IPA": ["resample.teacher=null", "resample.scan_every=0"],
    "SFT then IPA + resampling (parallel anchors)": [],
    "SFT then IPA + resampling (sequential rollback)": ["resample.mode=sequential"],
    "SFT then IPA + resampling (crucial-fork anchors)": ["resample.mode=fork"],
    "IPA + resampling, no SFT": ["trainer.stage=rl"],
}
DATA_SEED = 10**9  # teacher markets: apart from training (seed * 1e5 + i) and held-out (2^40 + i) markets


def config_for(overrides: list[str]) -> RunConfig:
    """The pipeline experiment with ``overrides``, composed as `openclaw-train` composes it."""
    return make_config(["+experiment=sft_then_ipa", *overrides])


def teacher_on_held_out(env: EnvConfig, n_markets: int) -> dict[str, float]:
    """The discretized teacher and buy-and-hold on the evaluation markets."""
    config = dataclasses.replace(env, n_envs=n_markets)

    def discretized(envs: MarketVecEnv):
        actions, _ = teacher_actions(VolatilityTargeting(), envs.engine, np.arange(envs.num_envs))
        return lambda obs, step, starts: (actions[step], np.zeros(envs.num_envs))

    record = run_episodes(MarketVecEnv(config=config), EVAL_SEED_BASE, discretized)
    log_return = np.log(record.equity[-1] / config.initial_equity)
    return {"teacher_excess": float((log_return - record.buy_and_hold).mean()),
            "teacher_log_return": float(log_return.mean()), "buy_and_hold_log_return": float(record.buy_and_hold.mean()),
            "teacher_success": float((log_return - record.buy_and_hold > 0).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per RL stage")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trajectories", type=int, default=4096, help="teacher trajectories in the SFT dataset")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "vol_target"
        common = [f"sft.datasets=[{data}]", f"trainer.total_steps={args.steps}", "env.n_envs=64",
                  "eval.n_envs=256", "trainer.progress=log", "trainer.checkpoint_every=1000000",
                  f"resample.scan_every={args.steps // (64 * 128) // 2}"]
        probe = config_for(common)
        generate(strategy_actor(VolatilityTargeting()), strategy_env(probe.env, 4096), args.trajectories, DATA_SEED,
                 data, "vol_target")
        for seed in range(args.seeds):
            for variant, (name, overrides) in enumerate(VARIANTS.items()):
                start = time.perf_counter()  # one run dir per (seed, variant): a shared one is refused, not clobbered
                result = run_training(config_for([*common, f"seed={seed}", *overrides]), Path(tmp) / f"{seed}-{variant}")
                scans = [h for h in result.history if "resample/success_from_start" in h]  # the last fork scan
                scan = {k: v for k, v in scans[-1].items() if k.startswith("resample/")} if scans else {}
                runs[name].append({**result.metrics, **scan, "seconds": time.perf_counter() - start})
                print(f"seed {seed} {name}: excess {result.metrics['excess_log_return']:+.4f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    reference = teacher_on_held_out(probe.env, probe.eval.n_envs)
    lines = [
        "# Post-training: RL from scratch vs SFT vs SFT then IPA", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/post_training.py` (variants of "
        f"`openclaw_rl/conf/experiment/sft_then_ipa.yaml`): regime-switching markets, 252-bar episodes, sparse reward (the "
        f"episode's log return over buy-and-hold, paid once), discrete actions (-1, 0, +1). SFT: "
        f"{probe.sft.updates} updates on {args.trajectories:,} volatility-targeting trajectories. RL: IPA (trade "
        f"chunker), {args.steps:,} env steps, 64 envs. Held-out: {probe.eval.n_envs} markets whose seeds no stage "
        f"saw, greedy actions. Mean ± std over {args.seeds} seeds.", "",
        f"References on the same held-out markets: the teacher (positions mapped to -1/0/+1) "
        f"{reference['teacher_excess']:+.4f} excess ({reference['teacher_success']:.0%} of markets beat buy-and-hold); "
        f"buy-and-hold {reference['buy_and_hold_log_return']:+.4f} log return.", "",
        "| variant | held-out excess log return | held-out log return | Sharpe | success from scratch (scan) | wall (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, results in runs.items():
        scan = [r["resample/success_from_start"] for r in results if "resample/success_from_start" in r]
        lines.append(f"| {name} | {mean_sd([r['excess_log_return'] for r in results])} | "
                     f"{mean_sd([r['log_return'] for r in results])} | {np.mean([r['sharpe'] for r in results]):+.2f} | "
                     f"{f'{np.mean(scan):.2f}' if scan else ''} | {np.mean([r['seconds'] for r in results]):.0f} |")
    lines += ["", "Success from scratch: the share of the policy's own (sampled) episodes on 16 training-range teacher "
              "markets that beat buy-and-hold, from the last crucial-fork scan of the run (runs with a teacher only)."]
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps, "seeds": args.seeds,
               "reference": reference, "runs": runs}
    print(f"wrote {write_results('post_training', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
