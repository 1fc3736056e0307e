"""Train / validation / test splits, and what a use of an env touches (the record the
contamination guard compares).

Synthetic markets split by **seed range**: a market is a pure function of its seed, so disjoint
ranges are disjoint markets. Training seeds lie below ``2**40``, the held-out evaluation that
returns a run's objective uses the validation range, and only the benchmark reads the test range
(and the private range, whose seeds it derives from a salt).

Historical data splits by **time**: after ``env.data.start`` / ``end``, the series is cut into
train, validation and test ranges in that order (``env.data.split_fractions``), with
``env.data.embargo`` bars left out between consecutive ranges. Every episode of a split lies
inside its range, window of history included, so no training episode's bars reach a later split
(purging by construction) and no two splits share a bar.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from openclaw_rl.errors import DataError

SPLITS = ("train", "validation", "test")
SEED_RANGES = {"train": (0, 2**40), "validation": (2**40, 2**41), "test": (2**41, 2**42)}
PRIVATE_SEEDS = (2**42, 2**62)  # the private tier: blocks of this range picked by a salt


def seed_range(split: str) -> tuple[int, int]:
    """The ``[low, high)`` market seeds of a synthetic split."""
    return SEED_RANGES[split]


def time_splits(n_bars: int, fractions, embargo: int) -> dict[str, tuple[int, int]]:
    """``{split: (start, end)}`` bar ranges of a series of ``n_bars`` bars, oldest first, with
    ``embargo`` bars between consecutive ranges; the test range ends at the last bar."""
    usable = n_bars - 2 * embargo
    sizes = [int(np.floor(f * usable)) for f in fractions[:2]]
    starts = [0, sizes[0] + embargo, sizes[0] + sizes[1] + 2 * embargo]
    ends = [sizes[0], starts[1] + sizes[1], n_bars]
    return {name: (start, end) for name, start, end in zip(SPLITS, starts, ends)}


def check_fractions(fractions, prefix: str) -> None:
    """Three positive fractions (train, validation, test) that sum to 1, or a ``DataError``."""
    values = list(fractions)
    if len(values) != 3 or not all(isinstance(v, (int, float)) and v > 0 for v in values) or abs(sum(values) - 1) > 1e-9:
        raise DataError(f"{prefix}: needs three positive fractions (train, validation, test) summing to 1, got {values}")


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (cached per path, size and modification time)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def bars_record(sha256: str, source: str, time: np.ndarray) -> dict:
    """What replaying the bars with timestamps ``time`` (sorted) of a file touches."""
    return {"kind": "bars", "sha256": sha256, "source": source, "first": str(time[0]), "last": str(time[-1])}


def seeds_record(low: int, high: int) -> dict:
    """What playing the markets seeded ``[low, high)`` touches."""
    return {"kind": "seeds", "low": int(low), "high": int(high)}


def overlap(a: dict, b: dict) -> bool:
    """Whether two touched records share a market: the same seed, or a bar of the same file."""
    if a["kind"] != b["kind"]:
        return False
    if a["kind"] == "seeds":
        return a["low"] < b["high"] and b["low"] < a["high"]
    return a["sha256"] == b["sha256"] and np.datetime64(a["first"]) <= np.datetime64(b["last"]) \
        and np.datetime64(b["first"]) <= np.datetime64(a["last"])


def describe(record: dict) -> str:
    """A record as a person reads it."""
    if record["kind"] == "seeds":
        return f"market seeds [{record['low']}, {record['high']})"
    return (f"bars {_readable(record['first'])} .. {_readable(record['last'])} of {record['source']} "
            f"(sha256 {record['sha256'][:12]})")


def _readable(stamp: str) -> str:
    """A stored timestamp without its zero fractions, and without a midnight time."""
    stamp = stamp.split(".")[0] if set(stamp.partition(".")[2]) <= {"0"} else stamp
    return stamp.removesuffix("T00:00:00")
