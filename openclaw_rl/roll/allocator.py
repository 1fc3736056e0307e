"""Freed tensor memory kept for the next update, not handed back to the OS and faulted in again.

glibc's malloc serves large blocks from fresh ``mmap`` regions and trims the heap's free top once it
exceeds a threshold, so an update that frees its activations and allocates them again (same sizes,
every minibatch) touches new pages each time: a page fault per 4 KiB, zeroed by the kernel. At
1,024 envs that is about a sixth of a PPO run's time on this project's 2-core machine
(bench/results/train_sps.md). ``keep_freed_memory`` raises both thresholds (``mallopt``), as
jemalloc or tcmalloc, which PyTorch's CPU tuning guide recommends, behave by default. The process
then keeps its peak heap: memory it freed is reused, not returned.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
KEEP_BYTES = 1 << 30  # blocks below this come from the heap; a free top below it stays mapped
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds for this process; whether it did. Left alone: other C
    libraries, and a process whose user tuned or replaced the allocator (``MALLOC_*``, ``GLIBC_TUNABLES``,
    ``LD_PRELOAD``)."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
