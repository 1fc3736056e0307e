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

import base64
import hashlib
import os
import zlib
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


def bars_record(sha256: str, source: str, time: np.ndarray, close: np.ndarray) -> dict:
    """What replaying the bars with timestamps ``time`` (sorted) and closes ``close`` of a file touches:
    the bars themselves (``content``: what the guard compares) and, for people, the file and its hash."""
    stamps = np.asarray(time).astype("datetime64[ns]").astype(np.int64)
    content = {name: base64.b64encode(zlib.compress(np.ascontiguousarray(values).tobytes(), 6)).decode()
               for name, values in (("time", stamps), ("close", np.asarray(close, dtype=np.float64)))}
    return {"kind": "bars", "sha256": sha256, "source": source, "first": str(time[0]), "last": str(time[-1]),
            "content": content}


def _bars(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """A bars record's timestamps (int64 ns) and closes."""
    raw = {name: zlib.decompress(base64.b64decode(text)) for name, text in record["content"].items()}
    return np.frombuffer(raw["time"], dtype=np.int64), np.frombuffer(raw["close"], dtype=np.float64)


SAME_PRICE = 1e-4  # relative: closes this close are one price written differently (float formatting, rounding)
NEAR_BARS = 7  # a touched close may sit this many bars from its own time (resampled bars, other time stamps)
SAME_INSTRUMENT = 0.5  # of the touched bars inside the other's time span found in it: the same series


def shared_bars(touched: dict, other: dict) -> int:
    """How many bars of ``touched`` lie in ``other``'s bars, known by content: a touched bar inside
    the other's time span is found when a close of the other within ``NEAR_BARS`` bars of its time
    equals it (within ``SAME_PRICE``). Found for fewer than ``SAME_INSTRUMENT`` of those bars, the two
    are other instruments (chance equal prices), and nothing is shared."""
    time_a, close_a = _bars(touched)
    time_b, close_b = _bars(other)
    inside = (time_a >= time_b[0]) & (time_a <= time_b[-1])
    if not inside.any():
        return 0
    time_a, close_a = time_a[inside], close_a[inside]
    at = np.searchsorted(time_b, time_a)
    found = np.zeros(len(time_a), dtype=bool)
    for shift in range(-NEAR_BARS, NEAR_BARS + 1):
        j = np.clip(at + shift, 0, len(close_b) - 1)
        found |= np.abs(close_b[j] / close_a - 1.0) <= SAME_PRICE
    return int(found.sum()) if found.mean() >= SAME_INSTRUMENT else 0


def unknown_record(use: str, by: str, why: str) -> dict:
    """What ``by`` touched cannot be known (``why``): the guard counts it as touching every market."""
    return {"kind": "unknown", "use": use, "by": by, "why": why}


def seeds_record(low: int, high: int) -> dict:
    """What playing the markets seeded ``[low, high)`` touches."""
    return {"kind": "seeds", "low": int(low), "high": int(high)}


def overlap(a: dict, b: dict) -> bool:
    """Whether what ``a`` touched shares a market with ``b``: a seed, or a bar known by its content
    (:func:`shared_bars`, whatever the file, format, columns, subset or resampling). A bars record
    written before records kept their content is known by its file's hash and dates."""
    if a["kind"] != b["kind"]:
        return False
    if a["kind"] == "seeds":
        return a["low"] < b["high"] and b["low"] < a["high"]
    if "content" in a and "content" in b:
        return shared_bars(a, b) > 0
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
