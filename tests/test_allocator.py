"""``keep_freed_memory``: a training process reuses the pages of the tensors it freed instead of
faulting fresh ones in for every minibatch (glibc's malloc, roll/allocator.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from openclaw_rl.roll import allocator

CYCLES = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from openclaw_rl.roll.allocator import keep_freed_memory
    assert keep_freed_memory()
def cycle():  # an update's pattern: several large blocks, every page written, then all freed
    blocks = [torch.empty(2 << 20).fill_(1.0) for _ in range(4)]  # 4 x 8 MiB
    del blocks
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in allocator.USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", CYCLES, mode], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_blocks_are_reused_not_faulted_in_again():
    plain, kept = page_faults("plain"), page_faults("keep")
    one_cycle = 4 * (8 << 20) // 4096  # pages
    assert plain > one_cycle  # glibc hands blocks back and faults them in again (16k-39k faults here)
    assert kept < one_cycle // 2  # a fraction of one cycle's (2,048 here)


def test_a_user_tuned_or_replaced_allocator_is_left_alone(monkeypatch):
    for name in ("MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD"):
        with monkeypatch.context() as env:
            env.setenv(name, "1")
            assert allocator.keep_freed_memory() is False
