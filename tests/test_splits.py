"""Train / validation / test splits: disjoint, purged and embargoed by construction, training that
never reads a later bar (proved by changing the future), and the lineage every run records."""

import numpy as np
import pandas as pd
import pytest
import torch

from openclaw_rl.rock import ConfigError, DataError, MarketVecEnv
from openclaw_rl.rock.config import EnvConfig, touched, with_split
from openclaw_rl.rock.splits import SEED_RANGES, bars_record, overlap, seeds_record, time_splits
from openclaw_rl.roll.checkpoint import checkpoint_path, load_checkpoint
from openclaw_rl.roll.config import TRAIN_SEED_STRIDE, RunConfig
from openclaw_rl.roll.evaluate import EVAL_SEED_BASE
from openclaw_rl.roll.pipeline import run

N_BARS = 600


def test_time_splits_by_hand():
    # 600 bars, 20 embargoed twice: 560 usable -> train 336, validation 112, test the rest (600 - 488 = 112)
    assert time_splits(600, [0.6, 0.2, 0.2], 20) == {"train": (0, 336), "validation": (356, 468), "test": (488, 600)}
    assert time_splits(100, [0.5, 0.25, 0.25], 0) == {"train": (0, 50), "validation": (50, 75), "test": (75, 100)}


def test_seed_ranges_are_disjoint_and_ordered():
    ranges = [SEED_RANGES[s] for s in ("train", "validation", "test")]
    for (_, high), (low, _) in zip(ranges, ranges[1:]):
        assert high <= low
    assert EVAL_SEED_BASE == SEED_RANGES["validation"][0]


def write_prices(path, n=N_BARS, seed=0, future_from=None):
    """A daily OHLC file; with ``future_from``, every bar from that index on is replaced by another path."""
    rng = np.random.default_rng(seed)
    moves = rng.normal(0.0003, 0.012, n)
    if future_from is not None:
        moves[future_from:] = np.random.default_rng(seed + 1).normal(-0.002, 0.03, n - future_from)
    close = 100 * np.exp(np.cumsum(moves))
    open_ = np.r_[close[0], close[:-1]]
    pd.DataFrame({"Date": pd.bdate_range("2010-01-04", periods=n).strftime("%Y-%m-%d"), "Open": open_,
                  "High": np.maximum(open_, close) * 1.002, "Low": np.minimum(open_, close) * 0.998,
                  "Close": close, "Volume": 1.0}).to_csv(path, index=False)
    return path


def historical_env(path, split="train", **extra):
    return EnvConfig.from_mapping(market={"kind": "historical"}, data={"path": str(path), "split": split},
                                  window=8, episode_bars=30, **extra)


@pytest.mark.parametrize("sampling", ["random", "first"])
def test_every_episode_of_a_split_lies_inside_its_bars(tmp_path, sampling):
    path = write_prices(tmp_path / "p.csv")
    ranges = time_splits(N_BARS, [0.6, 0.2, 0.2], 20)
    for split, (low, high) in ranges.items():
        env = historical_env(path, split, n_envs=256)
        env.data.sampling = sampling
        envs = MarketVecEnv(config=env)
        envs.reset(seed=12345)
        close = env.make_market().series.close
        # each market's bars are one window of the series: where its first close sits in the series
        starts = np.array([int(np.flatnonzero(np.isclose(close, c, rtol=1e-12))[0]) for c in envs.engine.close[0]])
        np.testing.assert_allclose(envs.engine.close[:, 0], close[starts[0] : starts[0] + env.bars_per_episode])
        assert starts.min() >= low and starts.max() + env.bars_per_episode <= high, split
        if sampling == "first":
            assert (starts == low).all()
        else:
            assert len(set(starts)) > 50  # random windows cover the split
    (_, train_end), (val_start, val_end), (test_start, _) = ranges.values()
    assert val_start - train_end == 20 and test_start - val_end == 20  # embargo: no shared or adjacent bar


def train_on(path, run_dir, n_envs, steps):
    """A small IPA run on the default (train) split of a price file."""
    return run(RunConfig.from_mapping({
        "env": {"market": {"kind": "historical"}, "data": {"path": str(path)}, "window": 8, "episode_bars": 30,
                "n_envs": n_envs},
        "trainer": {"total_steps": steps, "rollout_steps": 32, "progress": "log"},
        "algo": {"num_minibatches": 2}, "eval": {"n_envs": n_envs},
    }), run_dir)


def test_training_never_reads_a_later_split(tmp_path):
    """Change every bar after the train split: the trained weights stay bit-identical, while the
    validation objective (which reads the later bars) changes."""
    ranges = time_splits(N_BARS, [0.6, 0.2, 0.2], 20)
    train_end = ranges["train"][1]
    results = {}
    for name, future in (("same", None), ("changed", train_end)):
        result = train_on(write_prices(tmp_path / f"{name}.csv", future_from=future), tmp_path / name, 8, 512)
        results[name] = (load_checkpoint(checkpoint_path(tmp_path / name))["policy"], result.objective)
    (same, objective_same), (changed, objective_changed) = results["same"], results["changed"]
    for key in same:
        assert torch.equal(same[key], changed[key]), key
    assert objective_same != objective_changed


def test_the_objective_reads_validation_not_test(tmp_path):
    """Changing only the test bars leaves the end-of-run objective unchanged."""
    test_start = time_splits(N_BARS, [0.6, 0.2, 0.2], 20)["test"][0]
    objectives = []
    for name, future in (("a", None), ("b", test_start)):
        objectives.append(train_on(write_prices(tmp_path / f"{name}.csv", future_from=future), tmp_path / name, 4, 128).objective)
    assert objectives[0] == objectives[1]


def test_split_errors_name_the_key(tmp_path):
    path = write_prices(tmp_path / "p.csv", n=200)
    with pytest.raises(ConfigError, match=r"env\.data\.split: unknown split 'holdout'"):
        historical_env(path, "holdout")
    with pytest.raises(ConfigError, match=r"env\.data\.split_fractions: needs three positive fractions"):
        EnvConfig.from_mapping(market={"kind": "historical"}, data={"path": str(path), "split_fractions": [0.5, 0.5]})
    with pytest.raises(ConfigError, match=r"env\.data\.embargo: must be a non-negative integer"):
        EnvConfig.from_mapping(market={"kind": "historical"}, data={"path": str(path), "embargo": -1})
    with pytest.raises(DataError, match=r"needs 39 bars .* env\.data\.split=validation has 32 \(of 200\)"):
        MarketVecEnv(config=historical_env(path, "validation"))
    with pytest.raises(ConfigError, match=r"env\.data\.split: training reads the train split .* got 'test'"):
        RunConfig.from_mapping({"env": {"market": {"kind": "historical"}, "data": {"path": str(path), "split": "test"}}})
    with pytest.raises(ConfigError, match=r"seed: must be an integer in \[0, 10995115\]"):
        RunConfig.from_mapping({"seed": 2**40 // TRAIN_SEED_STRIDE})


def test_touched_records_and_overlap(tmp_path):
    path = write_prices(tmp_path / "p.csv")
    train, test = (touched(historical_env(path, split), (0, 1)) for split in ("train", "test"))
    assert train["kind"] == "bars" and train["sha256"] == test["sha256"] and len(train["sha256"]) == 64
    assert not overlap(train, test)
    assert overlap(train, touched(historical_env(path, "all"), (0, 1)))
    other = write_prices(tmp_path / "q.csv", seed=5)  # another file: never overlaps, whatever its dates
    assert not overlap(train, touched(historical_env(other, "all"), (0, 1)))
    assert overlap(seeds_record(0, 10), seeds_record(9, 20)) and not overlap(seeds_record(0, 10), seeds_record(10, 20))
    assert not overlap(seeds_record(0, 10), bars_record("x", "f", np.array(["2020-01-01"], dtype="datetime64[D]"), np.ones(1)))
    assert touched(EnvConfig(), (5, 9)) == seeds_record(5, 9)


SMALL = {"env": {"n_envs": 8}, "trainer": {"total_steps": 256, "rollout_steps": 32, "progress": "log"},
         "algo": {"num_minibatches": 2}, "eval": {"n_envs": 4}}


def parent_and_child(tmp_path) -> None:
    """A run with seed 3 (``parent``), and a run started from its weights (``child``)."""
    run(RunConfig.from_mapping({**SMALL, "seed": 3}), tmp_path / "parent")
    run(RunConfig.from_mapping({**SMALL, "trainer": {**SMALL["trainer"], "init_from": str(tmp_path / "parent")}}),
        tmp_path / "child")


def test_runs_record_their_lineage_transitively(tmp_path):
    parent_and_child(tmp_path)
    lineage = load_checkpoint(checkpoint_path(tmp_path / "child"))["lineage"]
    assert lineage == [
        {"kind": "seeds", "low": 0, "high": TRAIN_SEED_STRIDE, "use": "train", "by": str(tmp_path / "child")},
        {"kind": "seeds", "low": EVAL_SEED_BASE, "high": EVAL_SEED_BASE + 4, "use": "validation", "by": str(tmp_path / "child")},
        {"kind": "seeds", "low": 3 * TRAIN_SEED_STRIDE, "high": 4 * TRAIN_SEED_STRIDE, "use": "train", "by": str(tmp_path / "parent")},
        {"kind": "seeds", "low": EVAL_SEED_BASE, "high": EVAL_SEED_BASE + 4, "use": "validation", "by": str(tmp_path / "parent")},
    ]


def test_a_resumed_run_keeps_its_ancestors_lineage_whatever_its_sources_are_now(tmp_path):
    """Resumed with trainer.init_from=null (trainer.* may differ on resume), a run started from a parent
    still carries the parent's records: a lineage only grows."""
    parent_and_child(tmp_path)
    before = load_checkpoint(checkpoint_path(tmp_path / "child"))["lineage"]
    resumed = {**SMALL, "trainer": {**SMALL["trainer"], "total_steps": 512, "resume": "auto", "init_from": None}}
    run(RunConfig.from_mapping(resumed), tmp_path / "child")
    state = load_checkpoint(checkpoint_path(tmp_path / "child"))
    assert state["global_step"] == 512 and state["lineage"] == before
    assert any(record["by"] == str(tmp_path / "parent") for record in state["lineage"])


def test_with_split_changes_only_the_split():
    env = EnvConfig()
    assert with_split(env, "validation").data.split == "validation" and env.data.split == "train"
