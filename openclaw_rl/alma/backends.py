"""Where the ALMA sweeper's trials run: forked processes (``local``) or Ray tasks (``ray``).

The sweeper has one scheduling loop; a backend only starts a trial's worker and waits for one to
end. What it hands back is a ``TrialWorker``, the same for every backend:

- ``is_alive()``: the worker still runs;
- ``terminate()``: stop it (pruning);
- ``ending()``: once it no longer runs, how it ended without a result (``Ending``). ``killed``: from
  outside (a signal such as the OOM killer's, a Ray worker or node lost, a dead orphan): the sweeper
  continues the trial from its checkpoints, up to ``max_retries`` times. Otherwise ``error`` says why.

A worker reports its result through a file in the trial's dir, whatever the backend: a Ray task
therefore needs the sweep dir on a filesystem it shares with the sweeper (one host, or a shared
filesystem across a cluster's nodes). Each worker also records itself (``worker.json``: pid, host,
process start time) so that a rerun of a killed sweep finds an orphan still running on this host.

Hydra-free: the sweeper gives a backend the function a worker runs and the arguments every trial
shares; this module knows nothing of what a trial does.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

from openclaw_rl.atomic import atomic_write
from openclaw_rl.errors import ConfigError
from openclaw_rl.rock.sandbox import connect_ray, import_ray

log = logging.getLogger("openclaw_rl.alma")
WORKER_RECORD = "worker.json"


@dataclass(frozen=True)
class Ending:
    """How a worker ended without reporting a result: ``killed`` from outside (how; the trial may
    continue from its checkpoints), else ``error`` (why)."""

    killed: Optional[str] = None
    error: Optional[str] = None

    def message(self) -> str:
        """The trial's failure, as the archive records it."""
        return f"worker killed ({self.killed}) before reporting a result" if self.killed is not None else str(self.error)


class TrialWorker(Protocol):
    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def ending(self) -> Ending: ...


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: ``/proc/PID/stat``), telling it from a later process given its pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_worker(trial_dir: Path) -> None:
    """Called by a worker as it starts: who runs the trial (``Orphan.of`` reads it after a crash)."""
    pid = os.getpid()
    atomic_write(trial_dir / WORKER_RECORD, json.dumps({"pid": pid, "host": socket.gethostname(), "start": process_start(pid)}))


# ------------------------------------------------------------------------------------------ local
class ForkedWorker:
    """A trial in a process forked from the sweeper (its imports and Hydra state come with the fork)."""

    def __init__(self, process: multiprocessing.Process):
        self.process = process

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def terminate(self) -> None:
        self.process.terminate()

    def ending(self) -> Ending:
        self.process.join()
        code = self.process.exitcode
        if code is not None and code < 0:
            return Ending(killed=f"signal {-code}")
        return Ending(error=f"worker exited with code {code} before reporting a result")


@dataclass
class Orphan:
    """A worker of an earlier sweep process that is still running (this host, same pid and start time)."""

    pid: int
    start: str | None

    @classmethod
    def of(cls, record: Path) -> "Orphan | None":
        try:
            worker = json.loads(record.read_text())
        except (OSError, ValueError):
            return None
        orphan = cls(worker["pid"], worker.get("start"))
        return orphan if worker.get("host") == socket.gethostname() and orphan.is_alive() else None

    def is_alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):  # gone, or someone else's process reuses the pid
            return False
        return self.start is None or process_start(self.pid) == self.start

    def terminate(self) -> None:
        if self.is_alive():
            os.kill(self.pid, signal.SIGTERM)

    def ending(self) -> Ending:
        """Not our child: no exit status to read, only that it is gone."""
        return Ending(killed="orphan gone")


def warm_imports() -> None:
    """Import once, before the first fork, what every trial imports: a forked trial starts with the
    sweeper's modules. The first optimizer pulls in torch's compiler stack (torch._dynamo, sympy): about
    1 s on an idle machine, 16 s of a trial's 21 s set-up on a busy one, paid again by every trial."""
    import torch
    import torch.utils.tensorboard  # noqa: F401  (the trainer's SummaryWriter)

    import openclaw_rl.roll.pipeline  # noqa: F401  (the training stack)

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


class LocalBackend:
    """Each trial in a process forked from the sweeper: ``target(*shared, *args)``."""

    def __init__(self, target: Callable, shared: tuple, n_workers: int):
        self.target, self.shared = target, shared
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.threads = max(1, cores // n_workers)  # torch threads per trial: its share of the cores
        warm_imports()

    def start(self, name: str, *args) -> ForkedWorker:
        process = multiprocessing.get_context("fork").Process(target=self.target, args=(*self.shared, *args), name=name)
        process.start()
        return ForkedWorker(process)

    def wait(self, workers: list[TrialWorker], seconds: float) -> None:
        """Until a worker ends (its sentinel is ready) or ``seconds`` pass (pruning reads reports meanwhile)."""
        sentinels = [w.process.sentinel for w in workers if isinstance(w, ForkedWorker)]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout=seconds)
        else:  # orphans of an earlier sweep: polled
            time.sleep(seconds)

    def close(self) -> None:
        """Nothing to stop: each worker is its own process."""


# -------------------------------------------------------------------------------------------- ray
class RayWorker:
    """A trial as a Ray task (``max_retries=0``: retries are the sweeper's)."""

    def __init__(self, ray, ref):
        self.ray, self.ref = ray, ref

    def is_alive(self) -> bool:
        return not self.ray.wait([self.ref], timeout=0)[0]

    def terminate(self) -> None:
        self.ray.cancel(self.ref, force=True)  # kills its worker process: the resources are free at once

    def ending(self) -> Ending:
        exceptions = self.ray.exceptions
        try:
            self.ray.get(self.ref)
        except exceptions.RayTaskError as error:  # the task raised (a trial's own error is in its result file)
            return Ending(error=f"Ray task failed: {error}")
        except exceptions.RayError as error:  # its worker process or node died, it was cancelled or OOM-killed
            first = (str(error).strip().splitlines() or [""])[0]
            return Ending(killed=f"Ray {type(error).__name__}: {first}")
        return Ending(error="Ray task ended before reporting a result")


class RayBackend:
    """Each trial a Ray task with ``num_cpus=cpus``, ``num_gpus=gpus``: ``target(shared, *args)``, where
    ``shared`` (put in Ray's object store once, pickled by cloudpickle) arrives as the tuple given here.

    ``address``: null starts a local Ray of ``ceil(n_workers x cpus)`` CPUs in this process; else a
    cluster's (``host:port``, ``ray://host:port``, ``auto``). Connecting fails within seconds, with a
    ``ConfigError`` naming ``key``, when no cluster answers or Ray is not installed. A Ray this backend
    started is shut down by ``close``; a connection that was already live is left as it was."""

    def __init__(self, target: Callable, shared: tuple, n_workers: int, cpus: float, gpus: float,
                 address: str | None = None, key: str = "hydra.sweeper.ray_address"):
        self.owned = not import_ray().is_initialized()
        self.ray = connect_ray(address, num_cpus=max(1, math.ceil(n_workers * cpus)), key=key)
        try:
            self._check_resources(cpus, gpus, local=address is None, key=key)
            self.remote, self.resources = self.ray.remote(target), {"num_cpus": cpus, "num_gpus": gpus}
            self.shared = self.ray.put(shared)
        except BaseException:
            self.close()
            raise
        self.threads = max(1, int(cpus))  # torch threads per trial: the CPUs Ray reserves for it

    def _check_resources(self, cpus: float, gpus: float, local: bool, key: str) -> None:
        """A trial that asks for more than any node has would wait for ever: refuse it now (a cluster
        may still grow, so there it is only a warning)."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
            return
        have = ", ".join(f"{r.get('CPU', 0):g} CPUs and {r.get('GPU', 0):g} GPUs" for r in nodes) or "no nodes"
        message = (f"hydra.sweeper.cpus_per_trial={cpus:g}, gpus_per_trial={gpus:g}: no Ray node has that much "
                   f"(the nodes have {have})")
        if local:
            raise ConfigError(message + "; lower them, or give a cluster in " + key)
        log.warning("%s; trials wait until the cluster grows", message)

    def start(self, name: str, *args) -> RayWorker:
        task = self.remote.options(**self.resources, max_retries=0, name=name)
        return RayWorker(self.ray, task.remote(self.shared, *args))

    def wait(self, workers: list[TrialWorker], seconds: float) -> None:
        """Until a task ends or ``seconds`` pass."""
        refs = [w.ref for w in workers if isinstance(w, RayWorker)]
        if refs:
            self.ray.wait(refs, num_returns=1, timeout=seconds)
        else:  # orphans of an earlier sweep, if any: polled
            time.sleep(seconds)

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()

