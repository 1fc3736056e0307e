"""Rollout workers: the env columns split over ``trainer.workers`` fault-isolated sandboxes.

Each ``RolloutWorker`` owns ``env.n_envs / workers`` markets (whole groups; worker ``i`` the columns
``i * n_w ... (i + 1) * n_w - 1``, on the same market seeds as in one process), a CPU copy of the policy
and a ``Collector``. ``RolloutPool`` hosts the workers in sandboxes (``rock.sandbox``: this process, a
spawned process each, or a Ray actor each), broadcasts the learner's weights and joins their rollouts
into one ``Batch``.

- **Synchronous** (``trainer.collection=sync``): every update waits for one rollout of each worker,
  joined in worker order. Each worker samples its actions from its own torch RNG (seeded by the run
  seed and its index, carried in its state), so a run with the same workers is the same run, bit for
  bit, whatever the backend (tested); it differs from ``workers=1`` only in which random numbers each
  action draws.
- **Asynchronous** (``async``): a worker starts its next rollout, with the newest weights, as soon as it
  hands one in; an update takes the first ``workers`` rollouts done (a fast worker may give two). The
  behaviour policy ``mu`` then lags ``pi_old`` by ``sandbox/policy_lag`` updates, which IPA's chunk
  mismatch mask exists for; a rollout more than ``trainer.max_policy_lag`` updates stale is collected
  again from its start state.
- **Faults**: a worker's rollout that raises, dies or runs past ``trainer.worker_timeout`` is thrown
  away whole; the worker is restored (or rebuilt, in a new sandbox) from its state before that rollout
  (env snapshot, memory state, RNG, weights) and collects it again. A batch never holds a step of a
  failed attempt, and a restored rollout is the rollout the failure interrupted: a run with injected
  faults equals the run without (tested). Counted in ``sandbox/restarts`` (failed attempts) and
  ``sandbox/resampled`` (env columns whose episodes were thrown away and collected again). An env
  without a snapshot (a user's) starts its episodes again when restored: on fresh seeds
  (``restart_seeds``), not on those of the episodes already trained on.
- **Evaluation** (``RolloutPool.evaluate``): in a sandbox of its own, with the same timeout and retries, so
  that a user's env that fails there does not end the run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import torch

from openclaw_rl.errors import ConfigError
from openclaw_rl.rock.faults import FaultyVecEnv
from openclaw_rl.rock.sandbox import Sandbox, SandboxError, SandboxLost, connect_ray, make_sandbox, wait_any
from openclaw_rl.rock.vector import make_vec_env
from openclaw_rl.roll.config import TRAIN_SEED_STRIDE, RunConfig
from openclaw_rl.roll.evaluate import evaluate
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.rollout import Batch, Collector, concat_batches

log = logging.getLogger("openclaw_rl.train")
WORKER_SEED_STRIDE = 1_000  # worker i of run seed s samples actions from torch seed s * stride + i
SAME_FAILURE = 3  # identical failures of one rollout (error and step) after which a worker gives up


def worker_columns(config: RunConfig, index: int) -> np.ndarray:
    """The env columns worker ``index`` owns (``RunConfig.validate``: equal shares of whole groups)."""
    share = config.env.n_envs // config.trainer.workers
    return np.arange(index * share, (index + 1) * share)


def restart_seeds(config: RunConfig, index: int, restarts: int) -> list[int]:
    """The seeds of worker ``index``'s episodes after its ``restarts``-th restart (0: the run's own seeds). Each
    restart moves the worker's groups on by the run's number of groups, within the run's block of training seeds:
    fresh episodes, a function of the run seed and the count alone."""
    seeds, group = config.train_markets(worker_columns(config, index))
    n_groups = config.env.n_envs // config.trainer.group_size
    return [int(s) for s in seeds - group + (group + restarts * n_groups) % TRAIN_SEED_STRIDE]


def record_failure(failures: list[str], error: Exception, retries: int, what: str) -> None:
    """Add ``error`` to ``failures`` (one task's failures in a row); raise once they are more than ``retries``,
    or ``SAME_FAILURE`` identical ones (the same error at the same step from the same state: a bug, not bad luck)."""
    failures.append(str(error).strip().splitlines()[0])
    recurs = isinstance(error, SandboxError) and failures[-SAME_FAILURE:] == [failures[-1]] * SAME_FAILURE
    if len(failures) > retries or recurs:
        why = f"the same way {SAME_FAILURE} times" if recurs else \
            f"{len(failures)} times in a row (trainer.worker_retries={retries})"
        raise RuntimeError(f"{what} failed {why}; last: {error}") from error


class RolloutWorker:
    """One sandbox's share of the markets, with its own policy copy. Everything it returns is on the CPU."""

    def __init__(self, config: RunConfig, index: int, isolated: bool):
        """``isolated``: the worker has a process of its own (one torch thread; a small policy's matrices
        gain nothing from more, bench/results/threads.md)."""
        if isolated:
            torch.set_num_threads(1)
        self.config, self.index = config, index
        columns = worker_columns(config, index)
        env_config = dataclasses.replace(config.env, n_envs=len(columns))
        faults = config.trainer.faults
        self.envs = make_vec_env(env_config)
        if faults.active:
            self.envs = FaultyVecEnv(self.envs, faults)
        with torch.random.fork_rng(devices=[]):  # the policy's initial weights are replaced; leave the caller's RNG
            self.policy = ActorCritic.for_env(config.env, config.policy)
        seeds, group = config.train_markets(columns)
        self.collector = Collector(self.envs, self.policy, torch.device("cpu"), seeds, group - group[0],
                                   config.algo.reward_scale)
        self.rng = torch.Generator().manual_seed(config.seed * WORKER_SEED_STRIDE + index).get_state()
        self.version = 0  # the policy version of the weights it holds
        self.restarts = 0  # restores that started its episodes again (an env without a snapshot): see restart_seeds

    def collect(self, weights: dict | None, version: int, steps: int) -> tuple[Batch, dict, dict]:
        """One rollout acted by ``weights`` of policy ``version`` (``None``: the weights it holds, whose
        version the batch then carries); returns the batch, the episodes that finished in it and the
        worker's state after it."""
        if weights is not None:
            self.policy.load_state_dict(weights)
            self.version = version
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng)
            try:
                batch, finished = self.collector.collect(steps, self.version)
            except Exception as error:  # the step tells a random fault from one that recurs (RolloutPool)
                raise RuntimeError(f"at step {self.collector.step} of the rollout: {type(error).__name__}: "
                                   f"{error}") from error
            self.rng = torch.get_rng_state()
        return batch, finished, self.state_dict()

    def state_dict(self) -> dict:
        return {"collector": self.collector.state_dict(), "rng": self.rng.clone(), "version": self.version,
                "policy": {k: v.clone() for k, v in self.policy.state_dict().items()}, "restarts": self.restarts}

    def load_state_dict(self, state: dict) -> None:
        """Back to ``state``; an env without a snapshot starts its episodes again, on the seeds of the next restart."""
        self.restarts = state.get("restarts", 0)  # 0 in checkpoints written before the count
        if state["collector"]["env"] is None:
            self.restarts += 1
            self.collector.seeds = restart_seeds(self.config, self.index, self.restarts)
        self.collector.load_state_dict(state["collector"])
        self.rng = state["rng"].clone()
        self.policy.load_state_dict(state["policy"])
        self.version = state["version"]

    def pid(self) -> int:
        return os.getpid()


class Evaluator:
    """The held-out evaluation (``roll.evaluate``) in a sandbox, on a CPU copy of the policy."""

    def __init__(self, config: RunConfig, isolated: bool):
        if isolated:
            torch.set_num_threads(1)
        self.config = config
        with torch.random.fork_rng(devices=[]):
            self.policy = ActorCritic.for_env(config.env, config.policy)

    def evaluate(self, weights: dict) -> dict[str, float]:
        """The metrics of ``weights``; a stochastic policy (``eval.deterministic=false``) samples from the run seed,
        so that an attempt after a failure is the attempt the failure interrupted."""
        self.policy.load_state_dict(weights)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            e = self.config.eval
            return evaluate(self.policy, self.config.env, e.n_envs, torch.device("cpu"), e.deterministic)


class RolloutPool:
    """``trainer.workers`` rollout workers in ``trainer.backend`` sandboxes, in the place of a ``Collector``:
    ``collect`` gives one batch an update, acted by ``policy``'s weights (broadcast to the workers);
    ``stats`` holds the last batch's ``sandbox/*`` scalars."""

    teacher = None  # chunk-level resampling runs in the trainer's process only (RunConfig.validate)

    def __init__(self, config: RunConfig, policy: ActorCritic, device: torch.device):
        t = config.trainer
        self.config, self.policy, self.device = config, policy, device
        self.stats: dict[str, float] = {}
        if t.backend == "ray":
            connect_ray(t.ray_address, num_cpus=max(t.workers, 2), key="trainer.ray_address")
        self.steps, self.isolated = t.rollout_steps, t.backend != "local"
        self.sandboxes: list[Sandbox] = [self._build(i) for i in range(t.workers)]  # they start side by side
        self.evaluator: Sandbox | None = None  # built at the first evaluation
        try:
            self.states = [self._call(i, "state_dict") for i in range(t.workers)]  # each worker's last good state
        except (SandboxError, SandboxLost) as error:  # a worker that cannot even start: not a fault to retry
            self.close()
            raise ConfigError(f"trainer.backend={t.backend}: a rollout worker failed to start: {error}") from error
        self.requests: list[tuple[dict | None, int] | None] = [None] * t.workers  # in flight: (weights, version)
        self.failures: list[list[str]] = [[] for _ in range(t.workers)]  # each worker's failures in a row
        self.counts = {"restarts": 0, "resampled": 0, "stale": 0}

    def _build(self, index: int) -> Sandbox:
        return make_sandbox(self.config.trainer.backend, RolloutWorker, self.config, index, self.isolated)

    def _rebuild(self, index: int) -> None:
        """A new sandbox for worker ``index`` in place of its lost one (built fresh: restore it after)."""
        self.sandboxes[index].close()
        self.sandboxes[index] = self._build(index)

    def _call(self, index: int, method: str, *args):
        self.sandboxes[index].submit(method, *args)
        return self.sandboxes[index].result(self.config.trainer.worker_timeout)

    def pids(self) -> list[int]:
        """The workers' process ids (this process's, for backend=local)."""
        return [self._call(i, "pid") for i in range(len(self.sandboxes))]

    # ------------------------------------------------------------------ one update's batch
    def collect(self, steps: int, version: int) -> tuple[Batch, dict[str, list[float]]]:
        """The batch of ``steps`` steps a worker for update ``version``, acted by the policy's weights now
        (async: by its recent versions), and the episodes that finished in it. Sync sends the weights every
        ``trainer.broadcast_every`` updates; async sends the newest with each rollout it asks for."""
        t = self.config.trainer
        self.steps, weights = steps, None
        if t.collection == "async" or version % t.broadcast_every == 0:
            weights = self._weights()
        before = dict(self.counts)
        if t.collection == "sync":
            for i in range(len(self.sandboxes)):
                self._submit(i, weights, version)
            parts = [self._receive(i, version) for i in range(len(self.sandboxes))]
        else:
            parts = self._collect_async(weights, version)
        batch = concat_batches([p[0] for p in parts]).to(self.device)
        finished: dict[str, list[float]] = {}
        for _, episodes in parts:
            for key, values in episodes.items():
                finished.setdefault(key, []).extend(values)
        lag = version - batch.version
        self.stats = {f"sandbox/{k}": float(self.counts[k] - before[k]) for k in self.counts}
        self.stats.update({"sandbox/policy_lag": lag.float().mean().item(), "sandbox/policy_lag_max": float(lag.max())})
        return batch, finished

    def _weights(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()}

    def _collect_async(self, weights: dict | None, version: int) -> list[tuple[Batch, dict]]:
        """The first ``workers`` rollouts done; each worker that hands one in starts the next at once."""
        t = self.config.trainer
        for i, request in enumerate(self.requests):
            if request is None:
                self._submit(i, weights, version)
        parts = []
        while len(parts) < len(self.sandboxes):
            wait_any(self.sandboxes, timeout=min(t.worker_timeout, 1.0))
            for i, sandbox in enumerate(self.sandboxes):
                overdue = sandbox.submitted_at + t.worker_timeout
                if len(parts) == len(self.sandboxes) or not (sandbox.ready() or time.monotonic() > overdue):
                    continue
                part = self._receive(i, version, weights, max_lag=t.max_policy_lag, wait=False)
                if part is not None:
                    parts.append(part)
                    self._submit(i, weights, version)
        return parts

    def _submit(self, index: int, weights: dict | None, version: int) -> None:
        self.requests[index] = (weights, version)
        try:
            self.sandboxes[index].submit("collect", weights, version, self.steps)
        except SandboxLost as error:
            self._failed(index, error)

    def _receive(self, index: int, version: int, newest: dict | None = None, max_lag: int | None = None,
                 wait: bool = True) -> tuple[Batch, dict] | None:
        """Worker ``index``'s rollout. A failed attempt is sent out again (``_failed``) and, with ``wait``,
        waited for until one succeeds; without it (async) ``None``. ``None`` too when the rollout was
        more than ``max_lag`` updates stale and has been sent out again with ``newest``."""
        while True:
            try:
                batch, finished, state = self.sandboxes[index].result(self.config.trainer.worker_timeout)
            except (SandboxError, SandboxLost) as error:
                self._failed(index, error)
                if wait:
                    continue
                return None
            self.failures[index] = []
            if max_lag is not None and version - self.requests[index][1] > max_lag:
                self.counts["stale"] += 1
                self._restore(index)
                self._submit(index, newest, version)
                return None
            self.states[index] = state
            self.requests[index] = None
            return batch, finished

    def _failed(self, index: int, error: Exception) -> None:
        """Throw the failed attempt away, restore the worker to its state before it, and send it again
        (or give up: ``record_failure``)."""
        record_failure(self.failures[index], error, self.config.trainer.worker_retries, f"rollout worker {index}")
        self.counts["restarts"] += 1
        self.counts["resampled"] += len(worker_columns(self.config, index))
        log.warning("rollout worker %d: %s; restarting its rollout from its last state", index, self.failures[index][-1])
        if isinstance(error, SandboxLost):
            self._rebuild(index)
        self._restore(index)
        weights, version = self.requests[index]
        self.sandboxes[index].submit("collect", weights, version, self.steps)

    def _restore(self, index: int) -> None:
        try:
            self._call(index, "load_state_dict", self.states[index])
        except SandboxLost:  # died while restoring: a new sandbox
            self._rebuild(index)
            self._call(index, "load_state_dict", self.states[index])

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """The held-out metrics (``roll.evaluate``) of the policy's weights now, in an ``Evaluator`` sandbox of
        ``trainer.backend`` with the workers' timeout and retries: an evaluation that raises, dies or hangs is run
        again from its start. The sandbox is built at the first call and kept (a Ray actor of no CPU: the
        workers hold them)."""
        t, weights, failures = self.config.trainer, self._weights(), []
        while True:
            if self.evaluator is None:
                self.evaluator = make_sandbox(t.backend, Evaluator, self.config, self.isolated, num_cpus=0)
            try:
                self.evaluator.submit("evaluate", weights)
                return self.evaluator.result(t.worker_timeout)
            except (SandboxError, SandboxLost) as error:
                record_failure(failures, error, t.worker_retries, "the evaluation")
                log.warning("the evaluation: %s; evaluating again", failures[-1])
                if isinstance(error, SandboxLost):
                    self.evaluator = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Each worker's state after its last rollout taken into a batch (async: rollouts in flight are
        collected again after a resume)."""
        return {"workers": self.states}

    def load_state_dict(self, state: dict) -> None:
        if "workers" not in state or len(state["workers"]) != len(self.sandboxes):
            have = len(state["workers"]) if "workers" in state else "1 (no pool)"
            raise ConfigError(f"trainer.workers={len(self.sandboxes)}: the checkpoint holds the state of {have} "
                              "rollout workers; resume with the same trainer.workers")
        self._await_all()
        self.states = list(state["workers"])
        for i in range(len(self.sandboxes)):
            self._call(i, "load_state_dict", self.states[i])

    def _await_all(self) -> None:
        """Drop the results of calls in flight (async rollouts) so that each sandbox takes a new call."""
        for i, request in enumerate(self.requests):
            if request is not None:
                try:
                    self.sandboxes[i].result(self.config.trainer.worker_timeout)
                except (SandboxError, SandboxLost):
                    self._rebuild(i)
                self.requests[i] = None

    def close(self) -> None:
        for sandbox in self.sandboxes:
            sandbox.close()
        if self.evaluator is not None:
            self.evaluator.close()


