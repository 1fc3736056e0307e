"""Design search at equal trial budget: ALMA vs hydra-optuna-sweeper (TPE) vs random search.

Every sweeper searches the same space on the same training objective (held-out log return after
a short IPA run on a trending market), with 2 jobs at a time, over several sweep seeds. ALMA runs
trials steady-state in its own workers; the Optuna sweepers run batches of 2 through Hydra's
joblib launcher. Worker utilization = sum of job durations / (2 x sweep wall clock), each job
timed the same way for all (from its .hydra/config.yaml to its log's last write).

    python bench/alma_vs.py [--budget 20] [--seeds 3]

Writes bench/results/alma_vs.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine, mean_sd, write_results

ROOT = Path(__file__).resolve().parent.parent
SPACE = ["algo.lr=tag(log, interval(1e-5, 3e-2))", "algo.ent_coef=interval(0.0, 0.05)",
         "algo.gamma=interval(0.9, 0.999)", "ipa.chunker=choice(trade, fixed, step, episode)",
         "algo.update_epochs=range(1, 9)"]
TASK = ["env.regime=bull", "env.n_envs=32", "trainer.rollout_steps=64", "trainer.total_steps=40960",
        "eval.n_envs=64", "trainer.progress=log"]
OBJECTIVE = re.compile(r"objective log_return = (-?[0-9.e+-]+|nan)")
WORKERS = 2


def sweeper_args(name: str, budget: int, seed: int) -> list[str]:
    if name == "alma":
        return ["hydra/sweeper=alma", f"hydra.sweeper.budget={budget}", f"hydra.sweeper.seed={seed}",
                f"hydra.sweeper.n_workers={WORKERS}"]
    sampler = {"tpe": "tpe", "random": "random"}[name]
    return ["hydra/sweeper=optuna", f"hydra/sweeper/sampler={sampler}", "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={WORKERS}", f"hydra.sweeper.n_trials={budget}", f"hydra.sweeper.n_jobs={WORKERS}",
            "hydra.sweeper.direction=maximize", f"hydra.sweeper.sampler.seed={seed}"]


def job_dirs(name: str, sweep_dir: Path) -> list[Path]:
    if name == "alma":
        rows = sqlite3.connect(sweep_dir / "archive.sqlite").execute(
            "SELECT id FROM trials WHERE kind = 'search' ORDER BY id").fetchall()
        return [sweep_dir / f"trial_{r[0]:04d}" / "task_0" for r in rows]
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def score(job: Path) -> float:
    log = job / "train.log"
    found = OBJECTIVE.findall(log.read_text()) if log.is_file() else []
    return float(found[-1]) if found else float("nan")


def duration(job: Path) -> float:
    return (job / "train.log").stat().st_mtime - (job / ".hydra" / "config.yaml").stat().st_mtime


def run(name: str, budget: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = Path(tmp) / "sweep"
        command = [sys.executable, "-m", "openclaw_rl.train", "-m", f"hydra.sweep.dir={sweep_dir}",
                   *sweeper_args(name, budget, seed), *TASK, *SPACE]
        start = time.time()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.time() - start
        if result.returncode != 0:
            raise RuntimeError(f"{name} seed {seed} failed:\n{result.stderr[-3000:]}")
        jobs = job_dirs(name, sweep_dir)
        scores = [score(j) for j in jobs]
        busy = sum(duration(j) for j in jobs if (j / "train.log").is_file())
    best = np.fmax.accumulate(np.nan_to_num(scores, nan=-np.inf))
    return {"scores": scores, "best_so_far": best.tolist(), "wall": wall, "utilization": busy / (WORKERS * wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    runs = {}
    for name in ("alma", "tpe", "random"):
        runs[name] = [run(name, args.budget, seed) for seed in range(args.seeds)]
        final = [r["best_so_far"][-1] for r in runs[name]]
        print(f"{name}: best {mean_sd(final)}, utilization "
              f"{np.mean([r['utilization'] for r in runs[name]]):.2f}", flush=True)
    marks = sorted({max(1, args.budget // 4 * k) for k in range(1, 5)} | {args.budget})
    lines = [
        "# Design search at equal budget: ALMA vs Optuna TPE vs random search", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/alma_vs.py`: {args.budget} trials "
        f"per sweep, {args.seeds} sweep seeds, {WORKERS} jobs at a time. Objective: held-out log return after a "
        "40,960-step IPA run on `env.regime=bull` (buy-and-hold scores about +0.23). Space: "
        + ", ".join(f"`{s}`" for s in SPACE) + ".", "",
        "Best score so far after k trials (mean ± std over sweep seeds):", "",
        "| sweeper | " + " | ".join(f"k={k}" for k in marks) + " | worker utilization | sweep wall (s) |",
        "|---|" + "---:|" * (len(marks) + 2),
    ]
    for name, results in runs.items():
        cells = []
        for k in marks:
            values = [r["best_so_far"][k - 1] for r in results]
            cells.append(mean_sd(values))
        utilization = np.mean([r["utilization"] for r in results])
        wall = np.mean([r["wall"] for r in results])
        label = {"alma": "ALMA (steady state, own workers)", "tpe": "Optuna TPE (joblib batches)",
                 "random": "random search (Optuna, joblib batches)"}[name]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {utilization:.0%} | {wall:.0f} |")
    payload = {"machine": machine(), "date": str(datetime.date.today()), "budget": args.budget, "runs": runs,
               "space": SPACE, "task": TASK}
    print(f"wrote {write_results('alma_vs', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
