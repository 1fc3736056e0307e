"""Training throughput of the memory designs beside the memoryless MLP policy, side by side.

The default IPA run (64x64 MLP trunks, default env) with every ``policy/memory`` design (each design's
defaults: window 4 frames, trace 3 half-lives, GRU 64 units, PAOM 16 records of 16), the same N envs, one torch
thread. Training SPS: the median over a run's updates of ``charts/SPS`` (one rollout and its update,
as TensorBoard shows it; start-up and the end-of-run evaluation and memory report are left out); the
designs take turns, ``--repeats`` runs each, and each keeps the median of its runs.

    python bench/memory_sps.py [--steps 131072] [--envs 64 256] [--repeats 3]

Writes bench/results/memory_sps.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile

import torch

from common import machine, write_results
from openclaw_rl.memory import DESIGNS
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import run_training


def sps(design: str, n_envs: int, steps: int) -> float:
    config = RunConfig.from_mapping({
        "env": {"n_envs": n_envs}, "policy": {"memory": {"name": design}},
        "trainer": {"total_steps": steps, "checkpoint_every": 10**6, "progress": "log", "device": "cpu", "threads": "1"},
        "eval": {"n_envs": 16},
    })
    with tempfile.TemporaryDirectory() as run_dir:
        history = run_training(config, run_dir).history
    return statistics.median(h["charts/SPS"] for h in history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=131_072)
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n_envs in args.envs:
        runs = {design: [] for design in DESIGNS}
        for _ in range(args.repeats):
            for design in DESIGNS:
                runs[design].append(sps(design, n_envs, args.steps))
        median = {design: statistics.median(values) for design, values in runs.items()}
        rows.append({"n_envs": n_envs, "runs": runs, "median": median,
                     "ratio_to_none": {design: median[design] / median["none"] for design in DESIGNS}})
        print(n_envs, {d: f"{v:,.0f}" for d, v in median.items()}, flush=True)
    payload = {"date": datetime.date.today().isoformat(), "machine": machine(), "steps": args.steps,
               "repeats": args.repeats, "rows": rows}
    lines = ["# Training throughput by memory design (env steps/s: rollout and update)", "",
             f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores, torch {payload['machine']['torch']}, "
             f"one thread, by `bench/memory_sps.py`: default IPA run, {args.steps:,} steps, the median update's "
             f"`charts/SPS`, median of {args.repeats} runs taken in turns. Ratio: to the memoryless MLP (`none`) at "
             "the same N; the target for `paom` is at least 0.5.", "",
             "| N envs | " + " | ".join(DESIGNS) + " | paom / none |", "|---:|" + "---:|" * (len(DESIGNS) + 1)]
    for row in rows:
        lines.append(f"| {row['n_envs']} | " + " | ".join(f"{row['median'][d]:,.0f}" for d in DESIGNS)
                     + f" | {row['ratio_to_none']['paom']:.2f} |")
    print(write_results("memory_sps", payload, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
