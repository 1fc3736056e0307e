"""End-to-end PPO training throughput: openclaw_rl vs Stable-Baselines3, side by side.

Same market env (MarketEnv; SB3 steps N copies in its DummyVecEnv, we step MarketVecEnv),
same network (64x64 tanh, separate actor and critic), same N envs, rollout length, epochs and
minibatch size, no observation normalization on either side. Wall clock of the whole run, at the
default settings (``trainer.threads=auto``).

Beside them, the ceiling of an eager update: the same policy's forward, backward, gradient clipping
and Adam step over the same minibatches of a random batch, and nothing else (no rollout, no targets,
no logging), on as many threads as ``auto`` picks on this machine now. A whole run reaches a share of it.

Then ``trainer.compile=true`` at the same settings: the whole run with its compilation, the steady state
after it, and the run length from which compiling pays.

    python bench/train_sps.py [--steps 262144] [--envs 64 256 1024]

Writes bench/results/train_sps.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import re
import statistics
import tempfile
import time

import torch

from common import machine, write_results
from openclaw_rl.rock import MarketEnv
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.cores import FIRST_READING, OtherLoad, free_threads
from openclaw_rl.roll.policy import ActorCritic, torch_threads
from openclaw_rl.roll.trainer import build, log as trainer_log, run_training

ROLLOUT, EPOCHS, MINIBATCHES = 128, 4, 4
STEADY_SPS = re.compile(r"update \d+/\d+ done: step \d+, SPS ([\d,]+)")


def config(n_envs: int, steps: int, compile: bool = False) -> RunConfig:
    return RunConfig.from_mapping({
        "env": {"n_envs": n_envs}, "algo": {"name": "ppo", "update_epochs": EPOCHS, "num_minibatches": MINIBATCHES},
        "policy": {"hidden": [64, 64], "activation": "tanh", "normalize_obs": False},
        "trainer": {"total_steps": steps, "rollout_steps": ROLLOUT, "checkpoint_every": 10**6, "progress": "log",
                    "device": "cpu", "compile": compile},
        "eval": {"n_envs": 1},
    })


def timed_run(config_: RunConfig) -> tuple[float, list[float]]:
    """A training run's wall seconds and each update's env steps/s (its log line's SPS)."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    level = trainer_log.level
    trainer_log.addHandler(handler)
    trainer_log.setLevel(logging.INFO)
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            run_training(config_, run_dir)
            wall = time.perf_counter() - start
    finally:
        trainer_log.removeHandler(handler)
        trainer_log.setLevel(level)
    return wall, [float(x.replace(",", "")) for x in STEADY_SPS.findall("\n".join(lines))]


def ours(n_envs: int, steps: int) -> float:
    config_ = config(n_envs, steps)
    return config_.num_updates * config_.batch_steps / timed_run(config_)[0]


def ours_compiled(n_envs: int, steps: int) -> tuple[float, float, float]:
    """``trainer.compile=true``: the whole run's env steps/s (compilation included), the steady state's (the
    median update after the first, rollout included, from its log lines) and the seconds compiling cost."""
    config_ = config(n_envs, steps, compile=True)
    wall, per_update = timed_run(config_)
    total = config_.num_updates * config_.batch_steps
    steady = statistics.median(per_update[1:])
    return total / wall, steady, wall - total / steady


def auto_threads() -> int:
    """The threads ``trainer.threads=auto`` picks now (from a reading as long as the trainer's first)."""
    load = OtherLoad()
    time.sleep(FIRST_READING)
    return free_threads(load.read())


def rollout_ceiling(n_envs: int, rollouts: int = 4) -> float:
    """Env steps/s of the default collector alone (policy acting, env stepping, buffers), no update, on the
    threads ``auto`` picks now: with the update's ceiling, it bounds a whole run."""
    threads = auto_threads()
    torch.manual_seed(0)
    _, _, collector, _ = build(config(n_envs, n_envs * ROLLOUT), torch.device("cpu"))
    with torch_threads(threads):
        collector.collect(ROLLOUT, version=0)  # warm-up
        start = time.perf_counter()
        for version in range(rollouts):
            collector.collect(ROLLOUT, version=version)
        return rollouts * n_envs * ROLLOUT / (time.perf_counter() - start)


def ceiling(n_envs: int, updates: int = 4) -> tuple[float, int]:
    """Env steps/s of the bare eager update, and the threads it ran on (what ``auto`` picks now)."""
    threads = auto_threads()
    run = config(n_envs, n_envs * ROLLOUT)
    torch.manual_seed(0)
    policy = ActorCritic.for_env(run.env, run.policy)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4, eps=1e-5)
    obs = torch.randn(ROLLOUT, n_envs, run.env.obs_dim)
    actions = torch.randint(0, run.env.action_dim, (ROLLOUT, n_envs))
    advantages, returns, logp_old = torch.randn(ROLLOUT, n_envs), torch.randn(ROLLOUT, n_envs), torch.randn(ROLLOUT, n_envs)
    state, starts, width = policy.initial_state(n_envs), torch.zeros(ROLLOUT, n_envs), n_envs // MINIBATCHES
    with torch_threads(threads):
        start = None
        for update in range(updates + 1):  # the first is a warm-up
            if update == 1:
                start = time.perf_counter()
            for _ in range(EPOCHS):
                for a in range(0, n_envs, width):
                    cols = slice(a, a + width)
                    head, values, _ = policy.forward_sequence(obs[:, cols], state[:, cols], starts[:, cols])
                    dist = policy.distribution(head)
                    ratio = (policy.log_prob(dist, actions[:, cols]) - logp_old[:, cols]).exp()
                    adv = advantages[:, cols]
                    loss = (-torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
                            + 0.5 * (values - returns[:, cols]).pow(2).mean() - 0.01 * policy.entropy(dist).mean())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
                    optimizer.step()
        return updates * n_envs * ROLLOUT / (time.perf_counter() - start), threads


def stable_baselines(n_envs: int, steps: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    start = time.perf_counter()
    envs = DummyVecEnv([MarketEnv] * n_envs)
    model = PPO("MlpPolicy", envs, n_steps=ROLLOUT, batch_size=n_envs * ROLLOUT // MINIBATCHES, n_epochs=EPOCHS,
                learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, max_grad_norm=0.5,
                policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh}, device="cpu", seed=0, verbose=0)
    model.learn(total_timesteps=steps)
    return model.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    # torch imports its compiler stack lazily on the first optimizer; pay that once, untimed.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=262144, help="env steps per run")
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--compile-steps", type=int, default=1_048_576,
                        help="env steps per trainer.compile=true run (at least a few updates after the compiling one)")
    args = parser.parse_args()
    rows = []
    for n in args.envs:
        row = {"n_envs": n, "ours": ours(n, args.steps), "sb3": stable_baselines(n, args.steps)}
        row["ceiling"], row["ceiling_threads"] = ceiling(n)
        row["rollout_ceiling"] = rollout_ceiling(n)
        row["bound"] = 1 / (1 / row["ceiling"] + 1 / row["rollout_ceiling"])  # both ceilings, one after the other
        row["compiled"], row["compiled_steady"], row["compile_s"] = ours_compiled(n, args.compile_steps)
        gain = 1 / row["ours"] - 1 / row["compiled_steady"]  # seconds saved per env step once compiled
        row["break_even_steps"] = row["compile_s"] / gain if gain > 0 else math.inf
        rows.append(row)
        print(f"N={n}: ours {row['ours']:,.0f} SPS, SB3 {row['sb3']:,.0f} SPS, ratio {row['ours'] / row['sb3']:.1f}x; "
              f"eager update ceiling {row['ceiling']:,.0f} ({row['ceiling_threads']} threads), rollout ceiling "
              f"{row['rollout_ceiling']:,.0f}; trainer.compile=true "
              f"{row['compiled']:,.0f} SPS, {row['compiled_steady']:,.0f} once compiled ({row['compile_s']:.1f} s to "
              f"compile)", flush=True)
    lines = [
        "# PPO training throughput (env steps/s, whole run wall clock)", "",
        f"Measured {datetime.date.today()} on {machine()['cores']} CPU cores, torch {torch.__version__}, by "
        f"`bench/train_sps.py`: {args.steps:,} steps per run, rollout {ROLLOUT}, {EPOCHS} epochs, "
        f"{MINIBATCHES} minibatches, 64x64 tanh, `trainer.threads=auto`. Update ceiling: the bare eager update of "
        "the same policy and minibatches alone; rollout ceiling: the collector alone (threads as `auto` picked then). "
        "Bound: both ceilings one after the other, what a run that did nothing else would reach; share: the whole "
        "run's share of the update ceiling.", "",
        "| N envs | openclaw_rl PPO | Stable-Baselines3 PPO | ratio | update ceiling | share | rollout ceiling | "
        "bound (vs SB3) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['n_envs']} | {r['ours']:,.0f} | {r['sb3']:,.0f} | {r['ours'] / r['sb3']:.1f}x | "
              f"{r['ceiling']:,.0f} ({r['ceiling_threads']} thr.) | {r['ours'] / r['ceiling']:.0%} | "
              f"{r['rollout_ceiling']:,.0f} | {r['bound']:,.0f} ({r['bound'] / r['sb3']:.1f}x) |" for r in rows]
    lines += [
        "", "With `trainer.compile=true` (the learner's minibatch pass through `torch.compile`, inductor's cache as "
        "this machine had it): the whole run, compilation included; the steady state (the median update after the "
        "first, rollout included); the seconds compiling cost; the run length from which it beats the default.", "",
        "| N envs | whole run | steady | vs SB3 (steady) | vs ceiling (steady) | compile | pays from |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['n_envs']} | {r['compiled']:,.0f} | {r['compiled_steady']:,.0f} | "
              f"{r['compiled_steady'] / r['sb3']:.1f}x | {r['compiled_steady'] / r['ceiling']:.0%} | "
              f"{r['compile_s']:.1f} s | {r['break_even_steps']:,.0f} steps |" for r in rows]
    payload = {"machine": machine(), "date": str(datetime.date.today()), "steps": args.steps,
               "compile_steps": args.compile_steps, "rows": rows}
    print(f"wrote {write_results('train_sps', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
