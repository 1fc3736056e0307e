"""Chunk-level initialized resampling: teacher chunks and anchors by hand, the collector's prefix
replay, snapshot/restore forks against in-place replay, crucial forks, rollback, the hybrid loss."""

import dataclasses

import numpy as np
import pytest
import torch

from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.roll.config import ResampleConfig, RunConfig
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig
from openclaw_rl.roll.resample import (
    TeacherReplay, crucial_forks, fork_scan, markets_at_start, nth_start, teacher_actions,
)
from openclaw_rl.roll.config import TRAIN_SEED_STRIDE
from openclaw_rl.roll.trainer import build, run_training
from openclaw_rl.strategies.v7 import Momentum

ENV = EnvConfig(window=4, episode_bars=8, n_envs=1, regime="bull")



class Scripted:
    """A 'strategy' holding given positions on the episode's bars (for hand-computed cases)."""

    def __init__(self, positions):
        self.positions_in_episode = np.asarray(positions, dtype=np.float64)

    def positions(self, closes):
        out = np.zeros_like(closes)
        w = ENV.window
        out[w : w + len(self.positions_in_episode)] = self.positions_in_episode[:, None]
        return out


def test_teacher_actions_and_chunk_starts_by_hand():
    envs = MarketVecEnv(config=ENV)
    envs.reset(seed=0)
    # targets 0 0 1 1 1 -1 -1 0 (0.4 maps to the nearest level, 0): orders at steps 2, 5 and 7,
    # so chunks start at step 0 and after each order that is not the last step: 3 and 6.
    actions, starts = teacher_actions(Scripted([0, 0, 1, 1, 1, -1, -1, 0.4]), envs.engine, np.array([0]))
    assert actions[:, 0].tolist() == [1, 1, 2, 2, 2, 0, 0, 1]  # indices into actions (-1, 0, +1)
    assert np.flatnonzero(starts[:, 0]).tolist() == [0, 3, 6]
    assert nth_start(starts, np.array([0])).tolist() == [0]
    assert nth_start(starts, np.array([2])).tolist() == [6]


def test_sequential_rollback_moves_back_one_chunk_when_the_level_succeeds():
    envs = MarketVecEnv(config=ENV)
    envs.reset(seed=0)
    config = ResampleConfig(teacher="trend", mode="sequential", advance_at=0.5)
    replay = TeacherReplay(config, envs.engine, seed=0)
    replay.strategy = Scripted([0, 0, 1, 1, 1, -1, -1, 0])
    replay.start(np.array([0]))
    assert replay.anchor.tolist() == [6] and replay.level == 1  # the last chunk is left to the policy
    replay.finish(np.array([0]), np.array([-0.01]))  # a failure: stay
    assert replay.end_rollout()["resample/level"] == 1.0
    replay.finish(np.array([0]), np.array([0.02]))  # 1 of 2 at this level succeeded: roll back
    assert replay.end_rollout()["resample/level"] == 2.0
    replay.finish(np.array([0]), np.array([0.02]))  # an episode begun at level 1 does not count for level 2
    assert replay.end_rollout()["resample/level"] == 2.0
    replay.start(np.array([0]))
    assert replay.anchor.tolist() == [3]
    replay.finish(np.array([0]), np.array([0.02]))
    assert replay.end_rollout()["resample/level"] == 3.0
    replay.level = 5  # more levels than chunks: the whole episode is the policy's
    replay.start(np.array([0]))
    assert replay.anchor.tolist() == [0]


def small(**resample):
    return RunConfig.from_mapping({
        "env": {"n_envs": 8, "window": 8, "episode_bars": 24, "regime": "volatile"},
        "trainer": {"rollout_steps": 24, "total_steps": 24 * 8 * 4, "progress": "log"},
        "algo": {"num_minibatches": 2}, "eval": {"n_envs": 4},
        "resample": {"teacher": "momentum", **resample},
    })


def test_the_collector_replays_the_teacher_prefix_then_the_policy_samples():
    config = small()
    config = dataclasses.replace(config, policy=dataclasses.replace(config.policy, normalize_obs=False))  # fixed inputs
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    teacher = collector.teacher
    anchors, teacher_steps = teacher.anchor.copy(), teacher.actions.copy()
    assert 0 < anchors.max() < config.env.episode_bars and anchors.min() >= 0
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)  # exactly one episode per env
    steps = np.arange(config.trainer.rollout_steps)[:, None]
    assert np.array_equal(batch.teacher.numpy(), steps < anchors)
    assert np.array_equal(batch.prefix_end.numpy(), steps == anchors - 1)
    replayed = batch.teacher.numpy()
    assert np.array_equal(batch.actions.numpy()[replayed], teacher_steps[replayed])
    logp, _, _ = learner.score_actions(batch)  # the behaviour log-prob is the policy's, of the action taken
    assert torch.allclose(logp, batch.logp, atol=1e-5)


def test_collector_state_restores_the_teacher_exactly():
    config = small()
    torch.manual_seed(0)
    _, _, collector, _ = build(config, torch.device("cpu"))
    collector.collect(16, version=0)
    saved, rng = collector.state_dict(), torch.get_rng_state()
    expected, _ = collector.collect(16, version=1)  # crosses the episode end: new anchors drawn
    _, _, restored, _ = build(config, torch.device("cpu"))
    restored.load_state_dict(saved)
    torch.set_rng_state(rng)
    again, _ = restored.collect(16, version=1)
    for field in ("actions", "teacher", "prefix_end", "rewards", "obs"):
        assert torch.equal(getattr(expected, field), getattr(again, field)), field


def always(action: int, env: EnvConfig) -> ActorCritic:
    """A policy that (all but surely) takes one action."""
    policy = ActorCritic.for_env(env, PolicyConfig(normalize_obs=False))
    with torch.no_grad():
        policy.actor_head.weight.zero_()
        policy.actor_head.bias.fill_(-30.0)
        policy.actor_head.bias[action] = 30.0
    return policy


def test_forks_restored_from_snapshots_equal_replaying_the_prefix():
    env = EnvConfig(window=8, episode_bars=40, regime="volatile", fee_bps=5.0)
    config = ResampleConfig(teacher="momentum", scan_anchors=4, scan_samples=2)
    seeds = np.array([11, 12, 13])
    scan = fork_scan(always(2, env), Momentum(), env, config, markets_at_start(env, seeds), torch.device("cpu"))
    assert scan.anchors.shape == (3, 4) and (scan.anchors[:, 0] == 0).all()
    strategy = Momentum()
    checked = 0
    for m, seed in enumerate(seeds):
        for slot, anchor in enumerate(scan.anchors[m]):
            if anchor < 0:
                continue
            envs = MarketVecEnv(config=dataclasses.replace(env, n_envs=1))
            envs.reset(seed=[int(seed)])
            actions, _ = teacher_actions(strategy, envs.engine, np.array([0]))
            total = 0.0
            for step in range(env.episode_bars):  # the teacher up to the anchor, then always long
                _, reward, terminated, truncated, _ = envs.step(actions[step] if step < anchor else np.array([2]))
                total += reward[0]
                if terminated[0] or truncated[0]:
                    break
            assert scan.mean_return[m, slot] == pytest.approx(total, abs=1e-12)
            checked += 1
    assert checked >= 6


def test_crucial_fork_is_the_largest_rise_in_success_by_hand():
    success = np.array([[0.0, 0.1, 0.8, 0.9], [0.5, 0.6, np.nan, np.nan], [0.2, 0.1, 0.0, np.nan]])
    fork, gap = crucial_forks(success, fork_gap=0.25)
    assert fork.tolist() == [1, -1, -1]  # from anchor 1 to 2 success jumps 0.7: the chunk between is the fork
    assert gap == pytest.approx([0.7, 0.1, -0.1])


def test_imitation_raises_the_likelihood_of_the_teacher_prefix():
    config = small(lambda_rl=0.0)
    config = dataclasses.replace(config, algo=dataclasses.replace(config.algo, ent_coef=0.0, lr=3e-3, anneal_lr=False))
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)
    replayed = batch.teacher

    def teacher_likelihood():
        with torch.no_grad():
            return learner.score_actions(batch)[0][replayed].mean().item()

    before = teacher_likelihood()
    for update in range(5):
        stats = learner.update(batch, update, 5)
    assert teacher_likelihood() > before + 0.1
    assert stats["losses/il_loss"] == pytest.approx(-teacher_likelihood(), abs=0.2)


def test_training_with_resampling_logs_its_curves(tmp_path):
    result = run_training(small(mode="sequential", scan_every=2, scan_markets=4, scan_samples=2), tmp_path)
    keys = set().union(*result.history)
    assert {"losses/il_loss", "resample/level", "resample/mean_anchor_depth", "resample/success_rate",
            "resample/fork_rate", "resample/success_from_start"} <= keys


def test_fork_mode_starts_episodes_before_the_crucial_fork_the_scan_finds():
    config = small(mode="fork", scan_anchors=4, scan_samples=4, fork_gap=0.2)
    torch.manual_seed(0)
    _, policy, collector, _ = build(config, torch.device("cpu"))
    teacher = collector.teacher
    assert teacher.at_fork.any(), "no fork found: the test needs one"
    anchors = teacher.anchor.copy()
    # The same scan (same policy, markets and torch draws as in build) puts fork-anchored episodes at their fork.
    torch.manual_seed(0)
    ActorCritic.for_env(config.env, config.policy)
    markets = markets_at_start(config.env, config.seed * TRAIN_SEED_STRIDE + np.arange(config.env.n_envs))
    scan = fork_scan(policy, teacher.strategy, config.env, config.resample, markets, torch.device("cpu"))
    found = scan.fork >= 0
    assert np.array_equal(found, teacher.at_fork)
    assert np.array_equal(anchors[found], scan.anchors[found, scan.fork[found]])
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)  # one whole episode per env
    assert np.array_equal(batch.teacher.numpy().sum(0), anchors)  # the teacher acted up to each anchor
    assert teacher.end_rollout()["resample/fork_anchored"] == pytest.approx(teacher.at_fork.mean())
