"""``MarketEnv``: one market as a ``gymnasium.Env`` (the batched engine with n = 1)."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.engine import MarketEngine
from openclaw_rl.errors import RenderModeError


def resolve_config(config: EnvConfig | None, kwargs: dict) -> EnvConfig:
    """An ``EnvConfig`` from a config object, keyword overrides, or both."""
    if config is None:
        return EnvConfig.from_mapping(kwargs)
    if kwargs:
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        return EnvConfig.from_mapping(values, **kwargs)
    return config


def check_render_mode(render_mode: str | None, owner: str) -> None:
    """``None`` is the only render mode: ``metadata["render_modes"]`` is empty."""
    if render_mode is not None:
        raise RenderModeError(
            f"{owner}: render_mode={render_mode!r} is not supported; supported render modes: none "
            "(this env does not render; pass render_mode=None)"
        )


def make_spaces(config: EnvConfig, obs_dim: int) -> tuple[gym.spaces.Box, gym.Space]:
    """Observation and action space of one market."""
    observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
    if config.continuous:
        bound = config.max_position
        return observation_space, gym.spaces.Box(-bound, bound, shape=(1,), dtype=np.float32)
    return observation_space, gym.spaces.Discrete(len(config.actions))


class MarketEnv(gym.Env):
    """A single trading market; see ``engine`` for the timeline and observation layout.

    Actions: an index into ``config.actions`` (target positions), or with ``continuous`` a
    target position in ``[-max_position, max_position]``. ``info`` has ``chunk_end`` (an order
    executed this step), ``regime`` (true regime code of the bar, -1 if none; never observed),
    ``equity`` and ``position``.

    ``step`` raises ``gymnasium.error.ResetNeeded`` before the first ``reset`` and after the
    episode ended (terminated or truncated); a continuous action must be a finite number.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | None = None, render_mode: str | None = None, **kwargs):
        check_render_mode(render_mode, "MarketEnv")
        self.render_mode = render_mode
        self.config = resolve_config(config, kwargs)
        self.engine = MarketEngine(self.config, 1)
        self.observation_space, self.action_space = make_spaces(self.config, self.engine.obs_dim)
        self._levels = np.asarray(self.config.actions, dtype=np.float64)
        self._row = np.zeros(1, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.engine.reset(self._row, None if seed is None else np.array([seed]))
        return self.engine.obs[0].copy(), self._info(chunk_end=False)

    def step(self, action):
        e = self.engine
        # Read from the state (not a flag), so ``restore`` of any snapshot is honoured: before the
        # first reset equity is 0, at or below the ruin level.
        if e.t[0] >= self.config.episode_bars or e.equity[0] <= e.ruin_equity:
            raise gym.error.ResetNeeded(self._why_reset())
        if self.config.continuous:
            target = np.asarray(action, dtype=np.float64).reshape(1)
            if not np.isfinite(target[0]):
                raise ValueError(f"MarketEnv.step: a continuous action must be a finite target position, got {action!r}")
            target = np.clip(target, -self.config.max_position, self.config.max_position)
        else:
            if not self.action_space.contains(action):
                raise ValueError(f"action {action!r} is not in {self.action_space}")
            target = self._levels[int(action)].reshape(1)
        reward, terminated, truncated, chunk_end = self.engine.step(target)
        return (
            self.engine.obs[0].copy(),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            self._info(chunk_end=bool(chunk_end[0])),
        )

    def _why_reset(self) -> str:
        e, cfg = self.engine, self.config
        if e.t[0] == 0:  # every step advances t: only a market never reset is at 0 here
            return "MarketEnv.step() called before reset(); call env.reset(seed=...) first"
        if e.equity[0] <= e.ruin_equity:
            ended = f"terminated (equity fell to ruin_fraction={cfg.ruin_fraction} of initial_equity)"
        else:
            ended = f"truncated (episode_bars={cfg.episode_bars} steps)"
        return f"MarketEnv.step() called after the episode {ended}; call env.reset() to start the next one"

    def _info(self, chunk_end: bool) -> dict:
        e = self.engine
        bar = e.config.window + int(e.t[0])
        return {
            "chunk_end": chunk_end,
            "regime": int(e.regime[bar, 0]),
            "equity": float(e.equity[0]),
            "position": float(e.position[0]),
        }

    def snapshot(self) -> dict[str, np.ndarray]:
        """Full state, RNG included: ``restore`` then the same actions replay the same trajectory."""
        return self.engine.snapshot()

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Set the full state (a ``snapshot``): a running episode steps on, reset or not; an ended one needs ``reset``."""
        self.engine.restore(state)
