"""Rollout workers: rollout and training throughput with 1 and 2 workers beside the single-process path,
and a model of where more workers stop paying, calibrated on these measurements.

Setups (the default IPA run: 64 envs, 128 steps a rollout, 64x64 MLP, one torch thread a process):
``one process`` (the collector in the trainer's process, no pool) and the pool with ``trainer.workers``
1 or 2 on ``backend=process|ray``, sync and async. Each measurement is repeated ``--repeats`` times,
the setups taking turns; tables give mean ± sd over the repeats.

- Rollout SPS: env steps/s of ``collect`` alone (no learning), the median of ``--rollouts`` rollouts.
- Training SPS: the median update's ``charts/SPS`` (a rollout and its update) of a run of ``--updates``.
- Model: one worker's rollout rate ``r`` (env steps/s of a ``RolloutWorker`` in this process), the
  learner's update time ``u`` for one batch, and the pool's transfer cost ``c`` a rollout (1 process
  worker's rollout time minus the in-process one). Sync: an update takes ``n T / (W r) + c + u``; async:
  throughput ``min(W r, N T / u)`` (each worker on a core of its own; the learner is the bound).

    python bench/workers.py [--repeats 5] [--updates 12] [--rollouts 8]

Writes bench/results/workers.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time

import numpy as np
import torch

from common import machine, write_results
from openclaw_rl.rock.sandbox import connect_ray
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import build, run_training
from openclaw_rl.roll.workers import RolloutWorker

SETUPS = {
    "one process": {},
    "1 worker, process": {"workers": 1, "backend": "process"},
    "2 workers, process": {"workers": 2, "backend": "process"},
    "2 workers, ray": {"workers": 2, "backend": "ray"},
    "2 workers, process, async": {"workers": 2, "backend": "process", "collection": "async"},
    "2 workers, ray, async": {"workers": 2, "backend": "ray", "collection": "async"},
}
CLUSTER = (1, 2, 4, 8, 16, 32, 64)  # workers in the model's table
SLOW = {"env": {"gym_id": "slow_sim:Slow-v0", "n_envs": 16}, "eval": {"objective": "episodic_return", "n_envs": 16},
        "algo": {"name": "ppo"}}  # a simulator that waits 1 ms a step (bench/slow_sim.py)
SLOW_SETUPS = {name: SETUPS[name] for name in ("one process", "2 workers, process", "2 workers, process, async")}


def config(updates: int, env: dict | None = None, **trainer) -> RunConfig:
    """The default run, or ``env`` (``SLOW``) with 32-step rollouts."""
    rollout = 32 if env else 128
    n_envs = env["env"]["n_envs"] if env else 64
    return RunConfig.from_mapping({
        "trainer": {"total_steps": updates * n_envs * rollout, "rollout_steps": rollout, "checkpoint_every": 10**6,
                    "progress": "log", "device": "cpu", "threads": "1", **trainer},
        "eval": {"n_envs": 16},
        **(env or {}),
    })


def rollout_sps(trainer: dict, rollouts: int, env: dict | None = None) -> float:
    run = config(1, env, **trainer)
    _, _, collector, _ = build(run, torch.device("cpu"))
    try:
        collector.collect(run.trainer.rollout_steps, 0)  # warm-up (async: fills the pipeline)
        times = []
        for version in range(1, rollouts + 1):
            start = time.perf_counter()
            collector.collect(run.trainer.rollout_steps, version)
            times.append(time.perf_counter() - start)
    finally:
        collector.close()
    return run.batch_steps / statistics.median(times)


def training_sps(trainer: dict, updates: int, env: dict | None = None) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        history = run_training(config(updates, env, **trainer), run_dir).history
    return statistics.median(h["charts/SPS"] for h in history[1:])


def calibrate(repeats: int) -> dict:
    """``r`` (one worker's env steps/s at 32 and 64 envs), ``u`` (seconds a 64x128 update), ``c``."""
    rates = {}
    for n in (32, 64):
        worker = RolloutWorker(config(1, workers=64 // n), 0, isolated=False)
        worker.collect(None, 0, 128)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            worker.collect(None, 0, 128)
            times.append(time.perf_counter() - start)
        rates[n] = n * 128 / statistics.median(times)
    run = config(1)
    _, _, collector, learner = build(run, torch.device("cpu"))
    batch, _ = collector.collect(128, 0)
    updates = []
    for i in range(repeats):
        start = time.perf_counter()
        learner.update(batch, 0, 10)
        updates.append(time.perf_counter() - start)
    collector.close()
    update = statistics.median(updates)
    one_process_worker = rollout_sps({"workers": 1, "backend": "process"}, repeats)
    transfer = 64 * 128 / one_process_worker - 64 * 128 / rates[64]
    return {"worker_rate": rates, "update_seconds": update, "transfer_seconds": max(transfer, 0.0)}


def model(cal: dict, workers: int, envs_per_worker: int = 32) -> dict:
    """Predicted env steps/s of ``workers`` workers of ``envs_per_worker`` envs each (batch W n x 128)."""
    r = cal["worker_rate"][envs_per_worker]
    batch = workers * envs_per_worker * 128
    update = cal["update_seconds"] * batch / (64 * 128)  # the learner's work grows with the batch
    sync = batch / (envs_per_worker * 128 / r + cal["transfer_seconds"] + update)
    learner_bound = batch / update
    return {"workers": workers, "sync": sync, "async": min(workers * r, learner_bound), "learner_bound": learner_bound}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", type=int, default=12)
    parser.add_argument("--rollouts", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    connect_ray(num_cpus=2)
    rollout = {name: [] for name in SETUPS}
    training = {name: [] for name in SETUPS}
    for repeat in range(args.repeats):
        for name, trainer in SETUPS.items():
            rollout[name].append(rollout_sps(trainer, args.rollouts))
            training[name].append(training_sps(trainer, args.updates))
        print(repeat, {k: f"{v[-1]:,.0f}" for k, v in training.items()}, flush=True)
    slow = {name: [] for name in SLOW_SETUPS}
    for repeat in range(args.repeats):
        for name, trainer in SLOW_SETUPS.items():
            slow[name].append(training_sps(trainer, args.updates, SLOW))
        print("slow", repeat, {k: f"{v[-1]:,.0f}" for k, v in slow.items()}, flush=True)
    cal = calibrate(args.repeats)
    predictions = [model(cal, w) for w in CLUSTER]
    saturation = cal["worker_rate"][32] and (64 * 128 / cal["update_seconds"]) / cal["worker_rate"][32]
    payload = {"date": datetime.date.today().isoformat(), "machine": machine(), "args": vars(args),
               "rollout_sps": rollout, "training_sps": training, "slow_env_training_sps": slow, "calibration": cal, "model": predictions,
               "saturation_workers": saturation}
    base_rollout, base_training = np.mean(rollout["one process"]), np.mean(training["one process"])
    lines = [
        "# Rollout workers: throughput with 1 and 2 workers beside one process", "",
        f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores, torch {payload['machine']['torch']}, "
        f"by `bench/workers.py`: the default IPA run (64 envs x 128 steps a rollout, 64x64 MLP, one torch thread a "
        f"process); mean ± sd over {args.repeats} repeats, setups in turns. Rollout SPS: `collect` alone, the median "
        f"of {args.rollouts} rollouts; training SPS: the median update's `charts/SPS` in a run of {args.updates} "
        "updates. Ratios: to one process.", "",
        "| setup | rollout SPS | ratio | training SPS | ratio |", "|---|---:|---:|---:|---:|",
    ]
    for name in SETUPS:
        r, t = rollout[name], training[name]
        lines.append(f"| {name} | {np.mean(r):,.0f} ± {np.std(r):,.0f} | {np.mean(r) / base_rollout:.2f} | "
                     f"{np.mean(t):,.0f} ± {np.std(t):,.0f} | {np.mean(t) / base_training:.2f} |")
    base_slow = np.mean(slow["one process"])
    lines += [
        "", "## A slow simulator", "",
        "`bench/slow_sim.py`: a non-vectorized Gymnasium env (`env.gym_id`) whose step waits 1 ms, as a call to an "
        "external engine would; 16 envs, 32-step rollouts, PPO. Training SPS, mean ± sd:", "",
        "| setup | training SPS | ratio |", "|---|---:|---:|",
    ]
    for name, values in slow.items():
        lines.append(f"| {name} | {np.mean(values):,.0f} ± {np.std(values):,.0f} | {np.mean(values) / base_slow:.2f} |")
    lines += [
        "", "## A model of more workers, calibrated on these measurements", "",
        f"One worker of 32 envs collects {cal['worker_rate'][32]:,.0f} env steps/s ({cal['worker_rate'][64]:,.0f} "
        f"with 64); the learner updates a 64 x 128 batch in {cal['update_seconds'] * 1000:.0f} ms "
        f"({64 * 128 / cal['update_seconds']:,.0f} steps/s: the most any number of workers can feed it); a "
        f"process worker's rollout costs {cal['transfer_seconds'] * 1000:.0f} ms more than in the trainer's "
        "process (pickling the batch and the weights, the pipe). Each worker holds 32 envs on a core of its "
        "own, the learner one more; the batch grows with the workers and the update time with it.", "",
        "| workers | sync SPS (model) | async SPS (model) | learner bound |", "|---:|---:|---:|---:|",
    ]
    for p in predictions:
        lines.append(f"| {p['workers']} | {p['sync']:,.0f} | {p['async']:,.0f} | {p['learner_bound']:,.0f} |")
    lines += ["", f"The single learner saturates at about {saturation:.1f} workers: beyond it async throughput is "
              "the learner's, and sync collection, which adds the rollout and the update, stays below it. A "
              "64-worker cluster would need a learner that updates faster (a GPU, larger minibatches, fewer "
              "epochs) or several learners; more workers alone do not help."]
    print(write_results("workers", payload, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
