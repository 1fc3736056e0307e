"""The contamination guard knows data by its bars, not its file: every rewriting of a benchmark task's
test bars that a user (or an adversary) might train on is found, and other data is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from openclaw_rl.benchmark.guard import contamination
from openclaw_rl.benchmark.tasks import TASKS
from openclaw_rl.rock import EnvConfig
from openclaw_rl.rock.config import touched
from openclaw_rl.rock.historical import builtin_path
from openclaw_rl.rock.splits import bars_record, overlap, shared_bars

ROOT = Path(__file__).resolve().parents[1]
GOOGL, _, _ = builtin_path("googl_daily")
CLOSE_ONLY = {"time": "date", "close": "close", "open": None, "high": None, "low": None, "volume": None}


def googl_test() -> dict:
    """What scoring the benchmark's googl_daily task touches: its test split's bars."""
    return touched(TASKS["googl_daily"].env_config("test", 8), (0, 8))


def trained_on(path, **data) -> list[dict]:
    """The lineage of a run that trained on every bar of ``path`` (as ``data.split=all`` does)."""
    env = EnvConfig.from_mapping(market={"kind": "historical"}, data={"path": str(path), "split": "all", **data})
    return [{**touched(env, (0, 1)), "use": "train", "by": str(path)}]


def frame() -> pd.DataFrame:
    return pd.read_csv(GOOGL)


def variants(tmp_path) -> dict:
    """Rewritings of the GOOGL file: ``{name: (path, data keys)}``."""
    out = {}

    def csv(name, df, data=None, **kwargs):
        out[name] = (tmp_path / f"{name}.csv", data or {})
        df.to_csv(out[name][0], index=False, **kwargs)

    df = frame()
    out["same bytes"] = (tmp_path / "copy.csv", {})
    out["same bytes"][0].write_bytes(GOOGL.read_bytes())
    csv("crlf line endings", df, lineterminator="\r\n")
    csv("2-decimal floats", df, float_format="%.2f")
    csv("an extra column", df.assign(Extra=np.arange(len(df))))
    csv("reordered columns", df[list(reversed(df.columns))])
    out["parquet"] = (tmp_path / "googl.parquet", {})
    df.to_parquet(out["parquet"][0])
    csv("one bar dropped", df.drop(index=len(df) - 200))
    us = df.assign(Date=pd.to_datetime(df["Date"]).dt.strftime("%m/%d/%Y"))
    csv("US dates", us, {"time_format": "%m/%d/%Y"})
    csv("a subset of the rows", df.iloc[-300:-150])
    two_day = df.assign(Date=pd.to_datetime(df["Date"])).set_index("Date").resample("2D").last().dropna().reset_index()
    csv("2-day resampling", two_day)
    lower = df[["Date", "Close"]].rename(columns={"Date": "date", "Close": "close"})
    csv("close only, lowercase", lower, {"columns": CLOSE_ONLY})
    return out


def test_every_rewriting_of_the_test_bars_is_contamination(tmp_path):
    test = googl_test()
    for name, (path, data) in variants(tmp_path).items():
        found = contamination(trained_on(path, **data), test)
        assert found and "overlaps the test split's bars" in found[0], name


def test_the_quickstart_price_file_is_googl_before_its_test_split_and_its_last_closes_would_be_refused(tmp_path):
    """examples/prices.csv holds GOOGL's first 600 closes (inside googl_daily's train split): a policy trained
    on it can be scored on googl_daily. The file it replaced, the last 600 closes, is refused."""
    assert not contamination(trained_on(ROOT / "examples" / "prices.csv"), googl_test())
    last = frame().iloc[-600:]
    pd.DataFrame({"date": last["Date"], "close": last["Close"].map(lambda x: f"{x:.4f}")}).to_csv(
        tmp_path / "last.csv", index=False)
    assert contamination(trained_on(tmp_path / "last.csv"), googl_test())


def test_the_tasks_own_train_split_other_instruments_and_other_dates_are_clean(tmp_path):
    test = googl_test()
    train = touched(TASKS["googl_daily"].env_config("train", 8), (0, 8))
    assert not contamination([{**train, "use": "train", "by": "run"}], test)
    df = frame()
    rng = np.random.default_rng(0)  # another instrument on the same dates, at GOOGL's price level
    walk = df["Close"].iloc[0] * np.exp(np.cumsum(rng.normal(0.0005, 0.015, len(df))))
    other = df.assign(Open=walk, High=walk * 1.01, Low=walk * 0.99, Close=walk)
    other.to_csv(tmp_path / "other.csv", index=False)
    assert not contamination(trained_on(tmp_path / "other.csv"), test)
    early = df.iloc[: len(df) // 2]  # GOOGL itself, before the test range
    early.to_csv(tmp_path / "early.csv", index=False)
    assert not contamination(trained_on(tmp_path / "early.csv"), test)


def test_shared_bars_counts_found_bars_and_refuses_chance_matches():
    days = np.arange("2020-01-01", "2020-03-01", dtype="datetime64[D]")
    close = 100.0 + np.arange(len(days), dtype=float)
    whole = bars_record("a", "a.csv", days, close)
    assert shared_bars(whole, whole) == len(days)
    part = bars_record("b", "b.csv", days[10:20], close[10:20])
    assert shared_bars(part, whole) == 10 and shared_bars(whole, part) == 10  # only bars inside the span count
    shifted = bars_record("c", "c.csv", days + np.timedelta64(3, "D"), close)  # other time stamps, same closes
    assert shared_bars(shifted, whole) == len(days) - 3
    far = bars_record("d", "d.csv", days + np.timedelta64(30, "D"), close)  # beyond NEAR_BARS: other bars
    assert shared_bars(far, whole) == 0
    chance = close.copy()
    chance[::3] += 0.5  # a third of the closes differ: still the same series, mostly
    assert shared_bars(bars_record("e", "e.csv", days, chance), whole) == len(days) - len(days[::3])
    chance[::3] -= 0.5
    chance[: 2 * len(days) // 3] *= 1.01  # two thirds differ: other prices with chance equalities
    assert shared_bars(bars_record("f", "f.csv", days, chance), whole) == 0
    written = bars_record("g", "g.csv", days, np.round(close * 1.00003, 2))  # formatting within SAME_PRICE
    assert overlap(written, whole)


def test_records_written_before_content_was_kept_compare_by_file_hash():
    old = {"kind": "bars", "sha256": "ab", "source": "a.csv", "first": "2020-01-01", "last": "2020-02-01"}
    new = bars_record("ab", "a.csv", np.array(["2020-01-15", "2020-03-01"], dtype="datetime64[D]"), np.ones(2))
    assert overlap(old, new) and not overlap({**old, "sha256": "cd"}, new)
    with pytest.raises(KeyError):
        shared_bars(old, new)
