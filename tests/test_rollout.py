"""The collector: the horizon is terminal, orders (chunk ends) come from the env, the last step's from
``final_info``, groups stay on one market after a ruin, the normalizer is fixed during a rollout, and
the trajectory store numbers chunks as the learner does."""

import numpy as np
import torch

from openclaw_rl.episodes import EpisodeRecord
from openclaw_rl.ipa.chunks import chunk_boundaries, chunk_ids
from openclaw_rl.rock import EnvConfig
from openclaw_rl.roll.algorithms import compute_targets
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import build



def config(env=None, **sections):
    values = {"env": {"n_envs": 4, "window": 4, "episode_bars": 6, "regime": "bull", **(env or {})},
              "trainer": {"rollout_steps": 14, "total_steps": 10_000}, "algo": {"num_minibatches": 1},
              "eval": {"n_envs": 2}, **sections}
    return RunConfig.from_mapping(values)


def collect(c, steps=None, seed=0):
    torch.manual_seed(seed)
    envs, policy, collector, learner = build(c, torch.device("cpu"))
    batch, _ = collector.collect(steps or c.trainer.rollout_steps, version=0)
    return batch, collector, learner


def test_the_horizon_the_observation_shows_is_terminal_not_a_truncation():
    batch, _, _ = collect(config(env={"reward": "terminal_excess"}))
    horizon = batch.step_in_episode == 5
    assert horizon.any()
    assert torch.equal(batch.terminated, horizon) and not batch.truncated.any()
    assert (batch.final_values == 0).all()  # the critic is never asked about the state after the horizon
    assert torch.equal(batch.rewards != 0, horizon)  # terminal_excess pays there, and nothing lies beyond


def test_an_order_on_an_episodes_last_step_is_read_from_final_info(monkeypatch):
    torch.manual_seed(0)
    _, policy, collector, _ = build(config(), torch.device("cpu"))
    real_act, calls = policy.act, []

    def alternate(obs, state, starts, deterministic=False, given=None, context=None):  # short, long, ...: an order every step
        action, logp, value, state = real_act(obs, state, starts, deterministic, given, context)
        calls.append(None)
        return torch.full_like(action, 0 if len(calls) % 2 else 2), logp, value, state

    monkeypatch.setattr(policy, "act", alternate)
    batch, _ = collector.collect(14, version=0)
    done = batch.terminated | batch.truncated
    assert done.any()
    assert batch.env_chunk_end.all()  # the last step of each episode included
    assert torch.equal(batch.positions != batch.prev_positions, batch.env_chunk_end)


def test_trade_chunker_with_continuous_actions_chunks_on_executed_orders_only():
    c = config(env={"continuous": True, "trade_threshold": 0.3, "n_envs": 8, "episode_bars": 20},
               policy={"init_log_std": -1.5}, trainer={"rollout_steps": 40, "total_steps": 10_000})
    batch, _, _ = collect(c)
    orders = batch.positions != batch.prev_positions
    boundary = chunk_boundaries("trade", positions=batch.positions, prev_positions=batch.prev_positions,
                                env_chunk_end=batch.env_chunk_end, step_in_episode=batch.step_in_episode)
    assert torch.equal(boundary, orders) and torch.equal(orders, batch.env_chunk_end)
    assert 0.05 < orders.float().mean() < 0.5  # sampled targets differ every step; orders do not
    stats = compute_targets(c.algo, c.ipa, batch, batch.values, torch.zeros(8)).stats
    assert stats["ipa/mean_chunk_length"] > 2.0


def test_chunks_per_episode_counts_whole_episodes_not_the_rollouts_parts_of_them():
    """40-bar episodes chunked every 5 steps have 8 chunks, whether a rollout holds a whole episode or, 20
    steps long, half of one; a rollout where no episode ends reports none (it has no whole episode)."""
    for steps in (40, 20):
        c = config(env={"episode_bars": 40}, algo={"name": "ipa", "num_minibatches": 1},
                   ipa={"chunker": "fixed", "fixed_k": 5}, trainer={"rollout_steps": steps, "total_steps": 10_000})
        envs, policy, collector, learner = build(c, torch.device("cpu"))
        seen = []
        for version in range(80 // steps):
            batch, _ = collector.collect(steps, version=version)
            seen.append(compute_targets(c.algo, c.ipa, batch, batch.values, torch.zeros(4)).stats)
        assert [s.get("ipa/chunks_per_episode") for s in seen] == [8.0] * (80 // steps) if steps == 40 else \
            [None, 8.0, None, 8.0]
        assert all(s["ipa/mean_chunk_length"] == 5.0 for s in seen)


def ruinous(**trainer):
    """Markets where a 3% drawdown ruins: some members of a group end early."""
    return config(env={"n_envs": 8, "episode_bars": 12, "regime": "volatile", "ruin_fraction": 0.97},
                  algo={"name": "grpo", "num_minibatches": 1},
                  trainer={"rollout_steps": 48, "total_steps": 10_000, "group_size": 4, **trainer})


def test_group_members_stay_on_one_market_after_a_ruin():
    c = ruinous()
    batch, collector, _ = collect(c)
    assert batch.padding.any() and batch.terminated[~batch.padding].any()
    window = c.env.window
    for g in range(2):
        members = torch.arange(8)[batch.group == g]
        assert torch.equal(batch.starts[:, members], batch.starts[:, members[:1]].expand(-1, len(members)))
        for t in range(batch.rewards.shape[0]):
            playing = members[~batch.padding[t, members]]
            assert len(playing) >= 1
            assert (batch.step_in_episode[t, playing] == batch.step_in_episode[t, playing[0]]).all()
            market = batch.obs[t, playing, :window]  # the return window: the market each member sees
            assert torch.equal(market, market[:1].expand_as(market)), (t, g)
    # padding begins right after a member's episode ended early
    first = batch.padding & ~torch.roll(batch.padding, 1, 0)
    assert (batch.terminated[torch.roll(first, -1, 0)]).all()
    engine = collector.envs.engine
    playing = ~collector.waiting
    for g in range(2):
        rows = np.flatnonzero((np.arange(8) // 4 == g) & playing)
        assert len(set(engine.t[rows])) == 1 and len(set(engine.episodes[rows])) == 1


def test_padding_has_no_reward_and_ends_nothing():
    batch, _, _ = collect(ruinous())
    assert (batch.rewards[batch.padding] == 0).all()
    assert not (batch.terminated | batch.truncated)[batch.padding].any()


def test_collector_state_restores_groups_exactly():
    c = ruinous(rollout_steps=20)
    torch.manual_seed(0)
    _, _, collector, _ = build(c, torch.device("cpu"))
    collector.collect(20, version=0)
    saved, rng = collector.state_dict(), torch.get_rng_state()
    expected, _ = collector.collect(20, version=1)
    torch.manual_seed(0)
    _, _, restored, _ = build(c, torch.device("cpu"))
    restored.load_state_dict(saved)
    torch.set_rng_state(rng)
    again, _ = restored.collect(20, version=1)
    for field in ("actions", "padding", "rewards", "obs", "starts"):
        assert torch.equal(getattr(expected, field), getattr(again, field)), field


def test_the_normalizer_is_fixed_during_a_rollout():
    torch.manual_seed(0)
    _, policy, collector, _ = build(config(), torch.device("cpu"))
    before = {name: buffer.clone() for name, buffer in policy.norm.named_buffers()}
    collector.collect(14, version=0)
    assert all(torch.equal(before[name], buffer) for name, buffer in policy.norm.named_buffers())


def test_the_trajectory_store_numbers_chunks_as_the_learner_does():
    from openclaw_rl.data.trajectories import _tables

    positions = np.array([[0.0, 1, 1, 1, -1, -1], [1, 1, 0, 0, 0, 1]]).T  # two markets, 6 bars
    record = EpisodeRecord(equity=np.ones((7, 2)), positions=positions, rewards=np.zeros((6, 2)),
                           buy_and_hold=np.zeros(2), lengths=np.array([6, 6]), logp=np.zeros((6, 2)))
    steps, _ = _tables(record, 0, 0, "test", "bull", EnvConfig(initial_equity=1.0))
    previous = np.vstack([np.zeros((1, 2)), positions[:-1]])
    ids, _ = chunk_ids(torch.as_tensor(positions != previous))
    learner = (ids - ids[0]).T.reshape(-1).tolist()  # per trajectory from 0, market after market
    assert steps["chunk"].tolist() == learner == [0, 0, 1, 1, 1, 2, 0, 1, 1, 2, 2, 2]
