"""PPO on the GPU: the learner alone and the whole run, beside the CPU, in one run.

The train_sps.py setup (the market env, 64x64 tanh MLPs, rollout 128, 4 epochs of 4 minibatches, no
observation normalization) with ``trainer.device=cuda``: envs step on the CPU, the policy acts and
learns on the GPU. "Learner" times ``Learner.update`` alone on one collected batch; "whole run" is
a run's wall clock (rollouts, updates, checkpoints, evaluation). Needs a CUDA device.

    python bench/gpu_sps.py [--steps 262144] [--envs 256 1024]

Writes bench/results/gpu_sps.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time

import torch

from common import machine, write_results
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import build, run_training

ROLLOUT, EPOCHS, MINIBATCHES = 128, 4, 4


def config(n_envs: int, steps: int, device: str) -> RunConfig:
    return RunConfig.from_mapping({
        "env": {"n_envs": n_envs}, "algo": {"name": "ppo", "update_epochs": EPOCHS, "num_minibatches": MINIBATCHES},
        "policy": {"hidden": [64, 64], "activation": "tanh", "normalize_obs": False},
        "trainer": {"total_steps": steps, "rollout_steps": ROLLOUT, "checkpoint_every": 10**6, "progress": "log",
                    "device": device},
        "eval": {"n_envs": 1},
    })


def learner_sps(run: RunConfig, device: torch.device, repeats: int = 10) -> float:
    _, _, collector, learner = build(run, device)
    batch, _ = collector.collect(ROLLOUT, version=0)
    learner.update(batch, 0, repeats + 1)  # warm-up: kernels chosen, memory cached
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for update in range(1, repeats + 1):
        learner.update(batch, update, repeats + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return repeats * run.batch_steps / (time.perf_counter() - start)


def run_sps(run: RunConfig) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run_training(run, run_dir)
        return run.num_updates * run.batch_steps / (time.perf_counter() - start)


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("bench/gpu_sps.py needs a CUDA device; none is available here")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=262_144)
    parser.add_argument("--envs", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch's lazy imports, untimed
    rows = []
    for n in args.envs:
        row = {"n_envs": n}
        for device in ("cuda", "cpu"):
            run = config(n, args.steps, device)
            row[f"{device}_learner"] = learner_sps(run, torch.device(device))
            row[f"{device}_run"] = run_sps(run)
        rows.append(row)
        print(row, flush=True)
    lines = [
        "# PPO on the GPU: learner and whole run (env steps/s)", "",
        f"Measured {datetime.date.today()} on {torch.cuda.get_device_name()} and {machine()['cores']} CPU cores, torch "
        f"{torch.__version__}, by `bench/gpu_sps.py`: {args.steps:,} steps a run, rollout {ROLLOUT}, {EPOCHS} epochs of "
        f"{MINIBATCHES} minibatches, 64x64 tanh; the CPU columns use trainer.threads=auto.", "",
        "| N envs | learner, GPU | learner, CPU | whole run, GPU | whole run, CPU |", "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['n_envs']} | {r['cuda_learner']:,.0f} | {r['cpu_learner']:,.0f} | {r['cuda_run']:,.0f} | "
              f"{r['cpu_run']:,.0f} |" for r in rows]
    payload = {"machine": {**machine(), "gpu": torch.cuda.get_device_name()}, "date": str(datetime.date.today()),
               "steps": args.steps, "rows": rows}
    print(f"wrote {write_results('gpu_sps', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
