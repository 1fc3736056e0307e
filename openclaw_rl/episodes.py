"""Play one episode per market with any actor (a strategy, a policy) and keep the curves.

The runner under evaluation (``roll.evaluate``), backtests (``backtest.run``) and trajectory
datasets (``data.trajectories``). It knows markets (ROCK) and nothing above them: a strategy is
anything with ``positions(close)``, a policy anything with ``initial_state``, ``act`` and
``continuous`` (``roll.policy.ActorCritic``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from openclaw_rl.rock import MarketVecEnv


@dataclass
class EpisodeRecord:
    """Time-major curves of one episode per market; rows after a market's end repeat its last equity."""

    equity: np.ndarray  # [T+1, N], starting equity first
    positions: np.ndarray  # [T, N], position held over each bar (0 after the end)
    rewards: np.ndarray  # [T, N], env rewards (0 after the end)
    buy_and_hold: np.ndarray  # [N], log return of the market over the episode
    lengths: np.ndarray  # [N], steps until each market's episode ended
    logp: np.ndarray  # [T, N], log-prob of each action under the actor (0: deterministic; 0 after the end)
    market_log_returns: np.ndarray | None = None  # [T, N], close-to-close log returns of each market's episode


# act(obs [N, obs_dim], step, starts [N]) -> (actions for MarketVecEnv.step, their log-probs [N])
Actor = Callable[[np.ndarray, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def run_episodes(envs: MarketVecEnv, seed: int, make_actor: Callable[[MarketVecEnv], Actor]) -> EpisodeRecord:
    """Reset ``envs`` with ``seed`` and play each market's first episode to its end."""
    obs, _ = envs.reset(seed=seed)
    engine, config = envs.engine, envs.config
    w, bars = config.window, config.episode_bars
    market_log_returns = np.diff(np.log(engine.close[w : w + bars + 1]), axis=0)
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
    return EpisodeRecord(np.array(equity), np.array(positions), np.array(rewards), buy_and_hold, lengths, np.array(logps),
                         market_log_returns)


def strategy_actor(strategy) -> Callable[[MarketVecEnv], Actor]:
    """Targets from a strategy's causal rule on the closes (a continuous env takes them as they are)."""

    def make(envs: MarketVecEnv) -> Actor:
        targets = strategy.positions(envs.engine.close)  # causal: row t uses closes up to t only
        window, certain = envs.config.window, np.zeros(envs.num_envs)
        return lambda obs, step, starts: (targets[window + step][:, None], certain)

    return make


class ActingPolicy(Protocol):
    """What ``policy_actor`` needs of a policy (``roll.policy.ActorCritic`` has it)."""

    continuous: bool

    def initial_state(self, n: int, device: torch.device): ...

    def act(self, obs: torch.Tensor, state, starts: torch.Tensor, deterministic: bool): ...


def policy_actor(policy: ActingPolicy, device: torch.device, deterministic: bool) -> Callable[[MarketVecEnv], Actor]:
    """An actor for ``run_episodes`` that carries the policy's recurrent state."""

    def make(envs: MarketVecEnv) -> Actor:
        state = policy.initial_state(envs.num_envs, device)

        def act(obs, step, starts):
            nonlocal state
            action, logp, _, state = policy.act(torch.as_tensor(obs, device=device), state,
                                                torch.as_tensor(starts, device=device), deterministic)
            action = action.cpu().numpy()
            return action.astype(np.float32) if policy.continuous else action, logp.cpu().numpy()

        return act

    return make
