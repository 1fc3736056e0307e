"""A user's own Gymnasium env (``env.gym_id``) in the rollout workers: it trains, its crashes are survived
with whole episodes, and spaces a policy cannot drive are refused before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import user_sim  # noqa: F401  (registers the test simulators)

from openclaw_rl.errors import ConfigError
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.trainer import run_training
from openclaw_rl.roll.workers import RolloutPool

T = 16


def config(gym_id: str = "user_sim:Sim-v0", n_envs: int = 8, updates: int = 20, **trainer) -> RunConfig:
    return RunConfig.from_mapping({
        "env": {"gym_id": gym_id, "n_envs": n_envs},
        "algo": {"name": "ppo", "lr": 3e-3},
        "eval": {"objective": "episodic_return", "n_envs": 8},
        "trainer": {"total_steps": n_envs * T * updates, "rollout_steps": T, "progress": "log", **trainer},
    })


def test_a_user_env_trains_in_process_workers(tmp_path):
    """The simulator shows the coin it pays for: a policy that learns it earns 20 of 20, chance 10."""
    result = run_training(config(updates=25, workers=2, backend="process"), tmp_path / "run")
    assert result.metrics == {"episodic_return": result.objective}
    assert result.objective >= 18
    returns = [h["charts/episodic_return"] for h in result.history if "charts/episodic_return" in h]
    assert returns[-1] > returns[0] + 3


def test_a_crashing_user_env_restarts_whole_episodes_on_fresh_seeds():
    """1% of the simulator's steps raise. A user env has no snapshot: the failed rollout is thrown away and
    the worker's episodes start again on fresh seeds (``workers.restart_seeds``). Every column of every batch is then an unbroken
    stretch of episodes: the step counter goes up by one, or an episode starts at step 0 on the column's
    seed; never a step of an attempt that failed."""
    run = config("user_sim:CrashySim-v0", n_envs=4, workers=2, backend="process", worker_retries=100)
    pool = RolloutPool(run, ActorCritic.for_env(run.env, run.policy), torch.device("cpu"))
    previous_step = None
    restarts = 0
    try:
        for version in range(40):  # 6 rollouts at least, then until a restart: none in 40 with probability < 1e-11
            if version >= 6 and restarts > 0:
                break
            batch, _ = pool.collect(T, version)
            restarts += pool.stats["sandbox/restarts"]
            step, seed = batch.obs[..., 0].numpy(), batch.obs[..., 1].numpy()
            starts = batch.starts.numpy().astype(bool)
            before = -1 if previous_step is None else previous_step  # a run starts every episode at step 0
            assert np.all((step[0] == before + 1) | (starts[0] & (step[0] == 0))), (version, step[0], before)
            assert np.all((step[1:] == step[:-1] + 1) | (starts[1:] & (step[1:] == 0)))
            assert np.all(seed % 4 == np.arange(4))  # run seed 0: column i plays seed i + 4k after its k-th restart
            previous_step = step[-1]
    finally:
        pool.close()
    assert restarts > 0  # 40 rollouts x 16 steps x 4 envs at 1% each


def test_a_failure_that_recurs_the_same_way_stops_the_run_with_its_error(tmp_path):
    """A deterministic bug fails each retry at the same step with the same error: three times, then the
    run stops naming it (instead of retrying trainer.worker_retries=100 times)."""
    with pytest.raises(RuntimeError, match=r"failed the same way 3 times; .*at step 2 of the rollout: ValueError: "
                                           r"the simulator has a bug at step 3"):
        run_training(config("user_sim:Broken-v0", workers=2), tmp_path / "run")


@pytest.mark.parametrize("gym_id, overrides, message", [
    ("user_sim:DictObs-v0", {}, r"env\.gym_id=user_sim:DictObs-v0: the policy reads a 1-D Box observation"),
    ("user_sim:TwoActions-v0", {}, r"env\.gym_id=user_sim:TwoActions-v0: the policy acts in a Discrete space"),
    ("user_sim:Continuous-v0", {}, r"env\.continuous: .*set env\.continuous=true"),
    ("user_sim:Nope-v0", {}, r"env\.gym_id=user_sim:Nope-v0: cannot make it"),
    ("no_such_module:Sim-v0", {}, r"env\.gym_id=no_such_module:Sim-v0: cannot make it"),
    ("user_sim:Sim-v0", {"eval": {"objective": "log_return"}}, r"eval\.objective"),
    ("user_sim:Sim-v0", {"policy": {"memory": {"name": "paom"}}}, r"policy\.memory"),
])
def test_a_user_env_the_policy_cannot_drive_is_refused_up_front(gym_id, overrides, message):
    values = {"env": {"gym_id": gym_id}, "eval": {"objective": "episodic_return"}}
    for key, value in overrides.items():
        values[key] = {**values.get(key, {}), **value}
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_mapping(values)


def test_a_continuous_user_env_runs_with_env_continuous():
    run = RunConfig.from_mapping({"env": {"gym_id": "user_sim:Continuous-v0", "continuous": True, "n_envs": 2},
                                  "eval": {"objective": "episodic_return"},
                                  "trainer": {"rollout_steps": 4, "workers": 2}, "algo": {"num_minibatches": 2}})
    pool = RolloutPool(run, ActorCritic.for_env(run.env, run.policy), torch.device("cpu"))
    batch, _ = pool.collect(4, 0)
    pool.close()
    assert batch.actions.shape == (4, 2, 1) and batch.obs.shape == (4, 2, 3)
