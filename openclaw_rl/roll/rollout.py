"""Rollout collection: T steps of N batched markets into one ``Batch`` of ``[T, N]`` tensors."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from openclaw_rl.rock import MarketVecEnv
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.resample import TeacherReplay


@dataclass
class Batch:
    """One rollout. Time-major ``[T, N]`` unless noted; ``obs`` is ``[T, N, obs_dim]``."""

    obs: torch.Tensor
    actions: torch.Tensor  # [T, N] indices, or [T, N, 1] continuous targets
    logp: torch.Tensor  # behaviour log-prob (mu: the policy that acted)
    values: torch.Tensor  # critic at collection time
    rewards: torch.Tensor  # times algo.reward_scale: the learner's units
    terminated: torch.Tensor  # bool
    truncated: torch.Tensor  # bool (time limit)
    final_values: torch.Tensor  # critic at the final observation where truncated, else 0
    starts: torch.Tensor  # 1.0 where the step is the first of an episode (GRU resets)
    env_chunk_end: torch.Tensor  # bool: the env reports an executed order
    targets: torch.Tensor  # target position the action asked for
    prev_targets: torch.Tensor  # target of the previous step of the episode (0 at its start)
    step_in_episode: torch.Tensor  # long
    version: torch.Tensor  # long: the policy version that acted
    last_obs: torch.Tensor  # [N, obs_dim]: bootstrap state after the last step
    last_starts: torch.Tensor  # [N]
    initial_state: torch.Tensor  # [1, N, h]: recurrent state at the first step
    group: torch.Tensor  # [N] long: envs of a group share a market seed
    teacher: torch.Tensor  # bool: the step replays a teacher's prefix (resampling), not the policy's sample
    prefix_end: torch.Tensor  # bool: the last replayed step of an episode (a chunk boundary)

    def columns(self, cols: torch.Tensor | slice) -> "Batch":
        """The sub-batch of env columns ``cols`` (whole sequences, whole chunks; a slice gives views)."""
        picked = {}
        for f in fields(self):
            value = getattr(self, f.name)
            per_env = f.name in ("last_obs", "last_starts", "group")
            picked[f.name] = value[cols] if per_env else value[:, cols]
        return Batch(**picked)


class Collector:
    """Steps a policy in a ``MarketVecEnv`` and keeps the state that spans rollouts."""

    def __init__(self, envs: MarketVecEnv, policy: ActorCritic, device: torch.device, seeds: np.ndarray,
                 group: np.ndarray, reward_scale: float = 1.0, teacher: TeacherReplay | None = None):
        """``teacher``: episodes start from its prefixes (chunk-level initialized resampling)."""
        self.envs, self.policy, self.device, self.reward_scale = envs, policy, device, reward_scale
        self.teacher = teacher
        self.group = torch.as_tensor(group, device=device)
        n = envs.num_envs
        obs, _ = envs.reset(seed=[int(s) for s in seeds])
        self.obs = obs
        self.starts = np.ones(n, dtype=np.float32)
        self.prev_targets = np.zeros(n)
        self.step_in_episode = np.zeros(n, dtype=np.int64)
        self.state = policy.initial_state(n, device)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, dtype=np.int64)
        self.levels = np.asarray(envs.config.actions, dtype=np.float64)
        self.initial_equity = envs.config.initial_equity
        if teacher is not None:
            teacher.start(np.arange(n))

    def collect(self, steps: int, version: int) -> tuple[Batch, dict[str, list[float]]]:
        """Run ``steps`` steps; return the batch and the episodes that finished in it."""
        n, dev, policy = self.envs.num_envs, self.device, self.policy
        keys = ("rewards", "terminated", "truncated", "final_values", "starts", "env_chunk_end", "targets",
                "prev_targets", "step_in_episode", "teacher", "prefix_end")
        buf = {k: np.zeros((steps, n), dtype=np.int64 if k == "step_in_episode" else np.float32) for k in keys}
        obs_buf, actions, logps, values = [], [], [], []
        finished = {"episodic_return": [], "episodic_length": [], "episodic_log_return": []}
        initial_state = self.state.clone()
        for t in range(steps):
            obs_t = torch.as_tensor(self.obs, device=dev)
            if policy.config.normalize_obs:
                policy.norm.update(obs_t)
            starts_t = torch.as_tensor(self.starts, device=dev)
            given = None
            if self.teacher is not None:
                replayed, teacher_actions, buf["prefix_end"][t] = self.teacher.replayed(self.step_in_episode)
                buf["teacher"][t] = replayed
                given = (torch.as_tensor(replayed, device=dev), torch.as_tensor(teacher_actions, device=dev))
            action, logp, value, self.state = policy.act(obs_t, self.state, starts_t, given=given)
            action_np = action.cpu().numpy()
            targets = np.clip(action_np[:, 0], -self.envs.config.max_position, self.envs.config.max_position) \
                if policy.continuous else self.levels[action_np]
            obs_buf.append(obs_t)
            actions.append(action)
            logps.append(logp)
            values.append(value)
            buf["starts"][t] = self.starts
            buf["targets"][t] = targets
            buf["prev_targets"][t] = self.prev_targets
            buf["step_in_episode"][t] = self.step_in_episode
            self.obs, reward, terminated, truncated, info = self.envs.step(action_np)
            buf["rewards"][t] = reward * self.reward_scale
            buf["terminated"][t] = terminated
            buf["truncated"][t] = truncated
            buf["env_chunk_end"][t] = info["chunk_end"]
            done = terminated | truncated
            self.episode_return += reward  # logged in the env's own units
            self.episode_length += 1
            if truncated.any():  # bootstrap from the true last observation, not the reset one
                final = torch.as_tensor(info["final_obs"], device=dev)
                buf["final_values"][t] = np.where(truncated, policy.value(final, self.state, torch.zeros(n, device=dev)).cpu().numpy(), 0.0)
            if done.any():
                rows = np.flatnonzero(done)
                finished["episodic_return"] += self.episode_return[rows].tolist()
                finished["episodic_length"] += self.episode_length[rows].tolist()
                equity = info["final_info"]["equity"][rows]
                finished["episodic_log_return"] += np.log(np.maximum(equity, 1e-12) / self.initial_equity).tolist()
                if self.teacher is not None:
                    self.teacher.finish(rows, self.episode_return[rows])
                    self.teacher.start(rows)  # the env has already reset them
                self.episode_return[rows] = 0.0
                self.episode_length[rows] = 0
            self.prev_targets = np.where(done, 0.0, targets)
            self.step_in_episode = np.where(done, 0, self.step_in_episode + 1)
            self.starts = done.astype(np.float32)
        as_tensor = {k: torch.as_tensor(v, device=dev) for k, v in buf.items()}
        batch = Batch(
            obs=torch.stack(obs_buf),
            actions=torch.stack(actions),
            logp=torch.stack(logps),
            values=torch.stack(values),
            rewards=as_tensor["rewards"],
            terminated=as_tensor["terminated"].bool(),
            truncated=as_tensor["truncated"].bool(),
            final_values=as_tensor["final_values"],
            starts=as_tensor["starts"],
            env_chunk_end=as_tensor["env_chunk_end"].bool(),
            targets=as_tensor["targets"],
            prev_targets=as_tensor["prev_targets"],
            step_in_episode=as_tensor["step_in_episode"],
            version=torch.full((steps, n), version, dtype=torch.long, device=dev),
            last_obs=torch.as_tensor(self.obs, device=dev),
            last_starts=torch.as_tensor(self.starts, device=dev),
            initial_state=initial_state,
            group=self.group,
            teacher=as_tensor["teacher"].bool(),
            prefix_end=as_tensor["prefix_end"].bool(),
        )
        return batch, finished

    # State that spans rollouts, for exact resume (the env's own state comes with it).
    def state_dict(self) -> dict:
        return {
            "env": self.envs.snapshot(), "obs": self.obs, "starts": self.starts, "prev_targets": self.prev_targets,
            "step_in_episode": self.step_in_episode, "recurrent": self.state.cpu(),
            "episode_return": self.episode_return, "episode_length": self.episode_length,
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.envs.restore(state["env"])
        for key in ("obs", "starts", "prev_targets", "step_in_episode", "episode_return", "episode_length"):
            setattr(self, key, np.array(state[key]))
        self.state = state["recurrent"].to(self.device)
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
