"""A user's own Gymnasium env in the place of the market simulator (``env.gym_id``).

``env.gym_id`` is a registered Gymnasium id; ``module:Env-v0`` imports ``module`` first (Gymnasium's
own rule), so a simulator registers itself on import. Its vector env, if it registers one that
autoresets in the same step, is used as it is; otherwise ``env.n_envs`` copies run in Gymnasium's
``SyncVectorEnv`` (one after another: a slow simulator is what rollout workers are for).

``GymVecEnv`` gives the collector what it reads from ``MarketVecEnv``: ``chunk_end`` and ``position``
in the info (from the env's info where it has them, else no order and a flat position, so the
``trade`` chunker makes an episode one chunk) and a dense ``final_obs``. It has no snapshot: a rollout
worker that fails restarts its episodes on fresh seeds (``roll/workers.py``'s ``restart_seeds``).

What a policy can drive: a 1-D ``Box`` observation, and a ``Discrete`` action or a 1-D ``Box`` action
(``env.continuous=true``; one Gaussian per value, e.g. a portfolio's target weights). ``user_spaces``
checks this before any work starts.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import lru_cache

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from openclaw_rl.errors import ConfigError


@dataclass(frozen=True)
class UserSpaces:
    obs_dim: int
    action_dim: int  # logits of a Discrete action, or the values of a Box one
    continuous: bool


def registered(gym_id: str) -> str:
    """The registered id of ``gym_id``, after importing the module of a ``module:Env-v0`` id."""
    module, _, env_id = gym_id.rpartition(":")
    if module:
        importlib.import_module(module)
    return env_id


def user_spaces(gym_id: str, kwargs: dict | None = None) -> UserSpaces:
    """The dimensions a policy needs for env ``gym_id`` made with ``kwargs`` (``env.gym_kwargs``), or a
    ``ConfigError`` naming ``env.gym_id``."""
    return _user_spaces(gym_id, json.dumps(kwargs or {}, sort_keys=True))


@lru_cache(maxsize=None)
def _user_spaces(gym_id: str, kwargs: str) -> UserSpaces:
    try:
        env = gym.make(registered(gym_id), **json.loads(kwargs))
    except Exception as error:  # unknown id, a module that does not import, a constructor that raises
        raise ConfigError(f"env.gym_id={gym_id}: cannot make it: {type(error).__name__}: {error}") from error
    obs, act = env.observation_space, env.action_space
    env.close()
    if not (isinstance(obs, spaces.Box) and len(obs.shape) == 1):
        raise ConfigError(f"env.gym_id={gym_id}: the policy reads a 1-D Box observation, the env has {obs}")
    if isinstance(act, spaces.Discrete):
        return UserSpaces(int(obs.shape[0]), int(act.n), False)
    if isinstance(act, spaces.Box) and len(act.shape) == 1:
        return UserSpaces(int(obs.shape[0]), int(act.shape[0]), True)
    raise ConfigError(f"env.gym_id={gym_id}: the policy acts in a Discrete space or a 1-D Box, the env has {act}")


class GymVecEnv:
    """``n_envs`` copies of ``config.gym_id``, batched, autoresetting in the same step."""

    def __init__(self, config):
        self.config, gym_id, n = config, registered(config.gym_id), config.n_envs
        self.num_envs = n
        envs, kwargs = None, dict(config.gym_kwargs)
        if gym.spec(gym_id).vector_entry_point is not None:
            envs = gym.make_vec(gym_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
            if envs.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
                envs.close()
                envs = None
        if envs is None:
            envs = gym.make_vec(gym_id, num_envs=n, vectorization_mode="sync",
                                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs)
        self.envs = envs

    def reset(self, *, seed=None, options=None):
        obs, info = self.envs.reset(seed=seed, options=options)
        return np.asarray(obs, dtype=np.float32), self._info(info)

    def step(self, actions):
        actions = np.asarray(actions)
        if self.config.continuous:
            actions = actions.reshape(self.num_envs, self.config.action_dim)
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        info = self._info(info)
        done = np.asarray(terminated) | np.asarray(truncated)
        if done.any():
            final = np.asarray(obs, dtype=np.float32).copy()
            for i in np.flatnonzero(done):
                final[i] = info["final_obs"][i]
            info["final_obs"] = final
            info["final_info"] = self._info(info.get("final_info", {}))
        return (np.asarray(obs, dtype=np.float32), np.asarray(reward, dtype=np.float64), np.asarray(terminated),
                np.asarray(truncated), info)

    def _info(self, info: dict) -> dict:
        """``chunk_end`` (bool) and ``position`` (float) for every env, the env's own where it gives them."""
        info = dict(info)
        for key, dtype in (("chunk_end", bool), ("position", np.float64)):
            given = np.zeros(self.num_envs, dtype=dtype)
            if key in info:
                mask = np.asarray(info.get(f"_{key}", np.ones(self.num_envs, dtype=bool)), dtype=bool)
                given[mask] = np.asarray(info[key])[mask]
            info[key] = given
        return info

    def snapshot(self) -> None:
        return None  # a user env has no snapshot: its episodes restart on fresh seeds

    def close(self) -> None:
        self.envs.close()
