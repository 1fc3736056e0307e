"""``MarketVecEnv``: N markets stepped by one array expression (the fast path).

Autoreset mode is SAME_STEP: when a market's episode ends, the returned observation is
already the first of its next episode; the last observation and info of the ended episode are
in ``info["final_obs"]`` (a dense ``[N, obs_dim]`` array, valid where ``info["_final_obs"]``)
and ``info["final_info"]``. Market ``i`` seeded ``seed + i`` produces exactly the numbers of a
``MarketEnv`` seeded ``seed + i``. ``step`` before the first ``reset`` (or ``restore``) raises
``gymnasium.error.ResetNeeded``; continuous actions must be finite.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.engine import MarketEngine
from openclaw_rl.rock.env import check_render_mode, make_spaces, resolve_config
from openclaw_rl.rock.user_env import GymVecEnv

INFO_KEYS = ("chunk_end", "regime", "equity", "position")


class MarketVecEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int | None = None, config: EnvConfig | None = None, render_mode: str | None = None,
                 **kwargs):
        check_render_mode(render_mode, "MarketVecEnv")
        self.render_mode = render_mode
        if num_envs is not None:
            kwargs["n_envs"] = num_envs
        self.config = resolve_config(config, kwargs)
        self.num_envs = self.config.n_envs
        self.engine = MarketEngine(self.config, self.num_envs)
        self.single_observation_space, self.single_action_space = make_spaces(self.config, self.engine.obs_dim)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._levels = np.asarray(self.config.actions, dtype=np.float64)
        self._all_rows = np.arange(self.num_envs)
        self._all_true = np.ones(self.num_envs, dtype=bool)
        self._all_true.flags.writeable = False
        self._started = False  # reset() or restore() has set a state

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Reset every market; an int ``seed`` seeds market ``i`` with ``seed + i``."""
        self.engine.reset(self._all_rows, vector_seeds(seed, self.num_envs))
        self._started = True
        info = self._info(np.zeros(self.num_envs, dtype=bool))
        return self.engine.obs.copy(), info

    def step(self, actions):
        if not self._started:
            raise gym.error.ResetNeeded("MarketVecEnv.step() called before reset(); call envs.reset(seed=...) first")
        actions = np.asarray(actions)
        if self.config.continuous:
            target = actions.reshape(self.num_envs).astype(np.float64)
            finite = np.isfinite(target)
            if not finite.all():
                i = int(np.argmin(finite))
                raise ValueError(
                    f"MarketVecEnv.step: continuous actions must be finite target positions; env {i} got {target[i]}"
                )
            np.clip(target, -self.config.max_position, self.config.max_position, out=target)
        else:
            if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu":
                raise ValueError(f"actions must be {self.num_envs} integer indices, got shape {actions.shape} {actions.dtype}")
            if actions.min() < 0 or actions.max() >= len(self._levels):
                raise ValueError(f"actions must be in [0, {len(self._levels)}), got range [{actions.min()}, {actions.max()}]")
            target = self._levels[actions]
        reward, terminated, truncated, chunk_end = self.engine.step(target)
        info = self._info(chunk_end)
        done = terminated | truncated
        if done.any():
            info["final_obs"], info["_final_obs"] = self.engine.obs.copy(), done
            final_info = {k: info[k].copy() for k in INFO_KEYS}
            final_info.update({f"_{k}": done for k in INFO_KEYS})
            info["final_info"], info["_final_info"] = final_info, done
            rows = np.flatnonzero(done)
            self.engine.reset(rows)
            self._refresh_info(info, rows)
        return self.engine.obs.copy(), reward, terminated, truncated, info

    def _info(self, chunk_end: np.ndarray) -> dict:
        e = self.engine
        info = {
            "chunk_end": chunk_end,
            "regime": e.regime.take(e.flat_index(0)),
            "equity": e.equity.copy(),
            "position": e.position.copy(),
        }
        info.update({f"_{k}": self._all_true for k in INFO_KEYS})
        return info

    def _refresh_info(self, info: dict, rows: np.ndarray) -> None:
        """After resetting ``rows``, their info describes the new episode (as after ``reset``)."""
        fresh = self._info(np.zeros(self.num_envs, dtype=bool))
        for key in INFO_KEYS:  # fresh arrays every step; final_info holds copies
            info[key][rows] = fresh[key][rows]

    def snapshot(self) -> dict[str, np.ndarray]:
        """Full state of all markets, RNG included."""
        return self.engine.snapshot()

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Set the full state of all markets (a ``snapshot``); the env can step from it, reset or not."""
        self.engine.restore(state)
        self._started = True


def vector_seeds(seed: int | list[int] | None, num_envs: int) -> np.ndarray | None:
    """The seed of each of ``num_envs`` envs from ``reset(seed=...)``: an int seeds env ``i`` with ``seed + i``."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return int(seed) + np.arange(num_envs)
    seeds = np.asarray(seed)
    if seeds.shape != (num_envs,):
        raise ValueError(f"reset(seed=...) needs one seed per env ({num_envs}), got {len(seeds)}")
    return seeds


def make_vec_env(config: EnvConfig) -> "MarketVecEnv | GymVecEnv":
    """The batched env of ``config``: the markets, or the user's env (``env.gym_id``)."""
    return MarketVecEnv(config=config) if config.gym_id is None else GymVecEnv(config)
