"""A user's simulator for the tests: slow, not vectorized, and failing now and then.

Imported by ``gym.make("user_sim:Sim-v0")`` (in the tests and in spawned rollout workers, which see
the tests' ``sys.path``). The observation shows the step of the episode and the episode's seed, so a
test can check that a batch holds whole, unbroken stretches of episodes.
"""

from __future__ import annotations

import os
import time

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from openclaw_rl.rock.splits import seed_range

HORIZON = 20
VALIDATION = seed_range("validation")[0]  # the evaluation's episodes are seeded from here


class Sim(gym.Env):
    """Reward 1 for the action that matches the sign of a hidden coin, per step; ``HORIZON`` steps."""

    def __init__(self, step_seconds: float = 0.0, crash: float = 0.0):
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.step_seconds, self.crash = step_seconds, crash
        self.dice = np.random.default_rng()  # failures are not part of the episode (unseeded)
        self.t, self.seed_value, self.coin = 0, 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.seed_value = seed
        self.t, self.coin = 0, int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        if self.step_seconds:
            time.sleep(self.step_seconds)
        if self.dice.random() < self.crash:
            raise RuntimeError(f"simulator crashed (pid {os.getpid()})")
        reward = float(int(np.asarray(action).reshape(-1)[0] > 0.5) == self.coin)
        self.t += 1
        return self._obs(), reward, False, self.t >= HORIZON, {}

    def _obs(self):
        return np.array([self.t, self.seed_value % 8, self.coin], dtype=np.float32)


class Broken(Sim):
    """Raises at the third step of every episode: a bug, not bad luck."""

    def step(self, action):
        if self.t == 2:
            raise ValueError("the simulator has a bug at step 3")
        return super().step(action)


class Keyed(Sim):
    """Shows, in the place of the seed, a key drawn from the episode's seeded RNG at its reset: two episodes with
    the same key are one episode played twice."""

    key = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed, options=options)
        self.key = float(self.np_random.random())
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t, self.key, self.coin], dtype=np.float32)


class EvalCrash(Sim):
    """Raises at a random step of an evaluation episode (one on a validation seed), the first ``crashes`` times in
    each process: an evaluation that fails at random and succeeds when tried again. Training never fails."""

    crashes = 2  # left in this process

    def reset(self, *, seed=None, options=None):
        out = super().reset(seed=seed, options=options)
        self.crash_at = int(self.dice.integers(HORIZON)) if self.seed_value >= VALIDATION else -1
        return out

    def step(self, action):
        if self.t == self.crash_at and EvalCrash.crashes > 0:
            EvalCrash.crashes -= 1
            raise RuntimeError(f"the simulator crashed in an evaluation episode (pid {os.getpid()})")
        return super().step(action)


class DictObs(Sim):
    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict({"x": spaces.Box(-1, 1, (2,))})


class TwoActions(Sim):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.MultiDiscrete([2, 2])


class Continuous(Sim):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(-1, 1, (1,))


for name, entry, kwargs in (("Sim-v0", Sim, {}), ("CrashySim-v0", Sim, {"step_seconds": 0.0005, "crash": 0.01}),
                            ("Broken-v0", Broken, {}), ("DictObs-v0", DictObs, {}), ("TwoActions-v0", TwoActions, {}),
                            ("Continuous-v0", Continuous, {}), ("Keyed-v0", Keyed, {}), ("EvalCrash-v0", EvalCrash, {})):
    if name not in gym.registry:
        gym.register(name, entry_point=entry, kwargs=kwargs)
