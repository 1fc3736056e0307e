"""Trajectory datasets: shards, metadata, atomic writes, composition by weights, exact replay."""

import json
from collections import Counter

import numpy as np
import pytest

import torch

from openclaw_rl.episodes import policy_actor, run_episodes, strategy_actor
from openclaw_rl.data.trajectories import TrajectoryDataset, compose, generate, replay
from openclaw_rl.rock import DataError, EnvConfig, MarketVecEnv
from openclaw_rl.roll.checkpoint import save_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.strategies.v7 import MeanReversion, TrendFollowing

ENV = EnvConfig(window=8, episode_bars=30, continuous=True, regime="bull")


def make(tmp_path, name, strategy, n=10, seed=0, shard_size=4):
    return generate(strategy_actor(strategy), ENV, n, seed, tmp_path / name, name, shard_size=shard_size)


def test_shards_hold_every_trajectory_with_metadata(tmp_path):
    data = make(tmp_path, "trend", TrendFollowing(fast=2, slow=5))
    assert len(data) == 10 and [s["n_trajectories"] for s in data.manifest["shards"]] == [4, 4, 2]
    meta = data.trajectories().to_pydict()
    assert meta["traj"] == list(range(10)) and meta["market_seed"] == list(range(10))
    assert set(meta["source"]) == {"trend"} and set(meta["regime"]) == {"bull"}
    traj, steps = data.shard(0)
    assert steps.num_rows == 4 * 30 and steps.column_names == ["traj", "t", "action", "logp", "reward", "chunk"]
    first = steps.to_pydict()
    rewards0 = [r for tr, r in zip(first["traj"], first["reward"]) if tr == 0]
    assert sum(rewards0) == pytest.approx(meta["episodic_return"][0], rel=1e-5)
    actions0 = np.array([a for tr, a in zip(first["traj"], first["action"]) if tr == 0])
    chunks0 = np.array([c for tr, c in zip(first["traj"], first["chunk"]) if tr == 0])
    ends = actions0 != np.concatenate([[0.0], actions0[:-1]])
    assert np.array_equal(chunks0, np.cumsum(ends) - ends)  # an order ends its chunk
    assert not list((tmp_path / "trend").glob("*.tmp"))


def test_appending_continues_ids_and_refuses_another_env(tmp_path):
    make(tmp_path, "trend", TrendFollowing(fast=2, slow=5), n=3)
    data = generate(strategy_actor(TrendFollowing(fast=2, slow=5)), ENV, 2, 100, tmp_path / "trend", "trend", append=True)
    assert data.trajectories().column("traj").to_pylist() == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match=r"already holds the markets seeded 100\.\.101 .*e\.g\. seed=102"):
        generate(strategy_actor(TrendFollowing(fast=2, slow=5)), ENV, 4, 98, tmp_path / "trend", "trend", append=True)
    assert len(TrajectoryDataset(tmp_path / "trend")) == 5  # nothing was added
    with pytest.raises(DataError, match="another env config"):
        generate(strategy_actor(TrendFollowing()), EnvConfig(window=8, episode_bars=31, continuous=True), 1, 0,
                 tmp_path / "trend", "trend", append=True)


def test_a_second_run_into_a_dataset_is_refused_unless_append_or_overwrite(tmp_path):
    make(tmp_path, "trend", TrendFollowing(fast=2, slow=5), n=6)
    before = (tmp_path / "trend" / "manifest.json").read_text()
    with pytest.raises(DataError, match="already holds a dataset; add to it with append=true .*overwrite=true"):
        make(tmp_path, "trend", TrendFollowing(fast=2, slow=5), n=3)
    assert (tmp_path / "trend" / "manifest.json").read_text() == before  # nothing was written
    with pytest.raises(DataError, match="give one of them"):
        generate(strategy_actor(TrendFollowing()), ENV, 1, 0, tmp_path / "trend", "trend", append=True, overwrite=True)
    data = generate(strategy_actor(MeanReversion(window=5)), ENV, 3, 50, tmp_path / "trend", "revert", overwrite=True)
    assert len(data) == 3 and set(data.trajectories().to_pydict()["source"]) == {"revert"}
    assert sorted(p.name for p in data.root.iterdir()) == ["00000.steps.parquet", "00000.trajectories.parquet",
                                                          "manifest.json"]  # the old shards are gone


def test_replay_regenerates_the_observations_exactly(tmp_path):
    data = make(tmp_path, "trend", TrendFollowing(fast=2, slow=5), n=4)
    traj, steps = data.shard(0)
    actions = steps.column("action").to_numpy().reshape(4, 30).T
    seen = []
    envs = MarketVecEnv(config=EnvConfig(**{**ENV.__dict__, "n_envs": 4}))

    def recorder(envs_):
        act = strategy_actor(TrendFollowing(fast=2, slow=5))(envs_)

        def wrapped(obs, step, starts):
            seen.append(obs.copy())
            return act(obs, step, starts)  # (actions, log-probs)
        return wrapped

    run_episodes(envs, 0, recorder)
    np.testing.assert_array_equal(replay(data.env_config, traj.column("market_seed").to_numpy(), actions), np.stack(seen))


def test_composition_follows_the_weights(tmp_path):
    trend = make(tmp_path, "trend", TrendFollowing(fast=2, slow=5), n=6)
    revert = make(tmp_path, "revert", MeanReversion(window=5), n=6, seed=50)
    stream = compose({str(trend.root): 0.7, str(revert.root): 0.3}, seed=0)
    drawn = Counter(next(stream)[0] for _ in range(2000))
    assert drawn[str(trend.root)] / 2000 == pytest.approx(0.7, abs=0.03)
    name, row, steps = next(stream)
    assert len(steps["action"]) == row["length"] and set(steps["traj"]) == {row["traj"]}


@pytest.mark.parametrize("weights,message", [
    ({"a": -1.0}, "weight of a must be a finite number >= 0"),
    ({"a": 0.0}, "weights must sum to a positive number"),
    ({}, "no dataset given"),
])
def test_bad_weights_are_named(weights, message):
    with pytest.raises(DataError, match=message):
        next(compose(weights, seed=0))


def test_half_written_or_corrupt_shards_are_refused(tmp_path):
    data = make(tmp_path, "trend", TrendFollowing(fast=2, slow=5), n=4)
    steps_file = data.root / data.manifest["shards"][0]["steps_file"]
    steps_file.write_bytes(steps_file.read_bytes()[:100])
    with pytest.raises(DataError, match="00000.steps.parquet: empty or corrupt shard"):
        TrajectoryDataset(data.root)
    (data.root / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt manifest"):
        TrajectoryDataset(data.root)
    with pytest.raises(DataError, match="no such file; not a trajectory dataset"):
        TrajectoryDataset(tmp_path / "empty")


def test_manifest_lists_only_complete_shards(tmp_path):
    data = make(tmp_path, "trend", TrendFollowing(fast=2, slow=5), n=4)
    (data.root / "00001.steps.parquet.tmp").write_bytes(b"a crash mid-write")
    manifest = json.loads((data.root / "manifest.json").read_text())
    assert [s["n_steps"] for s in manifest["shards"]] == [120]
    assert len(TrajectoryDataset(data.root)) == 4  # the leftover .tmp is ignored


def test_a_policy_dataset_records_the_behaviour_log_probs(tmp_path):
    env = EnvConfig(window=8, episode_bars=30, regime="bull")  # discrete actions -1, 0, +1
    torch.manual_seed(0)
    policy = ActorCritic.for_env(env, RunConfig().policy)
    data = generate(policy_actor(policy, torch.device("cpu"), deterministic=False), env, 4, 0, tmp_path / "p", "policy")
    traj, steps = data.shard(0)
    positions = steps.column("action").to_numpy().reshape(4, 30).T
    logp = steps.column("logp").to_numpy().reshape(4, 30).T
    # The recorded log-probs are the policy's, of the recorded actions, on the replayed observations.
    obs = torch.as_tensor(replay(data.env_config, traj.column("market_seed").to_numpy(), positions))
    with torch.no_grad():
        head, _, _ = policy.forward_sequence(obs, policy.initial_state(4), torch.zeros(30, 4))
    index = torch.as_tensor(np.searchsorted(np.asarray(env.actions), positions))
    expected = torch.distributions.Categorical(logits=head).log_prob(index).numpy()
    np.testing.assert_allclose(logp, expected, atol=1e-5)
    assert (logp < -0.5).all()  # an untrained policy is unsure of every action


def test_the_command_line_generates_a_dataset_and_names_bad_input(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    def cli(*overrides):
        return subprocess.run([sys.executable, "-m", "openclaw_rl.data", f"hydra.run.dir={tmp_path / 'log'}", *overrides],
                              cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)

    small = ["env.window=8", "env.episode_bars=30", "n_trajectories=6", "shard_size=4"]
    result = cli("strategy=momentum", f"out={tmp_path / 'momentum'}", *small)
    assert result.returncode == 0, result.stderr[-2000:]
    data = TrajectoryDataset(tmp_path / "momentum")
    assert len(data) == 6 and set(data.trajectories().to_pydict()["source"]) == {"momentum"}
    assert data.env_config.continuous  # teachers send their own position sizes
    trained = RunConfig.from_mapping({"env": {"window": 8, "episode_bars": 30}})
    policy = ActorCritic.for_env(trained.env, trained.policy)
    save_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", {"config": trained.design(), "policy": policy.state_dict()})
    result = cli(f"checkpoint={tmp_path / 'run'}", f"out={tmp_path / 'policy'}", *small)
    assert result.returncode == 0, result.stderr[-2000:]
    data = TrajectoryDataset(tmp_path / "policy")
    assert set(data.trajectories().to_pydict()["source"]) == {"policy"} and (data.shard(0)[1].column("logp").to_numpy() < 0).all()
    for overrides, message in (
        (["strategy=oracle", f"out={tmp_path / 'x'}"], "strategy: unknown strategy 'oracle'"),
        (["strategy=trend"], "out: the dataset directory is required"),
        ([f"out={tmp_path / 'x'}"], "strategy, checkpoint: give exactly one"),
        ([f"checkpoint={tmp_path / 'run'}", f"out={tmp_path / 'x'}", "env.window=16"], "trained with env.window=8"),
    ):
        result = cli(*overrides)
        assert result.returncode != 0 and message in result.stderr, (overrides, result.stderr[-1000:])
    assert not (tmp_path / "x").exists()
    again = ["strategy=momentum", f"out={tmp_path / 'momentum'}", *small]
    result = cli(*again)  # a rerun never adds duplicates silently
    assert result.returncode != 0 and "add to it with append=true" in result.stderr and "overwrite=true" in result.stderr
    result = cli(*again, "append=true")  # the same markets again: duplicates, refused
    assert result.returncode != 0 and "already holds the markets seeded 0.." in result.stderr
    assert cli(*again, "append=true", "seed=1000").returncode == 0 and len(TrajectoryDataset(tmp_path / "momentum")) == 12
