"""IPA on small hand-computed examples: chunk ids, chunk returns, ratios, masks, the update."""

import math

import pytest
import torch

from openclaw_rl.ipa.chunks import chunk_boundaries, chunk_first, chunk_ids, chunk_mean, returns_to_go
from openclaw_rl.ipa.loss import ipa_policy_loss

T = torch.tensor
F, X = False, True


def column(*values, dtype=torch.float32):
    return T(values, dtype=dtype)[:, None]  # [T, 1]


def test_chunk_ids_follow_boundaries_and_episode_ends_per_column():
    # column 0: boundary at t=1, episode ends at t=3, open chunk at the rollout end
    # column 1: no boundary at all: one chunk crossing the whole rollout
    ends = T([[F, F], [X, F], [F, F], [X, F], [F, F]])
    ids, n = chunk_ids(ends)
    assert ids.T.tolist() == [[0, 0, 1, 1, 2], [3, 3, 3, 3, 3]]
    assert n == 4


def test_trade_chunker_marks_orders_and_equals_env_flags_for_discrete_actions():
    targets = column(0.0, 1.0, 1.0, -1.0, -1.0)
    prev = column(0.0, 0.0, 1.0, 1.0, -1.0)
    env_flags = column(F, X, F, X, F, dtype=torch.bool)
    steps = column(0, 1, 2, 3, 4, dtype=torch.long)
    kwargs = dict(targets=targets, prev_targets=prev, env_chunk_end=env_flags, step_in_episode=steps, fixed_k=2)
    assert chunk_boundaries("trade", **kwargs)[:, 0].tolist() == [F, X, F, X, F]
    assert torch.equal(chunk_boundaries("trade", **kwargs), chunk_boundaries("env", **kwargs))
    assert chunk_boundaries("fixed", **kwargs)[:, 0].tolist() == [F, X, F, X, F]
    assert chunk_boundaries("step", **kwargs).all() and not chunk_boundaries("episode", **kwargs).any()
    with pytest.raises(ValueError, match="allowed: trade, fixed, env, step, episode"):
        chunk_boundaries("tokens", **kwargs)


def test_chunk_returns_discount_per_chunk_not_per_step():
    gamma = 0.5
    rewards = column(1.0, 2.0, 3.0, 4.0, 5.0)
    boundary = column(F, X, F, F, X, dtype=torch.bool)  # chunks {0,1}, {2,3,4}
    zeros = torch.zeros(5, 1)
    no = torch.zeros(5, 1, dtype=torch.bool)
    g = returns_to_go(rewards, boundary, no, no, zeros, T([10.0]), gamma)
    # last chunk ended at the rollout end: its successor bootstraps as gamma * V = 5
    g_chunk2 = 3 + 4 + 5 + gamma * 10
    g_chunk1 = 1 + 2 + gamma * g_chunk2
    ids, n = chunk_ids(boundary)
    shared = chunk_first(g, ids, n)[:, 0].tolist()
    assert shared == pytest.approx([g_chunk1, g_chunk1, g_chunk2, g_chunk2, g_chunk2])
    # the critic's target mid-chunk is the rest of the chunk plus the discounted future
    assert g[3, 0].item() == pytest.approx(4 + 5 + gamma * 10)


def test_sparse_final_reward_gives_gamma_to_the_chunks_left():
    gamma = 0.9
    rewards = column(0.0, 0.0, 0.0, 0.0, 0.0, 2.0)
    boundary = column(X, F, X, F, X, F, dtype=torch.bool)  # 4 chunks: {0}, {1,2}, {3,4}, {5}
    terminated = column(F, F, F, F, F, X, dtype=torch.bool)
    no = torch.zeros(6, 1, dtype=torch.bool)
    g = returns_to_go(rewards, boundary, terminated, no, torch.zeros(6, 1), T([99.0]), gamma)
    ids, n = chunk_ids(boundary | terminated)
    shared = chunk_first(g, ids, n)[:, 0].tolist()
    k = [0, 1, 1, 2, 2, 3]  # chunk index; K = 3 is the last
    assert shared == pytest.approx([gamma ** (3 - c) * 2.0 for c in k])


def test_episode_ending_mid_chunk_by_time_limit_bootstraps_from_the_final_observation():
    gamma = 0.9
    rewards = column(1.0, 1.0, 1.0, 1.0)
    boundary = column(F, F, F, F, dtype=torch.bool)
    truncated = column(F, X, F, F, dtype=torch.bool)  # time limit at t=1, mid-chunk
    final_values = column(0.0, 7.0, 0.0, 0.0)
    no = torch.zeros(4, 1, dtype=torch.bool)
    g = returns_to_go(rewards, boundary, no, truncated, final_values, T([3.0]), gamma)
    # unfinished chunk: the critic's value of the final state continues it without a gamma
    assert g[:, 0].tolist() == pytest.approx([1 + 1 + 7, 1 + 7, 1 + 1 + 3, 1 + 3])
    ids, n = chunk_ids(boundary | truncated)
    assert ids[:, 0].tolist() == [0, 0, 1, 1]


def test_chunk_ratio_is_the_geometric_mean_and_the_mask_drops_whole_chunks():
    ids = T([[0], [0], [1], [1]])
    logp_new = T([[0.0], [0.0], [0.0], [0.0]], requires_grad=True)
    logp_old = T([[math.log(0.5)], [math.log(2.0)], [math.log(0.25)], [0.0]])
    # chunk 0: ratios 2 and 0.5 -> geometric mean 1; chunk 1: 4 and 1 -> 2
    rho = torch.exp(chunk_mean(logp_new - logp_old, ids, 2))[:, 0].tolist()
    assert rho == pytest.approx([1.0, 1.0, 2.0, 2.0])
    # behaviour mu: chunk 1's pi_old / mu has geometric mean sqrt(e^2 * e^2) = e^2 > H = 3
    logp_behaviour = logp_old.clone()
    logp_behaviour[2:] -= 2.0
    advantages = T([[1.0], [1.0], [-1.0], [-1.0]])
    loss, stats = ipa_policy_loss(logp_new, logp_old, logp_behaviour, advantages, ids, 2, mismatch_h=3.0)
    assert stats["ipa/masked_fraction"] == 0.5
    loss.backward()
    # kept chunk 0 has positive advantage: weight 1, no ratio; the loss averages over kept steps
    assert logp_new.grad[:, 0].tolist() == pytest.approx([-0.5, -0.5, 0.0, 0.0])


def test_negative_advantages_are_weighted_by_the_truncated_ratio_without_its_gradient():
    ids = T([[0], [0], [1], [1]])
    logp_new = T([[0.0], [0.0], [0.0], [0.0]], requires_grad=True)
    logp_old = T([[math.log(4.0)], [math.log(4.0)], [math.log(0.5)], [math.log(0.5)]])
    advantages = T([[-2.0], [-2.0], [-2.0], [-2.0]])
    loss, _ = ipa_policy_loss(logp_new, logp_old, logp_old, advantages, ids, 2, mismatch_h=10.0)
    loss.backward()
    # chunk 0: rho = 1/4 -> weight 0.25; chunk 1: rho = 2 truncated to 1
    expected = [-(0.25 * -2.0) / 4, -(0.25 * -2.0) / 4, -(1.0 * -2.0) / 4, -(1.0 * -2.0) / 4]
    assert logp_new.grad[:, 0].tolist() == pytest.approx(expected)
