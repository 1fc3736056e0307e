"""Backtests of strategies in the market env: wiring, costs and metrics."""

import numpy as np
import pytest
import torch

from openclaw_rl.backtest.run import backtest_strategy
from openclaw_rl.rock import EnvConfig
from openclaw_rl.strategies.v7 import BuyAndHold, TrendFollowing

NO_GAP_NO_COST = EnvConfig(market={"kind": "gbm", "overnight_frac": 1e-9}, fee_bps=0.0, slippage_bps=0.0,
                           borrow_bps_per_year=0.0, episode_bars=100, window=8)


def test_buy_and_hold_earns_the_market_return():
    record, m = backtest_strategy(BuyAndHold(), NO_GAP_NO_COST, n_markets=16, seed=3)
    log_growth = np.log(record.equity[-1] / record.equity[0])
    np.testing.assert_allclose(log_growth, record.buy_and_hold, atol=1e-6)
    assert record.positions.shape == (100, 16) and np.all(record.positions == 1.0)
    assert m["exposure"] == pytest.approx(np.ones(16)) and m["turnover"] == pytest.approx(np.full(16, 252 / 100))


def test_costs_make_a_trading_strategy_pay():
    free, m_free = backtest_strategy(TrendFollowing(fast=2, slow=5), NO_GAP_NO_COST, n_markets=16, seed=1)
    costly_config = EnvConfig(**{**NO_GAP_NO_COST.__dict__, "fee_bps": 20.0})
    costly, m_costly = backtest_strategy(TrendFollowing(fast=2, slow=5), costly_config, n_markets=16, seed=1)
    np.testing.assert_array_equal(free.positions, costly.positions)  # same market, same signals
    assert np.all(costly.equity[-1] < free.equity[-1])
    assert set(m_costly) >= {"sharpe", "sortino", "max_drawdown", "calmar", "win_rate"}
    assert all(np.all(np.isfinite(v)) for v in m_costly.values())


def test_cli_backtests_a_trained_policy_beside_the_strategies(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    env = ["env.n_envs=16", "env.window=8", "env.episode_bars=40"]
    subprocess.run([sys.executable, "-m", "openclaw_rl.train", f"hydra.run.dir={tmp_path / 'run'}", *env,
                    "trainer.rollout_steps=32", "trainer.total_steps=1024", "eval.n_envs=4", "trainer.progress=log"],
                   cwd=root, check=True, capture_output=True)
    out = tmp_path / "backtest"
    result = subprocess.run([sys.executable, "-m", "openclaw_rl.backtest", f"hydra.run.dir={out}", *env,
                             f"checkpoint={tmp_path / 'run'}", "n_markets=8", "strategies=[buy_and_hold,regime_ensemble]"],
                            cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "backtests 1/3 done: policy" in result.stdout and "backtests 3/3 done: regime_ensemble" in result.stdout
    assert "ETA" in result.stdout
    report = yaml.safe_load((out / "metrics.yaml").read_text())
    assert list(report) == ["policy", "buy_and_hold", "regime_ensemble"]
    assert 0.0 <= report["policy"]["deflated_sharpe"] <= 1.0 and "max_drawdown" in report["policy"]
    assert (out / "equity.png").stat().st_size > 0 and list((out / "tb").glob("events.out.tfevents.*"))
    bad = subprocess.run([sys.executable, "-m", "openclaw_rl.backtest", f"hydra.run.dir={tmp_path / 'bad'}",
                          "strategies=[moonshot]"], cwd=root, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown strategy 'moonshot'; allowed: buy_and_hold" in bad.stderr
    leak = subprocess.run([sys.executable, "-m", "openclaw_rl.backtest", f"hydra.run.dir={tmp_path / 'leak'}",
                           "env/market=historical", "env.data.builtin=googl_daily", "strategies=[regime_ensemble]"],
                          cwd=root, capture_output=True, text=True)
    assert leak.returncode != 0 and "would be the bars it is tested on" in leak.stderr
    wrong = subprocess.run([sys.executable, "-m", "openclaw_rl.backtest", f"hydra.run.dir={tmp_path / 'wrong'}",
                            f"checkpoint={tmp_path / 'run'}", "env.window=16", "strategies=[]"],
                           cwd=root, capture_output=True, text=True)
    assert wrong.returncode != 0 and "trained with env.window=8" in wrong.stderr


def test_cli_backtests_the_test_split_unless_told_and_marks_in_sample_runs(tmp_path):
    """A price file is backtested on its test bars by default; split=train says in-sample everywhere."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    common = [sys.executable, "-m", "openclaw_rl.backtest", "env/market=historical", "env.data.builtin=googl_daily",
              "strategies=[buy_and_hold]", "n_markets=4"]
    reports = {}
    for split in ("default", "train"):
        out = tmp_path / split
        extra = [] if split == "default" else [f"split={split}"]
        result = subprocess.run([*common, f"hydra.run.dir={out}", *extra], cwd=root, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        reports[split] = (yaml.safe_load((out / "metrics.yaml").read_text()), result.stdout + result.stderr)
    (default, default_log), (train, train_log) = reports["default"], reports["train"]
    assert default["buy_and_hold"]["split"] == "test" and ", test split: wrote" in default_log
    assert "in-sample" not in default_log.lower()
    assert train["buy_and_hold"]["split"] == "train" and "IN-SAMPLE (train split)" in train_log
    assert "results are in-sample" in train_log and "(in-sample)" in train_log
    assert default["buy_and_hold"]["total_return"] != train["buy_and_hold"]["total_return"]  # other bars
    bad = subprocess.run([*common, f"hydra.run.dir={tmp_path / 'bad'}", "split=tset"], cwd=root, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == (
        "ConfigError: split: unknown split 'tset'; allowed: train, validation, test")


def test_a_grpo_checkpoint_loads_without_its_trainer_settings(tmp_path):
    """A checkpoint stores the design, not trainer.*: a grpo design (which needs trainer.group_size >= 2
    to train) still loads for backtests and the benchmark."""
    from openclaw_rl.backtest.run import load_policy
    from openclaw_rl.roll.config import RunConfig
    from openclaw_rl.roll.pipeline import run

    config = RunConfig.from_mapping({"algo": {"name": "grpo", "num_minibatches": 2}, "env": {"n_envs": 8},
                                     "trainer": {"group_size": 4, "total_steps": 256, "rollout_steps": 32, "progress": "log"},
                                     "eval": {"n_envs": 2}})
    run(config, tmp_path / "grpo")
    policy, loaded = load_policy(tmp_path / "grpo", torch.device("cpu"))
    assert loaded.algo.name == "grpo" and loaded.trainer.group_size == 1  # the default: not part of the design
