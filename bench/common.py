"""Helpers shared by the benchmark scripts: timing loops and results files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from openclaw_rl.atomic import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"


def rate(step, units_per_call: int, min_seconds: float, repeats: int = 3) -> float:
    """Median units/second of ``step()`` over ``repeats`` windows of at least ``min_seconds``."""
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds:
            step()
            calls += 1
        rates.append(calls * units_per_call / elapsed)
    return sorted(rates)[len(rates) // 2]


def mean_sd(values) -> str:
    """``mean ± std`` of a benchmark's per-seed values, as the results tables print them."""
    import numpy

    return f"{numpy.mean(values):+.4f} ± {numpy.std(values):.4f}"


def grad_norm_summary(history: list[dict]) -> dict:
    """A training run's gradient norms before clipping: the max over its minibatches, the median over its
    updates (of each update's mean), and their ratio (spikes)."""
    import numpy

    peak = max(h["losses/grad_norm_max"] for h in history)
    median = float(numpy.median([h["losses/grad_norm"] for h in history]))
    return {"grad_norm_max": float(peak), "grad_norm_median": median, "grad_spike": float(peak / median)}


def machine() -> dict:
    import numpy
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": platform.processor() or platform.machine(), "cores": cores, "python": platform.python_version(),
            "numpy": numpy.__version__, "torch": torch.__version__}


def write_results(name: str, payload: dict, markdown: str) -> Path:
    """Write ``bench/results/NAME.json`` and ``NAME.md`` atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(payload, indent=2)), (".md", markdown)):
        atomic_write(RESULTS / f"{name}{suffix}", text)
    return RESULTS / f"{name}.md"
