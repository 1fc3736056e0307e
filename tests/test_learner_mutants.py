"""A broken learner must fail a test: each test here kills a mutant of ``scripts/mutation.py`` that the
other tests let through (the loss terms by hand, TOPR's gradient away from a ratio of 1, the targets'
baselines and boundaries, the update loop's KL and minibatches, the collector's units and bootstrap).

The cases are small and hand-computed through the production functions: values vary inside chunks,
ratios are away from 1, and padding and teacher steps carry values that would show if they leaked in."""

import copy
import math

import numpy as np
import pytest
import torch
import user_sim  # noqa: F401  (registers the test simulators)

from openclaw_rl.ipa.loss import ipa_policy_loss
from openclaw_rl.roll.algorithms import loss_terms, policy_loss, value_loss
from openclaw_rl.roll.config import AlgoConfig, IPAConfig, ResampleConfig, RunConfig
from openclaw_rl.roll.learner import Learner
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig
from openclaw_rl.roll.trainer import build
from test_learner import make_batch, targets

T = torch.tensor
F, X = False, True


def column(*values):
    return T(values, dtype=torch.float32)[:, None]  # [T, 1]


# ------------------------------------------------------------------ the value loss
def test_clipped_value_loss_takes_the_larger_error_and_only_when_clip_vloss_is_on():
    # step 0: the clipped value (0.2) is farther from the target -> its error 3.24 counts, no gradient
    # step 1: the unclipped value is farther -> its error 0.25 counts (min would take 0.09)
    # step 2: inside the clip range; step 3: padding (weight 0) with a huge error
    values_old = column(0.0, 0.0, 1.0, 0.0)
    new = column(1.0, 1.0, 0.9, 5.0).requires_grad_()
    target = column(2.0, 0.5, 0.0, -5.0)
    weight = column(1.0, 1.0, 1.0, 0.0)
    clipped = value_loss(AlgoConfig(clip_coef=0.2, clip_vloss=True), new, values_old, target, weight)
    assert clipped.item() == pytest.approx(0.5 * (3.24 + 0.25 + 0.81) / 3)
    grad = torch.autograd.grad(clipped, new)[0][:, 0].tolist()
    assert grad == pytest.approx([0.0, (1.0 - 0.5) / 3, 0.9 / 3, 0.0])
    plain = value_loss(AlgoConfig(clip_coef=0.2, clip_vloss=False), new, values_old, target, weight)
    assert plain.item() == pytest.approx(0.5 * (1.0 + 0.25 + 0.81) / 3)


def test_huber_value_loss_is_squared_within_delta_and_linear_beyond_it():
    # errors 0.5 (inside delta 2: 0.125, gradient 0.5), -3 (beyond: 2 * (3 - 1) = 4, gradient -2), 10 (18, gradient 2);
    # step 3: padding. MSE would give 0.125, 4.5, 50 and gradients 0.5, -3, 10.
    new = column(0.5, -3.0, 10.0, 7.0).requires_grad_()
    target = column(0.0, 0.0, 0.0, 0.0)
    weight = column(1.0, 1.0, 1.0, 0.0)
    huber = AlgoConfig(value_loss="huber", huber_delta=2.0, clip_vloss=False)
    loss = value_loss(huber, new, new.detach(), target, weight)
    assert loss.item() == pytest.approx((0.125 + 4.0 + 18.0) / 3)
    assert torch.autograd.grad(loss, new)[0][:, 0].tolist() == pytest.approx([0.5 / 3, -2.0 / 3, 2.0 / 3, 0.0])
    mse = value_loss(AlgoConfig(value_loss="mse", clip_vloss=False), new, new.detach(), target, weight)
    assert mse.item() == pytest.approx((0.125 + 4.5 + 50.0) / 3)
    # clipped too: old value 0, new 10, clip 0.2 -> the clipped value 0.2 is nearer the target 0 -> the new one's
    # loss (18) counts; old 9, new 10, target 20 -> the clipped 9.2 is farther: 2 * (10.8 - 1) = 19.6 counts
    clipped = AlgoConfig(value_loss="huber", huber_delta=2.0, clip_vloss=True, clip_coef=0.2)
    loss = value_loss(clipped, column(10.0, 10.0), column(0.0, 9.0), column(0.0, 20.0), column(1.0, 1.0))
    assert loss.item() == pytest.approx((18.0 + 19.6) / 2)


def test_value_term_is_vf_coef_times_the_loss_over_every_real_step_teacher_steps_included():
    # env 1 replays a teacher at t=0, 1 and is padding at t=2: the critic learns the teacher steps too
    teacher = [[F, X], [F, X], [F, F]]
    padding = [[F, F], [F, F], [F, X]]
    batch = make_batch([[0.0, 0.0]] * 3, teacher=teacher, padding=padding, group=[0, 1])
    values = T([[1.0, 2.0], [0.5, -1.0], [3.0, 40.0]], requires_grad=True)
    ret = T([[2.0, 0.0], [0.0, 1.0], [1.0, -40.0]])
    zeros = torch.zeros(3, 2)
    old = {"logp": zeros, "values": values.detach(), "adv": zeros, "ret": ret,
           "ids": torch.arange(6).reshape(2, 3).T, "positive": torch.zeros(3, 2, dtype=torch.bool)}
    algo = AlgoConfig(name="ppo", vf_coef=0.25).with_defaults()
    logp = torch.zeros(3, 2, requires_grad=True)
    terms, stats = loss_terms(algo, IPAConfig(), ResampleConfig(), batch, (logp, torch.zeros(3, 2), values), old, 6)
    squared = [1.0, 4.0, 0.25, 4.0, 4.0]  # the five real steps
    assert stats["losses/value_loss"] == pytest.approx(0.5 * sum(squared) / 5)
    assert terms["value"].item() == pytest.approx(0.25 * 0.5 * sum(squared) / 5)
    grad = torch.autograd.grad(terms["value"], values)[0]
    expected = 0.25 * (values.detach() - ret) / 5 * (~T(padding))
    assert torch.allclose(grad, expected, atol=1e-7)


# ------------------------------------------------------------------ PPO's clipped surrogate
def test_ppo_surrogate_is_the_pessimistic_clipped_objective_by_hand():
    # ratios away from 1 on both sides, with both signs of the advantage
    ratio = column(1.5, 0.5, 1.5, 0.5, 1.1)
    advantages = column(1.0, -1.0, -2.0, 2.0, 3.0)
    logp_new = torch.log(ratio).requires_grad_()
    algo = AlgoConfig(name="ppo", clip_coef=0.2, norm_adv=False).with_defaults()
    ids = torch.arange(5)[:, None]
    loss, stats = policy_loss(algo, IPAConfig(), logp_new, torch.zeros(5, 1), torch.zeros(5, 1), advantages,
                              advantages > 0, ids, 5, torch.ones(5, 1))
    # per step: max(-A r, -A clip(r, 0.8, 1.2)) = -1.2 (clipped), 0.8 (clipped), 3.0, -1.0, -3.3
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 3.0 - 1.0 - 3.3) / 5)
    grad = torch.autograd.grad(loss, logp_new)[0][:, 0].tolist()  # d(-A r)/d log r = -A r where unclipped
    assert grad == pytest.approx([0.0, 0.0, 2.0 * 1.5 / 5, -2.0 * 0.5 / 5, -3.0 * 1.1 / 5])
    assert stats["losses/clipfrac"] == pytest.approx(4 / 5)


# ------------------------------------------------------------------ the entropy term
def test_entropy_term_rewards_entropy_averaged_over_real_steps_only():
    batch = make_batch([[0.0, 0.0]] * 3, padding=[[F, F], [F, F], [F, X]], teacher=[[F, X], [F, F], [F, F]],
                       group=[0, 1])
    entropy = T([[0.5, 1.0], [1.5, 2.0], [0.7, 9.0]], requires_grad=True)
    zeros = torch.zeros(3, 2)
    old = {"logp": zeros, "values": zeros, "adv": zeros, "ret": zeros, "ids": torch.arange(6).reshape(2, 3).T,
           "positive": torch.zeros(3, 2, dtype=torch.bool)}
    algo = AlgoConfig(name="ppo", ent_coef=0.05).with_defaults()
    terms, stats = loss_terms(algo, IPAConfig(), ResampleConfig(), batch, (zeros, entropy, zeros), old, 6)
    mean = (0.5 + 1.0 + 1.5 + 2.0 + 0.7) / 5  # the teacher step counts, the padding (9.0) does not
    assert stats["losses/entropy"] == pytest.approx(mean)
    assert terms["entropy"].item() == pytest.approx(-0.05 * mean)  # minimizing the loss raises the entropy
    grad = torch.autograd.grad(terms["entropy"], entropy)[0]
    assert torch.allclose(grad, T([[-0.01, -0.01], [-0.01, -0.01], [-0.01, 0.0]]))


# ------------------------------------------------------------------ TOPR's truncated weight and the mismatch mask
def test_topr_ratio_weight_carries_no_gradient_where_the_chunk_ratio_is_below_one():
    """At logp_new = logp_old (or logp_new = 0) a gradient through the weight is invisible; here the chunk
    ratio is exp(mean(-0.5, -0.9)) < 1 (the truncation passes gradient) and logp_new is far from 0."""
    logp_new = torch.log(column(0.2, 0.4, 0.3)).requires_grad_()
    logp_old = logp_new.detach() - column(-0.5, -0.9, 0.0)
    ids = T([[0], [0], [1]])
    advantages = column(-1.0, -2.0, -3.0)
    negative = torch.zeros(3, 1, dtype=torch.bool)
    loss, stats = ipa_policy_loss(logp_new, logp_old, logp_old, advantages, ids, 2, negative, 2.0)
    rho = math.exp(-0.7)
    assert stats["ipa/ratio_min"] == pytest.approx(rho)
    expected_loss = -(rho * -1.0 * math.log(0.2) + rho * -2.0 * math.log(0.4) + 1.0 * -3.0 * math.log(0.3)) / 3
    assert loss.item() == pytest.approx(expected_loss)
    # d loss / d logp_new_t = -w_c A_t / 3, w_c a constant (no gradient through the weight)
    grad = torch.autograd.grad(loss, logp_new)[0][:, 0].tolist()
    assert grad == pytest.approx([rho * 1.0 / 3, rho * 2.0 / 3, 1.0 * 3.0 / 3], rel=1e-6)


def test_mismatch_mask_compares_pi_old_with_mu_not_pi_new():
    ids = T([[0], [0], [1], [1]])
    advantages = -torch.ones(4, 1)
    no = torch.zeros(4, 1, dtype=torch.bool)
    # chunk 0: pi_old = mu (kept) though pi_new / mu = e^2 > H;
    # chunk 1: pi_old / mu = e > H (dropped) though pi_new = mu
    logp_behaviour = column(-1.0, -2.0, -1.0, -2.0)
    logp_old = logp_behaviour + column(0.0, 0.0, 1.0, 1.0)
    logp_new = (logp_behaviour + column(2.0, 2.0, 0.0, 0.0)).requires_grad_()
    loss, stats = ipa_policy_loss(logp_new, logp_old, logp_behaviour, advantages, ids, 2, no, 2.0)
    assert stats["ipa/masked_fraction"] == pytest.approx(0.5)
    grad = torch.autograd.grad(loss, logp_new)[0][:, 0].tolist()
    assert grad == pytest.approx([0.5, 0.5, 0.0, 0.0])  # chunk 0: ratio e^2 truncated to 1, over 2 kept steps


# ------------------------------------------------------------------ advantage whitening
@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_advantage_whitening_uses_only_the_steps_the_rl_loss_learns_on(name):
    # learned steps (env 0) have advantages 1, 2, 3: whitened -1, 0, +1; env 1 is teacher (50, -40) then padding (70)
    batch = make_batch([[0.0, 0.0]] * 3, teacher=[[F, X], [F, X], [F, F]], padding=[[F, F], [F, F], [F, X]],
                       group=[0, 1])
    adv = T([[1.0, 50.0], [2.0, -40.0], [3.0, 70.0]])
    zeros = torch.zeros(3, 2)
    logp = torch.full((3, 2), -0.5, requires_grad=True)
    old = {"logp": torch.full((3, 2), -0.5), "values": zeros, "adv": adv, "ret": zeros,
           "ids": torch.arange(6).reshape(2, 3).T, "positive": adv > 0}
    algo = AlgoConfig(name=name).with_defaults()
    assert algo.norm_adv
    terms, _ = loss_terms(algo, IPAConfig(), ResampleConfig(), batch, (logp, zeros, zeros), old, 6)
    grad = torch.autograd.grad(terms["policy"], logp)[0]
    # reinforce: -A_w logp / 3; ppo at ratio 1: -A_w r / 3, r = 1
    expected = T([[1.0 / 3, 0.0], [0.0, 0.0], [-1.0 / 3, 0.0]])
    assert torch.allclose(grad, expected, atol=1e-6)


# ------------------------------------------------------------------ IPA's baselines
def test_group_baseline_is_the_mean_over_the_groups_real_members_at_each_step():
    # chunker=step: each step its own chunk, G = the step's return-to-go (gamma 0.5); every episode ends at t=1,
    # env 4 (group 1) ends at t=0 and waits as padding at t=1
    rewards = [[1.0, 3.0, 0.0, 6.0, 3.0], [2.0, 0.0, 4.0, 8.0, 0.0]]
    batch = make_batch(rewards, terminated=[[F, F, F, F, X], [X, X, X, X, F]], padding=[[F] * 5, [F, F, F, F, X]],
                       group=[0, 0, 1, 1, 1])
    out = targets("ipa", batch, [99.0] * 5, gamma=0.5, chunker="step", baseline="group")
    # returns: t=0: 2, 3, 2, 10, 3; t=1: 2, 0, 4, 8 (padding left out)
    # group 0 means: 2.5, 1; group 1 means: (2 + 10 + 3) / 3 = 5, (4 + 8) / 2 = 6
    expected = T([[-0.5, 0.5, -3.0, 5.0, -2.0], [1.0, -1.0, -2.0, 2.0, 0.0]])
    assert torch.allclose(out.advantages, expected, atol=1e-6)


def test_value_baseline_is_the_critic_at_the_chunks_first_step():
    # chunks {0, 1} and {2, 3, 4} (orders at t=1, t=4), terminated at t=4; values vary inside the chunks
    batch = make_batch([[1.0], [2.0], [3.0], [4.0], [5.0]], positions=[[0.0], [1], [1], [1], [0]],
                       prev_positions=[[0.0], [0], [1], [1], [1]], terminated=[[F], [F], [F], [F], [X]])
    values = [[1.0], [10.0], [2.0], [20.0], [3.0]]
    out = targets("ipa", batch, [99.0], values=values, gamma=0.5, discount="chunk", baseline="value")
    g1, g2 = 1 + 2 + 0.5 * 12, 12.0
    assert out.advantages[:, 0].tolist() == pytest.approx([g1 - 1, g1 - 1, g2 - 2, g2 - 2, g2 - 2])


# ------------------------------------------------------------------ bootstraps and boundaries
@pytest.mark.parametrize("name", ["ipa", "reinforce"])
def test_the_rollout_end_bootstraps_from_last_value_in_the_returns(name):
    out = targets(name, make_batch([[1.0], [2.0]]), [10.0], gamma=0.5)
    assert out.value_targets[:, 0].tolist() == pytest.approx([1 + 0.5 * (2 + 0.5 * 10), 2 + 0.5 * 10])


def test_the_rollout_end_bootstraps_from_last_value_in_gae():
    out = targets("ppo", make_batch([[1.0], [2.0]]), [10.0], values=[[1.0], [2.0]], gamma=0.5)
    d1, d0 = 2 + 0.5 * 10 - 2, 1 + 0.5 * 2 - 1
    assert out.advantages[:, 0].tolist() == pytest.approx([d0 + 0.5 * 0.8 * d1, d1])


@pytest.mark.parametrize("discount", ["time", "chunk"])
def test_a_teacher_prefix_end_is_a_chunk_boundary_without_an_order(discount):
    # the teacher replays t=0, 1 (its prefix ends at t=1); no order anywhere; the episode terminates at t=3
    batch = make_batch([[1.0], [2.0], [3.0], [4.0]], teacher=[[X], [X], [F], [F]], prefix_end=[[F], [X], [F], [F]],
                       terminated=[[F], [F], [F], [X]])
    out = targets("ipa", batch, [99.0], gamma=0.5, discount=discount)
    assert out.chunk_ids[:, 0].tolist() == [0, 0, 1, 1] and out.n_chunks == 2
    if discount == "time":
        g = [1 + 0.5 * (2 + 0.5 * (3 + 0.5 * 4)), 3 + 0.5 * 4]
    else:  # gamma once, where the prefix's chunk ends
        g = [1 + 2 + 0.5 * 7, 7.0]
    assert out.advantages[:, 0].tolist() == pytest.approx([g[0], g[0], g[1], g[1]])


# ------------------------------------------------------------------ the update loop: KL, early stop, lr, minibatches
def kl_case(**algo):
    """A tiny policy and a batch whose logged mu sits log_ratio = delta below it (version = the update, so mu is
    pi_old): env 1 replays a teacher at t=0 and is padding at t=2, which the KL must leave out."""
    torch.manual_seed(0)
    policy = ActorCritic(1, 2, False, PolicyConfig(hidden=(8,), normalize_obs=False))
    steps, n = 3, 2
    obs, actions = torch.ones(steps, n, 1), T([[0, 1], [1, 0], [1, 1]])
    with torch.no_grad():
        head, values, _ = policy.forward_sequence(obs, policy.initial_state(n), torch.ones(steps, n))
        logp = policy.distribution(head).log_prob(actions)
    delta = T([[0.5, -0.3], [1.0, 0.2], [-0.7, 2.0]])
    batch = make_batch([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]], obs=obs, actions=actions, logp=logp - delta,
                       values=values, starts=torch.ones(steps, n), terminated=torch.ones(steps, n, dtype=torch.bool),
                       teacher=[[F, X], [F, F], [F, F]], padding=[[F, F], [F, F], [F, X]], group=[0, 1],
                       last_obs=torch.ones(n, 1))
    config = dict(name="ppo", lr=1e-3, anneal_lr=False, update_epochs=1, num_minibatches=1)
    learner = Learner(policy, AlgoConfig(**{**config, **algo}), IPAConfig(), seed=0)
    return learner, batch


SAMPLED = [0.5, 1.0, -0.7, 0.2]  # kl_case's delta on the steps the policy sampled
K3 = sum(math.exp(d) - 1 - d for d in SAMPLED) / len(SAMPLED)  # 0.271; k1 (mean -log r) would be -0.25


def test_approx_kl_is_the_k3_estimator_over_the_sampled_steps():
    learner, batch = kl_case()
    stats = learner.update(batch, 0, 1)
    assert stats["losses/approx_kl"] == pytest.approx(K3, rel=1e-4)


def test_target_kl_stops_the_epochs_once_exceeded():
    learner, batch = kl_case(update_epochs=4, target_kl=0.5 * K3)
    stats = learner.update(batch, 0, 1)
    assert stats["losses/early_stop"] == 1.0
    assert stats["losses/approx_kl"] == pytest.approx(K3, rel=1e-4)  # only the first epoch ran
    learner, batch = kl_case(update_epochs=2, target_kl=10.0)
    assert learner.update(batch, 0, 1)["losses/early_stop"] == 0.0


def test_learning_rate_anneals_linearly_from_the_full_rate_at_update_zero():
    policy = ActorCritic(1, 2, False, PolicyConfig(hidden=(4,), normalize_obs=False))
    learner = Learner(policy, AlgoConfig(lr=0.4, anneal_lr=True), IPAConfig(), seed=0)
    assert [learner.learning_rate(u, 4) for u in range(4)] == pytest.approx([0.4, 0.3, 0.2, 0.1])
    fixed = Learner(policy, AlgoConfig(lr=0.4, anneal_lr=False), IPAConfig(), seed=0)
    assert fixed.learning_rate(3, 4) == pytest.approx(0.4)


def test_minibatch_targets_are_shuffled_with_their_columns():
    """With one minibatch the losses do not depend on the column order: every seed's permutation gives the
    same stats, as long as the fixed targets (adv, ret, ...) move with the columns they belong to."""
    torch.manual_seed(0)
    base = ActorCritic(1, 2, False, PolicyConfig(hidden=(8,), normalize_obs=False))
    steps, n = 3, 4
    obs = (torch.arange(n) - 1.5).expand(steps, n)[..., None] + 0.1 * torch.arange(steps)[:, None, None]
    actions = T([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]])
    rewards = T([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0], [2.0, -1.0, 0.0, -3.0]])
    with torch.no_grad():
        head, values, _ = base.forward_sequence(obs, base.initial_state(n), torch.ones(steps, n))
        logp = base.distribution(head).log_prob(actions)
    batch = make_batch(rewards, obs=obs, actions=actions, logp=logp, values=values, starts=torch.ones(steps, n),
                       last_obs=obs[-1], group=torch.arange(n))
    seen, orders = [], []
    for seed in range(3):
        learner = Learner(copy.deepcopy(base), AlgoConfig(name="ppo", update_epochs=1, num_minibatches=1), IPAConfig(),
                          seed=seed)
        orders.append(np.random.default_rng(seed).permutation(n).tolist())
        stats = learner.update(batch, 0, 1)
        seen.append((stats["losses/value_loss"], stats["losses/policy_loss"]))
    assert any(order != list(range(n)) for order in orders)
    for value, policy in seen[1:]:
        assert value == pytest.approx(seen[0][0], rel=1e-5) and policy == pytest.approx(seen[0][1], rel=1e-4, abs=1e-6)


# ------------------------------------------------------------------ the collector: units and the truncation bootstrap
def user_env(**algo):
    """A user's simulator (``tests/user_sim.py``): no time-left feature, so its 20-step time limit is a truncation
    that bootstraps; reward 1 where the action matches the coin the observation shows (obs = [t, seed % 8, coin])."""
    config = RunConfig.from_mapping({"env": {"gym_id": "user_sim:Sim-v0", "n_envs": 2},
                                     "eval": {"objective": "episodic_return"}, "algo": {"num_minibatches": 1, **algo},
                                     "trainer": {"rollout_steps": 8}})
    torch.manual_seed(0)
    _, policy, collector, _ = build(config, torch.device("cpu"))
    return policy, collector


def test_a_truncation_bootstraps_from_the_final_observation_not_the_reset_one():
    policy, collector = user_env()
    batch, _ = collector.collect(24, version=0)
    assert batch.truncated[19].all() and not batch.terminated.any()
    assert batch.obs[19, :, 0].tolist() == [19.0, 19.0] and batch.obs[20, :, 0].tolist() == [0.0, 0.0]
    final = batch.obs[19].clone()
    final[:, 0] = 20.0  # the episode's last observation: one step on, same seed and coin
    state, starts = policy.initial_state(2), torch.zeros(2)
    expected = policy.value(final, state, starts)
    assert torch.allclose(batch.final_values[19], expected, atol=1e-5)
    assert not torch.allclose(policy.value(batch.obs[20], state, starts), expected, atol=1e-3)  # the reset one differs
    assert (batch.final_values[torch.arange(24) != 19] == 0).all()


def test_rewards_and_return_before_are_in_the_learners_units():
    _, collector = user_env(reward_scale=3.0)
    first, _ = collector.collect(8, version=0)
    raw = (first.actions == first.obs[..., 2].long()).float()  # the simulator pays 1 for matching the coin
    assert raw.sum() > 0
    assert torch.allclose(first.rewards, 3.0 * raw)
    second, _ = collector.collect(8, version=1)  # the 20-step episodes are still open
    assert torch.allclose(second.return_before, first.rewards.sum(0))
