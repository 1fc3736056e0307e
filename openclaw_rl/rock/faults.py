"""Fault injection for the sandbox pool: a batched env that fails the way a user's simulator can.

``trainer.faults.*`` turns it on in every rollout worker, so a user (and the tests) can watch a run
carry on through failures: a step that raises, a step that hangs past ``trainer.worker_timeout``, a
worker process killed by SIGKILL (as the OOM killer would). The dice are drawn from the OS's entropy,
not from the env's seeded state: a failure is not part of the market, and a restored snapshot does
not fail at the same step again. Each injected error is numbered: three random ones at the same step
must not read as the same failure three times, which the pool takes for a bug and stops on
(``roll/workers.py``'s ``record_failure``).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class FaultConfig:
    step_error: float = 0.0  # probability that a vector step raises
    hang: float = 0.0  # probability that a vector step sleeps hang_seconds first
    hang_seconds: float = 3600.0
    kill: float = 0.0  # probability that a vector step SIGKILLs its own process (never in this process: backend local)

    @property
    def active(self) -> bool:
        return self.step_error > 0 or self.hang > 0 or self.kill > 0


class InjectedFault(RuntimeError):
    """The error a faulty step raises."""


class FaultyVecEnv:
    """``envs`` (a ``MarketVecEnv`` or ``GymVecEnv``) whose ``step`` fails as ``faults`` says; all else is ``envs``'s."""

    def __init__(self, envs, faults: FaultConfig):
        self.envs, self.faults, self.dice = envs, faults, np.random.default_rng()  # unseeded on purpose (see the module)
        self.raised = 0

    def __getattr__(self, name: str):
        return getattr(self.envs, name)

    def step(self, actions):
        kill, hang, error = self.dice.random(3)
        if kill < self.faults.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        if hang < self.faults.hang:
            time.sleep(self.faults.hang_seconds)
        if error < self.faults.step_error:
            self.raised += 1
            raise InjectedFault(f"injected fault {self.raised} of process {os.getpid()}: this step failed "
                                "(trainer.faults.step_error)")
        return self.envs.step(actions)
