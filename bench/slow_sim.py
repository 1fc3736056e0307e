"""A slow, non-vectorized simulator for bench/workers.py: each step waits ``STEP_SECONDS`` (as a call to
an external engine or a remote service would) and then plays a coin-matching game of 64 steps.
Registered on import as ``slow_sim:Slow-v0``."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
from gymnasium import spaces

STEP_SECONDS = 0.001


class Slow(gym.Env):
    def __init__(self):
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t, self.coin = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.coin = 0, int(self.np_random.integers(2))
        return np.array([0.0, self.coin], dtype=np.float32), {}

    def step(self, action):
        time.sleep(STEP_SECONDS)
        self.t += 1
        reward = float(int(action) == self.coin)
        return np.array([self.t / 64, self.coin], dtype=np.float32), reward, False, self.t >= 64, {}


if "Slow-v0" not in gym.registry:
    gym.register("Slow-v0", entry_point=Slow)
