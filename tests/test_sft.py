"""stage=sft: behaviour cloning on a composed dataset, then RL from its checkpoint."""

import dataclasses

import pytest
import torch

from openclaw_rl.episodes import strategy_actor
from openclaw_rl.data.trajectories import generate
from openclaw_rl.rock import ConfigError, EnvConfig
from openclaw_rl.roll.checkpoint import checkpoint_path, load_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.pipeline import run
from openclaw_rl.strategies.v7 import BuyAndHold, Momentum


def config(**sections):
    values = {"env": {"window": 8, "episode_bars": 30, "n_envs": 8, "regime": "bull"}, "eval": {"n_envs": 4},
              "trainer": {"progress": "log", "rollout_steps": 16, "total_steps": 128}, "algo": {"num_minibatches": 2}}
    for key, value in sections.items():
        values[key] = {**values.get(key, {}), **value}
    return RunConfig.from_mapping(values)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    env = EnvConfig(window=8, episode_bars=30, continuous=True, regime="bull")
    generate(strategy_actor(BuyAndHold()), env, 64, 0, root / "hold", "buy_and_hold")
    generate(strategy_actor(Momentum(lookback=5)), env, 64, 100, root / "momentum", "momentum")
    return root


def test_sft_clones_the_teacher_and_rl_starts_from_it(datasets, tmp_path):
    sft = config(trainer={"stage": "sft"}, sft={"datasets": [str(datasets / "hold")], "updates": 60,
                                                 "batch_trajectories": 16}, algo={"lr": 3e-3})
    result = run(sft, tmp_path / "sft")
    first, last = result.history[0], result.history[-1]
    assert last["sft/loss"] < first["sft/loss"] and last["sft/accuracy"] == 1.0  # always long: easy to clone
    state = load_checkpoint(checkpoint_path(tmp_path / "sft"))
    assert state["stage"] == "sft" and state["update"] == 60
    # the clone holds long like its teacher: buy-and-hold less the entry gap and fees, and a gain on bull markets
    assert abs(result.metrics["excess_log_return"]) < 0.01 and result.metrics["log_return"] > 0
    rl = run(config(trainer={"init_from": str(tmp_path / "sft")}), tmp_path / "rl")
    assert rl.history  # IPA ran from the cloned weights


def test_a_mix_of_datasets_trains(datasets, tmp_path):
    mix = {"datasets": [str(datasets / "hold"), str(datasets / "momentum")], "weights": [0.7, 0.3]}
    result = run(config(trainer={"stage": "sft"}, sft={**mix, "updates": 3}), tmp_path)
    assert len(result.history) == 3 and all(torch.isfinite(torch.tensor(h["sft/loss"])) for h in result.history)


def test_datasets_must_fit_the_policy(datasets, tmp_path):
    with pytest.raises(ConfigError, match="generated with env.window=8, this run observes env.window=16"):
        run(config(trainer={"stage": "sft"}, env={"window": 16}, sft={"datasets": [str(datasets / "hold")]}),
                     tmp_path)
    with pytest.raises(ConfigError, match="stage=sft needs at least one dataset"):
        run(config(trainer={"stage": "sft"}), tmp_path)


def test_the_pipeline_runs_sft_then_rl_and_resume_keeps_a_finished_sft(datasets, tmp_path):
    pipeline = config(trainer={"stage": "sft_rl"}, resample={"teacher": "momentum"},
                      sft={"datasets": [str(datasets / "hold")], "updates": 20, "batch_trajectories": 8})
    result = run(pipeline, tmp_path)
    assert result.run_dir == tmp_path / "rl" and len(result.history) == pipeline.num_updates
    assert "losses/il_loss" in result.history[0]  # rl ran with resampling from the teacher
    sft_checkpoint = checkpoint_path(tmp_path / "sft")
    assert load_checkpoint(sft_checkpoint)["stage"] == "sft"
    assert load_checkpoint(checkpoint_path(tmp_path / "rl"))["update"] == pipeline.num_updates
    written = sft_checkpoint.stat().st_mtime_ns
    resumed = run(dataclasses.replace(pipeline, trainer=dataclasses.replace(pipeline.trainer, resume="auto")),
                           tmp_path)
    assert sft_checkpoint.stat().st_mtime_ns == written  # the finished SFT stage is kept
    assert resumed.history == [] and resumed.objective == pytest.approx(result.objective)  # rl was already done
