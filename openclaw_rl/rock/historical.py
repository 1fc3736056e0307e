"""Historical replay: OHLCV bars from a user's CSV/Parquet file or a built-in dataset.

Data is validated in full when loaded, before any env exists: every problem is reported with
the file, the column and the first bad row. Episodes are windows of the series, each starting
at a seeded offset, so replay shares the interface (and the seeding) of the synthetic models.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openclaw_rl.rock import rng
from openclaw_rl.rock.features import FeaturePipeline
from openclaw_rl.rock.markets import NO_REGIME, Bars
from openclaw_rl.rock.splits import bars_record, file_sha256
from openclaw_rl.errors import DataError

PRICE_FIELDS = ("open", "high", "low", "close")

# Real data that ships inside the gym-anytrading package (install extra: openclaw_rl[data]).
BUILTIN_DATASETS = {
    "googl_daily": ("datasets/data/STOCKS_GOOGL.csv", "Date", "%Y-%m-%d"),
    "eurusd_hourly": ("datasets/data/FOREX_EURUSD_1H_ASK.csv", "Time", "%d.%m.%Y %H:%M:%S.%f"),
}
log = logging.getLogger("openclaw_rl.rock")
_DEFAULT_COLUMNS = {"time": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}


@dataclass
class DataConfig:
    """Where historical bars come from and how their columns are named.

    ``columns`` maps our field (time, open, high, low, close, volume) to the file's column;
    ``volume`` may map to null. ``start`` / ``end`` keep only bars in that time range.
    ``sampling``: ``random`` episode start offsets (seeded), or ``first`` (always the split's first bar).
    ``split``: the range of the series that episodes are drawn from (``rock/splits.py``): ``train``
    (the default: training never sees later bars), ``validation`` (the held-out evaluation that
    returns a run's objective), ``test`` (read by the benchmark only), or ``all`` (no split, e.g.
    walk-forward, which cuts the series itself with ``start`` / ``end``). ``split_fractions``
    sizes train, validation and test; ``embargo`` bars lie unused between consecutive splits.

    Close-only series (one price column, e.g. a commodity): map ``open``, ``high`` and ``low``
    all to null, e.g. ``env.data.columns={time: date, open: null, high: null, low: null,
    close: price, volume: null}`` (the env config merges ``columns`` over the defaults, so a
    field left out keeps its default column); mapping only some of the three to null is an
    error. Each bar then gets open = the previous row's close (the first row: its own close),
    high = max(open, close), low = min(open, close). So an order fills at the previous close,
    and the observed high/low range is the absolute close-to-close log return.

    ``drop_missing``: with false (the default) an empty price cell is an error naming the first
    such row; with true, rows with an empty cell in any mapped price column are dropped (a
    warning says how many) before anything else is checked or derived. Cells that are present
    but not numbers, non-positive, or infinite are errors either way.

    ``features``: numeric columns observed as they are (``rock/features.py``). Rows before the first
    one where every such column has a value (a column's own warm-up) are not observed; an empty or
    non-numeric cell after it is an error naming the row (fill it in the file).
    """

    path: str | None = None
    builtin: str | None = None
    columns: dict[str, str | None] = field(default_factory=lambda: dict(_DEFAULT_COLUMNS))
    time_format: str | None = None
    start: str | None = None
    end: str | None = None
    sampling: str = "random"
    drop_missing: bool = False
    split: str = "train"
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    embargo: int = 20
    features: list[str] = field(default_factory=list)


def builtin_path(name: str) -> tuple[Path, str, str]:
    """The CSV path, time column and time format of a built-in dataset."""
    if name not in BUILTIN_DATASETS:
        raise DataError(f"env.data.builtin: unknown dataset {name!r}; allowed: {', '.join(BUILTIN_DATASETS)}")
    rel, time_col, fmt = BUILTIN_DATASETS[name]
    try:
        root = importlib.resources.files("gym_anytrading")
    except ModuleNotFoundError:
        raise DataError(
            f"env.data.builtin={name} needs the gym-anytrading package, which ships the CSV: "
            "pip install 'openclaw_rl[data]' (or: pip install gym-anytrading)"
        ) from None
    return Path(str(root / rel)), time_col, fmt


@dataclass(frozen=True)
class PriceSeries:
    """A validated OHLCV series (float64 arrays) with its timestamps; logs precomputed for replay."""

    source: str
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None
    sha256: str = ""  # of the file's bytes (the contamination guard's identity of the data)
    features: np.ndarray | None = None  # [T, C] float64: DataConfig.features, in order (NaN before all have values)

    def __len__(self) -> int:
        return len(self.close)

    def log_prices(self) -> dict[str, np.ndarray]:
        return {f: np.log(getattr(self, f)) for f in PRICE_FIELDS}


def load_series(config: DataConfig) -> PriceSeries:
    """Read and validate the bars named by ``config``."""
    import pandas as pd

    columns = dict(config.columns)
    time_format = config.time_format
    if config.builtin is not None:
        path, time_col, time_format = builtin_path(config.builtin)
        columns = {**_DEFAULT_COLUMNS, "time": time_col}
    elif config.path is not None:
        path = Path(config.path).expanduser()
    else:
        raise DataError("historical data needs env.data.path=FILE (CSV or Parquet) or env.data.builtin=NAME")
    unknown = set(columns) - {"time", "volume", *PRICE_FIELDS}
    if unknown:
        raise DataError(f"env.data.columns: unknown field(s) {sorted(unknown)}; allowed: time, open, high, low, close, volume")
    if not path.is_file():
        raise DataError(f"{path}: no such file (env.data.path)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty (no header, no rows)") from None
    elif suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except ImportError as err:
            raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'openclaw_rl[data]' ({err})") from None
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    columns = _match_columns(list(frame.columns), columns, config.builtin is None and config.columns == _DEFAULT_COLUMNS,
                             str(path))
    series = validate_frame(frame, str(path), columns, time_format, config.start, config.end, config.drop_missing,
                            tuple(config.features))
    return dataclasses.replace(series, sha256=file_sha256(path))


_CLOSE_ONLY_SAID: set[str] = set()


def _match_columns(names: list[str], columns: dict, default: bool, source: str) -> dict:
    """``columns`` with each name the file lacks replaced by the file's one column of that name in another
    case (``date`` for ``Date``). With the default mapping, a file without open, high and low (any case)
    is close-only, and one without volume has none: ``date,close`` needs no mapping."""
    folded: dict[str, list[str]] = {}
    for name in names:
        folded.setdefault(str(name).lower(), []).append(name)
    matched = {}
    for field_name, name in columns.items():
        same = folded.get(str(name).lower(), []) if name is not None else []
        matched[field_name] = name if name is None or name in names or len(same) != 1 else same[0]
    if default:
        absent = [f for f in ("open", "high", "low") if matched[f] not in names]
        if len(absent) == 3 and matched["close"] in names:
            if source not in _CLOSE_ONLY_SAID:  # once per file: a run loads it for training and evaluation
                _CLOSE_ONLY_SAID.add(source)
                log.info("%s: no open, high or low column: a close-only series (see env.data.columns)", source)
            matched.update(open=None, high=None, low=None)
        if matched.get("volume") not in names:
            matched["volume"] = None
    return matched


def _row(frame, position: int) -> str:
    """A human row reference: the data row number (1 = first data row) and its index label."""
    return f"row {position + 1} (index {frame.index[position]!r})"


def validate_frame(frame, source: str, columns: dict, time_format: str | None, start=None, end=None,
                   drop_missing: bool = False, features: tuple[str, ...] = ()) -> PriceSeries:
    """Check every column and row; raise ``DataError`` naming the first problem (see ``DataConfig``
    for close-only series and ``drop_missing``)."""
    import pandas as pd

    derived = [f for f in ("open", "high", "low") if columns.get(f) is None]
    if derived and len(derived) < 3:
        given = ", ".join(f"{f}={columns.get(f)!r}" for f in ("open", "high", "low"))
        raise DataError(f"env.data.columns: map open, high and low all to columns, or all to null for a "
                        f"close-only series; got {given}")
    required = {f: columns.get(f) for f in ("time", *PRICE_FIELDS) if f not in derived}
    missing = [f"{name} (field {f})" for f, name in required.items() if name is None or name not in frame.columns]
    vol_col = columns.get("volume")
    if vol_col is not None and vol_col not in frame.columns:
        missing.append(f"{vol_col} (field volume; map it to null if the file has none)")
    missing += [f"{name} (env.data.features)" for name in features if name not in frame.columns]
    if missing:
        hint = "; for a close-only series map open, high and low to null" if not derived else ""
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; the file has {list(frame.columns)}{hint}")
    if len(frame) == 0:
        raise DataError(f"{source}: no data rows (the file has only a header)")
    rows = np.arange(len(frame))  # positions in the file of the rows kept, for error messages
    prices = [required[f] for f in PRICE_FIELDS if f in required]
    if drop_missing:
        empty = frame[prices].isna().any(axis=1).to_numpy()
        if empty.any():
            log.warning("%s: dropped %d of %d rows with a missing price (env.data.drop_missing=true); the first: %s",
                        source, int(empty.sum()), len(frame), _row(frame, int(np.argmax(empty))))
            rows = np.flatnonzero(~empty)
    original, frame = frame, frame.iloc[rows]

    def at(position: int) -> str:
        return _row(original, int(rows[position]))

    if len(frame) < 2:
        raise DataError(f"{source}: needs at least 2 rows, has {len(frame)}")
    time = pd.to_datetime(frame[required["time"]], format=time_format, errors="coerce")
    bad = time.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: column {required['time']!r}: missing or unparseable time at {at(i)}")
    values = {}
    for f in (*PRICE_FIELDS, "volume"):
        col = columns.get(f)
        if col is None:
            continue
        numbers = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            i = int(np.argmax(bad))
            hint = ("; env.data.drop_missing=true drops rows with missing prices"
                    if f != "volume" and pd.isna(frame[col].iloc[i]) else "")
            raise DataError(f"{source}: column {col!r}: missing or non-numeric value {frame[col].iloc[i]} at {at(i)}{hint}")
        bad = numbers <= 0 if f != "volume" else numbers < 0
        if bad.any():
            i = int(np.argmax(bad))
            kind = "non-positive price" if f != "volume" else "negative volume"
            raise DataError(f"{source}: column {col!r}: {kind} {numbers[i]} at {at(i)}")
        values[f] = numbers
    stamps = time.to_numpy()
    order = np.diff(stamps.astype("datetime64[ns]").astype(np.int64))
    for test, what in ((order == 0, "duplicate timestamp"), (order < 0, "timestamps not sorted ascending")):
        if test.any():
            i = int(np.argmax(test)) + 1
            raise DataError(f"{source}: column {required['time']!r}: {what} {time.iloc[i]} at {at(i)}")
    if derived:  # close-only: see DataConfig
        close = values["close"]
        values["open"] = np.concatenate([close[:1], close[:-1]])
        values["high"] = np.maximum(values["open"], close)
        values["low"] = np.minimum(values["open"], close)
    hi, lo = values["high"], values["low"]
    bad = (hi < np.maximum(values["open"], values["close"])) | (lo > np.minimum(values["open"], values["close"]))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: columns {columns['high']!r}/{columns['low']!r}: high/low do not bracket open/close at {at(i)}")
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= stamps >= np.datetime64(pd.Timestamp(start))
    if end is not None:
        keep &= stamps <= np.datetime64(pd.Timestamp(end))
    if keep.sum() < 2:
        raise DataError(f"{source}: fewer than 2 bars between env.data.start={start} and env.data.end={end}")
    return PriceSeries(
        source, stamps[keep], *(values[f][keep] for f in PRICE_FIELDS), values["volume"][keep] if "volume" in values else None,
        features=_feature_columns(frame, features, keep, source, lambda i: at(int(np.flatnonzero(keep)[i]))),
    )


def _feature_columns(frame, names: tuple[str, ...], keep: np.ndarray, source: str, at) -> np.ndarray | None:
    """The ``names`` columns of the rows kept as ``[T, C]`` float64; after the first row where all have a
    value, a missing one is an error."""
    import pandas as pd

    if not names:
        return None
    values = np.stack([pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)[keep] for name in names], 1)
    finite = np.isfinite(values)
    rows = finite.all(1)
    if not rows.any():
        raise DataError(f"{source}: feature column(s) {list(names)} have no row where all are numbers")
    first = int(np.argmax(rows))
    bad = ~finite[first:]
    if bad.any():
        i, c = np.argwhere(bad)[0]
        raise DataError(f"{source}: column {names[c]!r} (env.data.features): missing or non-numeric value "
                        f"{frame[names[c]].to_numpy()[keep][first + i]} at {at(first + i)}; fill it in the file")
    return values


class HistoricalReplay:
    """Episodes are windows of the bars ``[start, end)`` of a real series (one split of it, see
    ``rock/splits.py``), never reaching past them; ``random`` picks a seeded start per episode.

    ``features`` (``rock/features.py``) are computed once over the whole series: causal, so a bar's
    values read only the bars before it, as a trader's would. Episodes start late enough that the
    first bar observed (``window`` bars in) has every feature."""

    def __init__(self, series: PriceSeries, sampling: str = "random", bars: tuple[int, int] | None = None,
                 split: str = "all", features: FeaturePipeline | None = None, window: int = 0):
        self.series = series
        self.sampling = sampling
        self.start, self.end = bars if bars is not None else (0, len(series))
        self.split = split
        self._logs = series.log_prices()
        self.features = None
        if features is not None:
            column = {f: self._logs[f][:, None] for f in PRICE_FIELDS}
            values = features.compute(*column.values(), None if series.volume is None else series.volume[:, None],
                                      None if series.features is None else series.features[:, None], batched=False)
            first = max(int(np.argmax(np.isfinite(values[:, 0]).all(-1))), features.warmup)
            features.check_finite(values, first)
            self.features = values[:, 0]
            self.start = max(self.start, first - window)

    def check_fits(self, n_bars: int) -> None:
        if n_bars > self.end - self.start:
            raise DataError(
                f"{self.series.source}: an episode needs {n_bars} bars (env.window + env.episode_bars + 1) "
                f"but env.data.split={self.split} has {max(self.end - self.start, 0)} (of {len(self.series)}); shorten "
                "env.window or env.episode_bars, or give the split more bars (env.data.split_fractions)"
            )

    def touched(self) -> dict:
        """The bars every episode of this replay lies in (the contamination guard's record)."""
        bars = slice(self.start, self.end)
        return bars_record(self.series.sha256, self.series.source, self.series.time[bars], self.series.close[bars])

    def sample(self, keys: np.ndarray, n_bars: int) -> Bars:
        self.check_fits(n_bars)
        n_starts = self.end - self.start - n_bars + 1
        if self.sampling == "first":
            starts = np.full(len(keys), self.start, dtype=np.int64)
        else:
            u = rng.uniform(rng.substream(keys, 0), 1)[0]
            starts = self.start + np.minimum((u * n_starts).astype(np.int64), n_starts - 1)
        index = np.arange(n_bars)[:, None] + starts[None, :]
        regime = np.full(index.shape, NO_REGIME, dtype=np.int8)
        return Bars(*(self._logs[f][index] for f in PRICE_FIELDS), regime,
                    features=None if self.features is None else self.features[index])
