"""Learner: targets by hand on the production path (``Batch`` in, targets out), the loss terms and the
steps each one sees, the loss sign on a bandit, the mismatch mask against a stale behaviour policy,
one update per algo, NaN handling, bad config."""

import dataclasses
import math

import pytest
import torch

from openclaw_rl.ipa.chunks import chunk_mean, returns_to_go
from openclaw_rl.rock import ConfigError, EnvConfig
from openclaw_rl.roll.algorithms import compute_targets, gae, group_mean_std, loss_terms
from openclaw_rl.roll.config import AlgoConfig, IPAConfig, ResampleConfig, RunConfig, design_differences
import openclaw_rl.roll.learner as learner_module
from openclaw_rl.roll.learner import Learner, TrainingDiverged, clip_gradients
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig, Tanh, torch_threads
from openclaw_rl.roll.rollout import Batch
from openclaw_rl.roll.trainer import build

SMALL = {"env": {"n_envs": 8, "window": 8, "episode_bars": 20}, "trainer": {"rollout_steps": 16, "total_steps": 128},
         "algo": {"num_minibatches": 2}, "eval": {"n_envs": 4}}
F, X = False, True
ALGOS = ("ipa", "ppo", "grpo", "reinforce")



def small(**sections):
    values = {k: dict(v) for k, v in SMALL.items()}
    for key, value in sections.items():
        values.setdefault(key, {}).update(value) if isinstance(value, dict) else values.update({key: value})
    return RunConfig.from_mapping(values)


def make_batch(rewards, **given) -> Batch:
    """A hand-built ``[T, N]`` batch: nothing ends, no orders, one group per env, unless ``given``."""
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    steps, n = rewards.shape
    no = torch.zeros(steps, n, dtype=torch.bool)
    zeros = torch.zeros(steps, n)
    values = dict(
        obs=torch.zeros(steps, n, 1), actions=torch.zeros(steps, n, dtype=torch.long), logp=zeros, values=zeros,
        rewards=rewards, terminated=no, truncated=no, final_values=zeros, starts=zeros, env_chunk_end=no,
        positions=zeros, prev_positions=zeros, step_in_episode=torch.arange(steps)[:, None].expand(steps, n),
        version=torch.zeros(steps, n, dtype=torch.long), last_obs=torch.zeros(n, 1), last_starts=torch.zeros(n),
        initial_state=torch.zeros(1, n, 0), last_state=torch.zeros(1, n, 0), group=torch.arange(n), teacher=no, prefix_end=no, padding=no,
        return_before=torch.zeros(n),
    )
    for key, value in given.items():
        like = values[key]
        values[key] = torch.as_tensor(value, dtype=like.dtype)
    return Batch(**values)


def targets(name, batch, last_value, values=None, gamma=0.9, **ipa):
    """``compute_targets`` by hand; IPA's advantage is the raw chunk return (``ipa.baseline=none``) unless given."""
    algo = AlgoConfig(name=name, gamma=gamma, gae_lambda=0.8).with_defaults()
    values = torch.zeros_like(batch.rewards) if values is None else torch.as_tensor(values, dtype=torch.float32)
    return compute_targets(algo, IPAConfig(**{"baseline": "none", **ipa}), batch, values,
                           torch.as_tensor(last_value, dtype=torch.float32))


# ------------------------------------------------------------------ targets by hand
def test_gae_by_hand_with_termination_and_truncation():
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    terminated = torch.tensor([[False], [False], [False]])
    truncated = torch.tensor([[False], [True], [False]])  # cut after t=1, time left
    final_values = torch.tensor([[0.0], [4.0], [0.0]])
    adv = gae(rewards, values, terminated, truncated, final_values, torch.tensor([2.0]), gamma, lam)
    d2 = 3 + gamma * 2.0 - 1.5
    d1 = 2 + gamma * 4.0 - 1.0  # bootstraps from the final observation, does not look past the end
    d0 = 1 + gamma * 1.0 - 0.5
    assert adv[:, 0].tolist() == pytest.approx([d0 + gamma * lam * d1, d1, d2])
    with pytest.raises(ValueError, match="one shape"):
        gae(rewards, values[:2], terminated, truncated, final_values, torch.tensor([2.0]), gamma, lam)


def random_batch(seed=0, steps=12, n=6):
    g = torch.Generator().manual_seed(seed)
    ends = torch.rand(steps, n, generator=g)
    return make_batch(torch.randn(steps, n, generator=g), terminated=ends < 0.1, truncated=(ends > 0.1) & (ends < 0.2),
                      final_values=torch.randn(steps, n, generator=g), positions=(torch.rand(steps, n, generator=g) < 0.4) * 1.0,
                      group=torch.arange(n) // 2)


def test_gae_lambda_one_is_the_bootstrapped_return_minus_the_value():
    batch = random_batch()
    values, last = torch.randn(batch.rewards.shape), torch.randn(batch.rewards.shape[1])
    one = targets("ppo", batch, last, values, gamma=0.9)
    every = torch.ones_like(batch.terminated)
    expected = returns_to_go(batch.rewards, every, batch.terminated, batch.truncated, batch.final_values, last, 0.9) - values
    advantages = gae(batch.rewards, values, batch.terminated, batch.truncated, batch.final_values, last, 0.9, 1.0)
    assert torch.allclose(advantages, expected, atol=1e-5)
    assert torch.allclose(one.value_targets, one.advantages + values)


def test_ipa_with_one_chunk_per_step_is_step_level_reinforce():
    batch = random_batch(1)
    last = torch.randn(batch.rewards.shape[1])
    ipa = targets("ipa", batch, last, chunker="step")
    reinforce = targets("reinforce", batch, last)
    assert torch.allclose(ipa.value_targets, reinforce.value_targets, atol=1e-5)
    assert torch.allclose(ipa.advantages, reinforce.advantages, atol=1e-5)
    assert ipa.n_chunks == batch.rewards.numel()


def test_group_mean_and_std_per_step_leave_out_weightless_members():
    x = torch.tensor([[1.0, 3.0, 10.0, 20.0, 100.0]])
    group = torch.tensor([0, 0, 1, 1, 1])
    mean, std = group_mean_std(x, group, 2, weight=torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]]))
    assert mean[0].tolist() == [2.0, 2.0, 15.0, 15.0, 15.0]
    assert std[0].tolist() == [1.0, 1.0, 5.0, 5.0, 5.0]


def two_chunks():
    """Orders at t=1 and t=4 (positions 0 1 1 1 0): chunks {0,1} and {2,3,4}; the episode terminates at t=4."""
    return make_batch([[1.0], [2.0], [3.0], [4.0], [5.0]], positions=[[0.0], [1], [1], [1], [0]],
                      prev_positions=[[0.0], [0], [1], [1], [1]], terminated=[[F], [F], [F], [F], [X]])


def test_ipa_chunk_returns_discounted_per_chunk_on_the_production_path():
    out = targets("ipa", two_chunks(), [99.0], gamma=0.5, discount="chunk")
    g2 = 3 + 4 + 5
    g1 = 1 + 2 + 0.5 * g2
    assert out.advantages[:, 0].tolist() == pytest.approx([g1, g1, g2, g2, g2])  # shared by the chunk's steps
    assert out.value_targets[:, 0].tolist() == pytest.approx([g1, 2 + 0.5 * g2, g2, 4 + 5, 5])
    assert out.chunk_ids[:, 0].tolist() == [0, 0, 1, 1, 1] and out.n_chunks == 2


def test_ipa_chunk_returns_discounted_in_time_by_default():
    # a chunk of tau steps is discounted by gamma^tau: the step-level return at the chunk's first step
    out = targets("ipa", two_chunks(), [99.0], gamma=0.5)
    g = [1 + 0.5 * (2 + 0.5 * (3 + 0.5 * (4 + 0.5 * 5))), 2 + 0.5 * (3 + 0.5 * (4 + 0.5 * 5)),
         3 + 0.5 * (4 + 0.5 * 5), 4 + 0.5 * 5, 5]
    assert g[0] == pytest.approx(1 + 0.5 * 2 + 0.5**2 * g[2])  # G_1 = R_1 + gamma^tau G_2, tau = 2
    assert out.advantages[:, 0].tolist() == pytest.approx([g[0], g[0], g[2], g[2], g[2]])
    assert out.value_targets[:, 0].tolist() == pytest.approx(g)


@pytest.mark.parametrize("discount", ["time", "chunk"])
def test_ipa_chunk_critic_is_semi_mdp_gae_over_chunks(discount):
    # values vary inside each chunk; only the chunks' first steps (t=0, t=2) may matter
    gamma, lam = 0.5, 0.8
    values = [[1.0], [10.0], [2.0], [20.0], [3.0]]
    # chunk 2 ends the episode: its Monte Carlo return minus V(s_2)
    tail = (3 + gamma * 4 + gamma**2 * 5) if discount == "time" else 12.0
    out = targets("ipa", two_chunks(), [99.0], values=values, gamma=gamma, baseline="gae", discount=discount)
    a2 = tail - 2.0
    # chunk 1: delta = R_1 + Gamma V(s_2) - V(s_0), plus Gamma lambda A_2 (Gamma: gamma^2 in time, gamma per chunk)
    r1, discount_1 = (1 + gamma * 2, gamma**2) if discount == "time" else (1 + 2, gamma)
    a1 = r1 + discount_1 * 2.0 - 1.0 + discount_1 * lam * a2
    assert out.advantages[:, 0].tolist() == pytest.approx([a1, a1, a2, a2, a2])
    assert out.value_targets[0, 0].item() == pytest.approx(a1 + 1.0)  # the lambda-return at a chunk's start
    moved = targets("ipa", two_chunks(), [99.0], values=[[1.0], [-5.0], [2.0], [7.0], [3.0]], gamma=gamma,
                    baseline="gae", discount=discount)
    assert torch.allclose(moved.advantages, out.advantages)  # the critic is read at chunk starts only
    monte_carlo = targets("ipa", two_chunks(), [99.0], values=values, gamma=gamma, baseline="value", discount=discount)
    assert not torch.allclose(out.advantages, monte_carlo.advantages)  # lambda < 1 between chunks differs from MC


@pytest.mark.parametrize("baseline", ["gae", "value"])
def test_ipa_step_value_targets_are_ppos_lambda_returns_and_leave_the_advantages(baseline):
    """ipa.value_target=step trains the critic on PPO's lambda-returns (lambda at every step, not 1 inside a
    chunk); the actor's chunk advantages stay the baseline's."""
    values = [[1.0], [10.0], [2.0], [20.0], [3.0]]
    chunk = targets("ipa", two_chunks(), [99.0], values=values, baseline=baseline)
    step = targets("ipa", two_chunks(), [99.0], values=values, baseline=baseline, value_target="step")
    ppo = targets("ppo", two_chunks(), [99.0], values=values)
    assert torch.allclose(step.value_targets, ppo.value_targets)
    assert not torch.allclose(step.value_targets, chunk.value_targets)
    assert torch.equal(step.advantages, chunk.advantages)
    # by hand at t=3 (gamma 0.9, lambda 0.8): delta_3 = 4 + 0.9 * 3 - 20, delta_4 = 5 - 3 (terminal)
    assert step.value_targets[3, 0].item() == pytest.approx(20 + (4 + 0.9 * 3 - 20) + 0.9 * 0.8 * (5 - 3))


def test_ipa_chunk_critic_with_lambda_one_is_the_value_baseline():
    values = [[1.0], [10.0], [2.0], [20.0], [3.0]]
    algo = AlgoConfig(name="ipa", gamma=0.5, gae_lambda=1.0).with_defaults()
    batch, v = two_chunks(), torch.tensor(values)
    gae_out = compute_targets(algo, IPAConfig(baseline="gae"), batch, v, torch.tensor([99.0]))
    value_out = compute_targets(algo, IPAConfig(baseline="value"), batch, v, torch.tensor([99.0]))
    assert torch.allclose(gae_out.advantages, value_out.advantages)


@pytest.mark.parametrize("discount", ["time", "chunk"])
def test_a_truncation_mid_chunk_bootstraps_from_the_final_observation(discount):
    # the helper's documented case, through compute_targets: cut at t=1 with time left, no order
    batch = make_batch([[1.0], [1.0], [1.0], [1.0]], truncated=[[F], [X], [F], [F]],
                       final_values=[[0.0], [7.0], [0.0], [0.0]])
    out = targets("ipa", batch, [3.0], gamma=0.9, discount=discount)
    if discount == "chunk":  # mid-chunk: no discount
        expected = [1 + 1 + 7, 1 + 7, 1 + 1 + 3, 1 + 3]
    else:
        expected = [1 + 0.9 * (1 + 0.9 * 7), 1 + 0.9 * 7, 1 + 0.9 * (1 + 0.9 * 3), 1 + 0.9 * 3]
    assert out.value_targets[:, 0].tolist() == pytest.approx(expected)
    assert out.advantages[:, 0].tolist() == pytest.approx([expected[0]] * 2 + [expected[2]] * 2)


@pytest.mark.parametrize("name", ALGOS)
def test_terminal_steps_never_bootstrap_and_truncations_do_for_every_algo(name):
    # env 0 terminates at t=0 (ruin or the horizon); env 1 is cut at t=0 with time left (final value 5)
    batch = make_batch([[1.0, 1.0], [0.0, 0.0]], terminated=[[X, F], [F, F]], truncated=[[F, X], [F, F]],
                       final_values=[[50.0, 5.0], [0.0, 0.0]], group=[0, 0])
    out = targets(name, batch, [100.0, 100.0], gamma=0.5)
    assert out.value_targets[0, 0].item() == pytest.approx(1.0)
    assert out.value_targets[0, 1].item() == pytest.approx(1.0 + 0.5 * 5.0)
    if name == "ipa":  # discounted per chunk: mid-chunk, no discount
        per_chunk = targets(name, batch, [100.0, 100.0], gamma=0.5, discount="chunk")
        assert per_chunk.value_targets[0, 1].item() == pytest.approx(1.0 + 5.0)


def test_reinforce_bootstraps_only_where_the_rollout_cuts_the_episode():
    batch = make_batch([[1.0, 1.0], [2.0, 2.0]], terminated=[[F, F], [F, X]])
    out = targets("reinforce", batch, [10.0, 10.0], gamma=0.5)
    assert out.advantages[:, 0].tolist() == pytest.approx([1 + 0.5 * (2 + 0.5 * 10), 2 + 0.5 * 10])
    assert out.advantages[:, 1].tolist() == pytest.approx([1 + 0.5 * 2, 2])  # Monte Carlo: the episode ended


def test_grpo_targets_by_hand_with_padding_left_out():
    # groups {0, 1} and {2, 3, 4}; env 4 is padding (waits for its group): its rewards count nowhere
    rewards = [[1.0, 3.0, 0.0, 2.0, 100.0], [1.0, 1.0, 4.0, 0.0, 100.0]]
    batch = make_batch(rewards, terminated=[[F] * 5, [X, X, X, X, F]], group=[0, 0, 1, 1, 1],
                       padding=[[F, F, F, F, X], [F, F, F, F, X]])
    out = targets("grpo", batch, [9.0] * 5, gamma=0.5)
    # Monte Carlo returns-to-go: t=0: 1.5, 3.5, 2, 2; t=1: 1, 1, 4, 0
    # group 0: t=0 mean 2.5 std 1 -> -1, +1; t=1 equal -> 0. group 1: t=0 equal -> 0; t=1 mean 2 std 2 -> +1, -1
    expected = torch.tensor([[-1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0, 0.0]])
    assert torch.allclose(out.advantages, expected, atol=1e-6)


def test_topr_split_is_by_the_trajectory_outcome_with_partial_return_and_bootstrap():
    # one order per step (every step its own chunk), gamma 0.9:
    # env 0: rewards 2, -1, terminates: outcome +1 > 0; its second chunk has advantage -1
    # env 1: rewards -2, 1, terminates: outcome -1; its second chunk has advantage +1
    # env 2: open from before the rollout with -5 so far, rewards 1, 1, open at the end (V = 0): -3
    # env 3: rewards 0, 0, open at the end: the bootstrap decides (+2)
    rewards = [[2.0, -2.0, 1.0, 0.0], [-1.0, 1.0, 1.0, 0.0]]
    positions = [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    batch = make_batch(rewards, positions=positions, prev_positions=[[0.0] * 4, [1.0] * 4],
                       terminated=[[F] * 4, [X, X, F, F]], return_before=[0.0, 0.0, -5.0, 0.0])
    last_value = [0.0, 0.0, 0.0, 2.0]
    by_trajectory = targets("ipa", batch, last_value)
    assert by_trajectory.positive.T.tolist() == [[X, X], [F, F], [F, F], [X, X]]
    assert by_trajectory.advantages[:, 0].tolist() == pytest.approx([2 - 0.9, -1.0])
    by_advantage = targets("ipa", batch, last_value, topr_split="advantage")
    assert by_advantage.positive.T.tolist() == [[X, F], [F, X], [X, X], [X, X]]
    opposite = targets("ipa", batch, [0.0, 0.0, 0.0, -2.0])
    assert opposite.positive[:, 3].tolist() == [F, F]


# ------------------------------------------------------------------ which steps each loss term sees
def leaf(batch):
    shape = batch.rewards.shape
    return tuple(torch.zeros(shape, requires_grad=True) for _ in range(3))  # logp, entropy, values


def old_for(out, batch):
    return {"logp": torch.zeros_like(batch.rewards), "values": torch.zeros_like(batch.rewards), "adv": out.advantages,
            "ret": out.value_targets, "ids": out.chunk_ids, "positive": out.positive}


@pytest.mark.parametrize("name", ALGOS)
def test_teacher_replay_steps_are_learned_by_imitation_not_by_the_rl_loss(name):
    rewards = [[1.0, -1.0], [2.0, 1.0], [1.0, 3.0], [-1.0, 2.0]]
    teacher = [[X, X], [X, F], [F, F], [F, F]]
    batch = make_batch(rewards, teacher=teacher, prefix_end=[[F, X], [X, F], [F, F], [F, F]], group=[0, 0],
                       positions=[[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    out = targets(name, batch, [1.0, 1.0])
    algo = AlgoConfig(name=name, vf_coef=0.5, ent_coef=0.01).with_defaults()
    logp, entropy, values = leaf(batch)
    terms, _ = loss_terms(algo, IPAConfig(), ResampleConfig(teacher="momentum", lambda_il=1.0), batch,
                          (logp, entropy, values), old_for(out, batch), out.n_chunks)
    assert set(terms) == {"policy", "value", "entropy", "imitation"}
    rl = torch.autograd.grad(terms["policy"], logp, retain_graph=True)[0]
    il = torch.autograd.grad(terms["imitation"], logp)[0]
    replayed = torch.tensor(teacher)
    assert (rl[replayed] == 0).all() and (rl[~replayed] != 0).all()
    assert (il[~replayed] == 0).all() and (il[replayed] != 0).all()


@pytest.mark.parametrize("name", ALGOS)
def test_padding_is_in_no_loss_term(name):
    rewards = [[1.0, -1.0], [2.0, 5.0], [1.0, 3.0]]
    padding = [[F, F], [F, X], [F, X]]
    batch = make_batch(rewards, padding=padding, terminated=[[F, X], [F, F], [F, F]], group=[0, 0])
    out = targets(name, batch, [1.0, 1.0], values=[[0.5, 0.5]] * 3)
    logp, entropy, values = leaf(batch)
    terms, _ = loss_terms(AlgoConfig(name=name).with_defaults(), IPAConfig(), ResampleConfig(), batch,
                          (logp, entropy, values), old_for(out, batch), out.n_chunks)
    total = sum(terms.values())
    grads = torch.autograd.grad(total, (logp, entropy, values))
    pad = torch.tensor(padding)
    for grad in grads:
        assert (grad[pad] == 0).all() and (grad[~pad] != 0).any()


@pytest.mark.parametrize("name", ALGOS)
def test_one_step_on_a_two_action_bandit_raises_the_rewarded_action(name):
    # every step is a one-step episode; action 1 pays +1, action 0 pays -1; groups of 2 hold one of each
    torch.manual_seed(0)
    policy = ActorCritic(1, 2, False, PolicyConfig(hidden=(8,), normalize_obs=False))
    steps, n = 4, 8
    actions = torch.arange(n).remainder(2).expand(steps, n)
    with torch.no_grad():
        head, values, _ = policy.forward_sequence(torch.ones(steps, n, 1), policy.initial_state(n), torch.ones(steps, n))
        logp = policy.distribution(head).log_prob(actions)
    batch = make_batch(2.0 * actions - 1.0, obs=torch.ones(steps, n, 1), actions=actions, logp=logp, values=values,
                       starts=torch.ones(steps, n), terminated=torch.ones(steps, n, dtype=torch.bool),
                       group=torch.arange(n) // 2, last_obs=torch.ones(n, 1))
    algo = AlgoConfig(name=name, lr=1e-2, anneal_lr=False, ent_coef=0.0, update_epochs=1, num_minibatches=1)
    learner = Learner(policy, algo, IPAConfig(), seed=0)

    def p_rewarded():
        with torch.no_grad():
            head, _, _ = policy.forward_sequence(torch.ones(1, 1, 1), policy.initial_state(1), torch.ones(1, 1))
            return torch.softmax(head, -1)[0, 0, 1].item()

    before = p_rewarded()
    learner.update(batch, 0, 1)
    assert p_rewarded() > before + 1e-3


# ------------------------------------------------------------------ the behaviour policy mu
@pytest.mark.parametrize("memory", ["none", "window", "gru", "paom"])
def test_synchronous_collection_gives_mu_equal_to_pi_old_exactly(memory):
    config = small(algo={"name": "ipa"}, policy={"memory": {"name": memory, "capacity": 3}})  # normalize_obs is on by default
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    for update in range(3):
        batch, _ = collector.collect(config.trainer.rollout_steps, version=update)
        with torch.no_grad():
            logp_old = learner.score_actions(batch)[0]
        assert torch.allclose(logp_old, batch.logp, atol=1e-5, rtol=0)  # rescored: equal within rounding
        count = policy.norm.count.item()
        stats = learner.update(batch, update, 3)
        assert stats["ipa/mismatch_max"] == 1.0 and stats["ipa/mismatch_mean"] == 1.0  # mu is pi_old
        assert stats["ipa/masked_fraction"] == 0.0
        assert policy.norm.count.item() == pytest.approx(count + batch.rewards.numel())  # stats move between rollouts


def test_a_stale_behaviour_policy_drops_exactly_its_chunks():
    config = small(algo={"name": "ipa", "update_epochs": 1, "num_minibatches": 1}, ipa={"mismatch_high": 2.0})
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)
    out = compute_targets(learner.algo, learner.ipa, batch, batch.values, torch.zeros(batch.rewards.shape[1]))
    ids = out.chunk_ids
    # A lagging worker acted in three chunks. log(pi_old / mu) varies by +-1.5 from step to step (single
    # steps of kept chunks exceed H = 2 too) and averages 0 over a kept chunk, 1 (e > H) over a stale one.
    stale = torch.isin(ids, torch.tensor([0, ids[-1, 3].item(), ids[5, 6].item()]))
    with torch.no_grad():
        logp_old = learner.score_actions(batch)[0]
    wiggle = torch.where(torch.arange(ids.shape[0])[:, None] % 2 == 0, 1.5, -1.5).expand(ids.shape)
    log_mismatch = wiggle - chunk_mean(wiggle, ids, out.n_chunks) + stale.float()
    stale_batch = dataclasses.replace(batch, logp=logp_old - log_mismatch, version=batch.version - 1)
    logp = logp_old.clone().requires_grad_()
    entropy, values = torch.zeros_like(logp), torch.zeros_like(logp)
    terms, stats = loss_terms(learner.algo, learner.ipa, learner.resample, stale_batch, (logp, entropy, values),
                              {"logp": logp_old, "values": batch.values, "adv": out.advantages,
                               "ret": out.value_targets, "ids": ids, "positive": out.positive}, out.n_chunks)
    grad = torch.autograd.grad(terms["policy"], logp)[0]
    assert (grad[stale] == 0).all()
    kept = ~stale & (out.advantages != 0)
    assert (grad[kept] != 0).all()
    assert stats["ipa/masked_fraction"] == pytest.approx(stale.float().mean().item())
    update_stats = learner.update(stale_batch, 0, 1)
    assert update_stats["ipa/mismatch_max"] == pytest.approx(math.e, rel=1e-3)
    assert update_stats["ipa/masked_fraction"] == pytest.approx(stale.float().mean().item())


def test_pi_old_is_the_logged_mu_exactly_where_the_updated_weights_acted():
    """Columns acted by the weights being updated take their logged mu as pi_old (no chunk masked, the
    mismatch exactly 1, whatever rounding separates mu from a rescoring); columns of older weights are
    rescored, and their pi_old / mu shows."""
    config = small(algo={"name": "ipa", "update_epochs": 1, "num_minibatches": 1}, ipa={"mismatch_high": 1.5})
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    batch, _ = collector.collect(config.trainer.rollout_steps, version=3)
    old_columns = torch.arange(batch.rewards.shape[1]) % 2 == 1
    version = torch.where(old_columns, 2, batch.version)
    shifted = dataclasses.replace(batch, logp=batch.logp - 1.0, version=version)  # log(pi_old / mu) = 1
    stats = learner.update(shifted, 3, 4)
    real = ~batch.padding
    assert stats["ipa/mismatch_max"] == pytest.approx(math.e, rel=1e-4)
    assert 1.0 < stats["ipa/mismatch_mean"] < math.e - 0.1
    assert stats["ipa/masked_fraction"] == pytest.approx((old_columns & real).sum().item() / real.sum().item())


def test_the_values_old_of_steps_the_updated_weights_acted_are_the_logged_ones(monkeypatch):
    """The targets read the values the rollout logged where the weights being updated acted (no second
    pass over the batch) and rescore the steps of older weights, whose logged values are stale."""
    config = small(algo={"name": "ppo", "update_epochs": 1, "num_minibatches": 1})
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    batch, _ = collector.collect(config.trainer.rollout_steps, version=3)
    seen = []
    monkeypatch.setattr(learner_module, "compute_targets",
                        lambda algo, ipa, b, values_old, last: seen.append(values_old) or compute_targets(algo, ipa, b, values_old, last))
    logged = dataclasses.replace(batch, values=batch.values + 5.0)  # far from anything the critic says
    learner.update(logged, 3, 4)
    assert torch.equal(seen[0], logged.values)
    with torch.no_grad():
        rescored = learner.score_actions(batch)[2]
    old_columns = torch.arange(batch.rewards.shape[1]) % 2 == 1
    learner.update(dataclasses.replace(logged, version=torch.where(old_columns, 2, batch.version)), 3, 4)
    assert torch.equal(seen[1][:, ~old_columns], logged.values[:, ~old_columns])
    torch.testing.assert_close(seen[1][:, old_columns], rescored[:, old_columns], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ whole updates, errors
@pytest.mark.parametrize("algo,extra", [
    ("ipa", {}), ("ppo", {}), ("reinforce", {}),
    ("grpo", {"trainer": {"group_size": 2}}),
    ("ipa", {"ipa": {"baseline": "group"}, "trainer": {"group_size": 4}}),
    ("ipa", {"ipa": {"baseline": "value", "chunker": "fixed", "topr_split": "advantage", "mismatch_low": 0.5}}),
    ("ipa", {"env": {"continuous": True, "trade_threshold": 0.1}}),
    ("ppo", {"policy": {"memory": {"name": "gru"}}}),
    ("ipa", {"policy": {"memory": {"name": "paom", "capacity": 4}}}),
    ("ppo", {"policy": {"memory": {"name": "window"}}, "env": {"continuous": True}}),
    ("ppo", {"env": {"continuous": True}}),
    ("ipa", {"resample": {"teacher": "momentum"}, "policy": {"memory": {"name": "gru"}}}),
    ("ipa", {"resample": {"teacher": "momentum"}, "policy": {"memory": {"name": "paom", "capacity": 4}}}),
    ("ppo", {"resample": {"teacher": "momentum", "mode": "sequential"}, "env": {"continuous": True}}),
])
def test_one_update_moves_the_policy(algo, extra):
    config = small(algo={"name": algo}, **extra)
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    before = [p.detach().clone() for p in policy.parameters()]
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)
    stats = learner.update(batch, 0, config.num_updates)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in stats.items() if k != "losses/explained_variance")
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert stats["ipa/mean_chunk_length"] >= 1.0


def test_group_members_share_their_market():
    config = small(algo={"name": "grpo"}, trainer={"group_size": 4})
    envs, *_ = build(config, torch.device("cpu"))
    close = envs.engine.close
    assert torch.equal(torch.from_numpy(close[:, 0]), torch.from_numpy(close[:, 3]))
    assert not torch.equal(torch.from_numpy(close[:, 0]), torch.from_numpy(close[:, 4]))


def test_nan_loss_stops_with_a_clear_error():
    config = small()
    _, policy, collector, learner = build(config, torch.device("cpu"))
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)
    batch.rewards[3, 2] = float("nan")
    with pytest.raises(TrainingDiverged, match="non-finite loss at update 0"):
        learner.update(batch, 0, config.num_updates)


@pytest.mark.parametrize("values,message", [
    ({"algo": {"name": "sac"}}, r"algo\.name: unknown algo 'sac'; allowed: ipa, ppo, grpo, reinforce"),
    ({"ipa": {"chunker": "token"}}, r"ipa\.chunker: unknown chunker 'token'; allowed: trade, fixed, env, step, episode"),
    ({"ipa": {"topr_split": "step"}}, r"ipa\.topr_split: unknown split 'step'; allowed: trajectory, advantage"),
    ({"ipa": {"mismatch_low": 3.0}}, r"ipa\.mismatch_low: must be in \[0, ipa\.mismatch_high=2\.0\), got 3\.0"),
    ({"algo": {"lr": -1e-3}}, r"algo\.lr: must be > 0, got -0\.001"),
    ({"algo": {"value_loss": "l1"}}, r"algo\.value_loss: unknown value loss 'l1'; allowed: mse, huber"),
    ({"algo": {"huber_delta": 0.0}}, r"algo\.huber_delta: must be > 0, got 0\.0"),
    ({"algo": {"num_minibatches": 3}}, r"algo\.num_minibatches: must divide env\.n_envs=8"),
    ({"trainer": {"total_steps": 0}}, r"trainer\.total_steps: must be >= 1 \(rounded up to whole rollouts\), got 0"),
    ({"algo": {"name": "grpo"}}, r"trainer\.group_size: grpo with a group baseline needs trainer\.group_size >= 2"),
    ({"trainer": {"group_size": 3}}, r"trainer\.group_size: must divide env\.n_envs=8"),
    ({"algo": {"learning_rate": 1.0}}, r"algo\.learning_rate: unknown key"),
])
def test_bad_run_config_names_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        small(**values)


def test_designs_from_before_value_losses_read_as_the_squared_error_so_a_resume_sees_the_switch():
    today = RunConfig.from_mapping({"algo": {"name": "ipa"}}).design()
    assert today["algo"]["value_loss"] == "huber" and RunConfig.from_design(today, "new.pt").design() == today
    old = {**today, "algo": {k: v for k, v in today["algo"].items() if k != "value_loss"}}
    upgraded = RunConfig.from_design(old, "old.pt").design()
    assert design_differences(upgraded, today) == ["algo.value_loss: 'mse' != 'huber'"]
    assert RunConfig.from_mapping({"algo": {"name": "ppo"}}).algo.value_loss == "mse"


def test_defaults_are_valid():
    defaults = dataclasses.asdict(RunConfig.from_mapping({}))
    assert defaults["algo"]["name"] == "ipa" and defaults["ipa"]["topr_split"] == "trajectory"


def test_divergence_mid_run_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from openclaw_rl.roll import trainer
    from openclaw_rl.roll.checkpoint import load_checkpoint

    config = small(trainer={"total_steps": 128 * 6, "checkpoint_every": 1, "progress": "log"})
    real_update = Learner.update

    def update(self, batch, update, num_updates):
        if update == 3:
            batch.rewards[0, 0] = float("inf")
        return real_update(self, batch, update, num_updates)

    monkeypatch.setattr(Learner, "update", update)
    with pytest.raises(TrainingDiverged, match="non-finite loss at update 3"):
        trainer.run_training(config, tmp_path)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["update"] == 3 and state["global_step"] == 3 * 128


def test_topr_split_by_advantage_takes_the_sign_the_loss_weights_with():
    """ipa.topr_split=advantage with algo.norm_adv=true: the split is by the whitened advantage.
    Raw advantages 1, 2, 3 are all positive; whitened they are -1, 0, +1, so the first step (and the
    zero one) gets the truncated chunk ratio 0.5, not the no-ratio branch."""
    from openclaw_rl.roll.algorithms import policy_loss

    algo = AlgoConfig(name="ipa", norm_adv=True).with_defaults()
    ipa = IPAConfig(topr_split="advantage")
    logp_new = torch.log(torch.tensor([[0.2], [0.4], [0.3]]))
    logp_old = logp_new - math.log(0.5)  # every step its own chunk, rho = 0.5
    ids = torch.arange(3).reshape(3, 1)
    raw = torch.tensor([[1.0], [2.0], [3.0]])
    loss, _ = policy_loss(algo, ipa, logp_new, logp_old, logp_old, raw, raw > 0, ids, 3, torch.ones(3, 1))
    whitened, weight = torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([0.5, 0.5, 1.0])
    expected = -(weight * whitened * logp_new.reshape(-1)).sum() / 3
    assert torch.allclose(loss, expected, atol=1e-6)


def test_a_policys_initial_weights_depend_on_the_seed_not_the_thread_count():
    """Orthogonal init runs a QR whose result depends on torch's thread count: the same seed on a 2-core and
    a 16-core machine must still build the same policy, and the caller's thread count is left as it was."""
    weights = []
    with torch_threads(torch.get_num_threads()):  # the other tests' thread count afterwards, even on a failure
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            weights.append(ActorCritic.for_env(EnvConfig(), PolicyConfig(hidden=[64, 64])).state_dict())
            assert torch.get_num_threads() == threads
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_separate_clipping_keeps_a_large_value_gradient_from_shrinking_the_actor_step(shared_trunk):
    policy = ActorCritic(3, 2, False, PolicyConfig(hidden=(8,), normalize_obs=False, shared_trunk=shared_trunk))
    critic = {id(p) for p in policy.critic_parameters()}
    assert critic and critic == {id(p) for p in policy.critic_head.parameters()} | (
        set() if shared_trunk else {id(p) for p in policy.critic_trunk.parameters()})

    def set_grads():  # actor norm 0.3 (under the cap), critic norm 100
        actor = [p for p in policy.parameters() if id(p) not in critic]
        for group, norm in ((actor, 0.3), (policy.critic_parameters(), 100.0)):
            size = sum(p.numel() for p in group)
            for p in group:
                p.grad = torch.full_like(p, norm / math.sqrt(size))
        return actor

    for clip, actor_scale in (("global", 0.5 / math.hypot(0.3, 100.0)), ("separate", 1.0)):
        actor = set_grads()
        algo = AlgoConfig(max_grad_norm=0.5, grad_clip=clip)
        norm, *parts = clip_gradients(policy, algo)
        assert parts == pytest.approx([0.3, 100.0], rel=1e-5)  # logged: which term spikes
        assert norm.item() == pytest.approx(math.hypot(0.3, 100.0), rel=1e-5)  # logged before clipping
        actor_norm = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in actor])).item()
        critic_norm = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in policy.critic_parameters()])).item()
        assert actor_norm == pytest.approx(0.3 * actor_scale, rel=1e-4)
        assert critic_norm == pytest.approx(0.5 if clip == "separate" else 100.0 * actor_scale, rel=1e-4)


def test_the_tanh_activation_is_tanh_forward_and_backward():
    """``policy.Tanh`` (2 sigmoid(2x) - 1, tanh's backward from the output) against torch.tanh, float32."""
    x = torch.linspace(-20, 20, 400_001, requires_grad=True)
    ours, theirs = Tanh()(x), torch.tanh(x)
    assert (ours - theirs).abs().max().item() < 3e-7
    assert ours[0].item() == -1.0 and ours[-1].item() == 1.0
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ours_grad = torch.autograd.grad(ours, x, grad)[0]
    theirs_grad = torch.autograd.grad(theirs, x, grad)[0]
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=0, atol=5e-6)
    with torch.no_grad():  # acting and export: the plain formula
        assert (Tanh()(x) - theirs).abs().max().item() < 3e-7
