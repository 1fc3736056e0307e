"""``SB3VecEnv``: a ``MarketVecEnv`` as a Stable-Baselines3 ``VecEnv`` (no copies of the markets).

SB3's conventions, and how the batched env meets them:

- ``step`` returns ``(obs, rewards, dones, infos)`` with ``dones = terminated | truncated``; a
  market that ended is already reset (the batched env's SAME_STEP autoreset, which is also SB3's),
  its last observation is in ``infos[i]["terminal_observation"]`` and ``infos[i]`` describes the
  step that ended the episode. ``infos[i]["TimeLimit.truncated"]`` is ``truncated and not
  terminated``. Rewards stay float64, exactly the batched env's.
- ``seed(s)`` (called by SB3, e.g. for ``PPO(seed=s)``) seeds market ``i`` with ``s + i`` at the
  next ``reset`` only, as SB3's own VecEnvs do; ``MarketVecEnv.reset(seed=s)`` and
  ``make_vec_env(ENV_ID, seed=s)`` seed the same way, so all three give the same numbers. ``reset_infos`` holds each market's info after ``reset``.
- All markets share one ``MarketVecEnv``: ``get_attr`` reads its attribute once per index,
  ``set_attr`` and ``env_method`` act on it once and need ``indices`` to cover every market,
  and no market is wrapped by a ``gym.Wrapper``.

Needs the extra: ``pip install 'openclaw_rl[sb3]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openclaw_rl.rock.vector import INFO_KEYS, MarketVecEnv

try:
    from stable_baselines3.common.vec_env import VecEnv
except ImportError as err:
    raise ImportError(
        f"openclaw_rl.rock.sb3 needs Stable-Baselines3: pip install 'openclaw_rl[sb3]' ({err})"
    ) from err


class SB3VecEnv(VecEnv):
    """The markets of ``envs`` as one SB3 ``VecEnv``; see the module docstring for the conventions."""

    def __init__(self, envs: MarketVecEnv):
        self.envs = envs  # before VecEnv.__init__, which reads render_mode through get_attr
        self._actions: np.ndarray | None = None
        super().__init__(envs.num_envs, envs.single_observation_space, envs.single_action_space)

    def reset(self) -> np.ndarray:
        seeds = self._seeds
        if all(s is None for s in seeds):
            seed = None
        elif any(s is None for s in seeds):
            raise ValueError(f"SB3VecEnv.reset: seed every market or none, got seeds {seeds}")
        else:
            seed = [int(s) for s in seeds]
        obs, info = self.envs.reset(seed=seed)
        self.reset_infos = _info_dicts({k: info[k] for k in INFO_KEYS})
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("SB3VecEnv.step_wait() called without step_async(actions)")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, info = self.envs.step(actions)
        dones = terminated | truncated
        columns = {k: info[k] for k in INFO_KEYS}
        if dones.any():  # the ended markets' info is of their last step, as SB3 expects
            final = info["final_info"]
            columns = {k: np.where(dones, final[k], columns[k]) for k in INFO_KEYS}
            fresh = _info_dicts({k: info[k] for k in INFO_KEYS})
        columns["TimeLimit.truncated"] = truncated & ~terminated
        infos = _info_dicts(columns)
        if dones.any():
            final_obs = info["final_obs"]
            for i in np.flatnonzero(dones):  # SB3's list of info dicts; only the markets that ended
                infos[i]["terminal_observation"] = final_obs[i]
                self.reset_infos[i] = fresh[i]
        return obs, rewards, dones, infos

    def close(self) -> None:
        self.envs.close()

    # All markets live in one MarketVecEnv: attribute access is shared by every index.
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self.envs, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        self._every_market(indices, "set_attr")
        setattr(self.envs, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        n = self._every_market(indices, "env_method")
        result = getattr(self.envs, method_name)(*method_args, **method_kwargs)
        return [result] * n

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _every_market(self, indices, what: str) -> int:
        chosen = sorted(self._get_indices(indices))
        if chosen != list(range(self.num_envs)):
            raise ValueError(
                f"SB3VecEnv.{what}: the {self.num_envs} markets share one MarketVecEnv, so indices must "
                f"cover all of them (or be None), got {chosen}"
            )
        return len(chosen)


def _info_dicts(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One info dict per market from arrays ``[N]`` (Python scalars, as a single env's info)."""
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*(columns[k].tolist() for k in names))]
