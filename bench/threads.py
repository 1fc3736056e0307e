"""Wall time of a default training run by torch CPU threads (``trainer.threads``), on an idle and on
a busy machine.

The default config as ``openclaw-train`` composes it (Hydra), trained for 163,840 env steps on the
CPU with threads = 1, 2, torch's default (one per physical core) and ``auto``, each ``--repeats``
times in turn, first alone, then beside each ``--load`` number of busy-looping processes (other
jobs on the machine; default: one, and one per core). Every run is whole: building, rollouts,
updates, checkpoints, the held-out evaluation.

    python bench/threads.py [--steps 163840] [--repeats 3] [--load 1 2]

Writes bench/results/threads.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import machine, write_results
from openclaw_rl.api import make_config
from openclaw_rl.roll.pipeline import run
from openclaw_rl.roll.cores import TORCH_THREADS

SETTINGS = {"1": "1", "2": "2", "torch default": str(TORCH_THREADS), "auto": "auto"}


def wall_time(steps: int, threads: str) -> float:
    config = make_config([f"trainer.total_steps={steps}", f"trainer.threads={threads}", "trainer.device=cpu",
                          "trainer.progress=log"])
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run(config, run_dir)
        return time.perf_counter() - start


def measure(steps: int, repeats: int) -> dict[str, list[float]]:
    times = {name: [] for name in SETTINGS}
    for _ in range(repeats):  # in turn, so that a slow minute of the machine hits every setting alike
        for name, threads in SETTINGS.items():
            times[name].append(wall_time(steps, threads))
            print(f"  threads={name}: {times[name][-1]:.1f} s", flush=True)
    return times


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=163840, help="env steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, nargs="+", default=sorted({1, machine()["cores"]}),
                        help="busy-looping processes beside the runs, one condition per number")
    args = parser.parse_args()
    wall_time(8192, "1")  # imports, torch's lazy start-up: paid once, untimed
    results = {}
    for load in (0, *args.load):
        condition = f"{load} busy process{'es' if load > 1 else ''}" if load else "idle"
        print(f"{condition}:", flush=True)
        workers = busy(load)
        try:
            results[condition] = measure(args.steps, args.repeats)
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps, "repeats": args.repeats,
               "load": args.load, "torch_default_threads": TORCH_THREADS, "seconds": results}
    print(f"wrote {write_results('threads', payload, report(payload))}")


def report(payload: dict) -> str:
    results = payload["seconds"]
    lines = [
        "# Training wall time by torch CPU threads (`trainer.threads`)", "",
        f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores, torch {payload['machine']['torch']}, by "
        f"`bench/threads.py --steps {payload['steps']} --repeats {payload['repeats']} --load "
        f"{' '.join(map(str, payload['load']))}`: the default config (64 envs, rollout 128, 64x64 MLP), "
        f"{payload['steps']:,} env steps on the CPU, whole runs (evaluation included), {payload['repeats']} runs per "
        f"cell, taken in turn. torch's default here is {payload['torch_default_threads']} threads; `auto` reads the "
        "cores other processes keep busy, while the run is built and after every update (`roll/cores.py`). "
        "\"Busy processes\" are busy-loop processes started beside the run; the machine is "
        "shared, so read the ratios, not the absolute times.", "",
        "| threads | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results),
    ]
    for name in SETTINGS:
        cells = [f"{np.mean(t[name]):.1f} ± {np.std(t[name]):.1f} s" for t in results.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Median time relative to one thread in the same column:", "",
              "| threads | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    for name in SETTINGS:
        cells = [f"{np.median(t[name]) / np.median(t['1']):.2f}x" for t in results.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fixed = [name for name in SETTINGS if name != "auto"]
    cells = [f"{np.median(t['auto']) / min(np.median(t[name]) for name in fixed):.2f}x" for t in results.values()]
    lines.append("| auto / the best fixed choice | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
