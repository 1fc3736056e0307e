"""``trainer.threads=auto``: torch's CPU threads from the cores other processes leave free.

Intra-op threads pay on an idle machine (two threads train the default policy about 20% faster than
one on 2 cores) and cost many times over when another process holds a core, as threads that wait for
each other then wait for the scheduler too (bench/results/threads.md). So ``auto`` reads the machine:
the CPU time the whole machine spent busy (``/proc/stat``) less this process's own, over the wall time
since the last reading, is how many cores the others keep busy. The trainer reads it while the run is
built (no wait: a build too short to read from starts on one thread) and after every update, and runs on as many threads as cores are free (at least one, at most
torch's default), so a machine that turns busy mid-run drops to one thread at the next update.
"""

from __future__ import annotations

import os
import time

import torch

TORCH_THREADS = torch.get_num_threads()  # at import: torch's default (one per physical core) unless set before
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
FIRST_READING = 0.05  # seconds of reading the first choice needs (building the run); shorter: one thread until the first update


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``), or None where it cannot tell."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return (sum(fields[:8]) - idle) / TICKS  # user nice system idle iowait irq softirq steal


class OtherLoad:
    """How many cores other processes have kept busy since the previous reading."""

    def __init__(self):
        self._last = self._now()

    @staticmethod
    def _now() -> tuple[float | None, float, float]:
        own = os.times()
        return _busy_seconds(), own.user + own.system, time.monotonic()

    def age(self) -> float:
        """Seconds since the last reading."""
        return time.monotonic() - self._last[2]

    def read(self) -> float | None:
        """Cores busy with other processes' work since the last ``read`` (or since made); None off Linux."""
        before, self._last = self._last, self._now()
        (busy0, own0, wall0), (busy1, own1, wall1) = before, self._last
        if busy0 is None or busy1 is None or wall1 <= wall0:
            return None
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)


def free_threads(others: float | None) -> int:
    """The threads for the cores ``others`` leave free: at least 1, at most torch's default. Off Linux (None):
    one thread, the safe side on a busy machine."""
    if others is None:
        return 1
    return max(1, min(TORCH_THREADS, int(CORES - others + 0.25)))
