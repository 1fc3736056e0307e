"""Run one episode per market with any actor (a strategy, a policy) and keep the curves."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from openclaw_rl.backtest.metrics import metrics
from openclaw_rl.rock import ConfigError, EnvConfig, MarketVecEnv
from openclaw_rl.roll.checkpoint import CheckpointError, find_checkpoint, load_checkpoint, load_policy_weights
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.strategies.v7 import STRATEGIES, RegimeEnsemble

STRATEGY_CHOICES = (*STRATEGIES, "regime_ensemble")


@dataclass
class EpisodeRecord:
    """Time-major curves of one episode per market; rows after a market's end repeat its last equity."""

    equity: np.ndarray  # [T+1, N], starting equity first
    positions: np.ndarray  # [T, N], position held over each bar (0 after the end)
    rewards: np.ndarray  # [T, N], env rewards (0 after the end)
    buy_and_hold: np.ndarray  # [N], log return of the market over the episode
    lengths: np.ndarray  # [N], steps until each market's episode ended
    logp: np.ndarray  # [T, N], log-prob of each action under the actor (0: deterministic; 0 after the end)


# act(obs [N, obs_dim], step, starts [N]) -> (actions for MarketVecEnv.step, their log-probs [N])
Actor = Callable[[np.ndarray, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def run_episodes(envs: MarketVecEnv, seed: int, make_actor: Callable[[MarketVecEnv], Actor]) -> EpisodeRecord:
    """Reset ``envs`` with ``seed`` and play each market's first episode to its end."""
    obs, _ = envs.reset(seed=seed)
    engine, config = envs.engine, envs.config
    w, bars = config.window, config.episode_bars
    buy_and_hold = np.log(engine.close[w + bars] / engine.close[w])
    act = make_actor(envs)  # after the reset: a strategy may read the episode's closes so far
    active = np.ones(envs.num_envs, dtype=bool)
    starts = np.ones(envs.num_envs, dtype=np.float32)
    equity, positions, rewards, logps = [engine.equity.copy()], [], [], []
    lengths = np.zeros(envs.num_envs, dtype=np.int64)
    for step in range(bars):
        actions, logp = act(obs, step, starts)
        logps.append(np.where(active, logp, 0.0))
        obs, reward, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        final = info["final_info"] if done.any() else info
        equity.append(np.where(active, np.where(done, final["equity"], info["equity"]), equity[-1]))
        positions.append(np.where(active, np.where(done, final["position"], info["position"]), 0.0))
        rewards.append(np.where(active, reward, 0.0))
        lengths += active
        active &= ~done
        starts = done.astype(np.float32)
        if not active.any():
            break
    return EpisodeRecord(np.array(equity), np.array(positions), np.array(rewards), buy_and_hold, lengths, np.array(logps))


def strategy_actor(strategy) -> Callable[[MarketVecEnv], Actor]:
    """Targets from a strategy's causal rule on the closes (a continuous env takes them as they are)."""

    def make(envs: MarketVecEnv) -> Actor:
        targets = strategy.positions(envs.engine.close)  # causal: row t uses closes up to t only
        window, certain = envs.config.window, np.zeros(envs.num_envs)
        return lambda obs, step, starts: (targets[window + step][:, None], certain)

    return make


def policy_actor(policy: ActorCritic, device: torch.device, deterministic: bool):
    """An actor for ``run_episodes`` that carries the policy's recurrent state."""

    def make(envs: MarketVecEnv):
        state = policy.initial_state(envs.num_envs, device)

        def act(obs, step, starts):
            nonlocal state
            action, logp, _, state = policy.act(torch.as_tensor(obs, device=device), state,
                                                torch.as_tensor(starts, device=device), deterministic)
            action = action.cpu().numpy()
            return action.astype(np.float32) if policy.continuous else action, logp.cpu().numpy()

        return act

    return make


def make_strategy(name: str, env: EnvConfig, fit_seed: int, n_markets: int, key: str = "strategy"):
    """A V7 strategy by name; ``regime_ensemble`` is fitted on ``n_markets`` markets seeded from ``fit_seed``."""
    if name not in STRATEGY_CHOICES:
        raise ConfigError(f"{key}: unknown strategy {name!r}; allowed: {', '.join(STRATEGY_CHOICES)}")
    if name != "regime_ensemble":
        return STRATEGIES[name]()
    if env.market.get("kind") == "historical":
        raise ConfigError(f"{key}: regime_ensemble is fitted on separate markets, and on historical data those "
                          "would be the bars it is tested on; compare it on synthetic markets, or fit it on a "
                          "training range (backtest.walk_forward)")
    envs = MarketVecEnv(config=dataclasses.replace(env, n_envs=n_markets))
    envs.reset(seed=fit_seed)
    return RegimeEnsemble.fit(envs.engine.close[: env.bars_per_episode])


def strategy_env(env_config: EnvConfig, n_markets: int) -> EnvConfig:
    """``env_config`` for strategies: continuous targets, so they trade their own position sizes."""
    bound = max(env_config.max_position, 1.0)
    return dataclasses.replace(env_config, n_envs=n_markets, continuous=True, max_position=bound)


def backtest_strategy(strategy, env_config: EnvConfig, n_markets: int, seed: int) -> tuple[EpisodeRecord, dict]:
    """One episode on each of ``n_markets`` markets seeded from ``seed``; curves and metrics."""
    config = strategy_env(env_config, n_markets)
    record = run_episodes(MarketVecEnv(config=config), seed, strategy_actor(strategy))
    return record, metrics(record.equity, record.positions, config.bars_per_year)


def load_policy(checkpoint: Path, device: torch.device, env: EnvConfig | None = None) -> tuple[ActorCritic, RunConfig]:
    """The policy stored in a training checkpoint (or run dir), rebuilt from the design it records;
    with ``env``, a clear error unless the policy observes and acts as that env needs."""
    path = find_checkpoint(checkpoint)
    state = load_checkpoint(path)
    config = RunConfig.from_mapping(state["config"])
    trained = config.env
    if env is not None and (env.window, env.continuous, env.actions) != (trained.window, trained.continuous, trained.actions):
        raise CheckpointError(f"{checkpoint}: the policy was trained with env.window={trained.window}, "
                              f"env.continuous={trained.continuous}, env.actions={list(trained.actions)}; "
                              "run it on an env with the same observation and actions")
    policy = ActorCritic.for_env(config.env, config.policy).to(device)
    load_policy_weights(policy, state["policy"], path)
    return policy, config


def backtest_policy(checkpoint: Path, env_config: EnvConfig, n_markets: int, seed: int,
                    device: torch.device = torch.device("cpu")) -> tuple[EpisodeRecord, dict]:
    """A trained policy, greedy, on ``env_config``'s markets (its observation and actions must fit)."""
    policy, _ = load_policy(checkpoint, device, env_config)
    config = dataclasses.replace(env_config, n_envs=n_markets)
    policy.eval()
    record = run_episodes(MarketVecEnv(config=config), seed, policy_actor(policy, device, deterministic=True))
    return record, metrics(record.equity, record.positions, config.bars_per_year)
