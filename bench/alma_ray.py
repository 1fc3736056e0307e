"""ALMA's steady-state utilization on local Ray vs the local backend, side by side in one run.

The same small sweep (bench/alma_vs.py's space and trial settings on the suite's default task, a few
seconds per trial) runs with ``hydra.sweeper.backend=local`` (a forked process per trial) and
``hydra.sweeper.backend=ray`` (a Ray task per trial, 1 CPU each, on a local Ray the sweeper starts),
2 workers each, the two taking turns (which one goes first alternates per repeat; repeat r uses sweep
seed r for both). Measured with alma_vs.py's own code: steady-state utilization = sum of job
durations / (2 x the window from the first job's start to the last job's end), a job timed from its
.hydra/config.yaml to its train.log's last write (a Ray worker's import of the task's modules falls
before the job's start, so it counts as idle). Also kept: the sweep's wall time, its utilization over
the whole wall time (start-up and exit included), the start-up (from the command to the first job's
start), the trials finished per minute of that window, the mean job duration, and ALMA's own figure
(optimization_results.yaml: from each trial's submission to its collection, over the sweep's time).

    python bench/alma_ray.py [--repeats 5] [--budget 24] [--steps 65536]   # ~11 minutes on 2 cores
    python bench/alma_ray.py --quick                                        # a check that it works (~1 minute)

Writes bench/results/NAME.{json,md} (NAME: alma_ray, or alma_ray_quick).
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from alma_vs import ROOT, SPACE, WORKERS, job_dirs, span, steady_state_utilization, sweeper_overrides, task_overrides
from common import machine, write_results

BACKENDS = {"local": "local (a forked process per trial)", "ray": "ray (a Ray task per trial, local Ray, 1 CPU each)"}


def sweep(backend: str, trials: int, steps: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = Path(tmp) / "sweep"
        command = [sys.executable, "-m", "openclaw_rl.train", "-m", f"hydra.sweep.dir={sweep_dir}",
                   *sweeper_overrides("alma", trials, seed), f"hydra.sweeper.backend={backend}",
                   *task_overrides(steps), *SPACE]
        started = time.time()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        ended = time.time()
        if result.returncode != 0:
            raise RuntimeError(f"{backend} seed {seed} failed:\n{result.stderr[-3000:]}")
        jobs = job_dirs("alma", sweep_dir)
        spans = [s for s in map(span, jobs) if s is not None]
        steady = steady_state_utilization(jobs)
        own = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    durations = [end - start for start, end in spans]
    return {"seed": seed, "jobs": len(spans), "failed": own["trials"]["failed"], "wall_s": ended - started,
            "utilization": steady, "sweep_utilization": sum(durations) / (WORKERS * (ended - started)),
            "alma_utilization": own.get("worker_utilization"), "startup_s": min(s for s, _ in spans) - started,
            "exit_s": ended - max(e for _, e in spans), "job_s": float(np.mean(durations)),
            "trials_per_min": 60 * len(spans) / (max(e for _, e in spans) - min(s for s, _ in spans)),
            "first_jobs_s": [round(d, 3) for d in durations[:WORKERS]]}


def mean(runs: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def report(payload: dict) -> str:
    b, runs = payload["budget"], payload["runs"]
    lines = [
        "# ALMA's steady-state utilization: the Ray backend vs the local one", "",
        f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores by `bench/alma_ray.py`: the same sweep "
        f"of {b['trials']} trials of {b['steps']:,} env steps, {WORKERS} workers, with `hydra.sweeper.backend=local` and "
        f"`=ray` (a local Ray the sweeper starts, `cpus_per_trial=1`), taking turns, {b['repeats']} repeat(s) (sweep "
        f"seeds 0..{b['repeats'] - 1}, the same for both). Trials: " + " ".join(f"`{o}`" for o in task_overrides(b["steps"]))
        + ". Space: " + ", ".join(f"`{s}`" for s in SPACE) + ".", "",
        f"Steady-state utilization: sum of job durations / ({WORKERS} x the window from the first job's start to the "
        "last job's end), as `bench/alma_vs.py` measures it (a job: from its `.hydra/config.yaml` to its `train.log`'s "
        "last write). Whole sweep: the same sum over the command's wall time (start-up and exit included). "
        "Trials/min: jobs over that same window (a job's own time differs between backends: a forked trial starts "
        "from the sweeper's state each time, a Ray worker keeps what earlier trials imported). Start-up: from the "
        "command's start to the first job's start. Mean over repeats; per repeat in brackets.", "",
        "| backend | steady-state utilization | trials/min (steady state) | sweep wall (s) | whole-sweep utilization | "
        "start-up (s) | exit (s) | mean job (s) | ALMA's own figure |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, results in runs.items():
        each = ", ".join(f"{r['utilization']:.1%}" for r in results)
        lines.append(
            f"| {BACKENDS[name]} | {mean(results, 'utilization'):.1%} [{each}] | {mean(results, 'trials_per_min'):.1f} | "
            f"{mean(results, 'wall_s'):.1f} | "
            f"{mean(results, 'sweep_utilization'):.1%} | {mean(results, 'startup_s'):.1f} | {mean(results, 'exit_s'):.1f} | "
            f"{mean(results, 'job_s'):.2f} | {mean(results, 'alma_utilization'):.1%} |")
    local, ray = runs["local"], runs["ray"]
    lines += ["", f"Ray − local: steady-state utilization {mean(ray, 'utilization') - mean(local, 'utilization'):+.1%} "
              f"(points), trials/min {mean(ray, 'trials_per_min') - mean(local, 'trials_per_min'):+.1f}, sweep wall "
              f"{mean(ray, 'wall_s') - mean(local, 'wall_s'):+.1f} s (start-up "
              f"{mean(ray, 'startup_s') - mean(local, 'startup_s'):+.1f} s, exit "
              f"{mean(ray, 'exit_s') - mean(local, 'exit_s'):+.1f} s). The first {WORKERS} jobs' durations (s) per "
              "sweep (a Ray worker's first trial pays the set-up that its later trials skip): local "
              f"{[r['first_jobs_s'] for r in local]}, "
              f"ray {[r['first_jobs_s'] for r in ray]}."]
    if payload.get("note"):
        lines += ["", payload["note"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="sweeps per backend (sweep seeds 0..REPEATS-1)")
    parser.add_argument("--budget", type=int, default=24, help="trials per sweep")
    parser.add_argument("--steps", type=int, default=65536, help="env steps per trial")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 4 trials of 8,192 steps")
    parser.add_argument("--note", default="", help="a line for the report (e.g. what else ran on the machine)")
    args = parser.parse_args()
    name, repeats, trials, steps = ("alma_ray_quick", 1, 4, 8192) if args.quick else \
        ("alma_ray", args.repeats, args.budget, args.steps)
    runs: dict[str, list[dict]] = {backend: [] for backend in BACKENDS}
    for seed in range(repeats):
        for backend in (list(BACKENDS) if seed % 2 == 0 else list(reversed(BACKENDS))):
            runs[backend].append(r := sweep(backend, trials, steps, seed))
            print(f"{backend} seed {seed}: steady-state utilization {r['utilization']:.1%}, wall {r['wall_s']:.1f} s, "
                  f"start-up {r['startup_s']:.1f} s, mean job {r['job_s']:.2f} s", flush=True)
    payload = {"machine": machine(), "date": str(datetime.date.today()),
               "budget": {"name": name, "repeats": repeats, "trials": trials, "steps": steps},
               "space": SPACE, "task_overrides": task_overrides(steps), "workers": WORKERS, "note": args.note,
               "runs": runs}
    print(f"wrote {write_results(name, payload, report(payload))}")


if __name__ == "__main__":
    main()
