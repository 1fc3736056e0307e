"""Gymnasium API, seeding, autoreset, snapshot/restore, and batched == N single envs."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import openclaw_rl  # noqa: F401
from openclaw_rl.rock import ENV_ID, MarketEnv, MarketVecEnv

SHORT = dict(window=8, episode_bars=20)


def test_check_env_passes_discrete_and_continuous():
    check_env(gym.make(ENV_ID, **SHORT).unwrapped)
    check_env(gym.make(ENV_ID, continuous=True, **SHORT).unwrapped)


def test_make_vec_uses_the_batched_env_and_declares_autoreset_mode():
    envs = gym.make_vec(ENV_ID, num_envs=5, regime="crash", **SHORT)
    assert isinstance(envs, MarketVecEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, info = envs.reset(seed=0)
    assert obs.shape == (5, 8 + 5) and obs.dtype == np.float32
    assert envs.observation_space.contains(obs)


def rollout_single(seed, actions, **config):
    env = MarketEnv(**config)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, reward, term, trunc, info = env.step(a)
        out += [obs, reward, term, trunc, info["chunk_end"], info["regime"], info["equity"]]
    return out


def test_same_seed_same_numbers_and_different_seed_different_numbers():
    actions = np.random.default_rng(0).integers(0, 3, 15)
    a, b, c = (rollout_single(s, actions, **SHORT) for s in (3, 3, 4))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("market", ["regime_switching", "garch", "heston", "merton", "gbm"])
def test_vector_env_equals_n_single_envs_across_autoresets(market):
    n, steps = 6, 50  # episodes of 20 steps: two autoresets per env
    config = dict(SHORT, market={"kind": market}, reward="dsr", ruin_fraction=0.05)
    ours = MarketVecEnv(num_envs=n, **config)
    reference = SyncVectorEnv([lambda: MarketEnv(**config) for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)
    obs_a, info_a = ours.reset(seed=11)
    obs_b, info_b = reference.reset(seed=11)
    np.testing.assert_array_equal(obs_a, obs_b)
    actions = np.random.default_rng(1).integers(0, 3, (steps, n))
    ended = 0
    for a in actions:
        out_a, out_b = ours.step(a), reference.step(a)
        for x, y in zip(out_a[:4], out_b[:4]):
            np.testing.assert_array_equal(x, y)
        info_a, info_b = out_a[4], out_b[4]
        for key in ("chunk_end", "regime", "equity", "position"):
            np.testing.assert_array_equal(info_a[key], info_b[key], err_msg=key)
        if "final_obs" in info_b:
            done = info_b["_final_obs"]
            np.testing.assert_array_equal(info_a["_final_obs"], done)
            np.testing.assert_array_equal(info_a["final_obs"][done], np.stack(info_b["final_obs"][done]))
            np.testing.assert_array_equal(info_a["final_info"]["equity"][done], info_b["final_info"]["equity"][done])
            ended += done.sum()
    assert ended == 2 * n


def test_markets_in_a_batch_are_independent_of_batch_size():
    small, large = MarketVecEnv(num_envs=2, **SHORT), MarketVecEnv(num_envs=700, **SHORT)
    obs_small, _ = small.reset(seed=5)
    obs_large, _ = large.reset(seed=5)
    np.testing.assert_array_equal(obs_small, obs_large[:2])
    assert not np.array_equal(obs_large[0], obs_large[1])


def test_snapshot_restore_replays_the_same_trajectory_through_autoreset():
    envs = MarketVecEnv(num_envs=4, **SHORT)
    envs.reset(seed=2)
    rng = np.random.default_rng(3)
    for a in rng.integers(0, 3, (7, 4)):
        envs.step(a)
    state = envs.snapshot()
    actions = rng.integers(0, 3, (30, 4))  # crosses the episode end at step 20
    first = [envs.step(a)[:2] for a in actions]
    envs.restore(state)
    second = [envs.step(a)[:2] for a in actions]
    for (o1, r1), (o2, r2) in zip(first, second):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)


def test_single_env_snapshot_is_isolated_from_later_steps():
    env = MarketEnv(**SHORT)
    env.reset(seed=0)
    state = env.snapshot()
    obs0 = state["obs"].copy()
    env.step(2)
    np.testing.assert_array_equal(state["obs"], obs0)
    env.restore(state)
    np.testing.assert_array_equal(env.snapshot()["obs"], obs0)


def test_restore_rejects_a_snapshot_of_another_shape():
    state = MarketVecEnv(num_envs=3, **SHORT).snapshot()
    with pytest.raises(ValueError, match="n_envs"):
        MarketVecEnv(num_envs=4, **SHORT).restore(state)


def test_true_regime_is_in_info_and_not_in_the_observation():
    env = MarketEnv(regime="crash", **SHORT)
    obs, info = env.reset(seed=0)
    assert info["regime"] == 3  # crash
    assert obs.shape == (8 + 5,)


def test_continuous_actions_are_clipped_to_max_position():
    env = MarketEnv(continuous=True, max_position=0.5, **SHORT)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([3.0], dtype=np.float32))
    assert info["position"] == 0.5 and info["chunk_end"]


def test_vector_env_rejects_bad_actions():
    envs = MarketVecEnv(num_envs=2, **SHORT)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        envs.step(np.array([0, 3]))
    with pytest.raises(ValueError, match="integer"):
        envs.step(np.array([0.0, 1.0]))
