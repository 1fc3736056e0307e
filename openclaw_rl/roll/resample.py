"""Chunk-level initialized resampling (arXiv 2512.24873, §3.2.4.4) with a V7 teacher.

Where plain sampling rarely succeeds, an episode starts from a teacher's trajectory: the
teacher's actions are replayed up to an *anchor* (the start of one of its chunks, order to
order) and the policy samples the chunks after it. The replayed steps train the policy by
imitation, the resampled ones by chunk RL: ``L = lambda_IL * IL(prefix) + lambda_RL * RL(rest)``
(see ``Learner``).

- ``parallel`` anchors: each episode draws its anchor uniformly over the teacher's chunk starts
  (0 included: from scratch), so one batch resamples from every depth at once.
- ``sequential`` rollback: every episode starts ``level`` chunks before the teacher's end;
  ``level`` grows by one once the episodes started at the current level succeed at least
  ``advance_at`` of the time (checked after each rollout), until the policy plays whole episodes.
- ``fork_scan`` finds the crucial fork of teacher trajectories: it replays each teacher once,
  snapshots the markets at its anchors, restores every snapshot into several markets and lets
  the policy finish them; the fork is the chunk where the success rate from after it exceeds the
  rate from before it by ``fork_gap`` or more.
- ``fork`` anchors: every new episode is scanned first and starts right before its crucial fork,
  so the policy practises the decision it gets wrong; episodes without a fork draw as ``parallel``.

In the training collector the prefix is replayed in place: a market is a pure function of its
seed and the engine is deterministic, so replaying the teacher's actions reaches exactly the
state a restore would, batched with the other markets' steps, and it yields the observations
that the imitation term needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from openclaw_rl.ipa.chunks import chunk_index
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.engine import MarketEngine, stack_snapshots
from openclaw_rl.roll.config import ResampleConfig
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.strategies.v7 import STRATEGIES


def teacher_actions(strategy, engine: MarketEngine, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's env actions ``[bars, len(rows)]`` over the current episodes of ``rows`` and
    the chunk starts (bool, same shape): step 0 and every step after one that sends an order."""
    config = engine.config
    w, bars = config.window, config.episode_bars
    positions = strategy.positions(engine.close[:, rows])[w : w + bars]  # causal: row t sees closes to t
    if config.continuous:
        targets = np.clip(positions, -config.max_position, config.max_position)
        actions = targets.astype(np.float32)
    else:
        actions = config.nearest_action(positions)
        targets = np.asarray(config.actions, dtype=np.float64)[actions]
    orders = np.zeros(targets.shape, dtype=bool)  # executed orders, as the engine decides them
    held = np.zeros(len(rows))
    for t, target in enumerate(targets):
        orders[t] = np.abs(target - held) > config.trade_threshold if config.continuous else target != held
        held = np.where(orders[t], target, held)
    starts = np.diff(chunk_index(orders), axis=0, prepend=-1) != 0  # where the chunk index moves on
    return actions, starts


def nth_start(starts: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per column, the step of its ``k``-th chunk start (0-based)."""
    return np.argmax(np.cumsum(starts, axis=0) > k, axis=0)


class TeacherReplay:
    """Per env column of the collector: the teacher's actions for the current episode and the
    anchor step from which the policy acts. State for exact resume: anchors, level, RNG."""

    def __init__(self, config: ResampleConfig, engine: MarketEngine, seed: int, policy: ActorCritic | None = None,
                 device: torch.device | None = None):
        """``policy`` and ``device``: for the fork scans of ``mode=fork``."""
        if config.mode == "fork" and policy is None:
            raise ValueError("resample.mode=fork scans with the policy; pass it")
        self.config, self.engine, self.policy, self.device = config, engine, policy, device
        self.strategy = STRATEGIES[config.teacher]()
        n, bars = engine.n, engine.config.episode_bars
        self.actions = np.zeros((bars, n), dtype=np.float32 if engine.config.continuous else np.int64)
        self.anchor = np.zeros(n, dtype=np.int64)
        self.episode_level = np.zeros(n, dtype=np.int64)  # the rollback level the episode started at (sequential)
        self.at_fork = np.zeros(n, dtype=bool)  # the episode starts before its crucial fork (mode=fork)
        self.level = 1  # sequential: chunks before the teacher's end where episodes start
        self.rng = np.random.default_rng([seed, 0x7E4C4E5])
        self.successes: list[float] = []  # episodes that ended during the current rollout
        self.level_successes: list[float] = []

    def start(self, rows: np.ndarray) -> None:
        """New episodes began in ``rows``: compute their teacher actions and draw their anchors."""
        actions, starts = teacher_actions(self.strategy, self.engine, rows)
        self.actions[:, rows] = actions
        n_chunks = starts.sum(axis=0)
        if self.config.mode == "sequential":
            k = np.maximum(n_chunks - self.level, 0)
        else:
            k = np.floor(self.rng.random(len(rows)) * n_chunks).astype(np.int64)
        self.episode_level[rows] = self.level if self.config.mode == "sequential" else 0
        anchor = nth_start(starts, k)
        if self.config.mode == "fork":
            scan = fork_scan(self.policy, self.strategy, self.engine.config, self.config, self.engine.snapshot(rows),
                             self.device)
            found = scan.fork >= 0
            anchor[found] = scan.anchors[found, scan.fork[found]]
            self.at_fork[rows] = found
        self.anchor[rows] = anchor

    def replayed(self, step_in_episode: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the teacher acts this step, its actions, and where its prefix ends (a chunk boundary)."""
        mask = step_in_episode < self.anchor
        actions = self.actions[np.minimum(step_in_episode, len(self.actions) - 1), np.arange(self.engine.n)]
        return mask, actions[:, None] if self.engine.config.continuous else actions, mask & (step_in_episode + 1 == self.anchor)

    def finish(self, rows: np.ndarray, episode_returns: np.ndarray) -> None:
        """Episodes ended in ``rows`` with these returns (env reward units)."""
        success = (episode_returns > self.config.success).astype(float)
        self.successes += success.tolist()
        self.level_successes += success[self.episode_level[rows] == self.level].tolist()

    def end_rollout(self) -> dict[str, float]:
        """Statistics of the rollout; in sequential mode, roll back one chunk if it succeeded."""
        stats = {"resample/mean_anchor_depth": float(self.anchor.mean() / self.engine.config.episode_bars)}
        if self.successes:
            stats["resample/success_rate"] = float(np.mean(self.successes))
        if self.config.mode == "fork":
            stats["resample/fork_anchored"] = float(self.at_fork.mean())
        if self.config.mode == "sequential":
            if self.level_successes and np.mean(self.level_successes) >= self.config.advance_at:
                self.level += 1
                self.level_successes = []
            stats["resample/level"] = float(self.level)
        self.successes = []
        return stats

    def state_dict(self) -> dict:
        return {"anchor": self.anchor, "episode_level": self.episode_level, "at_fork": self.at_fork,
                "level": self.level, "rng": self.rng.bit_generator.state, "level_successes": np.asarray(self.level_successes)}

    def load_state_dict(self, state: dict) -> None:
        """After the env was restored: the teacher's actions are recomputed from the markets."""
        for key in ("anchor", "episode_level", "at_fork"):
            setattr(self, key, np.array(state[key]))
        self.level = int(state["level"])
        self.rng.bit_generator.state = state["rng"]
        self.level_successes = np.asarray(state["level_successes"]).tolist()
        self.actions[:] = teacher_actions(self.strategy, self.engine, np.arange(self.engine.n))[0]


@dataclass
class ForkScan:
    """Success rates of the policy continuing teacher trajectories from their anchors."""

    anchors: np.ndarray  # [K, A] anchor steps, -1 where a trajectory has fewer chunks
    success: np.ndarray  # [K, A] success rate of the policy from each anchor (nan where no anchor)
    mean_return: np.ndarray  # [K, A] mean episode return (teacher prefix included) from each anchor
    fork: np.ndarray  # [K] index into anchors of the crucial fork's start, -1 where none
    gap: np.ndarray  # [K] the largest rise in success from one anchor to the next

    def stats(self, episode_bars: int) -> dict[str, float]:
        found = self.fork >= 0
        stats = {"resample/fork_rate": float(found.mean()), "resample/fork_gap": float(np.nanmean(self.gap)),
                 "resample/success_from_start": float(np.nanmean(self.success[:, 0]))}
        last = np.array([row[~np.isnan(row)][-1] for row in self.success])
        stats["resample/success_from_last_anchor"] = float(last.mean())
        if found.any():
            steps = self.anchors[np.flatnonzero(found), self.fork[found]]
            stats["resample/fork_depth"] = float(np.mean(steps) / episode_bars)
        return stats


def markets_at_start(env_config: EnvConfig, seeds: np.ndarray) -> dict[str, np.ndarray]:
    """The engine state of fresh markets seeded ``seeds`` (for ``fork_scan``)."""
    envs = MarketVecEnv(config=dataclasses.replace(env_config, n_envs=len(seeds)))
    envs.reset(seed=[int(s) for s in seeds])
    return envs.snapshot()


@torch.no_grad()
def fork_scan(policy: ActorCritic, strategy, env_config: EnvConfig, config: ResampleConfig,
              markets: dict[str, np.ndarray], device: torch.device) -> ForkScan:
    """Replay the teacher ``strategy`` once on each of ``markets`` (an engine state at episode
    start), snapshot them at up to ``config.scan_anchors`` chunk starts, restore each snapshot
    into ``config.scan_samples`` markets, let the (sampling) policy finish the episodes, and
    locate the crucial forks."""
    k, n_anchors, samples = len(markets["t"]), config.scan_anchors, config.scan_samples
    teacher_env = MarketVecEnv(config=dataclasses.replace(env_config, n_envs=k))
    teacher_env.restore(markets)
    obs, engine, rows = teacher_env.engine.obs.copy(), teacher_env.engine, np.arange(k)
    actions, starts = teacher_actions(strategy, engine, rows)
    n_chunks = starts.sum(axis=0)
    # Anchors at chunks evenly spaced over each trajectory (all of them when it has fewer); -1 pads.
    per_market = np.minimum(n_anchors, n_chunks)
    slot = np.arange(n_anchors)[:, None]
    picks = np.where(slot < per_market, slot * n_chunks // per_market, -1)  # [A, K] chunk indices
    anchors = np.where(picks >= 0, np.stack([nth_start(starts, np.maximum(p, 0)) for p in picks]), -1).T
    # Replay the teacher, carrying the policy's recurrent state and the prefix's return.
    state = policy.initial_state(k, device)
    prefix_return = np.zeros(k)
    saved, saved_state, saved_return, saved_at = [], [], [], []
    step_starts = np.ones(k, dtype=np.float32)
    for step in range(env_config.episode_bars):
        here = np.flatnonzero((anchors == step).any(axis=1))
        if len(here):
            saved.append(engine.snapshot(here))
            saved_state.append(state[:, torch.as_tensor(here, device=device)])
            saved_return.append(prefix_return[here])
            saved_at += [(m, int(np.flatnonzero(anchors[m] == step)[0])) for m in here]
        _, _, _, state = policy.act(torch.as_tensor(obs, device=device), state, torch.as_tensor(step_starts, device=device))
        obs, reward, terminated, truncated, _ = teacher_env.step(actions[step])
        prefix_return += reward
        step_starts[:] = 0.0
        if (terminated | truncated).all():
            break
    # Restore every snapshot into `samples` markets side by side and let the policy finish.
    forks = stack_snapshots(saved)
    n = len(saved_at) * samples
    forks = {name: np.repeat(value, samples, axis=1 if name in MarketEngine.PATHS else 0) for name, value in forks.items()}
    envs = MarketVecEnv(config=dataclasses.replace(env_config, n_envs=n))
    envs.restore(forks)  # forks of one anchor share their market path; only the policy's draws differ
    state = torch.cat(saved_state, dim=1).repeat_interleave(samples, dim=1)
    returns = np.repeat(np.concatenate(saved_return), samples)
    obs, alive = envs.engine.obs.copy(), np.ones(n, dtype=bool)
    step_starts = torch.zeros(n, device=device)
    while alive.any():
        action, _, _, state = policy.act(torch.as_tensor(obs, device=device), state, step_starts)
        obs, reward, terminated, truncated, _ = envs.step(action.cpu().numpy())
        returns += np.where(alive, reward, 0.0)
        alive &= ~(terminated | truncated)
    success, mean_return = np.full(anchors.shape, np.nan), np.full(anchors.shape, np.nan)
    markets, slots = np.array(saved_at).T
    success[markets, slots] = (returns > config.success).reshape(-1, samples).mean(axis=1)
    mean_return[markets, slots] = returns.reshape(-1, samples).mean(axis=1)
    return ForkScan(anchors, success, mean_return, *crucial_forks(success, config.fork_gap))


def crucial_forks(success: np.ndarray, fork_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of success rates by anchor ``[K, A]`` (nan: no anchor): the anchor index that starts
    the largest rise to the next anchor, where that rise is at least ``fork_gap`` (else -1), and the rise."""
    rise = np.diff(success, axis=1)
    valid = np.isfinite(rise)
    gap = np.where(valid.any(axis=1), np.max(np.where(valid, rise, -np.inf), axis=1), np.nan)
    best = np.argmax(np.where(valid, rise, -np.inf), axis=1)
    return np.where(np.nan_to_num(gap, nan=-1.0) >= fork_gap, best, -1), gap
