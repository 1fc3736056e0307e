"""Interaction chunks: boundaries, ids, chunk-MDP returns, per-chunk means, episode outcomes.

A chunk runs over consecutive steps of one env column and ends at a boundary step (the step
that executes an order, for the ``trade`` chunker), at an episode end, or stays open at the end
of the rollout. This module is the one definition of chunks: the learner, the trajectory store
and the teacher replay number them with ``chunk_index`` / ``chunk_ids``.

The return is ``g_t = r_t + c_t * g_{t+1}``; every step of a chunk shares the return at its first step,
``G_k``. With ``ipa.discount=time`` (the default) ``c_t = gamma`` at every step, so a chunk of ``tau``
steps is discounted by ``gamma^tau``: ``G_k = R_k + gamma^tau_k * G_{k+1}`` (``R_k`` the chunk's rewards
discounted inside it), the semi-MDP over decisions of varying length. With ``ipa.discount=chunk``
``c_t = gamma`` only where step t ends a chunk: ``G_k = R_k + gamma * G_{k+1}`` (``R_k`` summed), one
discount per decision however long it lasts. An open chunk bootstraps with the critic.

Shapes: time-major ``[T, N]`` (T steps of N env columns) unless noted.
"""

from __future__ import annotations

import torch

CHUNKERS = ("trade", "fixed", "env", "step", "episode")


def chunk_boundaries(
    chunker: str,
    *,
    positions: torch.Tensor,
    prev_positions: torch.Tensor,
    env_chunk_end: torch.Tensor,
    step_in_episode: torch.Tensor,
    fixed_k: int = 8,
) -> torch.Tensor:
    """``[T, N]`` bool: step t ends a chunk (episode ends are added by the caller, see ``chunk_ids``).
    Takes and returns torch tensors or numpy arrays alike (PAOM's observer runs in numpy).

    trade: an order executed at step t, i.e. the position held changed (``positions`` are the
    positions the env reports after each step, so an action inside the env's ``trade_threshold``
    is no order); env: the env's own ``chunk_end`` flag (for the market env: the same orders);
    fixed: every ``fixed_k`` steps of an episode; step: every step; episode: never.
    """
    if chunker == "trade":
        return positions != prev_positions
    if chunker == "env":
        return env_chunk_end != 0
    if chunker == "fixed":
        return (step_in_episode + 1) % fixed_k == 0
    if chunker == "step":
        return step_in_episode >= 0  # every step (a step's index in its episode is never negative)
    if chunker == "episode":
        return step_in_episode < 0  # never
    raise ValueError(f"ipa.chunker: unknown chunker {chunker!r}; allowed: {', '.join(CHUNKERS)}")


def chunk_index(ends):
    """Per column, the chunk of each step counted from 0: the number of chunk ends before it.

    ``ends[t, n]`` (bool, ``[T, ...]``): step t of column n closes its chunk. The step that ends a
    chunk belongs to it (an order closes the chunk that led to it). Takes and returns a torch
    tensor or a numpy array alike (the trajectory store numbers its steps with it).
    """
    counts = ends * 1
    return counts.cumsum(0) - counts


def chunk_ids(ends: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Ids ``[T, N]`` numbering the chunks of all columns (column by column), and their count."""
    index = chunk_index(ends)
    per_column = index[-1] + 1
    offsets = torch.cumsum(per_column, 0) - per_column
    return (index + offsets).contiguous(), int(per_column.sum())


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

    ``boundary``: the steps after which ``gamma`` applies (every step, or chunk ends *only*, not episode
    ends: an episode that ends mid-chunk adds no discount). Termination stops the sum; truncation (a cut the state does not show) continues with
    ``final_values`` (the critic at the final observation); the rollout's last step continues with
    ``last_value [N]``.
    """
    g = torch.empty_like(rewards)
    future = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        future = torch.where(truncated[t].bool(), final_values[t], future)
        future = torch.where(terminated[t].bool(), torch.zeros_like(future), future)
        step_discount = torch.where(boundary[t].bool(), gamma, 1.0)
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


def chunk_means(values: torch.Tensor, ids: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """``[n_chunks]``: the mean of ``values`` over each chunk (differentiable; 0 for a chunk without steps here)."""
    flat_ids = ids.reshape(-1)
    sums = torch.zeros(n_chunks, dtype=values.dtype, device=values.device).index_add(0, flat_ids, values.reshape(-1))
    counts = torch.zeros(n_chunks, dtype=values.dtype, device=values.device).index_add(
        0, flat_ids, torch.ones_like(values.reshape(-1))
    )
    return sums / counts.clamp(min=1)


def chunk_mean(values: torch.Tensor, ids: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """Each step gets the mean of ``values`` over its chunk (differentiable)."""
    return chunk_means(values, ids, n_chunks)[ids]


def episode_outcomes(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    last_value: torch.Tensor,
    return_before: torch.Tensor,
) -> torch.Tensor:
    """Each step gets the undiscounted return of its episode (the trajectory's score, TOPR's split).

    The episode's rewards before the rollout (``return_before [N]``, for the episode each column
    is in at the first step), its rewards inside the rollout, and where it is cut (by the rollout
    end, or a truncation the state does not show) the critic's bootstrap: ``last_value [N]`` or
    ``final_values``.
    """
    rest = returns_to_go(rewards, torch.zeros_like(terminated, dtype=torch.bool), terminated, truncated,
                         final_values, last_value, 1.0)
    done = terminated.bool() | truncated.bool()
    past = torch.empty_like(rewards)
    running = return_before.to(rewards.dtype)
    for t in range(rewards.shape[0]):
        past[t] = running
        running = torch.where(done[t], torch.zeros_like(running), running + rewards[t])
    return past + rest
