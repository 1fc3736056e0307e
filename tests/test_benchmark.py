"""The benchmark suite end to end: list, run, its outputs and exact numbers, the contamination guard,
the regression gate, bad input, the private tier, and the deflated Sharpe ratio's N."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from openclaw_rl.alma.archive import Archive
from openclaw_rl.backtest.run import strategy_env
from openclaw_rl.benchmark import stats, suite
from openclaw_rl.benchmark.__main__ import main
from openclaw_rl.benchmark.agents import strategy_agent
from openclaw_rl.benchmark.guard import contamination
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.stats import detectable_regression, welch_difference
from openclaw_rl.benchmark.suite import Contaminated, plan, run_benchmark, task_identity
from openclaw_rl.benchmark.tasks import (
    PRIVATE_SEEDS, SALT_ENV, SUITE_VERSION, TASKS, TIERS, Task, first_seed, salt_fingerprint, select,
)
from openclaw_rl.data.trajectories import generate
from openclaw_rl.episodes import run_episodes, strategy_actor
from openclaw_rl.errors import CheckpointError, ConfigError
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.config import touched
from openclaw_rl.rock.splits import bars_record, overlap, seed_range, seeds_record
from openclaw_rl.roll.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.pipeline import run as train_run
from openclaw_rl.strategies.v7 import TrendFollowing

ROOT = Path(__file__).resolve().parent.parent
SMOKE = [name for name, task in TASKS.items() if task.smoke]
T_975_3 = 3.182446  # t table: two-sided 95%, 3 degrees of freedom (4 seeds)


# ------------------------------------------------------------------------------------------ helpers

def bench(*args):
    """``openclaw-bench run ARGS`` in this process (main rewrites sys.argv for Hydra: put it back)."""
    argv = sys.argv
    try:
        main(["run", "progress=log", *args])
    finally:
        sys.argv = argv


def bench_error(*args) -> str:
    with pytest.raises(SystemExit) as err:
        bench(*args)
    assert err.value.code not in (0, None)
    return str(err.value.code)


def results_of(folder) -> dict:
    return json.loads((Path(folder) / "results.json").read_text())


def train(run_dir, **sections):
    """A tiny training run (one update) in ``run_dir``; ``sections`` merge over the small settings."""
    values = {"env": {"n_envs": 8}, "trainer": {"total_steps": 256, "rollout_steps": 32, "progress": "log"},
              "algo": {"num_minibatches": 2}, "eval": {"n_envs": 4}}
    for key, value in sections.items():
        values[key] = {**values.get(key, {}), **value}
    train_run(RunConfig.from_mapping(values), Path(run_dir))
    return Path(run_dir)


def write_csv(path, n=600, negative_row=None):
    """Synthetic daily OHLCV bars (Date, Open, High, Low, Close, Volume); ``negative_row``: a data row
    (1 = first) whose Low is -1."""
    rng = np.random.default_rng(3)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * 1.004
    low = np.minimum(open_, close) * 0.996
    if negative_row is not None:
        low[negative_row - 1] = -1.0
    dates = np.datetime64("2010-01-04") + np.arange(n)
    lines = ["Date,Open,High,Low,Close,Volume"] + [
        f"{d},{o:.6f},{h:.6f},{lo:.6f},{c:.6f},{1000 + i}"
        for i, (d, o, h, lo, c) in enumerate(zip(dates, open_, high, low, close))]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def user_task(path, csv, **extra):
    spec = {"name": "mycsv", "about": "synthetic daily bars",
            "env": {"market": {"kind": "historical"}, "data": {"path": str(csv)}, "episode_bars": 20}, **extra}
    Path(path).write_text(yaml.safe_dump(spec))
    return Path(path)


def without_elapsed(results: dict) -> dict:
    return {key: value for key, value in results.items() if key != "elapsed_s"}


def every_file_bytes(folder):
    return {path: path.read_bytes() for path in Path(folder).rglob("*") if path.is_file()}


# ----------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def trend(tmp_path_factory):
    """``strategy=trend tier=smoke`` through the CLI (in this process)."""
    out = tmp_path_factory.mktemp("bench") / "trend"
    bench("strategy=trend", "tier=smoke", f"hydra.run.dir={out}")
    return out


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """A tiny run on the default (training) seeds, window 32 like the suite's tasks."""
    return train(tmp_path_factory.mktemp("runs") / "clean")


@pytest.fixture(scope="module")
def clean_results(clean_run, tmp_path_factory):
    return run_benchmark(BenchConfig(checkpoint=str(clean_run)), tmp_path_factory.mktemp("bench") / "clean", bar=False)


@pytest.fixture(scope="module")
def csv_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv")
    csv = write_csv(root / "bars.csv")
    return csv, user_task(root / "mycsv.yaml", csv)


# ---------------------------------------------------------------------------------------------- list

def test_list_prints_every_task_the_tiers_and_ordered_splits(capsys):
    main(["list"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (f"suite {SUITE_VERSION}; tiers: smoke (4 seeds x 32 markets, smoke tasks only), "
                        "full (8 seeds x 64 markets), private (8 seeds x 64 markets, seeds from your salt, no public bars), "
                        "memory (8 seeds x 64 markets, memory tasks), long (8 seeds x 64 markets, long tasks)")
    for name, task in TASKS.items():
        tiers = (task.family if task.family != "market" else "smoke, full, private" if task.smoke
                 else "full" if task.historical else "full, private")
        assert f"{name}: {task.about} (tiers: {tiers})" in lines, name
    (a, b), (c, d) = seed_range("train"), seed_range("validation")
    switching = lines[lines.index(f"switching: {TASKS['switching'].about} (tiers: smoke, full, private)") + 1]
    assert switching.strip() == (f"train seeds [{a}, {b}), validation [{c}, {d}) (split=validation from "
                                 f"{first_seed(TASKS['switching'], None, 'validation')}), "
                                 f"test from {first_seed(TASKS['switching'], None)}")
    assert seed_range("test")[0] <= first_seed(TASKS["switching"], None) < seed_range("test")[1]

    googl = lines[lines.index(f"googl_daily: {TASKS['googl_daily'].about} (tiers: full)") + 1]
    date = r"(\d{4}-\d{2}-\d{2})"
    match = re.fullmatch(rf"\s+train {date} \.\. {date} \((\d+) bars\), validation {date} \.\. {date} \((\d+) bars\), "
                         rf"test {date} \.\. {date} \((\d+) bars\)", googl)
    assert match, googl
    t0, t1, n_train, v0, v1, n_val, s0, s1, n_test = match.groups()
    assert t0 <= t1 < v0 <= v1 < s0 <= s1  # train, validation, test in time order, disjoint
    series = TASKS["googl_daily"].env_config("test", 1).make_market().series
    embargo = TASKS["googl_daily"].env_config("test", 1).data.embargo
    assert int(n_train) + int(n_val) + int(n_test) + 2 * embargo == len(series)
    assert str(series.time[-1])[:10] == s1  # the test split ends at the last bar
    # the test split the list shows is the bars the benchmark scores (and guards)
    scored = touched(TASKS["googl_daily"].env_config("test", 1), (0, 1))
    assert (scored["first"][:10], scored["last"][:10]) == (s0, s1)


def test_python_dash_m_lists_the_same():
    result = subprocess.run([sys.executable, "-m", "openclaw_rl.benchmark", "list"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in TASKS:
        assert f"\n{name}: " in result.stdout


# ------------------------------------------------------------------------------------ run's outputs

def test_smoke_run_writes_results_table_figure_and_tensorboard(trend):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = results_of(trend)
    assert results["suite_version"] == SUITE_VERSION and results["tier"] == "smoke" and results["agent"] == "trend"
    assert (results["n_seeds"], results["n_markets"], results["n_trials"]) == (4, 32, 1)
    assert results["salt_fingerprint"] is None
    assert list(results["tasks"]) == SMOKE == ["crash", "switching", "switching_costly"]
    for name, task in results["tasks"].items():
        assert set(task["seeds"]) == {"log_return", "excess_log_return", "normalized_excess", "buy_and_hold",
                                      "sharpe", "max_drawdown"}
        assert all(len(values) == TIERS["smoke"].n_seeds for values in task["seeds"].values()), name
        assert task["market_seeds"] == [first_seed(TASKS[name], None), first_seed(TASKS[name], None) + 128]
        assert task["contaminated"] == [] and task["historical"] is False
        assert task["low"] < task["excess_log_return"] < task["high"]
    assert results["aggregate"]["n_tasks"] == 3 and results["aggregate"]["n_seeds"] == 4

    table = (trend / "results.md").read_text()
    assert table.startswith(f"# trend: suite {SUITE_VERSION}, tier smoke (4 seeds x 32 markets per task, test split)")
    for name, task in results["tasks"].items():
        assert f"| {name} | {task['excess_log_return']:+.4f} [{task['low']:+.4f}, {task['high']:+.4f}] |" in table
    assert "N = 1 designs tried" in table
    assert (trend / "intervals.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    events = EventAccumulator(str(trend / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for name, task in results["tasks"].items():
        for key in ("excess_log_return", "log_return", "sharpe", "max_drawdown", "deflated_sharpe"):
            (scalar,) = events.Scalars(f"bench/{name}/{key}")
            assert scalar.value == pytest.approx(task[key], rel=1e-6, abs=1e-7), (name, key)
    assert "bench/aggregate/mean" in tags and "bench/aggregate/iqm" in tags


def test_scores_are_deterministic(trend, tmp_path):
    bench("strategy=trend", "tier=smoke", f"hydra.run.dir={tmp_path}")
    assert without_elapsed(results_of(tmp_path)) == without_elapsed(results_of(trend))


def test_per_seed_scores_are_the_excess_log_return_over_buy_and_hold(trend):
    """Recomputed from the episodes: seed k is the mean over its 32 markets (k*32 .. k*32+31) of
    log(equity_end / equity_start) - log(close_end / close_start)."""
    task = TASKS["switching_costly"]
    seed = first_seed(task, None)
    (p,) = plan(strategy_agent("trend"), [task], "smoke", None, False)
    assert p.first_seed == seed
    assert p.env == strategy_env(task.env_config("test", 128), 128)  # continuous targets on the task's test split
    assert (p.env.fee_bps, p.env.slippage_bps, p.env.n_envs) == (10.0, 5.0, 128)
    record = run_episodes(MarketVecEnv(config=p.env), seed, strategy_actor(TrendFollowing()))
    log_return = np.log(record.equity[-1] / record.equity[0])
    excess = (log_return - record.buy_and_hold).reshape(4, 32).mean(axis=1)
    got = results_of(trend)["tasks"]["switching_costly"]
    np.testing.assert_allclose(got["seeds"]["excess_log_return"], excess, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["seeds"]["log_return"], log_return.reshape(4, 32).mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["seeds"]["buy_and_hold"], record.buy_and_hold.reshape(4, 32).mean(axis=1),
                               rtol=0, atol=1e-12)
    half = T_975_3 * excess.std(ddof=1) / 2.0
    assert got["excess_log_return"] == pytest.approx(excess.mean(), abs=1e-12)
    assert (got["low"], got["high"]) == pytest.approx((excess.mean() - half, excess.mean() + half), abs=1e-7)
    assert got["log_return"] - got["buy_and_hold"] == pytest.approx(got["excess_log_return"], abs=1e-12)


def test_buy_and_hold_scores_only_its_costs_and_random_pays_for_churning(tmp_path):
    hold = run_benchmark(BenchConfig(strategy="buy_and_hold"), tmp_path / "hold", bar=False)["tasks"]
    for name, task in hold.items():
        assert abs(task["excess_log_return"]) < 0.005, (name, task["excess_log_return"])
    # 15 bps to enter: below 0 on every seed (excess = agent - buy-and-hold, not the reverse), and below
    # the 2 bps task's
    costly = hold["switching_costly"]
    assert -0.01 < costly["excess_log_return"] < -0.001 and max(costly["seeds"]["excess_log_return"]) < 0
    assert costly["excess_log_return"] < hold["switching"]["excess_log_return"]

    random = run_benchmark(BenchConfig(strategy="random"), tmp_path / "random", bar=False)
    again = run_benchmark(BenchConfig(strategy="random"), tmp_path / "random2", bar=False)
    assert random["tasks"] == again["tasks"]  # seeded by the markets
    assert random["tasks"]["switching_costly"]["excess_log_return"] < -0.2  # a trade most bars, 15 bps each
    assert random["tasks"]["switching_costly"]["excess_log_return"] < random["tasks"]["switching"]["excess_log_return"]


# ---------------------------------------------------------------------------------- the guard

@pytest.fixture(scope="module")
def grandchild(tmp_path_factory):
    """A dataset on switching's test seeds, an SFT run cloning it, RL from the SFT run's weights."""
    root = tmp_path_factory.mktemp("lineage")
    seed = first_seed(TASKS["switching"], None) + 40
    data = root / "leaked"
    generate(strategy_actor(TrendFollowing()), EnvConfig(continuous=True, episode_bars=30), 16, seed=seed, root=data,
             source="trend")
    env = {"episode_bars": 30}
    sft = train(root / "sft", env=env, trainer={"stage": "sft"}, sft={"datasets": [str(data)], "updates": 2,
                                                                          "batch_trajectories": 4})
    rl = train(root / "rl", env=env, trainer={"init_from": str(sft)})
    return rl, data, seed


def test_a_grandchild_of_a_test_split_dataset_is_refused(grandchild, tmp_path):
    rl, data, seed = grandchild
    test_low = first_seed(TASKS["switching"], None)
    with pytest.raises(Contaminated) as err:
        run_benchmark(BenchConfig(checkpoint=str(rl)), tmp_path / "direct", bar=False)
    message = str(err.value)
    assert message.startswith(f"task switching: {rl} is contaminated: {data} touched market seeds "
                              f"[{seed}, {seed + 16}) (dataset), which overlaps the test split's market seeds "
                              f"[{test_low}, {test_low + 128})"), message
    assert message.endswith("; allow_contaminated=true scores it anyway, marked")
    assert not (tmp_path / "direct" / "results.json").exists()

    assert bench_error(f"checkpoint={rl}", f"hydra.run.dir={tmp_path / 'cli'}") == f"Contaminated: {message}"
    assert not (tmp_path / "cli" / "results.json").exists()

    bench(f"checkpoint={rl}", "allow_contaminated=true", f"hydra.run.dir={tmp_path / 'allowed'}")
    results = results_of(tmp_path / "allowed")
    assert list(results["tasks"]) == SMOKE
    assert len(results["tasks"]["switching"]["contaminated"]) == 1
    assert str(data) in results["tasks"]["switching"]["contaminated"][0]
    assert results["tasks"]["crash"]["contaminated"] == [] == results["tasks"]["switching_costly"]["contaminated"]
    rows = {line.split(" | ")[0][2:]: line for line in (tmp_path / "allowed" / "results.md").read_text().splitlines()
            if line.startswith("| ") and " | " in line}
    assert rows["switching"].endswith("| contaminated |") and rows["crash"].endswith("|  |")


def test_a_clean_checkpoint_is_scored(clean_results, clean_run):
    assert clean_results["agent"] == str(clean_run) and list(clean_results["tasks"]) == SMOKE
    assert all(task["contaminated"] == [] for task in clean_results["tasks"].values())
    assert clean_results["n_trials"] == 1


def test_a_dataset_whose_manifest_lost_its_lineage_counts_as_unknown(tmp_path):
    """A strategy's dataset records an empty lineage; deleting it from the manifest does not clear the
    dataset: its player is then unknown, and so is everything cloned from it."""
    from openclaw_rl.data.trajectories import TrajectoryDataset

    data = tmp_path / "data"
    generate(strategy_actor(TrendFollowing()), EnvConfig(continuous=True, episode_bars=30), 4, seed=7, root=data,
             source="trend")
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["lineage"] == [] and all(r["kind"] == "seeds" for r in TrajectoryDataset(data).touched())
    del manifest["lineage"]
    (data / "manifest.json").write_text(json.dumps(manifest))
    unknown = TrajectoryDataset(data).touched()[-1]
    assert unknown["kind"] == "unknown" and unknown["by"] == str(data)
    assert contamination([unknown], seeds_record(0, 1)) == [
        f"{data} records no lineage (its manifest records no lineage of the policy that played it), so it may have "
        "touched any market"]


def test_a_checkpoint_without_lineage_is_refused(clean_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(clean_run, old)
    state = load_checkpoint(checkpoint_path(old))
    del state["lineage"]
    save_checkpoint(checkpoint_path(old), state)
    with pytest.raises(Contaminated, match=re.escape(
            f"task crash: {old} is contaminated: {old} records no lineage (written before lineages existed), "
            "so it may have touched any market")):
        run_benchmark(BenchConfig(checkpoint=str(old)), tmp_path / "out", bar=False)
    assert not (tmp_path / "out" / "results.json").exists()


def test_historical_runs_are_refused_on_the_bars_they_trained_on(csv_task, tmp_path):
    csv, task_file = csv_task
    data = {"market": {"kind": "historical"}, "data": {"path": str(csv)}, "episode_bars": 20}
    everything = train(tmp_path / "all", env={**data, "data": {"path": str(csv), "split": "all"}})
    held_out = train(tmp_path / "train", env=data)
    config = dict(tier="smoke", tasks=["mycsv"], user_tasks=[str(task_file)])
    with pytest.raises(Contaminated, match=re.escape(f"task mycsv: {everything} is contaminated: {everything} touched "
                                                     "bars 2010-01-04") + r".*" + re.escape(f"of {csv}") + r".*\(train\)"):
        run_benchmark(BenchConfig(checkpoint=str(everything), **config), tmp_path / "b_all", bar=False)
    results = run_benchmark(BenchConfig(checkpoint=str(held_out), **config), tmp_path / "b_train", bar=False)
    (task,) = results["tasks"].values()
    assert list(results["tasks"]) == ["mycsv"] and task["contaminated"] == [] and task["historical"] is True
    assert all(len(values) == 4 for values in task["seeds"].values())


def test_historical_intervals_count_independent_episodes_and_a_short_range_has_none(csv_task, tmp_path):
    """The test split of 600 bars is 112 bars: (112 - window) / 20 = 4.8 episodes' worth of independent bars.
    The interval is the windows' spread over 4.8 of them (t with 3.8 df), far wider than a t over seeds of
    overlapping windows; with 50-bar episodes (1.9 of them) there is no interval, and the table says so."""
    from openclaw_rl.benchmark.suite import historical_interval

    csv, task_file = csv_task
    clean = train(tmp_path / "run", env={"market": {"kind": "historical"}, "data": {"path": str(csv)}, "episode_bars": 20})
    results = run_benchmark(BenchConfig(checkpoint=str(clean), tier="smoke", tasks=["mycsv"], user_tasks=[str(task_file)]),
                            tmp_path / "b", bar=False)
    task = results["tasks"]["mycsv"]
    window = EnvConfig().window
    assert task["independent_episodes"] == pytest.approx((112 - window) / 20)
    mean, seed_low, seed_high = stats.mean_ci(task["seeds"]["excess_log_return"])
    assert task["excess_log_return"] == pytest.approx(mean)
    assert task["high"] - mean == pytest.approx(mean - task["low"]) and task["high"] - task["low"] > seed_high - seed_low
    excess = np.array([0.1, -0.2, 0.3, 0.0])
    env = EnvConfig.from_mapping(market={"kind": "historical"}, data={"path": str(csv), "split": "test"}, episode_bars=20)
    n = (112 - window) / 20
    half = stats.student_t_quantile(0.975, n - 1) * excess.std(ddof=1) / np.sqrt(n)
    assert historical_interval(excess, env) == pytest.approx((0.05 - half, 0.05 + half, n))
    short = user_task(tmp_path / "short.yaml", csv, name="short")
    spec = yaml.safe_load(short.read_text())
    spec["env"]["episode_bars"] = 50
    short.write_text(yaml.safe_dump(spec))
    long = train(tmp_path / "long", env={"market": {"kind": "historical"}, "data": {"path": str(csv)}, "episode_bars": 50})
    results = run_benchmark(BenchConfig(checkpoint=str(long), tier="smoke", tasks=["short"], user_tasks=[str(short)]),
                            tmp_path / "b_short", bar=False)
    task = results["tasks"]["short"]
    assert task["independent_episodes"] == pytest.approx((112 - window) / 50) and np.isnan(task["low"])
    assert f"too short for an interval ({(112 - window) / 50:.1f} independent episodes)" in (tmp_path / "b_short" / "results.md").read_text()


# ----------------------------------------------------------------------------------- other agents

@pytest.mark.parametrize("agent, message", [
    ("always_long", "agent: must be module:callable or a Stable-Baselines3 .zip file, got 'always_long'"),
    ("no_such_module_here:act", "agent: cannot import no_such_module_here:act: ModuleNotFoundError"),
])
def test_an_agent_that_cannot_be_imported_is_one_clear_error_before_scoring(tmp_path, agent, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_benchmark(BenchConfig(agent=agent, allow_contaminated=True), tmp_path / "scored", bar=False)
    assert not (tmp_path / "scored").exists()


def test_a_python_callable_is_scored_with_its_declared_lineage_and_refused_without(tmp_path, monkeypatch):
    (tmp_path / "always_long.py").write_text(
        "import numpy as np\n"
        "def act(obs):\n"
        "    return np.full(len(obs), 2)  # the long action of the default (-1, 0, 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = tmp_path / "lineage.yaml"
    declared.write_text(yaml.safe_dump([{"seeds": [0, 1000]}]))
    results = run_benchmark(BenchConfig(agent="always_long:act", lineage=str(declared)), tmp_path / "scored", bar=False)
    hold = run_benchmark(BenchConfig(strategy="buy_and_hold"), tmp_path / "hold", bar=False)
    for name, task in results["tasks"].items():  # always long at full size is buy-and-hold, less its entry fee
        assert task["contaminated"] == [] and task["log_return"] == pytest.approx(hold["tasks"][name]["log_return"], abs=2e-3)
    with pytest.raises(Contaminated, match=re.escape("always_long:act records no lineage (declare what it trained on "
                                                     "with lineage=FILE), so it may have touched any market")):
        run_benchmark(BenchConfig(agent="always_long:act"), tmp_path / "unknown", bar=False)
    marked = run_benchmark(BenchConfig(agent="always_long:act", allow_contaminated=True), tmp_path / "marked", bar=False)
    assert all(task["contaminated"] for task in marked["tasks"].values())
    test_seeds = tmp_path / "test_seeds.yaml"
    test_seeds.write_text(yaml.safe_dump([{"seeds": list(seed_range("test"))}]))
    with pytest.raises(Contaminated, match=r"always_long:act \(declared in .*\) touched market seeds"):
        run_benchmark(BenchConfig(agent="always_long:act", lineage=str(test_seeds)), tmp_path / "test", bar=False)


@pytest.mark.parametrize("entries,message", [
    ({"seeds": [0, 1]}, "needs a list of records"),
    ([{"seeds": [0, 1], "data": {"path": "x.csv"}}], "record 1 needs exactly one of seeds"),
    ([{"bars": 1}], "record 1 needs exactly one of seeds"),
])
def test_a_malformed_lineage_file_names_the_record(tmp_path, entries, message):
    from openclaw_rl.benchmark.agents import declared_lineage

    path = tmp_path / "lineage.yaml"
    path.write_text(yaml.safe_dump(entries))
    with pytest.raises(ConfigError, match=message):
        declared_lineage(str(path), "agent")


def test_declared_price_file_lineage_is_known_by_content(csv_task, tmp_path):
    from openclaw_rl.benchmark.agents import declared_lineage

    csv, task_file = csv_task
    path = tmp_path / "lineage.yaml"
    path.write_text(yaml.safe_dump([{"data": {"path": str(csv), "split": "all"}}]))
    (record,) = declared_lineage(str(path), "agent")
    test = touched(EnvConfig.from_mapping(market={"kind": "historical"}, data={"path": str(csv), "split": "test"}), (0, 1))
    assert record["use"] == "train" and overlap(record, test)
    path.write_text(yaml.safe_dump([{"data": {"path": str(csv)}}]))  # its train split by default
    assert not overlap(declared_lineage(str(path), "agent")[0], test)


def test_a_stable_baselines3_model_is_scored(tmp_path):
    from stable_baselines3 import PPO

    from openclaw_rl.rock.sb3 import SB3VecEnv

    env = MarketVecEnv(config=EnvConfig(n_envs=4))
    model = PPO("MlpPolicy", SB3VecEnv(env), n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    model.save(tmp_path / "ppo.zip")
    declared = tmp_path / "lineage.yaml"
    declared.write_text(yaml.safe_dump([{"seeds": [0, 4]}]))
    results = run_benchmark(BenchConfig(agent=str(tmp_path / "ppo.zip"), lineage=str(declared)), tmp_path / "b",
                            bar=False)
    assert results["agent"] == str(tmp_path / "ppo.zip") and set(results["tasks"]) == set(SMOKE)
    with pytest.raises(ConfigError, match="no such file"):
        run_benchmark(BenchConfig(agent=str(tmp_path / "missing.zip"), lineage=str(declared)), tmp_path / "c", bar=False)


def test_an_exported_onnx_policy_scores_as_its_checkpoint(clean_run, tmp_path):
    """A policy exported to ONNX, scored through ONNX Runtime with the lineage its user declares, plays
    the checkpoint's greedy actions: the same scores."""
    pytest.importorskip("onnxruntime")
    from openclaw_rl.export import export_policy

    onnx = export_policy(clean_run, "onnx", tmp_path / "policy.onnx")
    declared = tmp_path / "lineage.yaml"
    declared.write_text(yaml.safe_dump([{"seeds": [0, 1000]}]))
    exported = run_benchmark(BenchConfig(agent=str(onnx), lineage=str(declared)), tmp_path / "onnx", bar=False)
    eager = run_benchmark(BenchConfig(checkpoint=str(clean_run)), tmp_path / "eager", bar=False)
    for name, task in exported["tasks"].items():
        np.testing.assert_allclose(task["seeds"]["excess_log_return"], eager["tasks"][name]["seeds"]["excess_log_return"],
                                   atol=1e-9)
    spec = json.loads((tmp_path / "policy.onnx.json").read_text())
    spec["actions"]["levels"] = [-2.0, 0.0, 2.0]  # beyond the task's max_position: refused, as a checkpoint is
    (tmp_path / "policy.onnx.json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="the policy's positions reach 2.0 of equity, the task allows 1.0"):
        run_benchmark(BenchConfig(agent=str(onnx), lineage=str(declared)), tmp_path / "leveraged", bar=False)
    (tmp_path / "policy.onnx.json").unlink()
    with pytest.raises(ConfigError, match="needs the .onnx file and the policy.onnx.json beside it"):
        run_benchmark(BenchConfig(agent=str(onnx), lineage=str(declared)), tmp_path / "bad", bar=False)


# ----------------------------------------------------------------------------------------- compare

def saved(results: dict, folder) -> Path:
    """``results`` as a finished run's results dir ``folder``."""
    Path(folder).mkdir(parents=True)
    (Path(folder) / "results.json").write_text(json.dumps(results))
    return Path(folder)


def planted(trend, folder, task, shift):
    results = results_of(trend)
    seeds = results["tasks"][task]["seeds"]["excess_log_return"]
    results["tasks"][task]["seeds"]["excess_log_return"] = [value + shift for value in seeds]
    return saved(results, folder)


def compare_cli(a, b):
    return subprocess.run([str(Path(sys.executable).parent / "openclaw-bench"), "compare", str(a), str(b)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_compare_same_runs_passes_and_a_planted_regression_fails(trend, tmp_path):
    bench("strategy=trend", f"hydra.run.dir={tmp_path / 'again'}")
    same = compare_cli(trend, tmp_path / "again")
    assert same.returncode == 0, same.stderr[-2000:]
    assert "**regressed**" not in same.stdout and "improved" not in same.stdout
    assert f"# trend ({tmp_path / 'again'}) vs trend ({trend}): suite {SUITE_VERSION}, tier smoke" in same.stdout
    assert "Fixed-weights test: one checkpoint a side" in same.stdout and "covers market noise only" in same.stdout

    worse = planted(trend, tmp_path / "worse", "switching", -0.5)
    failed = compare_cli(trend, worse)
    assert failed.returncode == 1
    assert failed.stdout.rstrip().endswith("regression on 1 task(s): switching")
    (row,) = [line for line in failed.stdout.splitlines() if line.startswith("| switching |")]
    assert row.endswith("| **regressed** |") and "-0.5000 [-0.5000, -0.5000]" in row


def seed_runs(trend, folder, shifts, noise=0.02, seed=0):
    """One results dir per "training seed" under ``folder``: the trend run's scores moved by ``shift`` plus a
    seed's own noise (per task, and on the aggregate), under another agent name each."""
    rng = np.random.default_rng(seed)
    for i, shift in enumerate(shifts):
        results = results_of(trend)
        results["agent"] = f"{folder.name}-seed{i}"
        for task in results["tasks"].values():
            task["excess_log_return"] += shift + noise * rng.standard_normal()
        results["aggregate"]["mean"] += shift + noise * rng.standard_normal()
        saved(results, folder / f"seed{i}")
    return folder


def test_compare_over_training_seeds_is_welch_and_flags_a_planted_regression(trend, tmp_path, capsys):
    a = seed_runs(trend, tmp_path / "a", [0.0] * 5)
    same = seed_runs(trend, tmp_path / "same", [0.0] * 5, seed=1)
    main(["compare", str(a), str(same)])  # a dir holding one results dir per seed: exit 0
    out = capsys.readouterr().out
    assert "# B (5 checkpoints) vs A (5 checkpoints)" in out and "Seed-level gate: Welch's t over training seeds" in out
    assert "**regressed**" not in out
    (row,) = [line for line in out.splitlines() if line.startswith("| switching |")]
    scores = [results_of(folder / f"seed{i}")["tasks"]["switching"]["excess_log_return"] for folder in (a, same)
              for i in range(5)]
    want = welch_difference(scores[:5], scores[5:], 1 - 0.05 / 4)  # 3 tasks and the aggregate
    assert f"{want['mean']:+.4f} [{want['low']:+.4f}, {want['high']:+.4f}]" in row
    assert f"| {detectable_regression(want['se'], want['df'], 1 - 0.05 / 4):.4f} |" in row

    worse = seed_runs(trend, tmp_path / "worse", [-0.2] * 5, seed=2)
    listed = ",".join(str(worse / f"seed{i}") for i in range(5))  # a comma list of results dirs
    with pytest.raises(SystemExit) as err:
        main(["compare", str(a / "seed*"), listed])  # and a glob
    assert err.value.code == 1
    out = capsys.readouterr().out
    assert out.rstrip().endswith("regression on 4 task(s): aggregate, crash, switching, switching_costly")


def test_compare_refuses_one_run_against_several_and_a_checkpoint_twice(trend, tmp_path):
    a = seed_runs(trend, tmp_path / "a", [0.0] * 3)
    with pytest.raises(SystemExit) as err:
        main(["compare", str(trend), str(a)])
    assert str(err.value.code) == ("ConfigError: A has 1 run(s) and B 3: give each side 2 or more (one checkpoint per "
                                   "training seed; 5 or more recommended), or one each for the fixed-weights test")
    with pytest.raises(SystemExit) as err:
        main(["compare", f"{a / 'seed0'},{a / 'seed1'}", f"{a / 'seed1'},{a / 'seed2'}"])
    assert str(err.value.code) == ("ConfigError: a-seed1 is scored more than once; give each checkpoint (training seed) "
                                   "once")
    with pytest.raises(SystemExit) as err:
        main(["compare", str(a), str(tmp_path / "nothing*")])
    assert "matches no path" in str(err.value.code)


def test_compare_refuses_another_task_under_the_same_name_and_shows_contamination(trend, tmp_path, capsys):
    results = results_of(trend)
    results["tasks"]["crash"]["identity"] = "another"
    renamed = saved(results, tmp_path / "renamed")
    with pytest.raises(SystemExit) as err:
        main(["compare", str(trend), str(renamed)])
    assert str(err.value.code) == (f"ConfigError: task crash: {trend} and {renamed} scored different tasks under one "
                                   "name (another env or other data); compare runs of the same task")
    results = results_of(trend)
    results["tasks"]["crash"]["contaminated"] = ["run x touched market seeds [0, 10)"]
    marked = saved(results, tmp_path / "marked")
    main(["compare", str(trend), str(marked)])
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("| crash |")]
    assert row.endswith("| contaminated B |")
    (row,) = [line for line in out.splitlines() if line.startswith("| aggregate |")]
    assert row.endswith("| contaminated B |")


def test_task_identity_is_the_env_and_test_markets_not_the_name_or_file_path():
    synthetic = Task("x", "", {"market": {"kind": "garch"}})
    seeds = {"kind": "seeds", "low": 0, "high": 8}
    assert task_identity(synthetic, seeds) == task_identity(Task("renamed", "", synthetic.env), seeds)
    assert task_identity(synthetic, seeds) != task_identity(Task("x", "", {"market": {"kind": "heston"}}), seeds)
    assert task_identity(synthetic, seeds) != task_identity(synthetic, {**seeds, "high": 9})
    bars = {"kind": "bars", "sha256": "ab", "source": "/a.csv", "first": "2010", "last": "2011"}
    historical = Task("h", "", {"market": {"kind": "historical"}, "data": {"path": "/a.csv"}})
    moved = Task("h", "", {"market": {"kind": "historical"}, "data": {"path": "/b.csv"}})
    assert task_identity(historical, bars) == task_identity(moved, {**bars, "source": "/b.csv"})
    assert task_identity(historical, bars) != task_identity(historical, {**bars, "sha256": "cd"})
    content = bars_record("ab", "/a.csv", np.array(["2010-01-04", "2010-01-05"], dtype="datetime64[D]"), np.ones(2))
    rewritten = bars_record("cd", "/b.parquet", np.array(["2010-01-04", "2010-01-05"], dtype="datetime64[D]"), np.ones(2))
    assert task_identity(historical, content) == task_identity(moved, rewritten)  # the same bars in another file
    other = bars_record("ab", "/a.csv", np.array(["2010-01-04", "2010-01-05"], dtype="datetime64[D]"), np.full(2, 2.0))
    assert task_identity(historical, content) != task_identity(historical, other)


def test_compare_reports_improvement(trend, tmp_path, capsys):
    better = planted(trend, tmp_path / "better", "crash", +0.5)
    main(["compare", str(trend), str(better)])
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("| crash |")]
    assert row.endswith("| improved |") and "**regressed**" not in out


@pytest.mark.parametrize("key,value,what", [("suite_version", "0.9", f"suite versions ({SUITE_VERSION} vs 0.9)"),
                                             ("tier", "full", "tiers (smoke vs full)")])
def test_compare_refuses_runs_of_another_suite_or_tier(trend, tmp_path, key, value, what):
    results = results_of(trend)
    results[key] = value
    other = saved(results, tmp_path / "other")
    with pytest.raises(SystemExit) as err:
        main(["compare", str(trend), str(other)])
    assert str(err.value.code) == (f"ConfigError: {trend} and {other} come from different {what}; "
                                   "compare runs of the same suite version and tier")


def test_compare_refuses_runs_of_other_tasks(trend, tmp_path):
    results = results_of(trend)
    del results["tasks"]["switching"]
    other = saved(results, tmp_path / "other")
    with pytest.raises(SystemExit) as err:
        main(["compare", str(trend), str(other)])
    assert str(err.value.code) == "ValueError: tasks differ: ['switching']"


def test_compare_refuses_a_dir_without_results(trend, tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["compare", str(trend), str(tmp_path)])
    assert str(err.value.code) == (f"ConfigError: {tmp_path}: no results.json in or below it (not a finished "
                                   "benchmark run)")
    with pytest.raises(SystemExit) as err:
        main(["compare", str(trend), str(tmp_path / "missing")])
    assert str(err.value.code) == f"ConfigError: {tmp_path / 'missing'}: no results.json (not a finished benchmark run)"


def test_compare_refuses_a_bad_level(trend):
    with pytest.raises(SystemExit) as err:
        main(["compare", str(trend), str(trend), "level=abc"])
    assert "level" in str(err.value.code)


# ---------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("args,message", [
    (["strategy=trend", "tier=huge"], "ConfigError: tier: unknown tier 'huge'; allowed: smoke, full, private"),
    (["strategy=trend", "tasks=[crash,moon]"], "ConfigError: tasks: unknown task 'moon'; allowed: bull, sideways"),
    (["strategy=trend", "checkpoint=runs/x"], "ConfigError: checkpoint, strategy, agent: give exactly one"),
    ([], "ConfigError: checkpoint, strategy, agent: give exactly one"),
    (["strategy=trend", "lineage=x.yaml"], "ConfigError: lineage: declares an agent's (agent=...)"),
    (["strategy=oracle"], "ConfigError: strategy: unknown strategy 'oracle'; allowed: buy_and_hold, trend, momentum, "
                          "mean_reversion, vol_target, regime_ensemble, random"),
    (["strategy=trend", "progress=loud"], "ConfigError: progress: unknown mode 'loud'; allowed: auto, bar, log"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, args, message):
    assert bench_error(*args, f"hydra.run.dir={tmp_path}").startswith(message)
    assert not (tmp_path / "results.json").exists()


def test_private_tier_needs_a_long_enough_salt(tmp_path, monkeypatch):
    monkeypatch.delenv(SALT_ENV, raising=False)
    assert bench_error("strategy=trend", "tier=private", f"hydra.run.dir={tmp_path / 'a'}") == (
        f"ConfigError: tier=private needs a salt: set {SALT_ENV}, or salt_file=PATH to a file holding it "
        "(kept outside configs and run dirs, at least 16 characters)")
    short = tmp_path / "salt"
    short.write_text("too-short\n")
    assert bench_error("strategy=trend", "tier=private", f"salt_file={short}", f"hydra.run.dir={tmp_path / 'b'}") == (
        f"ConfigError: salt_file {short}: the salt must have at least 16 characters, has 9")
    monkeypatch.setenv(SALT_ENV, "short")
    assert bench_error("strategy=trend", "tier=private", f"hydra.run.dir={tmp_path / 'c'}") == (
        f"ConfigError: ${SALT_ENV}: the salt must have at least 16 characters, has 5")
    assert not any((tmp_path / name / "results.json").exists() for name in "abc")


def test_a_checkpoint_observing_another_window_is_refused(tmp_path):
    narrow = train(tmp_path / "narrow", env={"window": 8, "episode_bars": 30})
    message = bench_error(f"checkpoint={narrow}", "tasks=[crash]", f"hydra.run.dir={tmp_path / 'out'}")
    assert message.startswith(f"CheckpointError: {narrow}: the policy observes env.window=8 bars, the suite's tasks give 32")
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_user_task_with_bad_data_or_keys_is_refused(tmp_path):
    csv = write_csv(tmp_path / "bad.csv", negative_row=5)
    task = user_task(tmp_path / "bad.yaml", csv)
    message = bench_error("strategy=trend", f"user_tasks=[{task}]", f"hydra.run.dir={tmp_path / 'a'}")
    assert message == f"DataError: {csv}: column 'Low': non-positive price -1.0 at row 5 (index 4)"
    typo = user_task(tmp_path / "typo.yaml", write_csv(tmp_path / "good.csv"), tier="full")
    message = bench_error("strategy=trend", f"user_tasks=[{typo}]", f"hydra.run.dir={tmp_path / 'b'}")
    assert message == f"ConfigError: user_tasks: {typo}: unknown key(s) ['tier']; allowed: name, about, env"
    with pytest.raises(ConfigError, match="no such file"):
        run_benchmark(BenchConfig(strategy="trend", user_tasks=[str(tmp_path / "missing.yaml")]), tmp_path / "c")
    assert not any((tmp_path / name / "results.json").exists() for name in "abc")


def test_two_user_tasks_with_one_name_are_refused(csv_task, tmp_path):
    csv, first = csv_task
    second = user_task(tmp_path / "second.yaml", csv, about="the same name, longer episodes")
    spec = yaml.safe_load(second.read_text())
    spec["env"]["episode_bars"] = 40
    second.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="mycsv"):
        run_benchmark(BenchConfig(strategy="trend", user_tasks=[str(first), str(second)]), tmp_path / "out", bar=False)


def test_an_out_dir_with_results_is_refused(trend, tmp_path):
    shutil.copy(trend / "results.json", tmp_path / "results.json")
    before = (tmp_path / "results.json").read_bytes()
    assert bench_error("strategy=momentum", f"hydra.run.dir={tmp_path}") == (
        f"ConfigError: {tmp_path}: already holds a benchmark's results.json; choose another hydra.run.dir")
    assert (tmp_path / "results.json").read_bytes() == before


# ----------------------------------------------------------------------------------------- private

SALT_A = "a-long-secret-salt-0123456789"
SALT_B = "another-secret-salt-9876543210"


def test_the_private_tier_scores_salted_markets_and_keeps_the_salt_out(tmp_path, monkeypatch):
    monkeypatch.delenv(SALT_ENV, raising=False)
    files = {}
    for name, salt in (("a", SALT_A), ("b", SALT_B), ("a2", SALT_A)):
        files[name] = tmp_path / f"{name}.salt"
        files[name].write_text(salt + "\n")
        bench("strategy=trend", "tier=private", "tasks=[crash]", f"salt_file={files[name]}",
              f"hydra.run.dir={tmp_path / name}")
    a, b, a2 = (results_of(tmp_path / name) for name in ("a", "b", "a2"))
    assert a["tier"] == "private" and (a["n_seeds"], a["n_markets"]) == (8, 64)
    assert a["salt_fingerprint"] == salt_fingerprint(SALT_A) and re.fullmatch(r"[0-9a-f]{16}", a["salt_fingerprint"])
    assert b["salt_fingerprint"] != a["salt_fingerprint"]
    assert without_elapsed(a2) == without_elapsed(a)  # the same salt: the same markets
    assert a["tasks"]["crash"]["seeds"]["buy_and_hold"] != b["tasks"]["crash"]["seeds"]["buy_and_hold"]
    assert a["tasks"]["crash"]["excess_log_return"] != b["tasks"]["crash"]["excess_log_return"]
    assert PRIVATE_SEEDS[0] <= first_seed(TASKS["crash"], SALT_A) < PRIVATE_SEEDS[1]
    for name, salt in (("a", SALT_A), ("b", SALT_B)):
        text = (tmp_path / name / "results.json").read_text()
        assert "market_seeds" not in text and str(first_seed(TASKS["crash"], salt)) not in text
        written = every_file_bytes(tmp_path / name)
        assert any(path.parts[-2] == "tb" for path in written) and any(".hydra" in path.parts for path in written)
        for path, content in written.items():
            assert salt.encode() not in content, path

    with pytest.raises(SystemExit) as err:  # other markets: no paired comparison
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert str(err.value.code).startswith(f"ConfigError: {tmp_path / 'a'} and {tmp_path / 'b'} come from different "
                                          f"salts ({a['salt_fingerprint']} vs {b['salt_fingerprint']})")
    main(["compare", str(tmp_path / "a"), str(tmp_path / "a2")])

    monkeypatch.setenv(SALT_ENV, SALT_A)  # the environment's salt is the same salt as the file's
    bench("strategy=trend", "tier=private", "tasks=[crash]", f"hydra.run.dir={tmp_path / 'env'}")
    assert without_elapsed(results_of(tmp_path / "env")) == without_elapsed(a)


def test_the_private_tier_refuses_public_bars():
    assert not any(task.historical for task in select("private", None, []))
    assert any(task.historical for task in select("full", None, []))
    with pytest.raises(ConfigError, match="tasks: googl_daily replays public bars, which the private tier cannot keep "
                                          "secret; score it on the full tier, or give your own private price file"):
        select("private", ["crash", "googl_daily"], [])


def test_a_contaminated_private_run_does_not_publish_its_seeds(tmp_path, monkeypatch):
    monkeypatch.delenv(SALT_ENV, raising=False)
    (tmp_path / "salt").write_text(SALT_A)
    low = first_seed(TASKS["crash"], SALT_A)
    leaked = strategy_agent("trend")
    leaked = dataclasses.replace(leaked, lineage=[{**seeds_record(low, low + 10), "use": "dataset", "by": "data/x"}])
    monkeypatch.setattr(suite, "strategy_agent", lambda name: leaked)
    results = run_benchmark(BenchConfig(strategy="trend", tier="private", tasks=["crash"], allow_contaminated=True,
                                        salt_file=str(tmp_path / "salt")), tmp_path / "out", bar=False)
    assert results["tasks"]["crash"]["contaminated"]  # marked
    assert str(low) not in (tmp_path / "out" / "results.json").read_text()


# ------------------------------------------------------------------------------------ designs tried

def test_a_sweep_checkpoint_counts_the_finished_trials(clean_run, clean_results, tmp_path):
    archive = Archive(tmp_path / "archive.sqlite")
    for i in range(4):
        trial = archive.add("search", {"algo.lr": 1e-3 * (i + 1)}, [f"algo.lr={1e-3 * (i + 1)}"], "initial")
        if i < 3:
            archive.finish(trial, 0.1 * i, [0.1 * i])
        else:
            archive.fail(trial, "diverged")
    archive.close()
    run_dir = tmp_path / "trial_0001" / "task_0"
    shutil.copytree(clean_run, run_dir)
    results = run_benchmark(BenchConfig(checkpoint=str(run_dir)), tmp_path / "bench", bar=False)
    assert results["n_trials"] == 3
    assert "N = 3 designs tried" in (tmp_path / "bench" / "results.md").read_text()
    for name, task in results["tasks"].items():  # the same returns, a higher bar to clear
        alone = clean_results["tasks"][name]
        assert task["seeds"] == alone["seeds"]
        assert task["deflated_sharpe"] <= alone["deflated_sharpe"], name
    assert any(task["deflated_sharpe"] < clean_results["tasks"][name]["deflated_sharpe"]
               for name, task in results["tasks"].items())


def test_holdout_trials_are_not_extra_designs(clean_run, tmp_path):
    archive = Archive(tmp_path / "archive.sqlite")
    searched = []
    for i in range(3):
        trial = archive.add("search", {"algo.lr": 1e-3 * (i + 1)}, [f"algo.lr={1e-3 * (i + 1)}"], "initial")
        archive.finish(trial, 0.1 * i, [0.1 * i])
        searched.append(trial)
    for parent in searched[1:]:  # the sweep's transfer check of its two best designs
        trial = archive.add("holdout", {}, [], "holdout", parent)
        archive.finish(trial, 0.0, [0.0])
    archive.close()
    run_dir = tmp_path / "trial_0003" / "task_0"
    shutil.copytree(clean_run, run_dir)
    results = run_benchmark(BenchConfig(checkpoint=str(run_dir), tasks=["crash"]), tmp_path / "bench", bar=False)
    assert results["n_trials"] == 3


def test_the_validation_split_scores_validation_markets_and_is_checked_against_the_lineage(csv_task, tmp_path,
                                                                                         monkeypatch):
    results = run_benchmark(BenchConfig(strategy="trend", split="validation"), tmp_path / "validation", bar=False)
    assert results["split"] == "validation"
    low, high = seed_range("validation")
    for name, task in results["tasks"].items():
        assert low <= task["market_seeds"][0] < task["market_seeds"][1] <= high, name
    assert (tmp_path / "validation" / "results.md").read_text().splitlines()[0].endswith("validation split)")
    test = run_benchmark(BenchConfig(strategy="trend"), tmp_path / "test", bar=False)
    assert test["split"] == "test"
    for name in results["tasks"]:  # other markets: another score, and compare tells the two apart
        assert results["tasks"][name]["identity"] != test["tasks"][name]["identity"]
        assert results["tasks"][name]["excess_log_return"] != test["tasks"][name]["excess_log_return"]
    (tmp_path / "flat.py").write_text("import numpy as np\ndef act(obs):\n    return np.ones(len(obs), dtype=int)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = tmp_path / "validation_seeds.yaml"
    declared.write_text(yaml.safe_dump([{"seeds": [low, low + 2**36]}]))
    with pytest.raises(Contaminated, match="touched market seeds"):  # selected on validation: not scored there
        run_benchmark(BenchConfig(agent="flat:act", lineage=str(declared), split="validation"),
                      tmp_path / "selected", bar=False)
    _, task = csv_task  # a historical task: its validation range of bars
    bars = run_benchmark(BenchConfig(strategy="trend", split="validation", tasks=["mycsv"], user_tasks=[str(task)]),
                         tmp_path / "csv", bar=False)["tasks"]["mycsv"]
    assert bars["historical"] and bars["identity"] != run_benchmark(
        BenchConfig(strategy="trend", tasks=["mycsv"], user_tasks=[str(task)]), tmp_path / "csv_test", bar=False
    )["tasks"]["mycsv"]["identity"]


def test_the_private_tier_has_no_validation_split(tmp_path):
    assert "private tier scores its secret test markets only" in bench_error("strategy=trend", "tier=private",
                                                                             "split=validation", f"hydra.run.dir={tmp_path}")
    assert "unknown split 'train'" in bench_error("strategy=trend", "split=train", f"hydra.run.dir={tmp_path / 'b'}")
