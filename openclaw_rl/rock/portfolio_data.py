"""Market data for the portfolio env: K instruments as time-aligned ``[n_bars, K]`` float64 paths.

Two sources, one interface (``n_assets`` and paths the engine reads per bar):

- ``FactorModel``: synthetic one-factor log returns, a pure function of each market's key
  (``rock/rng.py``), so market ``i`` seeded ``s`` is the same in any batch.
- ``PanelReplay``: episodes are windows of a long-format file (``load_panel``) aligned on the union
  of its timestamps, cut into train / validation / test ranges (``rock/splits.py``).

Missing bars (a holiday of one symbol, a symbol listed later or delisted earlier): the timeline is
the union of all symbols' timestamps; where a symbol has no row its ``tradable`` mask is False, its
open and close carry its last known close (so a position is marked there and its log return reads
0), and an order for it waits: it is not traded on that bar, and the next step's target applies
when it trades again. Before its first row a symbol has no price: it reads a placeholder price of
1.0 that no portfolio can hold (it cannot trade), and returns of 0 up to its second row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

import numpy as np

from openclaw_rl.errors import ConfigError, DataError
from openclaw_rl.rock import rng
from openclaw_rl.rock.config import finite_number
from openclaw_rl.rock.rolling import cumsum_time
from openclaw_rl.rock.splits import SPLITS, bars_record, check_fractions, file_sha256, time_splits

LONG_COLUMNS = ("time", "symbol", "open", "high", "low", "close")
SAMPLINGS = ("random", "first")


def per_asset(value, n_assets: int, key: str) -> np.ndarray:
    """``value`` (a number, or one number per asset) as a float64 array ``[n_assets]``."""
    values = np.atleast_1d(np.asarray(value, dtype=object))
    if values.ndim != 1 or len(values) not in (1, n_assets) or not all(map(finite_number, values)):
        raise ConfigError(f"{key}: needs one finite number or n_assets={n_assets} of them, got {value!r}")
    values = values.astype(np.float64)
    return np.broadcast_to(values, (n_assets,)).copy()


@dataclass(frozen=True)
class FactorModel:
    """One-factor log returns, annualized parameters, ``dt = 1 / bars_per_year``:

    ``r[t, k] = mu[k] dt + beta[k] factor_sigma sqrt(dt) z[t] + sigma[k] sqrt(dt) e[t, k]``

    with ``z`` (the market) and ``e`` (idiosyncratic) independent standard normals. ``mu``,
    ``sigma`` and ``beta`` are one number or one per asset. The market part of a bar is split in
    ``overnight_frac`` of its variance before the open and the rest after: overnight gaps move
    every asset with the market, idiosyncratic news arrives between open and close.
    """

    n_assets: int = 8
    mu: float | tuple[float, ...] = 0.05  # drift of the log price
    sigma: float | tuple[float, ...] = 0.20  # idiosyncratic volatility
    beta: float | tuple[float, ...] = 1.0
    factor_sigma: float = 0.15
    overnight_frac: float = 0.2
    start_price: float = 100.0
    bars_per_year: float = 252.0

    def __post_init__(self):
        if not (isinstance(self.n_assets, int) and self.n_assets >= 1):
            raise ConfigError(f"market.n_assets: must be a positive integer, got {self.n_assets!r}")
        if (self.parameters()[1] < 0).any():
            raise ConfigError(f"market.sigma: must be >= 0, got {self.sigma!r}")
        rules = {"factor_sigma": (">= 0", lambda v: v >= 0), "overnight_frac": ("in [0, 1]", lambda v: 0 <= v <= 1),
                 "start_price": ("> 0", lambda v: v > 0), "bars_per_year": ("> 0", lambda v: v > 0)}
        for key, (rule, ok) in rules.items():
            value = getattr(self, key)
            if not (finite_number(value) and ok(value)):
                raise ConfigError(f"market.{key}: must be a finite number {rule}, got {value!r}")

    def parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``mu``, ``sigma`` and ``beta``, each ``[n_assets]``."""
        return tuple(per_asset(getattr(self, key), self.n_assets, f"market.{key}") for key in ("mu", "sigma", "beta"))

    def paths(self, keys: np.ndarray, n_bars: int) -> tuple[np.ndarray, np.ndarray]:
        """Log open and log close of the markets of ``keys``, each ``[n_bars, len(keys), n_assets]``.

        Asset ``k`` of a market draws from the market's substream ``1 + k``: the layout of the draws
        is the layout of the paths, and a market's paths do not depend on its batch."""
        m, k, dt = len(keys), self.n_assets, 1.0 / self.bars_per_year
        mu, sigma, beta = self.parameters()
        z = rng.normal(rng.substream(keys, 0), 2 * n_bars) * (self.factor_sigma * math.sqrt(dt))
        overnight = z[:n_bars, :, None] * math.sqrt(self.overnight_frac)
        market = overnight + z[n_bars:, :, None] * math.sqrt(1 - self.overnight_frac)
        asset_keys = np.stack([rng.substream(keys, 1 + j) for j in range(k)], axis=1).ravel()
        returns = rng.normal(asset_keys, n_bars).reshape(n_bars, m, k)
        returns *= sigma * math.sqrt(dt)
        returns += beta * market
        returns += mu * dt
        log_close = cumsum_time(returns.reshape(n_bars, m * k)).reshape(n_bars, m, k)
        log_close += math.log(self.start_price)
        log_open = beta * overnight + self.overnight_frac * mu * dt
        log_open[1:] += log_close[:-1]
        log_open[0] += math.log(self.start_price)
        return log_open, log_close


@dataclass(frozen=True)
class Panel:
    """Validated bars of several symbols aligned on the union of their timestamps (see the module
    docstring for missing bars). Prices are ``[n_bars, n_assets]`` float64; ``ret_pct`` is each bar's
    close-to-close log return in percent (float32, 0 where the previous close is unknown)."""

    source: str
    sha256: str
    symbols: tuple[str, ...]
    time: np.ndarray
    open: np.ndarray
    close: np.ndarray
    tradable: np.ndarray
    ret_pct: np.ndarray

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    def __len__(self) -> int:
        return len(self.time)


@dataclass(frozen=True)
class PanelReplay:
    """Episodes are windows of the bars of ``split`` (``train``, ``validation``, ``test`` by
    ``time_splits(len(panel), fractions, embargo)``, or ``all``), never reaching past them;
    ``sampling``: a seeded ``random`` start per episode, or always the ``first`` bar of the split."""

    panel: Panel
    split: str = "train"
    fractions: tuple[float, ...] = (0.6, 0.2, 0.2)
    embargo: int = 20
    sampling: str = "random"
    bars: tuple[int, int] = field(init=False)

    def __post_init__(self):
        if self.split not in (*SPLITS, "all"):
            raise ConfigError(f"split: unknown split {self.split!r}; allowed: {', '.join(SPLITS)}, all")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling: unknown sampling {self.sampling!r}; allowed: {', '.join(SAMPLINGS)}")
        check_fractions(self.fractions, "fractions")
        if not (isinstance(self.embargo, int) and self.embargo >= 0):
            raise ConfigError(f"embargo: must be a non-negative integer (bars), got {self.embargo!r}")
        n = len(self.panel)
        bars = (0, n) if self.split == "all" else time_splits(n, self.fractions, self.embargo)[self.split]
        object.__setattr__(self, "bars", bars)

    @property
    def n_assets(self) -> int:
        return self.panel.n_assets

    def check_fits(self, n_bars: int) -> None:
        start, end = self.bars
        if n_bars > end - start:
            raise DataError(
                f"{self.panel.source}: an episode needs {n_bars} bars (window + episode_bars + 1) but split="
                f"{self.split} has {max(end - start, 0)} (of {len(self.panel)}); shorten window or episode_bars, "
                "or give the split more bars (fractions)")

    def starts(self, keys: np.ndarray, n_bars: int) -> np.ndarray:
        """The first panel bar of each episode of ``keys``."""
        self.check_fits(n_bars)
        start, end = self.bars
        if self.sampling == "first":
            return np.full(len(keys), start, dtype=np.int64)
        n_starts = end - start - n_bars + 1
        u = rng.uniform(rng.substream(keys, 0), 1)[0]
        return start + np.minimum((u * n_starts).astype(np.int64), n_starts - 1)

    def touched(self) -> dict[str, dict]:
        """Per symbol, the bars every episode of this replay lies in (the contamination guard's record)."""
        start, end = self.bars
        p = self.panel
        records = {}
        for k, symbol in enumerate(p.symbols):
            rows = start + np.flatnonzero(p.tradable[start:end, k])
            if len(rows):
                records[symbol] = bars_record(p.sha256, f"{p.source}:{symbol}", p.time[rows], p.close[rows, k])
        return records


def make_market(spec: Mapping) -> FactorModel | PanelReplay:
    """A market from plain data (YAML, JSON, Gymnasium kwargs): with ``path``, a ``PanelReplay`` of that
    long-format file (keys ``path, symbols, time_format`` for ``load_panel``, the rest ``PanelReplay``'s);
    otherwise ``FactorModel``'s parameters (lists for per-asset values)."""
    spec = dict(spec)
    replay, load_keys = "path" in spec, ("path", "symbols", "time_format")
    loading = {key: spec.pop(key) for key in load_keys if key in spec} if replay else {}
    allowed = ([*load_keys, *(f.name for f in fields(PanelReplay) if f.init and f.name != "panel")] if replay
               else [f.name for f in fields(FactorModel)])
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ConfigError(f"market.{unknown[0]}: unknown key; allowed: {', '.join(allowed)}")
    if replay:
        return PanelReplay(load_panel(**loading), **spec)
    return FactorModel(**{key: tuple(v) if isinstance(v, list) else v for key, v in spec.items()})


def load_panel(path: str | Path, symbols: list[str] | None = None, time_format: str | None = None) -> Panel:
    """Read a long-format CSV or Parquet file (one row per time and symbol; columns ``time, symbol,
    open, high, low, close`` in any case, ``volume`` optional and unused) and align ``symbols`` (all
    the file's, sorted, by default). Every problem is a ``DataError`` naming the file, the column,
    the first bad row (1 = the first data row) and the fix."""
    import pandas as pd

    path = Path(path).expanduser()
    frame = _read_table(path)
    source = str(path)
    by_lower = {str(c).lower(): c for c in frame.columns}
    missing = [c for c in LONG_COLUMNS if c not in by_lower]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; a long-format file has one row per time "
                        f"and symbol with columns {', '.join(LONG_COLUMNS)}; the file has {list(frame.columns)}")
    frame = frame.rename(columns={by_lower[c]: c for c in LONG_COLUMNS})
    names = frame["symbol"].astype(str).to_numpy()
    symbols = _pick_symbols(source, names, symbols)
    rows = np.flatnonzero(np.isin(names, symbols))
    code = pd.Categorical(names[rows], categories=symbols).codes.astype(np.int64)
    time, prices = _checked_rows(source, frame, rows, time_format)
    _check_order(source, frame, rows, code, time)
    return _align(source, file_sha256(path), tuple(symbols), code, time, prices)


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty (no header, no rows)") from None
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'openclaw_rl[data]' ({err})") from None
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def _pick_symbols(source: str, names: np.ndarray, symbols) -> list[str]:
    available = sorted(set(names.tolist()))
    if symbols is None:
        if not available:
            raise DataError(f"{source}: no data rows (the file has only a header)")
        return available
    symbols = [str(s) for s in symbols]
    unknown = [s for s in symbols if s not in available]
    if unknown:
        raise DataError(f"{source}: column 'symbol': no rows of {unknown}; the file's symbols are {available}; "
                        "pass symbols=[...] from those")
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice or not symbols:
        raise ConfigError(f"symbols: needs distinct symbols, at least one; got {symbols}")
    return symbols


def _where(frame, rows: np.ndarray, i: int) -> str:
    """Row ``i`` of the picked ``rows``, as a person finds it in the file."""
    row = int(rows[i])
    return f"row {row + 1} (symbol {frame['symbol'].iloc[row]!r}, time {frame['time'].iloc[row]!r})"


def _checked_rows(source: str, frame, rows: np.ndarray, time_format: str | None) -> tuple[np.ndarray, dict]:
    """The picked rows' timestamps (int64 ns) and prices, each checked."""
    import pandas as pd

    picked = frame.iloc[rows]
    time = pd.to_datetime(picked["time"], format=time_format, errors="coerce")
    bad = time.isna().to_numpy()
    if bad.any():
        raise DataError(f"{source}: column 'time': missing or unparseable time at {_where(frame, rows, int(np.argmax(bad)))}"
                        "; fix the cell, or pass time_format=...")
    prices = {}
    for column in ("open", "high", "low", "close"):
        numbers = pd.to_numeric(picked[column], errors="coerce").to_numpy(dtype=np.float64)
        for bad, what in ((~np.isfinite(numbers), "missing or non-numeric price"), (numbers <= 0, "non-positive price")):
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(f"{source}: column {column!r}: {what} {picked[column].iloc[i]} at "
                                f"{_where(frame, rows, i)}; correct that row or delete it (the bar is then missing)")
        prices[column] = numbers
    body_high = np.maximum(prices["open"], prices["close"])
    body_low = np.minimum(prices["open"], prices["close"])
    bad = (prices["high"] < body_high) | (prices["low"] > body_low)
    if bad.any():
        raise DataError(f"{source}: columns 'high'/'low': do not bracket open/close at "
                        f"{_where(frame, rows, int(np.argmax(bad)))}; are the columns swapped?")
    return time.to_numpy().astype("datetime64[ns]").astype(np.int64), prices


def _check_order(source: str, frame, rows: np.ndarray, code: np.ndarray, time: np.ndarray) -> None:
    """Each symbol's rows have distinct timestamps (anywhere in the file), in ascending file order."""
    position = np.arange(len(code))
    for order, bad, what, fix in (
        (np.lexsort((position, time, code)), np.equal, "duplicate (time, symbol)", "keep one of the two rows"),
        (np.lexsort((position, code)), np.less, "time earlier than the symbol's previous row",
         "sort the file by time within each symbol"),
    ):
        found = (code[order][1:] == code[order][:-1]) & bad(time[order][1:], time[order][:-1])
        if found.any():
            i = int(np.argmax(found))
            raise DataError(f"{source}: column 'time': {what} at {_where(frame, rows, int(order[i + 1]))} (the "
                            f"symbol's previous row: {_where(frame, rows, int(order[i]))}); {fix}")


def _align(source: str, sha256: str, symbols: tuple[str, ...], code: np.ndarray, time: np.ndarray,
           prices: dict) -> Panel:
    """The rows on the union timeline, missing bars carried (module docstring)."""
    stamps = np.unique(time)
    n_bars, k = len(stamps), len(symbols)
    at = np.searchsorted(stamps, time)
    tradable = np.zeros((n_bars, k), dtype=bool)
    tradable[at, code] = True
    raw_open, raw_close = np.ones((n_bars, k)), np.ones((n_bars, k))
    raw_open[at, code] = prices["open"]
    raw_close[at, code] = prices["close"]
    last = np.maximum.accumulate(np.where(tradable, np.arange(n_bars)[:, None], -1), axis=0)
    known = last >= 0
    close = np.where(known, raw_close[np.maximum(last, 0), np.arange(k)], 1.0)
    open_ = np.where(tradable, raw_open, close)
    ret = np.zeros((n_bars, k), dtype=np.float32)
    ret[1:] = np.where(known[:-1], np.log(close[1:] / close[:-1]) * 100, 0.0)
    return Panel(source, sha256, symbols, stamps.astype("datetime64[ns]"), open_, close, tradable, ret)
