"""Training throughput before and after a change of the learner, side by side in one run.

Each row trains the same config (``openclaw-train`` overrides, torch threads 1) with this checkout and with
an older one (``--before``: a git worktree, e.g. ``git worktree add /tmp/before COMMIT``), alternating
``--repeats`` times; a run's speed is the median of the per-update SPS its train.log prints.

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

from common import machine, write_results

REPO = Path(__file__).resolve().parents[1]
SPS = re.compile(r"SPS ([\d,]+)")
ROWS = {  # name: (overrides after, overrides before): the same run on both sides
    "ppo": (["algo=ppo"], ["algo=ppo"]),
    "ipa, the paper's config": (["algo=ipa", "ipa.discount=chunk", "ipa.baseline=none"], ["algo=ipa"]),
    "ipa, each side's default": (["algo=ipa"], ["algo=ipa"]),
}


def speed(tree: Path, overrides: list[str], steps: int) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-m", "openclaw_rl.train", *overrides, f"trainer.total_steps={steps}",
                        "trainer.threads=1", "trainer.progress=log", f"hydra.run.dir={run_dir}"],
                       cwd=tree, env=env, check=True, capture_output=True)
        values = [int(v.replace(",", "")) for v in SPS.findall((Path(run_dir) / "train.log").read_text())]
    return float(np.median(values))


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
        rows[name] = {"overrides_after": after, "overrides_before": before, **runs}
        print(f"{name}: before {np.median(runs['before']):,.0f}, after {np.median(runs['after']):,.0f} SPS", flush=True)
    lines = ["# Training throughput before and after", "",
             f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/learner_sps.py`: "
             f"{args.steps:,} env steps per run, torch threads 1, the default env (64 envs); each cell the median "
             f"over {args.repeats} runs (alternating sides) of a run's median per-update SPS. Before: commit "
             f"{commits['before']}; after: commit {commits['after']} (and its working tree).", "",
             "| config | before | after | after / before |", "|---|---:|---:|---:|"]
    for name, row in rows.items():
        b, a = np.median(row["before"]), np.median(row["after"])
        lines.append(f"| {name} | {b:,.0f} | {a:,.0f} | {a / b:.2f} |")
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps, "commits": commits,
               "rows": rows}
    print(f"wrote {write_results('learner_sps', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
