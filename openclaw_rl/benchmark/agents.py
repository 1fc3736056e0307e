"""What the benchmark scores: a trained checkpoint, a V7 strategy, or a random policy, each
acting through an env with the task's markets and its own action interface."""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from openclaw_rl.backtest.run import STRATEGY_CHOICES, load_policy, make_strategy, strategy_env
from openclaw_rl.episodes import policy_actor, strategy_actor
from openclaw_rl.errors import CheckpointError, ConfigError
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.config import with_split
from openclaw_rl.roll.checkpoint import find_checkpoint
from openclaw_rl.roll.lineage import checkpoint_lineage
from openclaw_rl.strategies.v7 import RegimeEnsemble

AGENTS = (*STRATEGY_CHOICES, "random")  # strategy=NAME
FIT_SEED, FIT_MARKETS = 7, 64  # synthetic tasks: regime_ensemble is fitted on these training-range markets


@dataclass
class Agent:
    name: str
    lineage: list[dict]  # what its weights or rules touched (roll.lineage)
    n_trials: int  # designs tried before this one was chosen (the deflated Sharpe ratio's N)
    env_for: Callable[[EnvConfig], EnvConfig]  # the task's env with this agent's action interface
    actor_for: Callable[[EnvConfig, int], Callable]  # (env, first seed) -> make_actor for run_episodes


def checkpoint_agent(path: str, device: torch.device) -> Agent:
    """A trained policy, greedy. Its observation must be the task's (``env.window``), and its positions
    must stay within the task's ``max_position``; it keeps its own action levels."""
    policy, config = load_policy(Path(path), device)
    policy.eval()
    trained = config.env

    def env_for(task_env: EnvConfig) -> EnvConfig:
        if trained.window != task_env.window:
            raise CheckpointError(f"{path}: the policy observes env.window={trained.window} bars, the suite's "
                                  f"tasks give {task_env.window}")
        reach = trained.max_position if trained.continuous else max(abs(a) for a in trained.actions)
        if reach > task_env.max_position:
            raise CheckpointError(f"{path}: the policy's positions reach {reach} of equity, the task allows "
                                  f"{task_env.max_position} (env.max_position)")
        # An oracle (env.observe_regime) is scored seeing the true regime, as it was trained: an upper bound.
        return dataclasses.replace(task_env, continuous=trained.continuous, actions=trained.actions,
                                   max_position=trained.max_position, trade_threshold=trained.trade_threshold,
                                   observe_regime=trained.observe_regime)

    return Agent(str(path), checkpoint_lineage(path), designs_tried(find_checkpoint(path)), env_for,
                 lambda env, seed: policy_actor(policy, device, deterministic=True))


def strategy_agent(name: str) -> Agent:
    """A V7 strategy (``regime_ensemble`` fitted on the task's training split) or ``random``
    (uniform over the task's discrete actions, seeded by the markets)."""
    if name not in AGENTS:
        raise ConfigError(f"strategy: unknown strategy {name!r}; allowed: {', '.join(AGENTS)}")
    if name == "random":
        return Agent(name, [], 1, lambda env: env, _random_actor)

    def actor_for(env: EnvConfig, seed: int):
        if name == "regime_ensemble" and env.market.get("kind") == "historical":  # fitted on the train bars
            replay = with_split(env, "train").make_market()
            return strategy_actor(RegimeEnsemble.fit(replay.series.close[replay.start : replay.end, None]))
        return strategy_actor(make_strategy(name, env, FIT_SEED, FIT_MARKETS))  # fitted on training-range seeds

    return Agent(name, [], 1, lambda env: strategy_env(env, env.n_envs), actor_for)


def _random_actor(env: EnvConfig, seed: int):
    def make(envs: MarketVecEnv):
        rng = np.random.default_rng(seed)
        n, levels = envs.num_envs, len(env.actions)
        logp = np.full(n, -np.log(levels))
        return lambda obs, step, starts: (rng.integers(levels, size=n), logp)

    return make


def designs_tried(checkpoint: Path) -> int:
    """How many designs an ALMA sweep tried before this checkpoint's (1 outside a sweep): the
    finished search trials (not the holdout reruns of designs already counted) in the ``archive.sqlite``
    of the sweep dir that holds its run dir
    (``<sweep>/trial_NNNN/task_K/checkpoints/last.pt``)."""
    for folder in Path(checkpoint).resolve().parents[:4]:
        archive = folder / "archive.sqlite"
        if archive.is_file():
            with sqlite3.connect(f"file:{archive}?mode=ro", uri=True) as db:
                (count,) = db.execute("SELECT COUNT(*) FROM trials WHERE status = 'finished' AND kind = 'search'").fetchone()
            return max(int(count), 1)
    return 1
