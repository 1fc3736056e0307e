"""The Python API: learn() runs what the command line runs; policy.predict works like SB3's."""

import logging

import gymnasium as gym
import numpy as np
import pytest
import torch

import openclaw_rl
from openclaw_rl import learn, make_config
from openclaw_rl.rock.config import ConfigError, EnvConfig
from openclaw_rl.memory import MemoryConfig
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig

TINY = ["env.n_envs=4", "env.window=8", "env.episode_bars=20", "trainer.rollout_steps=16", "trainer.total_steps=128",
        "algo.num_minibatches=2", "eval.n_envs=4"]


@pytest.fixture
def no_logging_setup(monkeypatch):
    """A plain Python process: nothing configured logging (pytest's own handlers are taken off the root)."""
    package = logging.getLogger("openclaw_rl")
    monkeypatch.setattr(package, "handlers", [])
    monkeypatch.setattr(package, "level", package.level)

    def plain():
        monkeypatch.setattr(logging.getLogger(), "handlers", [])
    return plain


def test_learn_from_overrides_returns_a_policy_that_plays(tmp_path, no_logging_setup):
    no_logging_setup()
    result = learn(["algo=ppo", *TINY], run_dir=tmp_path / "run")
    assert result.config.algo.norm_adv is True  # the command line's ppo, not a Python variant
    assert np.isfinite(result.objective) and result.objective == result.metrics["log_return"]
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert any(isinstance(h, logging.StreamHandler) for h in logging.getLogger("openclaw_rl").handlers)  # console logging
    env = gym.make("openclaw_rl/Market-v0", window=8, episode_bars=20)
    obs, _ = env.reset(seed=5)
    action, state = result.policy.predict(obs, deterministic=True)
    assert state is None and env.action_space.contains(action)
    env.step(action)


def test_learn_takes_a_dict_or_a_config_object_and_they_agree(tmp_path):
    as_dict = {"algo": {"name": "grpo"}, "trainer": {"group_size": 2}}
    config = make_config(as_dict)
    assert make_config(config) == config == make_config(["algo=grpo", "trainer.group_size=2"])
    with pytest.raises(ConfigError, match=r"^trainer\.total_steps: must be an integer, got 'many'$"):
        learn({"trainer": {"total_steps": "many"}}, run_dir=tmp_path)
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(ConfigError, match=r"trainer\.total_steps=abc.*could not be converted to Integer"):
        make_config(["trainer.total_steps=abc"])
    with pytest.raises(ConfigError, match="algo"):
        make_config(["algo=sac"])
    with pytest.raises(TypeError, match="list of overrides"):
        make_config("algo=ppo")


def test_predict_matches_the_greedy_action_for_single_and_batched_observations():
    env = EnvConfig(window=8, episode_bars=20)
    policy = ActorCritic.for_env(env, PolicyConfig())
    obs = np.random.default_rng(0).normal(size=(5, env.obs_dim)).astype(np.float32)
    batch, _ = policy.predict(obs, deterministic=True)
    with torch.no_grad():
        logits = policy.forward_sequence(torch.as_tensor(obs)[None], policy.initial_state(5), torch.zeros(1, 5))[0][0]
    np.testing.assert_array_equal(batch, logits.argmax(-1).numpy())
    single, _ = policy.predict(obs[2], deterministic=True)
    assert single == batch[2] and np.ndim(single) == 0


@pytest.mark.parametrize("memory", [MemoryConfig("gru", hidden=8), MemoryConfig("window", frames=3),
                                    MemoryConfig("paom", capacity=4)])
def test_predict_carries_a_memory_state_and_resets_it_at_episode_starts(memory):
    env = EnvConfig(window=8, episode_bars=20, continuous=True)
    policy = ActorCritic.for_env(env, PolicyConfig(memory=memory))
    obs = np.random.default_rng(1).normal(size=(3, env.obs_dim)).astype(np.float32)
    first, state = policy.predict(obs, deterministic=True)
    assert first.shape == (3, 1) and state.shape == (1, 3, policy.memory.state_size)
    carried, _ = policy.predict(obs, state, deterministic=True)
    restarted, _ = policy.predict(obs, state, episode_start=np.ones(3, dtype=bool), deterministic=True)
    np.testing.assert_allclose(restarted, first)
    assert not np.allclose(carried, first)  # the state is used


def test_the_package_exports_the_api_lazily():
    assert openclaw_rl.learn is learn
    with pytest.raises(AttributeError):
        openclaw_rl.no_such_thing
