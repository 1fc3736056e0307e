"""Training throughput before and after a change of the learner, side by side in one run.

Each row trains the same config (``openclaw-train`` overrides, torch threads 1) with this checkout and with
an older one (``--before``: a git worktree, e.g. ``git worktree add /tmp/before COMMIT``), alternating
``--repeats`` times; a run's speed is the median of the per-update SPS its train.log prints. The same
seed's final weights on the two sides are compared too: a change of speed must not change the learning
curve beyond float rounding.

    python bench/learner_sps.py --before /tmp/before [--steps 262144] [--repeats 3]

Writes bench/results/learner_sps.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import machine, write_results
from openclaw_rl.roll.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SPS = re.compile(r"SPS ([\d,]+)")
PAPER = ["algo=ipa", "ipa.discount=chunk", "ipa.baseline=none", "algo.norm_adv=false", "algo.clip_vloss=true",
         "algo.grad_clip=global"]
ROWS = {  # name: (overrides after, overrides before): the same run on both sides
    "ppo": (["algo=ppo"], ["algo=ppo"]),
    # a checkout from before algo.value_loss (2026-12-05) knows no such key: its value loss is the squared error
    "ipa, the paper's config": ([*PAPER, "algo.value_loss=mse"], PAPER),
    "ipa, the default": (["algo=ipa"], ["algo=ipa"]),
}


def speed(tree: Path, overrides: list[str], steps: int) -> tuple[float, torch.Tensor]:
    """The run's median per-update SPS and its final weights, flattened."""
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-m", "openclaw_rl.train", *overrides, f"trainer.total_steps={steps}",
                        "trainer.threads=1", "trainer.progress=log", f"hydra.run.dir={run_dir}"],
                       cwd=tree, env=env, check=True, capture_output=True)
        values = [int(v.replace(",", "")) for v in SPS.findall((Path(run_dir) / "train.log").read_text())]
        policy = load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["policy"]
    return float(np.median(values)), torch.cat([w.flatten().double() for w in policy.values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the older commit")
    parser.add_argument("--steps", type=int, default=262_144)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    commits = {side: subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True,
                                    text=True).stdout.strip() for side, tree in (("after", REPO), ("before", args.before))}
    rows = {}
    for name, (after, before) in ROWS.items():
        runs = {"after": [], "before": []}
        for _ in range(args.repeats):  # alternating, so that a drift of the machine hits both sides
            runs["before"].append(speed(args.before, before, args.steps))
            runs["after"].append(speed(REPO, after, args.steps))
        weights = {side: runs[side][-1][1] for side in runs}
        shift = (weights["after"] - weights["before"]).abs().max().item() if len(set(map(len, weights.values()))) == 1 else None
        runs = {side: [sps for sps, _ in runs[side]] for side in runs}
        rows[name] = {"overrides_after": after, "overrides_before": before, **runs, "max_weight_difference": shift}
        print(f"{name}: before {np.median(runs['before']):,.0f}, after {np.median(runs['after']):,.0f} SPS, "
              f"final weights differ by {shift}", flush=True)
    lines = ["# Training throughput before and after", "",
             f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/learner_sps.py`: "
             f"{args.steps:,} env steps per run, torch threads 1, the default env (64 envs); each cell the median "
             f"over {args.repeats} runs (alternating sides) of a run's median per-update SPS. Before: commit "
             f"{commits['before']}; after: commit {commits['after']} (and its working tree).", "",
             "The last column: the largest difference between the two sides' final weights (seed 0; blank where the "
             "networks differ in shape).", "",
             "| config | before | after | after / before | max weight difference |", "|---|---:|---:|---:|---:|"]
    for name, row in rows.items():
        b, a, shift = np.median(row["before"]), np.median(row["after"]), row["max_weight_difference"]
        lines.append(f"| {name} | {b:,.0f} | {a:,.0f} | {a / b:.2f} | {'' if shift is None else f'{shift:.1e}'} |")
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps, "commits": commits,
               "rows": rows}
    print(f"wrote {write_results('learner_sps', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
