"""Backtests: V7 strategies and trained policies, one episode per market (``episodes.run_episodes``),
and the metrics quants read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from openclaw_rl.episodes import EpisodeRecord, policy_actor, run_episodes, strategy_actor
from openclaw_rl.metrics import metrics
from openclaw_rl.rock import ConfigError, EnvConfig, MarketVecEnv
from openclaw_rl.roll.checkpoint import CheckpointError, find_checkpoint, load_checkpoint, load_policy_weights
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.strategies.v7 import STRATEGIES, RegimeEnsemble

STRATEGY_CHOICES = (*STRATEGIES, "regime_ensemble")


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
    # The design only: trainer.* is not stored (a grpo design's group_size, say, is a trainer setting).
    config = RunConfig.from_design(state["config"], str(path))
    trained = config.env
    seen = ("window", "continuous", "actions", "observe_regime")
    if env is not None and any(getattr(env, key) != getattr(trained, key) for key in seen):
        raise CheckpointError(f"{checkpoint}: the policy was trained with env.window={trained.window}, "
                              f"env.continuous={trained.continuous}, env.actions={list(trained.actions)}, "
                              f"env.observe_regime={trained.observe_regime}; run it on an env with the same "
                              "observation and actions")
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
