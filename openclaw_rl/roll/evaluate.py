"""Evaluation on held-out markets: one episode per market, the metrics a trader reads."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from openclaw_rl.episodes import policy_actor, run_episodes
from openclaw_rl.metrics import metrics
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.roll.policy import ActorCritic

# Training markets are seeded below this, held-out evaluation markets from it up.
EVAL_SEED_BASE = 2**40


def evaluate(policy: ActorCritic, env_config: EnvConfig, n_envs: int, device: torch.device,
             deterministic: bool = True) -> dict[str, float]:
    """Mean over ``n_envs`` held-out markets of the first episode's outcome."""
    config = dataclasses.replace(env_config, n_envs=n_envs)
    was_training = policy.training
    policy.eval()
    record = run_episodes(MarketVecEnv(config=config), EVAL_SEED_BASE, policy_actor(policy, device, deterministic))
    policy.train(was_training)
    log_return = np.log(np.maximum(record.equity[-1], 1e-12) / config.initial_equity)
    return {
        "log_return": float(log_return.mean()),
        "excess_log_return": float((log_return - record.buy_and_hold).mean()),
        "sharpe": float(metrics(record.equity, record.positions, config.bars_per_year)["sharpe"].mean()),
        "episodic_return": float(record.rewards.sum(axis=0).mean()),
    }
