"""Targets and policy losses of the four algorithms, behind one interface.

``algo=ipa|ppo|grpo|reinforce`` changes only these two functions; the rollout, the network,
the minibatching and the optimizer are the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from openclaw_rl.ipa.chunks import chunk_boundaries, chunk_first, chunk_ids, returns_to_go
from openclaw_rl.ipa.loss import ipa_policy_loss
from openclaw_rl.roll.config import AlgoConfig, IPAConfig
from openclaw_rl.roll.rollout import Batch


@dataclass
class Targets:
    """What a minibatch needs beyond the rollout: advantages, value targets and chunk ids."""

    advantages: torch.Tensor
    value_targets: torch.Tensor
    chunk_ids: torch.Tensor
    n_chunks: int
    stats: dict[str, float] = field(default_factory=dict)


def gae(batch: Batch, values: torch.Tensor, last_value: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalized advantage estimation; truncated steps bootstrap from the final observation."""
    advantages = torch.empty_like(batch.rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(batch.rewards.shape[0] - 1, -1, -1):
        next_value = torch.where(batch.truncated[t], batch.final_values[t], next_value)
        alive = 1.0 - batch.terminated[t].float()
        ended = (batch.terminated[t] | batch.truncated[t]).float()
        delta = batch.rewards[t] + gamma * alive * next_value - values[t]
        running = delta + gamma * lam * (1.0 - ended) * running
        advantages[t] = running
        next_value = values[t]
    return advantages


def group_mean_std(x: torch.Tensor, group: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``x [T, N]`` over the envs of each group at each step, broadcast back."""
    sums = torch.zeros(x.shape[0], n_groups, dtype=x.dtype, device=x.device).index_add(1, group, x)
    squares = torch.zeros_like(sums).index_add(1, group, x * x)
    counts = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add(0, group, torch.ones_like(x[0]))
    mean = sums / counts
    std = (squares / counts - mean**2).clamp(min=0).sqrt()
    return mean[:, group], std[:, group]


def compute_targets(algo: AlgoConfig, ipa: IPAConfig, batch: Batch, values: torch.Tensor, last_value: torch.Tensor) -> Targets:
    """Advantages and value targets for ``algo.name`` (no gradient)."""
    boundary = chunk_boundaries(
        ipa.chunker, targets=batch.targets, prev_targets=batch.prev_targets, env_chunk_end=batch.env_chunk_end,
        step_in_episode=batch.step_in_episode, fixed_k=ipa.fixed_k,
    )
    boundary = boundary | batch.prefix_end  # where the policy takes over from a replayed teacher prefix
    done = batch.terminated | batch.truncated
    ids, n_chunks = chunk_ids(boundary | done)
    episodes = done.sum().item() + batch.rewards.shape[1]  # started or open episodes in the rollout
    stats = {"ipa/mean_chunk_length": batch.rewards.numel() / n_chunks, "ipa/chunks_per_episode": n_chunks / episodes}
    n_groups = int(batch.group.max()) + 1
    if algo.name == "ppo":
        advantages = gae(batch, values, last_value, algo.gamma, algo.gae_lambda)
        return Targets(advantages, advantages + values, ids, n_chunks, stats)
    if algo.name == "ipa":
        g = returns_to_go(batch.rewards, boundary | done, batch.terminated, batch.truncated,
                          batch.final_values, last_value, algo.gamma)
        chunk_return = chunk_first(g, ids, n_chunks)
        if ipa.baseline == "value":
            advantages = chunk_return - chunk_first(values, ids, n_chunks)
        elif ipa.baseline == "group":
            advantages = chunk_return - group_mean_std(chunk_return, batch.group, n_groups)[0]
        else:
            advantages = chunk_return
        return Targets(advantages, g, ids, n_chunks, stats)
    # Step-level discounted returns for REINFORCE and GRPO (chunker "step": gamma every step).
    every_step = torch.ones_like(boundary)
    g = returns_to_go(batch.rewards, every_step, batch.terminated, batch.truncated, batch.final_values, last_value, algo.gamma)
    if algo.name == "grpo":  # critic-free: Monte Carlo returns, normalized within the group
        zeros = torch.zeros_like(last_value)
        mc = returns_to_go(batch.rewards, every_step, batch.terminated, batch.truncated, torch.zeros_like(g), zeros, algo.gamma)
        mean, std = group_mean_std(mc, batch.group, n_groups)
        return Targets((mc - mean) / (std + 1e-8), g, ids, n_chunks, stats)
    return Targets(g, g, ids, n_chunks, stats)  # reinforce


def policy_loss(
    algo: AlgoConfig, ipa: IPAConfig, logp_new: torch.Tensor, logp_old: torch.Tensor, logp_behaviour: torch.Tensor,
    advantages: torch.Tensor, ids: torch.Tensor, n_chunks: int, sampled: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The policy term of the loss for one minibatch; ``sampled`` (0/1) limits it to the steps the
    policy sampled (resampling: replayed teacher steps are learned by imitation instead)."""
    weight = torch.ones_like(advantages) if sampled is None else sampled
    count = weight.sum().clamp(min=1.0)
    if algo.norm_adv:
        mean = (advantages * weight).sum() / count
        std = (((advantages - mean) ** 2 * weight).sum() / (count - 1).clamp(min=1.0)).sqrt()
        advantages = (advantages - mean) / (std + 1e-8)
    if algo.name == "ipa":
        return ipa_policy_loss(logp_new, logp_old, logp_behaviour, advantages, ids, n_chunks, ipa.mismatch_h, sampled)
    if algo.name == "reinforce":
        return -(advantages * logp_new * weight).sum() / count, {}
    ratio = torch.exp(logp_new - logp_old)  # ppo, grpo: clipped surrogate
    surrogate = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - algo.clip_coef, 1 + algo.clip_coef))
    clipfrac = (((ratio - 1.0).abs() > algo.clip_coef).float() * weight).sum().item() / count.item()
    return (surrogate * weight).sum() / count, {"losses/clipfrac": clipfrac}
