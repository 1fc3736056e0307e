"""Evaluation on the validation split: one episode per market, the metrics a trader reads.

Synthetic markets come from the validation seed range, historical episodes from the validation
bars (``rock/splits.py``): the objective a run returns to a sweeper never sees training markets,
and never the test split, which only the benchmark reads. A historical run that trains on
``env.data.split=all`` or ``validation`` has no held-out bars; it is evaluated on the bars it
trained on (in-sample, and the trainer warns)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import torch

from openclaw_rl.episodes import policy_actor, run_episodes
from openclaw_rl.metrics import episode_log_return, metrics
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.config import touched, with_split
from openclaw_rl.rock.splits import seed_range
from openclaw_rl.rock.user_env import GymVecEnv
from openclaw_rl.roll.policy import ActorCritic

EVAL_SEED_BASE = seed_range("validation")[0]  # training markets are seeded below it


def validation_env(env_config: EnvConfig, n_envs: int) -> EnvConfig:
    split = "validation" if env_config.data.split == "train" else env_config.data.split
    return with_split(dataclasses.replace(env_config, n_envs=n_envs), split)


def validation_touched(env_config: EnvConfig, n_envs: int) -> dict:
    """What ``evaluate`` reads (for the run's lineage)."""
    return touched(validation_env(env_config, n_envs), (EVAL_SEED_BASE, EVAL_SEED_BASE + n_envs))


def evaluate(policy: ActorCritic, env_config: EnvConfig, n_envs: int, device: torch.device,
             deterministic: bool = True) -> dict[str, float]:
    """Mean over ``n_envs`` validation markets of the first episode's outcome (a user's env,
    ``env.gym_id``: its return, on seeds above the training seeds)."""
    config = validation_env(env_config, n_envs)
    was_training = policy.training
    policy.eval()
    try:
        actor = policy_actor(policy, device, deterministic)
        if config.gym_id is not None:
            return {"episodic_return": float(first_episode_returns(GymVecEnv(config), EVAL_SEED_BASE, actor).mean())}
        record = run_episodes(MarketVecEnv(config=config), EVAL_SEED_BASE, actor)
    finally:
        policy.train(was_training)
    log_return = episode_log_return(record.equity[-1], config.initial_equity, config.ruin_fraction)
    return {
        "log_return": float(log_return.mean()),
        "excess_log_return": float((log_return - record.buy_and_hold).mean()),
        "sharpe": float(metrics(record.equity, record.positions, config.bars_per_year)["sharpe"].mean()),
        "episodic_return": float(record.rewards.sum(axis=0).mean()),
    }


def first_episode_returns(envs: GymVecEnv, seed: int, make_actor) -> np.ndarray:
    """The return of each env's first episode, env ``i`` seeded ``seed + i`` (``make_actor``: ``policy_actor``).
    An error of the env names the step (``roll.workers`` tells a random failure from one that recurs by it)."""
    n = envs.num_envs
    act = make_actor(envs)
    obs, _ = envs.reset(seed=[seed + i for i in range(n)])
    returns, live, starts = np.zeros(n), np.ones(n, dtype=bool), np.ones(n, dtype=np.float32)
    try:
        for step in itertools.count():
            if not live.any():
                break
            action, _ = act(obs, step, starts)
            try:
                obs, reward, terminated, truncated, _ = envs.step(action)
            except Exception as error:
                raise RuntimeError(f"at step {step} of the evaluation: {type(error).__name__}: {error}") from error
            returns += np.where(live, reward, 0.0)
            live &= ~(terminated | truncated)
            starts = np.zeros(n, dtype=np.float32)
    finally:
        envs.close()
    return returns
