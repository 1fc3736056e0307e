"""Interaction chunks: boundaries, ids, chunk-MDP returns and per-chunk means.

A chunk runs over consecutive steps of one env column and ends at a boundary step (the step
that sends an order, for the ``trade`` chunker), at an episode end, or stays open at the end
of the rollout. The discount applies between chunks, not between the steps inside one:
``g_t = r_t + c_t * g_{t+1}`` with ``c_t = gamma`` when step t ends a chunk and 1 otherwise.
So the chunk return is ``G_k = R_k + gamma * G_{k+1}`` (``R_k`` the rewards summed inside
chunk k), which every step of the chunk shares; an open chunk bootstraps with the critic.
"""

from __future__ import annotations

import torch

CHUNKERS = ("trade", "fixed", "env", "step", "episode")


def chunk_boundaries(
    chunker: str,
    *,
    targets: torch.Tensor,
    prev_targets: torch.Tensor,
    env_chunk_end: torch.Tensor,
    step_in_episode: torch.Tensor,
    fixed_k: int = 8,
) -> torch.Tensor:
    """``[T, N]`` bool: step t ends a chunk (episode ends are added by ``chunk_ids``).

    trade: the agent's target position changed (an order); env: the env's ``chunk_end``;
    fixed: every ``fixed_k`` steps of an episode; step: every step; episode: never.
    """
    if chunker == "trade":
        return targets != prev_targets
    if chunker == "env":
        return env_chunk_end.bool()
    if chunker == "fixed":
        return (step_in_episode + 1) % fixed_k == 0
    if chunker == "step":
        return torch.ones_like(env_chunk_end, dtype=torch.bool)
    if chunker == "episode":
        return torch.zeros_like(env_chunk_end, dtype=torch.bool)
    raise ValueError(f"ipa.chunker: unknown chunker {chunker!r}; allowed: {', '.join(CHUNKERS)}")


def chunk_ids(ends: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Ids ``[T, N]`` numbering the chunks column by column, and their count.

    ``ends[t, n]``: step t of column n closes its chunk (boundary or episode end).
    """
    starts = torch.zeros_like(ends, dtype=torch.long)
    starts[0] = 1
    starts[1:] = ends[:-1].long()
    ids = torch.cumsum(starts.T.reshape(-1), 0).reshape(starts.T.shape).T - 1
    return ids.contiguous(), int(starts.sum())


def returns_to_go(
    rewards: torch.Tensor,
    boundary: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Chunk-MDP return-to-go ``g_t`` at every step (the critic's target).

    Termination stops the sum; truncation (time limit) continues with ``final_values`` (the
    critic at the final observation); the rollout's last step continues with ``last_value``.
    """
    g = torch.empty_like(rewards)
    future = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        future = torch.where(truncated[t].bool(), final_values[t], future)
        future = torch.where(terminated[t].bool(), torch.zeros_like(future), future)
        step_discount = torch.where(boundary[t], gamma, 1.0)
        g[t] = rewards[t] + step_discount * future
        future = g[t]
    return g


def chunk_first(values: torch.Tensor, ids: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """Each step gets the value at the first step of its chunk (e.g. ``G_k`` from ``g_t``)."""
    first = torch.zeros(n_chunks, dtype=values.dtype, device=values.device)
    flat_ids, flat = ids.T.reshape(-1), values.T.reshape(-1)
    # Ids are non-decreasing in column-major order: a chunk's first step is where the id changes.
    is_first = torch.ones_like(flat_ids, dtype=torch.bool)
    is_first[1:] = flat_ids[1:] != flat_ids[:-1]
    first[flat_ids[is_first]] = flat[is_first]
    return first[ids]


def chunk_mean(values: torch.Tensor, ids: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """Each step gets the mean of ``values`` over its chunk (differentiable)."""
    flat_ids = ids.reshape(-1)
    sums = torch.zeros(n_chunks, dtype=values.dtype, device=values.device).index_add(0, flat_ids, values.reshape(-1))
    counts = torch.zeros(n_chunks, dtype=values.dtype, device=values.device).index_add(
        0, flat_ids, torch.ones_like(values.reshape(-1))
    )
    return (sums / counts.clamp(min=1))[ids]
