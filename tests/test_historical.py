"""Historical replay: built-in real data, user files, and errors that name file, column and row."""

import numpy as np
import pandas as pd
import pytest

from openclaw_rl.rock import DataError, MarketEnv, MarketVecEnv
from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.historical import DataConfig, load_series


def write_csv(tmp_path, n=80):
    close = 100 * np.exp(np.cumsum(np.full(n, 0.001)))
    frame = pd.DataFrame({
        "day": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "o": close * 0.999, "h": close * 1.01, "l": close * 0.98, "c": close, "v": 1000.0,
    })
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    return path, frame


COLUMNS = {"time": "day", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"}


def historical(path, **extra):
    return dict(market={"kind": "historical"}, data={"path": str(path), "columns": COLUMNS, "split": "all"}, window=5,
                episode_bars=20, **extra)


def test_builtin_googl_daily_replays_real_prices():
    series = load_series(DataConfig(builtin="googl_daily"))
    assert len(series) == 2335 and str(series.time[0])[:10] == "2009-05-22"
    env = MarketEnv(market={"kind": "historical"}, data={"builtin": "googl_daily", "sampling": "first"}, window=4)
    env.reset(seed=0)
    assert env.engine.close[4, 0] == pytest.approx(series.close[4])
    assert env.engine.open[5, 0] == pytest.approx(series.open[5])


def test_builtin_eurusd_hourly_loads():
    series = load_series(DataConfig(builtin="eurusd_hourly"))
    assert len(series) == 6225 and series.close[0] == pytest.approx(1.05227)


def test_csv_with_column_mapping_and_seeded_random_starts(tmp_path):
    path, frame = write_csv(tmp_path)
    envs = MarketVecEnv(num_envs=8, **historical(path))
    envs.reset(seed=0)
    first_closes = envs.engine.close[5]
    assert set(np.round(first_closes, 6)) <= set(np.round(frame["c"].to_numpy(), 6))
    assert len(set(first_closes)) > 1


def test_parquet_round_trip(tmp_path):
    path, frame = write_csv(tmp_path)
    parquet = tmp_path / "bars.parquet"
    frame.to_parquet(parquet)
    a = load_series(DataConfig(path=str(path), columns=COLUMNS))
    b = load_series(DataConfig(path=str(parquet), columns=COLUMNS))
    np.testing.assert_array_equal(a.close, b.close)


def test_date_range_filter(tmp_path):
    path, _ = write_csv(tmp_path)
    series = load_series(DataConfig(path=str(path), columns=COLUMNS, start="2020-01-11", end="2020-01-20"))
    assert len(series) == 10


@pytest.mark.parametrize("column,row,value,message", [
    ("c", 7, np.nan, r"column 'c': missing or non-numeric value nan at row 8"),
    ("o", 3, -1.0, r"column 'o': non-positive price -1.0 at row 4"),
    ("day", 10, "2020-01-10", r"column 'day': duplicate timestamp 2020-01-10 .* at row 11"),
    ("day", 12, "2019-01-01", r"column 'day': timestamps not sorted ascending .* at row 13"),
    ("day", 5, "not a date", r"column 'day': missing or unparseable time at row 6"),
    ("h", 9, 1.0, r"columns 'h'/'l': high/low do not bracket open/close at row 10"),
])
def test_bad_rows_are_named(tmp_path, column, row, value, message):
    path, frame = write_csv(tmp_path)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=str(path).replace(".", r"\.") + ": " + message):
        MarketEnv(**historical(path))


def test_column_names_match_in_any_case_and_a_date_close_file_needs_no_mapping(tmp_path):
    path, frame = write_csv(tmp_path)
    close = frame["c"].to_numpy()
    dates = pd.to_datetime(frame["day"])
    lower = tmp_path / "lower.csv"
    pd.DataFrame({"date": dates.dt.strftime("%Y-%m-%d"), "close": close}).to_csv(lower, index=False)
    series = load_series(DataConfig(path=str(lower)))  # the default mapping: Date, Open, ..., Volume
    np.testing.assert_array_equal(series.close, close)
    np.testing.assert_array_equal(series.open[1:], close[:-1])  # close-only: open is the previous close
    assert series.volume is None
    upper = tmp_path / "upper.csv"
    pd.DataFrame({"DATE": dates.dt.strftime("%Y-%m-%d"), "OPEN": frame["o"], "HIGH": frame["h"], "LOW": frame["l"],
                  "CLOSE": close, "VOLUME": 1.0}).to_csv(upper, index=False)
    series = load_series(DataConfig(path=str(upper)))
    np.testing.assert_array_equal(series.high, frame["h"].to_numpy())
    assert series.volume is not None
    partial = tmp_path / "partial.csv"  # open without high and low is not close-only: named, as before
    pd.DataFrame({"date": dates.dt.strftime("%Y-%m-%d"), "open": frame["o"], "close": close}).to_csv(partial, index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) High \(field high\), Low \(field low\)"):
        load_series(DataConfig(path=str(partial)))


def test_missing_column_is_named(tmp_path):
    path, frame = write_csv(tmp_path)
    frame.drop(columns="h").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) h \(field high\)"):
        MarketEnv(**historical(path))


def test_window_longer_than_data_fails_before_any_reset(tmp_path):
    path, _ = write_csv(tmp_path, n=30)
    with pytest.raises(DataError, match=r"needs 46 bars .* env\.data\.split=all has 30 \(of 30\)"):
        MarketEnv(**{**historical(path), "episode_bars": 40})


def test_missing_file_and_builtin_without_package_hint(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        MarketEnv(**historical(tmp_path / "nope.csv"))
    with pytest.raises(Exception, match="allowed: googl_daily, eurusd_hourly"):
        EnvConfig.from_mapping(market={"kind": "historical"}, data={"builtin": "spx"})


def test_builtin_dataset_without_the_package_says_how_to_get_it(monkeypatch):
    import importlib.resources

    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(DataError, match=r"pip install 'openclaw_rl\[data\]'"):
        load_series(DataConfig(builtin="googl_daily"))
