"""Observation features beyond the built-in ones, appended after ``time_left`` (before the regime one-hot).

- ``env.data.features=[col, ...]``: numeric columns of the historical file, observed as they are at
  bar t (the file's row t is taken to be known at that bar's close).
- ``env.features=[{name: rsi, window: 14}, ...]``: any function of the ``ta`` library's momentum,
  trend, volatility, volume and others modules, by name, with its parameters (``fillna`` is ours).
- ``env.features=[{fn: my_module:my_feature, span: 5}]``: a user's function
  ``fn(bars: pandas.DataFrame, **params)`` returning one value per bar.

Synthetic markets compute them from each episode's own path, historical replay once over its file
(``rock/historical.py``), so a policy trained on features runs on both; ``rock/indicators.py`` computes
the common ``ta`` indicators for every synthetic path of a reset at once. The bars a function sees
are ``open, high, low, close``, ``volume`` (historical files that have it) and the
``env.data.features`` columns.

No look-ahead: a function is refused (``ConfigError``, before any work) unless its values up to a
bar stay bit-identical when every later bar of a probe path is replaced, which rules out centered
windows and statistics of the whole series (a normalizer fitted on all bars). Scaling is the
policy's running observation normalizer, fitted on training rollouts and saved with the weights.

Warm-up: a function's warm-up is the first bar of the probe from which it is always a number, and at
least its largest integer parameter (``ta``'s ATR reads 0, not NaN, until its window fills). A
synthetic path starts ``lead`` bars earlier than the observation window needs; a replay starts its
episodes where every feature has a value. A value that is not a finite number after the warm-up is
an error naming the feature.
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from openclaw_rl.errors import ConfigError, DataError
from openclaw_rl.imports import import_target
from openclaw_rl.rock.indicators import BATCHED

TA_MODULES = ("momentum", "trend", "volatility", "volume", "others")
PRICES = ("open", "high", "low", "close")
PROBE_BARS = 1024
MAX_WARMUP = PROBE_BARS // 2


@dataclass(frozen=True)
class Feature:
    """One computed feature: ``compute(frame) -> [len(frame)]`` float64 for one market's bars, and where
    ``rock/indicators.py`` has it, ``batch(**prices) -> [T, n]`` for many markets' time-major prices."""

    key: str  # where it was configured, e.g. "env.features[0]"
    label: str  # e.g. "rsi(window=14)"
    compute: Callable[[Any], np.ndarray]
    needs_volume: bool
    min_warmup: int  # its largest integer parameter
    batch: Callable[..., np.ndarray] | None = None


@dataclass(frozen=True)
class FeaturePipeline:
    """The file's columns, then the computed features; ``lead`` warm-up bars precede each path."""

    columns: tuple[str, ...]
    computed: tuple[Feature, ...]
    warmup: int  # bars before the first bar at which every computed feature is valid

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.columns, *(f.label for f in self.computed))

    def lead(self, window: int) -> int:
        """Extra bars sampled before an episode's path: its first observed bar is ``window``."""
        return max(0, self.warmup - window)

    def compute(self, log_open, log_high, log_low, log_close, volume=None, columns=None,
                batched: bool = True) -> np.ndarray:
        """``[n_bars, n, F]`` float32 features of ``n`` paths given time-major ``[n_bars, n]`` log prices
        (``volume [n_bars, n]``, ``columns [n_bars, n, C]``: the file's feature columns). ``batched``: the
        indicators ``rock/indicators.py`` has run on every path at once (fast for many short paths; one
        long series is faster through ``ta``, whose loops over time are compiled)."""
        n_bars, n = log_close.shape
        out = np.empty((n_bars, n, len(self.names)), dtype=np.float32)
        if self.columns:
            out[..., : len(self.columns)] = columns
        if not self.computed:
            return out
        import pandas as pd

        prices = {name: np.exp(log) for name, log in zip(PRICES, (log_open, log_high, log_low, log_close))}
        one_by_one = []
        with np.errstate(all="ignore"):
            for k, feature in enumerate(self.computed, start=len(self.columns)):
                if feature.batch is not None and batched:
                    out[..., k] = feature.batch(**prices)
                else:
                    one_by_one.append((k, feature))
            for j in range(n if one_by_one else 0):
                frame = pd.DataFrame({name: price[:, j] for name, price in prices.items()})
                if volume is not None:
                    frame["volume"] = volume[:, j]
                for c, name in enumerate(self.columns):
                    frame[name] = columns[:, j, c]
                for k, feature in one_by_one:
                    out[:, j, k] = feature.compute(frame)
        return out

    def check_finite(self, features: np.ndarray, first_observed: int) -> None:
        """Every feature from ``first_observed`` on is a number, or a ``DataError`` naming the first that is not."""
        bad = ~np.isfinite(features[first_observed:])
        if bad.any():
            t, market, k = np.argwhere(bad)[0]
            raise DataError(f"feature {self.names[k]} is {features[first_observed + t, market, k]} at bar "
                            f"{first_observed + t} of an episode path (after its warm-up of {self.warmup} bars); "
                            "features must be finite numbers")


def pipeline(features: tuple[Mapping[str, Any], ...] | list, columns: tuple[str, ...] = (),
             volume: bool = False, prefix: str = "env") -> FeaturePipeline | None:
    """The checked pipeline of ``env.features`` and ``env.data.features`` (``volume``: the bars have one),
    or None when there are no features. Cached: the probes run once per distinct configuration."""
    if not features and not columns:
        return None
    return _pipeline(json.dumps([dict(f) for f in features], sort_keys=True, default=str), tuple(columns),
                     volume, prefix)


@functools.lru_cache(maxsize=64)
def _pipeline(specs: str, columns: tuple[str, ...], volume: bool, prefix: str) -> FeaturePipeline:
    computed = tuple(_feature(spec, f"{prefix}.features[{i}]", columns) for i, spec in enumerate(json.loads(specs)))
    for feature in computed:
        if feature.needs_volume and not volume:
            raise ConfigError(f"{feature.key} ({feature.label}) reads volume, which these bars lack: synthetic "
                              "markets have none; a historical file needs a volume column (env.data.columns.volume)")
    warmup = max((_probe(feature, columns) for feature in computed), default=0)
    return FeaturePipeline(columns, computed, warmup)


def feature_label(spec: Mapping[str, Any]) -> str:
    """A computed feature's name in the observation, e.g. ``rsi(window=14)`` (parameters in key order)."""
    params = ", ".join(f"{k}={spec[k]}" for k in sorted(spec) if k not in ("name", "fn"))
    return f"{spec.get('name') or spec.get('fn')}({params})"


def _feature(spec: Mapping[str, Any], key: str, columns: tuple[str, ...]) -> Feature:
    if not isinstance(spec, Mapping) or ("name" in spec) == ("fn" in spec):
        raise ConfigError(f"{key}: needs exactly one of name (a ta function, e.g. {{name: rsi, window: 14}}) or "
                          f"fn (module:function over the bars), got {spec!r}")
    params = {k: v for k, v in spec.items() if k not in ("name", "fn")}
    label = feature_label(spec)
    min_warmup = max((v for v in params.values() if isinstance(v, int) and not isinstance(v, bool)), default=0)
    if "fn" in spec:
        fn = _import(spec["fn"], key)
        return Feature(key, label, lambda frame: _values(fn(frame, **params), len(frame), key, label), False, min_warmup)
    fn = _ta_function(spec["name"], key)
    signature = inspect.signature(fn).parameters
    inputs = [p for p in signature if p in (*PRICES, "volume")]
    allowed = [p for p in signature if p not in inputs and p != "fillna"]
    unknown = [p for p in params if p not in allowed]
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown parameter of ta's {spec['name']}; allowed: "
                          f"{', '.join(allowed) or 'none'}")
    missing = [p for p in allowed if signature[p].default is inspect.Parameter.empty and p not in params]
    if missing:
        raise ConfigError(f"{key}: ta's {spec['name']} needs {', '.join(missing)}")
    extra = {"fillna": False} if "fillna" in signature else {}
    fast = BATCHED.get(spec["name"])

    def compute(frame):
        return _values(fn(**{p: frame[p] for p in inputs}, **params, **extra), len(frame), key, label)

    def batch(**prices):
        return fast(**{p: prices[p] for p in inputs}, **params)

    return Feature(key, label, compute, "volume" in inputs, min_warmup, batch if fast is not None else None)


def _ta_function(name: str, key: str) -> Callable:
    try:
        import ta
    except ModuleNotFoundError:
        raise ConfigError(f"{key}: indicators by name need the ta package: pip install 'openclaw_rl[features]'") from None
    for module in TA_MODULES:
        fn = getattr(getattr(ta, module), name, None)
        if inspect.isfunction(fn) and fn.__module__ == f"ta.{module}" and not name.startswith("_"):
            return fn
    raise ConfigError(f"{key}.name: {name!r} is not a function of ta.{{{', '.join(TA_MODULES)}}}; e.g. rsi, "
                      "macd_diff, bollinger_pband, average_true_range, roc (see the ta library's docs)")


def _import(target: str, key: str) -> Callable:
    fn = import_target(target, f"{key}.fn")
    if not callable(fn):
        raise ConfigError(f"{key}.fn: {target} is not callable")
    return fn


def _values(result, n: int, key: str, label: str) -> np.ndarray:
    """A feature function's result as ``[n]`` float64, or a ``ConfigError`` saying what it returned."""
    try:
        values = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} ({label}): must return numbers, one per bar; got {type(result).__name__}") from None
    if values.shape != (n,):
        raise ConfigError(f"{key} ({label}): must return one value per bar ({n}), got shape {values.shape}")
    return values


def probe_frame(columns: tuple[str, ...], seed: int):
    """A ``PROBE_BARS``-bar random path of OHLCV bars and the given extra columns."""
    import pandas as pd

    gen = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(gen.normal(0, 0.01, PROBE_BARS)))
    open_ = close * np.exp(gen.normal(0, 0.003, PROBE_BARS))
    body = np.maximum(open_, close), np.minimum(open_, close)
    frame = pd.DataFrame({"open": open_, "high": body[0] * np.exp(np.abs(gen.normal(0, 0.005, PROBE_BARS))),
                          "low": body[1] * np.exp(-np.abs(gen.normal(0, 0.005, PROBE_BARS))), "close": close,
                          "volume": gen.lognormal(10, 0.5, PROBE_BARS)})
    for name in columns:
        frame[name] = gen.normal(0, 1, PROBE_BARS)
    return frame


def _probe(feature: Feature, columns: tuple[str, ...]) -> int:
    """The feature's warm-up in bars, after checking on a probe path that it never looks ahead."""
    frame = probe_frame(columns, seed=0)
    with np.errstate(all="ignore"):
        base = feature.compute(frame)
        other = probe_frame(columns, seed=1)
        for cut in (PROBE_BARS // 4, PROBE_BARS // 2, 3 * PROBE_BARS // 4):
            changed = frame.copy()
            changed.iloc[cut + 1:] = other.iloc[cut + 1:].to_numpy()
            before, after = base[: cut + 1], feature.compute(changed)[: cut + 1]
            moved = ~((before == after) | (np.isnan(before) & np.isnan(after)))
            if moved.any():
                raise ConfigError(
                    f"{feature.key} ({feature.label}) looks ahead: its value at bar {int(np.argmax(moved))} changed when "
                    f"only the bars after bar {cut} changed; a feature at bar t may use bars <= t only (no centered "
                    "windows, no statistics of the whole series)")
    finite = np.isfinite(base)
    warmup = PROBE_BARS - int(np.argmin(finite[::-1])) if not finite.all() else 0
    if warmup > MAX_WARMUP:
        raise ConfigError(f"{feature.key} ({feature.label}) is not a finite number at bar {warmup - 1} of a "
                          f"{PROBE_BARS}-bar probe path; a feature must be valid after at most {MAX_WARMUP} bars")
    return max(warmup, feature.min_warmup)
