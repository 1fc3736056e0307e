"""Stable-Baselines3 drives our envs: make_vec_env over MarketEnv, and the SB3VecEnv adapter."""

import importlib
import sys

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")  # the [sb3] extra; the dev extra installs it

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecCheckNan, VecEnv, VecMonitor, VecNormalize

import openclaw_rl  # noqa: F401  (registers the env id)
from openclaw_rl.rock import ENV_ID, MarketEnv, MarketVecEnv
from openclaw_rl.rock.sb3 import SB3VecEnv

SHORT = dict(window=8, episode_bars=20)
# make_vec_env asks gym.make for render_mode="rgb_array" (Gymnasium warns), gets a TypeError, retries without.
ASKS_FOR_RGB_ARRAY = pytest.mark.filterwarnings("ignore:.*render_mode='rgb_array'.*:UserWarning")


def adapter(n=8, **config):
    return SB3VecEnv(MarketVecEnv(num_envs=n, **{**SHORT, **config}))


def train_ppo(env):
    """One PPO rollout of 2,048 steps and its update (on one torch thread: conftest)."""
    model = PPO("MlpPolicy", env, n_steps=256, batch_size=512, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=2048)
    assert model.num_timesteps == 2048


@ASKS_FOR_RGB_ARRAY
def test_ppo_trains_through_make_vec_env():
    env = make_vec_env(ENV_ID, n_envs=8, seed=0, env_kwargs=SHORT)  # asks for render_mode="rgb_array" first
    assert env.num_envs == 8 and env.render_mode is None
    train_ppo(env)


def test_ppo_trains_through_the_adapter_discrete_and_continuous():
    train_ppo(adapter())
    train_ppo(adapter(continuous=True))


def test_sb3_env_checker_passes_on_the_single_env():
    sb3_check_env(MarketEnv(**SHORT), warn=False)


def test_adapter_equals_the_vector_env_step_for_step():
    n, steps = 6, 45  # two episode ends per market
    ours, reference = adapter(n, reward="dsr"), MarketVecEnv(num_envs=n, reward="dsr", **SHORT)
    ours.seed(11)
    np.testing.assert_array_equal(ours.reset(), reference.reset(seed=11)[0])
    ended = 0
    for actions in np.random.default_rng(1).integers(0, 3, (steps, n)):
        obs, rewards, dones, infos = ours.step(actions)
        ref_obs, ref_rewards, term, trunc, info = reference.step(actions)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rewards)
        np.testing.assert_array_equal(dones, term | trunc)
        assert [i["TimeLimit.truncated"] for i in infos] == list(trunc & ~term)
        for i in range(n):
            if dones[i]:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], info["final_obs"][i])
                assert infos[i]["equity"] == info["final_info"]["equity"][i]
                assert ours.reset_infos[i]["equity"] == info["equity"][i]
            else:
                assert "terminal_observation" not in infos[i] and infos[i]["equity"] == info["equity"][i]
        ended += dones.sum()
    assert ended == 2 * n


@ASKS_FOR_RGB_ARRAY
def test_adapter_gives_the_numbers_of_make_vec_env_for_the_same_seed():
    n = 4
    dummy, ours = make_vec_env(ENV_ID, n_envs=n, seed=5, env_kwargs=SHORT), adapter(n)
    ours.seed(5)
    np.testing.assert_array_equal(ours.reset(), dummy.reset())
    for actions in np.random.default_rng(2).integers(0, 3, (25, n)):
        a, b = ours.step(actions), dummy.step(actions)
        for x, y in zip(a[:3], b[:3]):
            np.testing.assert_allclose(x, y, rtol=1e-6)  # DummyVecEnv keeps rewards as float32
        for i in np.flatnonzero(b[2]):
            np.testing.assert_array_equal(a[3][i]["terminal_observation"], b[3][i]["terminal_observation"])


def test_seeds_are_used_by_the_next_reset_only():
    env = adapter(3)
    env.seed(7)
    first = env.reset()
    np.testing.assert_array_equal(first, MarketVecEnv(num_envs=3, **SHORT).reset(seed=7)[0])
    assert not np.array_equal(env.reset(), first)  # next episode of each market, not the same one
    env._seeds = [1, None, 2]
    with pytest.raises(ValueError, match=r"seed every market or none, got seeds \[1, None, 2\]"):
        env.reset()


def test_sb3_wrappers_run_on_the_adapter():
    env = VecNormalize(VecMonitor(VecCheckNan(adapter(4, continuous=True), raise_exception=True)))
    assert isinstance(env.unwrapped, VecEnv)
    env.reset()
    episodes = []
    for _ in range(20):
        _, _, dones, infos = env.step(np.random.default_rng(0).uniform(-1, 1, (4, 1)).astype(np.float32))
        episodes += [info["episode"]["l"] for info in infos if "episode" in info]
    assert dones.all() and episodes == [20] * 4


def test_attribute_access_is_shared_by_every_market():
    env = adapter(3)
    assert env.get_attr("config") == [env.envs.config] * 3
    assert env.get_attr("render_mode", indices=[1]) == [None]
    assert env.has_attr("snapshot") and not env.has_attr("no_such_attribute")
    assert env.env_is_wrapped(VecMonitor) == [False, False, False]
    env.reset()
    states = env.env_method("snapshot")
    assert len(states) == 3 and states[0]["t"].shape == (3,)
    env.set_attr("custom", 1)
    assert env.envs.custom == 1
    with pytest.raises(ValueError, match=r"SB3VecEnv\.env_method: the 3 markets share one MarketVecEnv, .* got \[1\]"):
        env.env_method("snapshot", indices=[1])
    with pytest.raises(ValueError, match=r"SB3VecEnv\.set_attr: .* got \[0, 2\]"):
        env.set_attr("custom", 2, indices=[0, 2])


def test_step_before_reset_names_the_fix():
    import gymnasium as gym

    with pytest.raises(gym.error.ResetNeeded, match=r"call envs\.reset"):
        adapter(2).step(np.array([0, 1]))


def test_without_stable_baselines3_the_import_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3.common.vec_env", None)
    monkeypatch.delitem(sys.modules, "openclaw_rl.rock.sb3")
    with pytest.raises(ImportError, match=r"pip install 'openclaw_rl\[sb3\]'"):
        importlib.import_module("openclaw_rl.rock.sb3")
