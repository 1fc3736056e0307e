"""What observation features cost a training run: the same run with and without them, side by side.

Synthetic markets compute ``env.features`` from each episode's bars at every reset; historical
replay adds the file's columns. Runs alternate (without, with, without, with, ...) so load on the
machine falls on both; the median of ``--reps`` runs is reported.

    python bench/features_sps.py [--steps 262144] [--reps 3]

Writes bench/results/features_sps.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import machine, write_results
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import run_training

INDICATORS = [{"name": "rsi", "window": 14}, {"name": "macd_diff"}]


def write_file(path: Path, n: int = 5000) -> None:
    gen = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(gen.normal(0, 0.01, n)))
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=n, freq="D"), "close": close,
                          "sentiment": gen.normal(0, 1, n), "spread": gen.uniform(0.01, 0.05, n)})
    frame.to_csv(path, index=False)


def sps(env: dict, steps: int) -> float:
    config = RunConfig.from_mapping({
        "env": {"n_envs": 64, **env},
        "trainer": {"total_steps": steps, "checkpoint_every": 10**6, "progress": "log", "device": "cpu"},
        "eval": {"n_envs": 1},
    })
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run_training(config, run_dir)
        return config.num_updates * config.batch_steps / (time.perf_counter() - start)


def main() -> None:
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch's lazy compiler imports, untimed
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=262144, help="env steps per run")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.csv"
        write_file(path)
        historical = {"market": {"kind": "historical"}, "data": {"path": str(path), "split": "train"}}
        cases = [
            ("synthetic (regime switching)", {}, {"features": INDICATORS}),
            ("historical (5,000-bar file)", historical,
             {**historical, "data": {**historical["data"], "features": ["sentiment", "spread"]}, "features": INDICATORS}),
        ]
        rows = []
        for name, without, with_ in cases:
            runs = {"without": [], "with": []}
            for _ in range(args.reps):
                runs["without"].append(sps(without, args.steps))
                runs["with"].append(sps(with_, args.steps))
            row = {"market": name, **{k: statistics.median(v) for k, v in runs.items()}, "runs": runs}
            row["overhead"] = row["without"] / row["with"] - 1
            rows.append(row)
            print(f"{name}: without {row['without']:,.0f} SPS, with {row['with']:,.0f} SPS, "
                  f"overhead {row['overhead']:+.1%}", flush=True)
    lines = [
        "# What observation features cost a training run (env steps/s, whole run)", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores, torch {torch.__version__}, by "
        f"`bench/features_sps.py`: the default run (64 envs, {args.steps:,} steps), median of {args.reps} alternating "
        "runs. Features: RSI(14) and MACD's histogram from `ta`; historical adds two columns of the file.", "",
        "| market | without features | with features | overhead |", "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['market']} | {r['without']:,.0f} | {r['with']:,.0f} | {r['overhead']:+.1%} |" for r in rows]
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps, "rows": rows}
    print(f"wrote {write_results('features_sps', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
