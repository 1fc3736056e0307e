"""IPA on small hand-computed examples: chunk ids, chunk returns, ratios, masks, the update.

The ratio and mask cases vary *inside* chunks, so a per-step ratio or mask, or an arithmetic mean,
gives other numbers than the chunk's geometric mean (each such mutant fails one of them)."""

import math

import numpy as np
import pytest
import torch

from openclaw_rl.ipa.chunks import (
    chunk_boundaries, chunk_first, chunk_ids, chunk_index, chunk_mean, episode_outcomes, returns_to_go,
)
from openclaw_rl.ipa.loss import chunk_mismatch, ipa_policy_loss, mismatch_keep

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


def test_one_chunk_convention_an_order_ends_its_chunk_for_tensors_and_arrays():
    positions = [0, 1, 1, 1, -1, -1]
    previous = [0] + positions[:-1]
    ends = [p != q for p, q in zip(positions, previous)]
    assert chunk_index(T(ends)[:, None])[:, 0].tolist() == [0, 0, 1, 1, 1, 2]
    assert chunk_index(np.array(ends)[:, None])[:, 0].tolist() == [0, 0, 1, 1, 1, 2]  # the trajectory store's call


def test_trade_chunker_marks_executed_orders_and_equals_env_flags():
    positions = column(0.0, 1.0, 1.0, -1.0, -1.0)
    prev = column(0.0, 0.0, 1.0, 1.0, -1.0)
    env_flags = column(F, X, F, X, F, dtype=torch.bool)
    steps = column(0, 1, 2, 3, 4, dtype=torch.long)
    kwargs = dict(positions=positions, prev_positions=prev, env_chunk_end=env_flags, step_in_episode=steps, fixed_k=2)
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


def test_episode_ending_mid_chunk_by_truncation_bootstraps_from_the_final_observation():
    gamma = 0.9
    rewards = column(1.0, 1.0, 1.0, 1.0)
    boundary = column(F, F, F, F, dtype=torch.bool)
    truncated = column(F, X, F, F, dtype=torch.bool)  # cut at t=1, mid-chunk, time left
    final_values = column(0.0, 7.0, 0.0, 0.0)
    no = torch.zeros(4, 1, dtype=torch.bool)
    g = returns_to_go(rewards, boundary, no, truncated, final_values, T([3.0]), gamma)
    # unfinished chunk: the critic's value of the final state continues it without a gamma
    assert g[:, 0].tolist() == pytest.approx([1 + 1 + 7, 1 + 7, 1 + 1 + 3, 1 + 3])
    ids, n = chunk_ids(boundary | truncated)
    assert ids[:, 0].tolist() == [0, 0, 1, 1]


def test_episode_outcomes_by_hand():
    # column 0: an episode open before the rollout (return 0.5 so far) ends at t=1, the next stays
    # open and bootstraps with last_value; column 1: truncated at t=0 (bootstrap 4), then terminated.
    rewards = T([[1.0, 1.0], [-2.0, 2.0], [3.0, -5.0]])
    terminated = T([[F, F], [X, F], [F, X]])
    truncated = T([[F, X], [F, F], [F, F]])
    final_values = T([[0.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    out = episode_outcomes(rewards, terminated, truncated, final_values, T([10.0, 99.0]), T([0.5, -1.0]))
    assert out[:, 0].tolist() == pytest.approx([0.5 + 1 - 2, 0.5 + 1 - 2, 3 + 10])
    assert out[:, 1].tolist() == pytest.approx([-1 + 1 + 4, 2 - 5, 2 - 5])


def grad_of_loss(logp_old, advantages, ids, n, positive, logp_behaviour=None, high=10.0, low=0.0):
    """d loss / d logp_new at logp_new = 0 (so the per-step ratio is 1 / exp(logp_old))."""
    logp_new = torch.zeros_like(logp_old, requires_grad=True)
    behaviour = logp_old if logp_behaviour is None else logp_behaviour
    loss, stats = ipa_policy_loss(logp_new, logp_old, behaviour, advantages, ids, n, positive, high, low)
    loss.backward()
    return logp_new.grad[:, 0].tolist(), stats


def test_negative_branch_uses_the_geometric_mean_ratio_of_the_chunk_truncated_to_one():
    ids = T([[0], [0], [1], [1]])
    # chunk 0: step ratios 0.25 and 1 -> geometric mean 0.5 (arithmetic 0.625); chunk 1: 4 and 0.25 -> 1
    logp_old = -torch.log(T([[0.25], [1.0], [4.0], [0.25]]))
    advantages = T([[-2.0], [-2.0], [-3.0], [-3.0]])
    negative = torch.zeros(4, 1, dtype=torch.bool)
    grad, stats = grad_of_loss(logp_old, advantages, ids, 2, negative)
    # loss = -sum(w * A * logp) / 4 over kept steps; w = [rho_c]_0^1, no gradient through w
    assert grad == pytest.approx([0.5 * 2 / 4, 0.5 * 2 / 4, 1.0 * 3 / 4, 1.0 * 3 / 4], abs=1e-6)
    assert stats["ipa/ratio_min"] == pytest.approx(0.5) and stats["ipa/ratio_max"] == pytest.approx(1.0)


def test_ratio_above_one_is_truncated_and_gives_no_gradient_through_the_weight():
    ids = T([[0], [0], [1], [1]])
    logp_old = T([[math.log(4.0)], [math.log(4.0)], [math.log(0.5)], [math.log(0.5)]])
    advantages = T([[-2.0], [-2.0], [-2.0], [-2.0]])
    grad, _ = grad_of_loss(logp_old, advantages, ids, 2, torch.zeros(4, 1, dtype=torch.bool))
    # chunk 0: rho = 1/4 -> weight 0.25; chunk 1: rho = 2 truncated to 1
    assert grad == pytest.approx([0.25 * 2 / 4, 0.25 * 2 / 4, 1.0 * 2 / 4, 1.0 * 2 / 4])


def test_positive_branch_has_no_ratio_even_where_rho_differs_from_one():
    ids = T([[0], [0], [1], [1]])
    logp_old = -torch.log(T([[0.25], [1.0], [0.5], [0.5]]))  # rho: 0.5 and 0.5
    advantages = T([[3.0], [3.0], [-1.0], [-1.0]])
    positive = T([[X], [X], [F], [F]])
    grad, stats = grad_of_loss(logp_old, advantages, ids, 2, positive)
    assert grad == pytest.approx([-3.0 / 4, -3.0 / 4, 0.5 * 1 / 4, 0.5 * 1 / 4])
    assert stats["ipa/positive_fraction"] == 0.5


def test_the_positive_branch_follows_the_given_split_not_the_advantage_sign():
    # a step of a positive trajectory whose advantage is negative: weight 1, no ratio
    ids = T([[0], [1]])
    logp_old = -torch.log(T([[0.25], [0.25]]))
    advantages = T([[-1.0], [-1.0]])
    grad, _ = grad_of_loss(logp_old, advantages, ids, 2, T([[X], [F]]))
    assert grad == pytest.approx([1.0 / 2, 0.25 / 2])


def test_mismatch_mask_is_per_chunk_geometric_mean_and_drops_whole_chunks():
    ids = T([[0], [0], [1], [1], [2], [2]])
    logp_old = torch.zeros(6, 1)
    # pi_old / mu per step: chunk 0: e^3, e^-3 (geometric mean 1: kept, though one step alone is e^3 > H);
    # chunk 1: e, e (mean e > H = 2: dropped); chunk 2: e^-1, e^-1 (mean 0.37: kept unless low = 0.5)
    behaviour = -T([[3.0], [-3.0], [1.0], [1.0], [-1.0], [-1.0]])
    gm = chunk_mismatch(logp_old, behaviour, ids, 3)
    assert gm.tolist() == pytest.approx([1.0, math.e, 1 / math.e])
    assert mismatch_keep(logp_old, behaviour, ids, 3, high=2.0)[:, 0].tolist() == [1, 1, 0, 0, 1, 1]
    assert mismatch_keep(logp_old, behaviour, ids, 3, high=2.0, low=0.5)[:, 0].tolist() == [1, 1, 0, 0, 0, 0]
    advantages = -torch.ones(6, 1)
    no = torch.zeros(6, 1, dtype=torch.bool)
    grad, stats = grad_of_loss(logp_old, advantages, ids, 3, no, behaviour, high=2.0)
    assert grad == pytest.approx([1 / 4, 1 / 4, 0.0, 0.0, 1 / 4, 1 / 4])
    assert stats["ipa/masked_fraction"] == pytest.approx(2 / 6)
    grad, stats = grad_of_loss(logp_old, advantages, ids, 3, no, behaviour, high=2.0, low=0.5)
    assert grad == pytest.approx([1 / 2, 1 / 2, 0.0, 0.0, 0.0, 0.0])
    assert stats["ipa/masked_fraction"] == pytest.approx(4 / 6)


def test_steps_outside_learn_are_not_in_the_loss():
    ids = T([[0], [1], [1]])
    logp_new = torch.zeros(3, 1, requires_grad=True)
    loss, stats = ipa_policy_loss(logp_new, torch.zeros(3, 1), torch.zeros(3, 1), T([[1.0], [1.0], [1.0]]), ids, 2,
                                  torch.ones(3, 1, dtype=torch.bool), 2.0, learn=T([[0.0], [1.0], [1.0]]))
    loss.backward()
    assert logp_new.grad[:, 0].tolist() == pytest.approx([0.0, -0.5, -0.5])


def test_chunk_ratio_is_the_geometric_mean():
    ids = T([[0], [0], [1], [1]])
    logp_new = torch.zeros(4, 1)
    logp_old = T([[math.log(0.5)], [math.log(2.0)], [math.log(0.25)], [0.0]])
    # chunk 0: ratios 2 and 0.5 -> geometric mean 1; chunk 1: 4 and 1 -> 2
    rho = torch.exp(chunk_mean(logp_new - logp_old, ids, 2))[:, 0].tolist()
    assert rho == pytest.approx([1.0, 1.0, 2.0, 2.0])
