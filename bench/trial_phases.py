"""Where an ALMA trial's wall time goes: start-up, build, training, exit (issue "Design search that beats
no search": a 40,960-step trial should spend >= 90% of its wall time training).

One ALMA sweep (its defaults, 2 workers) per task of ``design_search.py``, on its trial settings
(``alma_vs.task_overrides``: 32 envs, 40,960 env steps, one thread each). Per finished trial, from the
archive's ``started``/``ended`` and the stamps of the trial's train.log:

- start: started .. the log's first line (the fork, the trial's config, Hydra's job set-up, the config check);
- build: .. the ``torch threads:`` line (the run dir, the env, the policy);
- train: .. the log's last line (training and the end-of-run evaluation: ``design_search.py``'s training span);
- exit: .. ended (the result file, the process's exit, the sweeper noticing it).

    python bench/trial_phases.py [--trials 16] [--seed 30]

Writes bench/results/trial_phases.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from common import machine, write_results
from design_search import ALMA_SETTINGS, ROOT, SPACES, stamps, train_command, training_span, trial_overrides

PHASES = ("start", "build", "train", "exit")


def sweep_phases(task: str, trials: int, seed: int, work: Path) -> list[dict]:
    sweep_dir = work / task
    command = train_command(["-m", f"hydra.sweep.dir={sweep_dir}", *trial_overrides(task, 40960, seed),
                             "hydra/sweeper=alma", f"hydra.sweeper.budget={trials}", f"hydra.sweeper.seed={seed}",
                             "hydra.sweeper.n_workers=2", *ALMA_SETTINGS["alma"], *SPACES[task]])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{task}: the sweep failed:\n{result.stderr[-3000:]}")
    with sqlite3.connect(sweep_dir / "archive.sqlite") as db:
        rows = db.execute("SELECT id, started, ended FROM trials WHERE kind = 'search' AND status = 'finished' "
                          "ORDER BY id").fetchall()
    out = []
    for trial, started, ended in rows:
        text = (sweep_dir / f"trial_{trial:04d}" / "task_0" / "train.log").read_text()
        times, train = stamps(text), training_span(text)
        phases = {"start": times[0] - started, "build": times[-1] - train - times[0], "train": train,
                  "exit": ended - times[-1]}
        out.append({"trial": trial, "wall": ended - started, **phases, "train_share": phases["train"] / (ended - started)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16, help="trials per sweep")
    parser.add_argument("--seed", type=int, default=30, help="the sweeps' seed (hydra.sweeper.seed and seed=)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for task in SPACES:
            results[task] = sweep_phases(task, args.trials, args.seed, Path(work))
            shares = [t["train_share"] for t in results[task]]
            print(f"{task}: median train share {np.median(shares):.1%} over {len(shares)} trials", flush=True)
    lines = [
        "# Where an ALMA trial's wall time goes", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores by `bench/trial_phases.py`: one ALMA "
        f"sweep per task (defaults, 2 workers, {args.trials} trials, seed {args.seed}), trials of 40,960 env steps "
        "with `design_search.py`'s settings. Median seconds per phase over the finished trials (start: to the "
        "log's first line; build: to `torch threads:`; train: training and the end-of-run evaluation; exit: to the "
        "sweeper's record), and the median of each trial's train / wall.", "",
        "| task | trials | wall | start | build | train | exit | train share (min-max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, trials in results.items():
        med = {k: float(np.median([t[k] for t in trials])) for k in ("wall", *PHASES, "train_share")}
        shares = [t["train_share"] for t in trials]
        lines.append(f"| `{task}` | {len(trials)} | {med['wall']:.2f} | " + " | ".join(f"{med[p]:.3f}" for p in PHASES)
                     + f" | {med['train_share']:.1%} ({min(shares):.1%}-{max(shares):.1%}) |")
    payload = {"machine": machine(), "date": str(datetime.date.today()), "args": vars(args), "trials": results}
    print(f"wrote {write_results('trial_phases', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
