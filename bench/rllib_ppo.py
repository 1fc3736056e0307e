"""Training throughput of RLlib's PPO beside ours, on the same market env with the same network and batch.

RLlib (``ray[rllib]``) pins an older gymnasium than this project's, so this script runs in an
environment of its own: ``make bench-rllib`` builds ``bench/.venv-rllib`` (CPU torch, ``ray[rllib]``,
this package) and runs it there. Both sides in one run, taking turns, ``--repeats`` times:

- ours: ``algo=ppo``, 64 envs x 128 steps a rollout (8,192 a batch), 4 epochs of 4 minibatches, 64x64
  tanh MLP, rollouts from 2 workers (``trainer.backend=ray``, sync and async);
- RLlib: ``PPOConfig`` on the new API stack, 2 env runners x 32 envs x 128 steps (8,192 a batch), 4
  epochs of 2,048-step minibatches, a 64x64 tanh MLP; the env is our ``MarketEnv`` (one market each,
  as RLlib vectorizes envs itself).

Throughput: env steps per second of ``algo.train()`` (RLlib) or ``charts/SPS`` (ours), the median
over ``--iterations`` iterations after the first. Writes bench/results/rllib_ppo.{json,md}.

    python bench/rllib_ppo.py [--repeats 5] [--iterations 8]
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
from openclaw_rl.rock import EnvConfig, MarketEnv
from openclaw_rl.rock.sandbox import connect_ray
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import run_training

OURS = {"ours: 2 workers, ray, sync": {"collection": "sync"}, "ours: 2 workers, ray, async": {"collection": "async"}}


def ours(trainer: dict, iterations: int) -> float:
    config = RunConfig.from_mapping({
        "algo": {"name": "ppo"},
        "trainer": {"total_steps": (iterations + 1) * 64 * 128, "workers": 2, "backend": "ray", "checkpoint_every": 10**6,
                    "progress": "log", "device": "cpu", "threads": "1", **trainer},
        "eval": {"n_envs": 16},
    })
    with tempfile.TemporaryDirectory() as run_dir:
        history = run_training(config, run_dir).history
    return statistics.median(h["charts/SPS"] for h in history[1:])


def market_env(env_config: dict):
    return MarketEnv(config=EnvConfig())


def rllib(iterations: int) -> float:
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.tune.registry import register_env

    register_env("openclaw_market", market_env)
    config = (
        PPOConfig()
        .environment("openclaw_market")
        .env_runners(num_env_runners=2, num_envs_per_env_runner=32, rollout_fragment_length=128, num_cpus_per_env_runner=1)
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=8192, minibatch_size=2048, num_epochs=4, lr=3e-4, gamma=0.99, lambda_=0.95,
                  clip_param=0.2, vf_loss_coeff=0.5, entropy_coeff=0.01)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh"))
    )
    algo = config.build_algo()
    rates = []
    try:
        for i in range(iterations + 1):
            start = time.perf_counter()
            result = algo.train()
            elapsed = time.perf_counter() - start
            steps = result["env_runners"]["num_env_steps_sampled"]
            if i:
                rates.append(steps / elapsed)
    finally:
        algo.stop()
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    connect_ray(num_cpus=3)  # 2 workers or env runners, and the learner's process
    runs = {**{name: [] for name in OURS}, "RLlib PPO: 2 env runners": []}
    for repeat in range(args.repeats):
        for name, trainer in OURS.items():
            runs[name].append(ours(trainer, args.iterations))
        runs["RLlib PPO: 2 env runners"].append(rllib(args.iterations))
        print(repeat, {k: f"{v[-1]:,.0f}" for k, v in runs.items()}, flush=True)
    import gymnasium
    import ray

    payload = {"date": datetime.date.today().isoformat(), "machine": machine(), "args": vars(args), "runs": runs,
               "ray": ray.__version__, "gymnasium": gymnasium.__version__}
    base = np.mean(runs["RLlib PPO: 2 env runners"])
    lines = ["# PPO training throughput: ours beside RLlib's, same env, network and batch", "",
             f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores, torch {payload['machine']['torch']}, "
             f"Ray {ray.__version__}, gymnasium {gymnasium.__version__} (bench/.venv-rllib), by `bench/rllib_ppo.py`: "
             "the default market env, 8,192-step batches (64 envs x 128 steps), 4 epochs of 2,048-step minibatches, "
             f"64x64 tanh MLP, 2 rollout workers on a local Ray; env steps/s, the median of {args.iterations} "
             f"iterations after the first; mean ± sd over {args.repeats} repeats taken in turns.", "",
             "| setup | training SPS | ratio to RLlib |", "|---|---:|---:|"]
    for name, values in runs.items():
        lines.append(f"| {name} | {np.mean(values):,.0f} ± {np.std(values):,.0f} | {np.mean(values) / base:.2f} |")
    print(write_results("rllib_ppo", payload, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
