"""Rollout collection: T steps of N batched markets into one ``Batch`` of ``[T, N]`` tensors.

Three rules make the batch what the learner's math assumes:

- The policy that acts is fixed for the whole rollout (its observation normalizer included: the
  learner updates the statistics after its update), so the behaviour log-probs ``mu`` are the
  learner's ``pi_old`` when collection is synchronous (the learner takes them as such).
- Time limits: the observation shows the fraction of the episode left, so the episode horizon is
  part of the task the policy sees and nothing lies beyond it. A truncation whose final observation
  shows no time left is recorded as ``terminated`` (value 0, no bootstrap); only a cut the state
  does not show (a rollout's end, or a truncation with time left) bootstraps from the critic.
- Groups (``trainer.group_size``: envs that share a market seed) stay on one market: a member whose
  episode ends early (ruin) waits, as padding, until the rest of its group ends, and then starts
  the group's next episode with it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from openclaw_rl.errors import ConfigError
from openclaw_rl.metrics import episode_log_return
from openclaw_rl.rock import MarketVecEnv
from openclaw_rl.rock.engine import MarketEngine
from openclaw_rl.rock.user_env import GymVecEnv
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
    terminated: torch.Tensor  # bool: the episode ended in a terminal state of the task (ruin, or the horizon)
    truncated: torch.Tensor  # bool: the episode was cut where the state shows time left (bootstrap)
    final_values: torch.Tensor  # critic at the final observation where truncated, else 0
    starts: torch.Tensor  # 1.0 where the step is the first of an episode (GRU resets)
    env_chunk_end: torch.Tensor  # bool: the env's chunk_end (the market env: an order executed this step)
    positions: torch.Tensor  # position held after the step (changes only where an order executed)
    prev_positions: torch.Tensor  # position held before the step (0 at an episode's start)
    step_in_episode: torch.Tensor  # long
    version: torch.Tensor  # long: the policy version that acted
    last_obs: torch.Tensor  # [N, obs_dim]: bootstrap state after the last step
    last_starts: torch.Tensor  # [N]
    initial_state: torch.Tensor  # [1, N, h]: memory state at the first step
    last_state: torch.Tensor  # [1, N, h]: memory state after the last step
    group: torch.Tensor  # [N] long: envs of a group share a market seed
    teacher: torch.Tensor  # bool: the step replays a teacher's prefix (resampling), not the policy's sample
    prefix_end: torch.Tensor  # bool: the last replayed step of an episode (a chunk boundary)
    padding: torch.Tensor  # bool: the env waits for its group (its episode ended early); in no loss
    return_before: torch.Tensor  # [N]: reward (learner units) of each column's first episode before the rollout
    memory: torch.Tensor | None = None  # [T, N, K]: an observational memory's context at each step (None: recurrent)

    PER_ENV = ("last_obs", "last_starts", "group", "return_before")

    def columns(self, cols: torch.Tensor | slice) -> "Batch":
        """The sub-batch of env columns ``cols`` (whole sequences, whole chunks; a slice gives views)."""
        picked = {}
        for f in fields(self):
            value = getattr(self, f.name)
            picked[f.name] = None if value is None else value[cols] if f.name in self.PER_ENV else value[:, cols]
        return Batch(**picked)

    def to(self, device: torch.device) -> "Batch":
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                        for f in fields(self)})


def concat_batches(batches: list[Batch]) -> Batch:
    """Rollouts of disjoint env columns (rollout workers' shares) side by side, as one ``[T, sum N]`` batch;
    group ids are offset so that each part's groups stay their own."""
    if len(batches) == 1:
        return batches[0]
    joined, offset, groups = {}, 0, []
    for b in batches:
        groups.append(b.group + offset)
        offset += int(b.group.max()) + 1
    for f in fields(Batch):
        values = [getattr(b, f.name) for b in batches]
        if f.name == "group":
            joined[f.name] = torch.cat(groups)
        elif values[0] is None:
            joined[f.name] = None
        else:
            dim = 0 if f.name in Batch.PER_ENV else 1  # [1, N, h] states: dim 1 too
            joined[f.name] = torch.cat(values, dim=dim)
    return Batch(**joined)


def horizon_reached(truncated: np.ndarray, time_left: np.ndarray) -> np.ndarray:
    """Truncations whose final observation shows no time left (``time_left [N]``): the task's horizon, a terminal state."""
    return truncated & (time_left <= 0.0)


def restart_like(engine: MarketEngine, rows: np.ndarray, like: np.ndarray) -> None:
    """Start markets ``rows`` on the episode that markets ``like`` (one each, same seed) have just
    begun: the same episode counter gives the same market path (the engine's counter RNG)."""
    engine.episodes[rows] = engine.episodes[like] - np.uint64(1)
    engine.reset(rows)  # advances the counter by one: to that of ``like``


class Collector:
    """Steps a policy in a ``MarketVecEnv`` (or a user's ``GymVecEnv``) and keeps the state that spans rollouts."""

    def __init__(self, envs: MarketVecEnv | GymVecEnv, policy: ActorCritic, device: torch.device, seeds: np.ndarray,
                 group: np.ndarray, reward_scale: float = 1.0, teacher: TeacherReplay | None = None):
        """``group[i]``: the group of env i (members share ``seeds``); ``teacher``: episodes start from
        its prefixes (chunk-level initialized resampling)."""
        self.envs, self.policy, self.device, self.reward_scale = envs, policy, device, reward_scale
        self.teacher, self.seeds = teacher, [int(s) for s in seeds]
        self.step = 0  # the step of the rollout being collected
        self.group_np = np.asarray(group)
        self.group = torch.as_tensor(self.group_np, device=device)
        self.group_sizes = np.bincount(self.group_np)
        self.initial_equity, self.ruin_fraction = envs.config.initial_equity, envs.config.ruin_fraction
        # The market's observation shows the time left (a horizon is terminal); a user's env may not.
        self.time_left = envs.config.feature("time_left") if envs.config.gym_id is None else None
        self._start_episodes()

    def _start_episodes(self) -> None:
        """Every env at the start of an episode on its seed, nothing carried over."""
        n = self.envs.num_envs
        self.obs, _ = self.envs.reset(seed=self.seeds)
        self.starts = np.ones(n, dtype=np.float32)
        self.prev_positions = np.zeros(n)
        self.step_in_episode = np.zeros(n, dtype=np.int64)
        self.waiting = np.zeros(n, dtype=bool)  # the episode ended; waits for its group (padding)
        self.state = self.policy.initial_state(n, self.device)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, dtype=np.int64)
        if self.teacher is not None:
            self.teacher.start(np.arange(n))

    def collect(self, steps: int, version: int) -> tuple[Batch, dict[str, list[float]]]:
        """Run ``steps`` steps; return the batch and the episodes that finished in it."""
        n, dev, policy = self.envs.num_envs, self.device, self.policy
        keys = ("rewards", "terminated", "truncated", "final_values", "starts", "env_chunk_end", "positions",
                "prev_positions", "step_in_episode", "teacher", "prefix_end", "padding")
        buf = {k: np.zeros((steps, n), dtype=np.int64 if k == "step_in_episode" else np.float32) for k in keys}
        obs_buf, actions, logps, values, contexts = [], [], [], [], []
        finished = {"episodic_return": [], "episodic_length": [], "episodic_log_return": []}
        initial_state = self.state.clone()
        return_before = self.episode_return * self.reward_scale
        for t in range(steps):
            self.step = t  # where a failing env stopped the rollout (RolloutWorker reports it)
            obs_t = torch.as_tensor(self.obs, device=dev)
            starts_t = torch.as_tensor(self.starts, device=dev)
            given = None
            if self.teacher is not None:
                replayed, teacher_actions, buf["prefix_end"][t] = self.teacher.replayed(self.step_in_episode)
                buf["teacher"][t] = replayed
                given = (torch.as_tensor(replayed, device=dev), torch.as_tensor(teacher_actions, device=dev))
            # An observational memory's context is kept for the learner (a recurrent one has none).
            context, next_state = policy.memory_context(obs_t[None], self.state, starts_t[None])
            action, logp, value, state = policy.act(obs_t, self.state, starts_t, given=given,
                                                    context=None if context is None else context[0])
            self.state = state if context is None else next_state
            contexts.append(context)
            action_np = action.cpu().numpy()
            obs_buf.append(obs_t)
            actions.append(action)
            logps.append(logp)
            values.append(value)
            padding = self.waiting.copy()
            buf["padding"][t] = padding
            buf["starts"][t] = self.starts
            buf["prev_positions"][t] = self.prev_positions
            buf["step_in_episode"][t] = self.step_in_episode
            self.obs, reward, terminated, truncated, info = self.envs.step(action_np)
            done = terminated | truncated
            chunk_end, position = info["chunk_end"], info["position"]
            if done.any():  # the ended episode's last step is in final_info (its info was reset)
                chunk_end = np.where(done, info["final_info"]["chunk_end"], chunk_end)
                position = np.where(done, info["final_info"]["position"], position)
                if self.time_left is not None:
                    horizon = horizon_reached(truncated, info["final_obs"][:, self.time_left])
                    terminated, truncated = terminated | horizon, truncated & ~horizon
            buf["rewards"][t] = np.where(padding, 0.0, reward * self.reward_scale)
            buf["terminated"][t] = terminated & ~padding
            buf["truncated"][t] = truncated & ~padding
            buf["env_chunk_end"][t] = chunk_end
            buf["positions"][t] = position
            if (truncated & ~padding).any():  # bootstrap from the true last observation, not the reset one
                final = torch.as_tensor(info["final_obs"], device=dev)
                final_values = policy.value(final, self.state, torch.zeros(n, device=dev)).cpu().numpy()
                buf["final_values"][t] = np.where(truncated & ~padding, final_values, 0.0)
            ended = done & ~padding
            self.episode_return += np.where(padding, 0.0, reward)  # logged in the env's own units
            self.episode_length += ~padding
            if ended.any():
                rows = np.flatnonzero(ended)
                finished["episodic_return"] += self.episode_return[rows].tolist()
                finished["episodic_length"] += self.episode_length[rows].tolist()
                if "equity" in info["final_info"]:  # a market's (a user's env has no equity)
                    equity = info["final_info"]["equity"][rows]
                    finished["episodic_log_return"] += episode_log_return(equity, self.initial_equity,
                                                                          self.ruin_fraction).tolist()
                if self.teacher is not None:
                    self.teacher.finish(rows, self.episode_return[rows])
                self.episode_return[rows] = 0.0
                self.episode_length[rows] = 0
            begins = self._sync_groups(ended, padding)
            if self.teacher is not None and begins.any():
                self.teacher.start(np.flatnonzero(begins))  # the env has already reset them
            self.prev_positions = np.where(begins, 0.0, position)
            self.step_in_episode = np.where(begins, 0, self.step_in_episode + 1)
            self.starts = begins.astype(np.float32)
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
            positions=as_tensor["positions"],
            prev_positions=as_tensor["prev_positions"],
            step_in_episode=as_tensor["step_in_episode"],
            version=torch.full((steps, n), version, dtype=torch.long, device=dev),
            last_obs=torch.as_tensor(self.obs, device=dev),
            last_starts=torch.as_tensor(self.starts, device=dev),
            initial_state=initial_state,
            last_state=self.state.clone(),
            group=self.group,
            teacher=as_tensor["teacher"].bool(),
            prefix_end=as_tensor["prefix_end"].bool(),
            padding=as_tensor["padding"].bool(),
            return_before=torch.as_tensor(return_before, dtype=torch.float32, device=dev),
            memory=None if contexts[0] is None else torch.cat(contexts),
        )
        return batch, finished

    def _sync_groups(self, ended: np.ndarray, padding: np.ndarray) -> np.ndarray:
        """After a step in which the episodes of ``ended`` ended: members whose group is still playing
        wait; a group whose last members ended starts its next episode together (members that waited
        are restarted on the market the others autoreset to). Returns where an episode begins next step."""
        waiting = self.waiting | ended
        group_done = np.bincount(self.group_np, weights=waiting, minlength=len(self.group_sizes)) == self.group_sizes
        begins = group_done[self.group_np]
        restart = begins & padding
        if restart.any():
            leader = np.zeros(len(self.group_sizes), dtype=np.int64)
            leader[self.group_np[ended & begins]] = np.flatnonzero(ended & begins)
            rows = np.flatnonzero(restart)
            restart_like(self.envs.engine, rows, leader[self.group_np[rows]])
            self.obs[rows] = self.envs.engine.obs[rows]
        self.waiting = waiting & ~begins
        return begins

    # State that spans rollouts, for exact resume (the env's own state comes with it).
    def state_dict(self) -> dict:
        return {
            "env": self.envs.snapshot(), "obs": self.obs, "starts": self.starts,
            "prev_positions": self.prev_positions, "step_in_episode": self.step_in_episode, "waiting": self.waiting,
            "recurrent": self.state.cpu(), "episode_return": self.episode_return, "episode_length": self.episode_length,
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if "workers" in state:
            raise ConfigError(f"the checkpoint holds the state of {len(state['workers'])} rollout workers; "
                              "resume with the same trainer.workers and a pool (trainer.workers > 1 or backend != local)")
        if state["env"] is None:  # an env without snapshots (a user's): its episodes restart from their seeds
            self._start_episodes()
            return
        self.envs.restore(state["env"])
        for key in ("obs", "starts", "prev_positions", "step_in_episode", "waiting", "episode_return", "episode_length"):
            setattr(self, key, np.array(state[key]))
        self.state = state["recurrent"].to(self.device)
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])

    def close(self) -> None:
        self.envs.close()
