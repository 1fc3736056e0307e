"""Targets and loss terms of the four algorithms, behind one interface.

``algo=ipa|ppo|grpo|reinforce`` changes only ``compute_targets`` and ``policy_loss``; the rollout, the
network, the minibatching and the optimizer are the same for all of them. ``loss_terms`` returns the
named, already weighted terms of one minibatch's loss; the learner sums them.

Which steps each term sees: padding (an env waiting for its group) is in none; a replayed teacher
prefix (resampling) is in the imitation term, not the RL one; the value and entropy terms see every
real step. Nothing flows across a terminal step or padding; only a cut the state does not show (a
truncation with time left, the rollout's end) bootstraps from the critic (see ``roll.rollout``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from openclaw_rl.ipa.chunks import (
    chunk_boundaries, chunk_first, chunk_ids, chunk_means, episode_outcomes, returns_to_go,
)
from openclaw_rl.ipa.loss import chunk_mismatch, ipa_policy_loss
from openclaw_rl.roll.config import AlgoConfig, IPAConfig, ResampleConfig
from openclaw_rl.roll.rollout import Batch


@dataclass
class Targets:
    """What a minibatch needs beyond the rollout, each ``[T, N]``: advantages, value targets, chunk ids,
    and ``positive``: the steps of TOPR's no-ratio branch (IPA)."""

    advantages: torch.Tensor
    value_targets: torch.Tensor
    chunk_ids: torch.Tensor
    n_chunks: int
    positive: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)


def gae(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
        final_values: torch.Tensor, last_value: torch.Tensor, gamma: float | torch.Tensor,
        lam: float | torch.Tensor) -> torch.Tensor:
    """Generalized advantage estimation over ``[T, N]``; truncated steps bootstrap from ``final_values``
    (the critic at the final observation), the rollout's last step from ``last_value [N]``.

    ``gamma`` and ``lam``: numbers, or ``[T, N]`` tensors of the discount and trace decay after each step
    (IPA's chunk critic: ``lam`` 1 inside a chunk, so the critic is read at chunk starts only)."""
    if not (rewards.shape == values.shape == terminated.shape == truncated.shape == final_values.shape):
        raise ValueError(f"gae: [T, N] inputs of one shape expected, got {rewards.shape}, {values.shape}, "
                         f"{terminated.shape}, {truncated.shape}, {final_values.shape}")
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        step_gamma = gamma[t] if torch.is_tensor(gamma) else gamma
        step_lam = lam[t] if torch.is_tensor(lam) else lam
        next_value = torch.where(truncated[t], final_values[t], next_value)
        alive = 1.0 - terminated[t].float()
        ended = (terminated[t] | truncated[t]).float()
        delta = rewards[t] + step_gamma * alive * next_value - values[t]
        running = delta + step_gamma * step_lam * (1.0 - ended) * running
        advantages[t] = running
        next_value = values[t]
    return advantages


def group_mean_std(x: torch.Tensor, group: torch.Tensor, n_groups: int,
                   weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``x [T, N]`` over the envs of each group at each step, broadcast back;
    ``weight`` (0/1 ``[T, N]``) leaves members out (padding)."""
    weight = torch.ones_like(x) if weight is None else weight.to(x.dtype)
    sums = torch.zeros(x.shape[0], n_groups, dtype=x.dtype, device=x.device).index_add(1, group, x * weight)
    squares = torch.zeros_like(sums).index_add(1, group, x * x * weight)
    counts = torch.zeros_like(sums).index_add(1, group, weight).clamp(min=1.0)
    mean = sums / counts
    std = (squares / counts - mean**2).clamp(min=0).sqrt()
    return mean[:, group], std[:, group]


def compute_targets(algo: AlgoConfig, ipa: IPAConfig, batch: Batch, values: torch.Tensor, last_value: torch.Tensor) -> Targets:
    """Advantages and value targets for ``algo.name`` (no gradient)."""
    stop = batch.terminated | batch.padding  # nothing flows across a terminal step or padding
    done = stop | batch.truncated
    real = ~batch.padding
    boundary = chunk_boundaries(
        ipa.chunker, positions=batch.positions, prev_positions=batch.prev_positions,
        env_chunk_end=batch.env_chunk_end, step_in_episode=batch.step_in_episode, fixed_k=ipa.fixed_k,
    )
    boundary = boundary | batch.prefix_end  # where the policy takes over from a replayed teacher prefix
    ids, n_chunks = chunk_ids(boundary | done)  # an episode end closes its chunk (padding: one chunk a step)
    n_real = max(int(real.sum()), 1)
    real_chunks = max(n_chunks - int(batch.padding.sum()), 1)
    stats = {"ipa/mean_chunk_length": n_real / real_chunks}
    ended = done & real
    if ended.any():  # whole episodes (those that ended here: their length), not the rollout's parts of them
        lengths = (batch.step_in_episode[ended] + 1).to(torch.float64)
        stats["ipa/chunks_per_episode"] = float(lengths.mean()) / stats["ipa/mean_chunk_length"]
    n_groups = int(batch.group.max()) + 1
    rewards, truncated, final_values = batch.rewards, batch.truncated, batch.final_values

    def finish(advantages, value_targets, positive=None) -> Targets:
        advantages = torch.where(real, advantages, torch.zeros_like(advantages))
        value_targets = torch.where(real, value_targets, values)
        positive = advantages > 0 if positive is None else positive & real
        return Targets(advantages, value_targets, ids, n_chunks, positive, stats)

    if algo.name == "ppo":
        advantages = gae(rewards, values, stop, truncated, final_values, last_value, algo.gamma, algo.gae_lambda)
        return finish(advantages, advantages + values)
    if algo.name == "ipa":
        # discount=time: gamma every step, so a chunk of tau steps gets gamma^tau (the semi-MDP); discount=chunk:
        # gamma where a chunk ends (an order, a prefix's end), not at an episode end.
        discounted = torch.ones_like(boundary) if ipa.discount == "time" else boundary
        step_gamma = torch.where(discounted, algo.gamma, 1.0)
        g = returns_to_go(rewards, discounted, stop, truncated, final_values, last_value, algo.gamma)
        chunk_return = chunk_first(g, ids, n_chunks)
        if ipa.baseline == "gae":  # the chunk critic: trace decay lambda between chunks, 1 inside one
            step_lam = torch.where(boundary, algo.gae_lambda, 1.0)
            step_advantages = gae(rewards, values, stop, truncated, final_values, last_value, step_gamma, step_lam)
            g = step_advantages + values  # the critic's target: the lambda-return, inside a chunk its Monte Carlo rest
            advantages = chunk_first(step_advantages, ids, n_chunks)
        elif ipa.baseline == "value":
            advantages = chunk_return - chunk_first(values, ids, n_chunks)
        elif ipa.baseline == "group":
            advantages = chunk_return - group_mean_std(chunk_return, batch.group, n_groups, real)[0]
        else:
            advantages = chunk_return
        if ipa.value_target == "step":  # PPO's lambda-return at every step
            g = gae(rewards, values, stop, truncated, final_values, last_value, step_gamma, algo.gae_lambda) + values
        positive = None  # topr_split=advantage: the step's advantage decides
        if ipa.topr_split == "trajectory":  # the paper and ROLL (episode_scores > 0): the trajectory's return
            outcome = episode_outcomes(rewards, stop, truncated, final_values, last_value, batch.return_before)
            positive = outcome > 0
        return finish(advantages, g, positive)
    # Step-level discounted returns for REINFORCE and GRPO (gamma every step).
    every_step = torch.ones_like(boundary)
    g = returns_to_go(rewards, every_step, stop, truncated, final_values, last_value, algo.gamma)
    if algo.name == "grpo":
        # Critic-free: the Monte Carlo return-to-go inside the rollout (an episode the rollout or a
        # truncation cuts counts its rewards so far), normalized over the group at each step.
        zeros = torch.zeros_like(last_value)
        mc = returns_to_go(rewards, every_step, done, torch.zeros_like(done), torch.zeros_like(g), zeros, algo.gamma)
        mean, std = group_mean_std(mc, batch.group, n_groups, real)
        return finish((mc - mean) / (std + 1e-8), g)
    # REINFORCE: the return-to-go; where the rollout cuts an episode, the critic's value completes it.
    return finish(g, g)


def policy_loss(
    algo: AlgoConfig, ipa: IPAConfig, logp_new: torch.Tensor, logp_old: torch.Tensor, logp_behaviour: torch.Tensor,
    advantages: torch.Tensor, positive: torch.Tensor, ids: torch.Tensor, n_chunks: int, learn: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The policy-gradient term of one minibatch over the steps where ``learn`` (0/1) is 1."""
    count = learn.sum().clamp(min=1.0)
    if algo.norm_adv:
        mean = (advantages * learn).sum() / count
        std = (((advantages - mean) ** 2 * learn).sum() / (count - 1).clamp(min=1.0)).sqrt()
        advantages = (advantages - mean) / (std + 1e-8)
    if algo.name == "ipa" and ipa.topr_split == "advantage":
        positive = advantages > 0  # the sign of the advantage the loss weights with (whitened or not)
    if algo.name == "ipa":
        return ipa_policy_loss(logp_new, logp_old, logp_behaviour, advantages, ids, n_chunks, positive,
                               ipa.mismatch_high, ipa.mismatch_low, learn)
    if algo.name == "reinforce":
        return -(advantages * logp_new * learn).sum() / count, {}
    ratio = torch.exp(logp_new - logp_old)  # ppo, grpo: clipped surrogate
    surrogate = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - algo.clip_coef, 1 + algo.clip_coef))
    clipfrac = (((ratio - 1.0).abs() > algo.clip_coef).float() * learn).sum().item() / count.item()
    return (surrogate * learn).sum() / count, {"losses/clipfrac": clipfrac}


def value_loss(algo: AlgoConfig, values: torch.Tensor, values_old: torch.Tensor, value_targets: torch.Tensor,
               weight: torch.Tensor) -> torch.Tensor:
    """The critic's loss, ``weight``-averaged: half the squared error (``algo.value_loss=mse``) or the Huber loss
    (``huber``: the same within ``algo.huber_delta``, linear beyond), of the values clipped around ``values_old``
    too with ``algo.clip_vloss`` (the larger of the two losses counts)."""

    def loss(v: torch.Tensor) -> torch.Tensor:
        if algo.value_loss == "huber":
            return F.huber_loss(v, value_targets, reduction="none", delta=algo.huber_delta)
        return 0.5 * (v - value_targets) ** 2

    error = loss(values)
    if algo.clip_vloss:
        error = torch.max(error, loss(values_old + (values - values_old).clamp(-algo.clip_coef, algo.clip_coef)))
    return (error * weight).sum() / weight.sum().clamp(min=1.0)


def loss_terms(algo: AlgoConfig, ipa: IPAConfig, resample: ResampleConfig, mb: Batch,
               new: tuple[torch.Tensor, torch.Tensor, torch.Tensor], old: dict[str, torch.Tensor],
               n_chunks: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The named, weighted loss terms of minibatch ``mb``: ``policy``, ``value``, ``entropy`` and, with a
    teacher (``resample.teacher``), ``imitation``; ``L = lambda_RL * policy + lambda_IL * imitation + ...``.

    ``new``: ``(logp, entropy, values)`` under the current policy; ``old``: the update's fixed
    ``logp``, ``values``, ``adv``, ``ret``, ``ids``, ``positive`` for the same columns.
    """
    logp, entropy, values = new
    real = (~mb.padding).to(logp.dtype)
    learn = real * (~mb.teacher).to(logp.dtype)  # RL on the steps the policy sampled
    pg, stats = policy_loss(algo, ipa, logp, old["logp"], mb.logp, old["adv"], old["positive"], old["ids"],
                            n_chunks, learn)
    v_loss = value_loss(algo, values, old["values"], old["ret"], real)
    mean_entropy = (entropy * real).sum() / real.sum().clamp(min=1.0)
    stats.update({"losses/policy_loss": pg.item(), "losses/value_loss": v_loss.item(),
                  "losses/entropy": mean_entropy.item()})
    hybrid = resample.teacher is not None
    terms = {"policy": (resample.lambda_rl if hybrid else 1.0) * pg, "value": algo.vf_coef * v_loss,
             "entropy": -algo.ent_coef * mean_entropy}
    if hybrid:  # imitation of the replayed teacher prefix
        replayed = (mb.teacher & ~mb.padding).to(logp.dtype)
        il_loss = -(logp * replayed).sum() / replayed.sum().clamp(min=1.0)
        terms["imitation"] = resample.lambda_il * il_loss
        stats["losses/il_loss"] = il_loss.item()
    return terms, stats


def mismatch_stats(logp_old: torch.Tensor, batch: Batch, ids: torch.Tensor, n_chunks: int,
                   ipa: IPAConfig) -> dict[str, float]:
    """The chunk geometric mean of ``pi_old / mu`` over the rollout's chunks of real steps: max, mean and min
    (1 exactly when the rollout was collected by the policy being updated), and the fractions of chunks
    above ``ipa.mismatch_high`` and below ``ipa.mismatch_low`` (those IPA's mask drops; the low side is
    mu likelier than pi_old)."""
    per_chunk = chunk_mismatch(logp_old, batch.logp, ids, n_chunks)
    real = chunk_means((~batch.padding).to(logp_old.dtype), ids, n_chunks) > 0
    per_chunk = per_chunk[real] if real.any() else torch.ones(1)
    return {"ipa/mismatch_max": per_chunk.max().item(), "ipa/mismatch_mean": per_chunk.mean().item(),
            "ipa/mismatch_min": per_chunk.min().item(),
            "ipa/mismatch_high_fraction": (per_chunk > ipa.mismatch_high).float().mean().item(),
            "ipa/mismatch_low_fraction": (per_chunk < ipa.mismatch_low).float().mean().item()}
