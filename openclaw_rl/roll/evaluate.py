"""Evaluation on held-out markets: one episode per market, the metrics a trader reads."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.roll.policy import ActorCritic

# Training markets are seeded below this, held-out evaluation markets from it up.
EVAL_SEED_BASE = 2**40


def evaluate(policy: ActorCritic, env_config: EnvConfig, n_envs: int, device: torch.device,
             deterministic: bool = True) -> dict[str, float]:
    """Mean over ``n_envs`` held-out markets of the first episode's outcome."""
    config = dataclasses.replace(env_config, n_envs=n_envs)
    envs = MarketVecEnv(config=config)
    obs, _ = envs.reset(seed=EVAL_SEED_BASE)
    engine, w, bars = envs.engine, config.window, config.episode_bars
    buy_and_hold = np.log(engine.close[w + bars] / engine.close[w])
    state = policy.initial_state(n_envs, device)
    starts = torch.ones(n_envs, device=device)
    active = np.ones(n_envs, dtype=bool)
    episode_return = np.zeros(n_envs)
    final_equity = np.full(n_envs, config.initial_equity)
    step_returns = []
    was_training = policy.training
    policy.eval()
    for _ in range(bars):
        action, _, _, state = policy.act(torch.as_tensor(obs, device=device), state, starts, deterministic)
        action = action.cpu().numpy()
        prev_equity = engine.equity.copy()
        obs, reward, terminated, truncated, info = envs.step(action if not policy.continuous else action.astype(np.float32))
        done = terminated | truncated
        equity = np.where(done, info["final_info"]["equity"] if done.any() else 0.0, info["equity"])
        step_returns.append(np.where(active, equity / prev_equity - 1.0, np.nan))
        episode_return += np.where(active, reward, 0.0)
        final_equity = np.where(active, equity, final_equity)
        active &= ~done
        starts = torch.as_tensor(done.astype(np.float32), device=device)
        if not active.any():
            break
    policy.train(was_training)
    step_returns = np.array(step_returns)
    mean, std = np.nanmean(step_returns, axis=0), np.nanstd(step_returns, axis=0)
    sharpe = np.where(std > 0, mean / np.where(std > 0, std, 1.0) * np.sqrt(config.bars_per_year), 0.0)
    log_return = np.log(np.maximum(final_equity, 1e-12) / config.initial_equity)
    return {
        "log_return": float(log_return.mean()),
        "excess_log_return": float((log_return - buy_and_hold).mean()),
        "sharpe": float(sharpe.mean()),
        "episodic_return": float(episode_return.mean()),
    }
