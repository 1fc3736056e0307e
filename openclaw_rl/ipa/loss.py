"""IPA's policy loss (arXiv 2512.24873, Eq. 9, TOPR-style) with the chunk mismatch mask.

Shapes: ``[T, N]`` per step; chunk ``ids`` from ``ipa.chunks.chunk_ids`` (``n_chunks`` in all).
"""

from __future__ import annotations

import torch

from openclaw_rl.ipa.chunks import chunk_mean, chunk_means


def chunk_mismatch(logp_old: torch.Tensor, logp_behaviour: torch.Tensor, ids: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """``[n_chunks]``: the geometric mean over each chunk of ``pi_old / mu`` (mu: the policy that acted)."""
    return torch.exp(chunk_means(logp_old - logp_behaviour, ids, n_chunks))


def mismatch_keep(logp_old: torch.Tensor, logp_behaviour: torch.Tensor, ids: torch.Tensor, n_chunks: int,
                  high: float, low: float = 0.0) -> torch.Tensor:
    """``[T, N]`` 0/1: the step's chunk passes the mismatch filter ``low <= gm(pi_old / mu) <= high``.

    ``low = 0`` is the paper's one-sided mask (drop a chunk when the geometric mean exceeds H);
    ``low > 0`` is ROLL's two-sided filter. A chunk is kept or dropped whole.
    """
    mismatch = chunk_mismatch(logp_old, logp_behaviour, ids, n_chunks)
    return ((mismatch >= low) & (mismatch <= high)).to(logp_old.dtype)[ids]


def ipa_policy_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    logp_behaviour: torch.Tensor,
    advantages: torch.Tensor,
    ids: torch.Tensor,
    n_chunks: int,
    positive: torch.Tensor,
    mismatch_high: float,
    mismatch_low: float = 0.0,
    learn: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Chunk-level policy-gradient loss.

    - Chunk ratio: the geometric mean over the chunk, ``rho_c = exp(mean(log pi - log pi_old))``.
    - ``positive`` (bool per step; TOPR's T+, by default the steps of trajectories with a positive
      return): advantage-weighted log-likelihood, no ratio. Others: the same term weighted by
      ``[rho_c]`` truncated to [0, 1] (no gradient through the weight).
    - Mismatch mask: a chunk whose geometric mean of ``pi_old / mu`` lies outside
      ``[mismatch_low, mismatch_high]`` is dropped whole.
    - ``learn`` (0/1 per step) limits the loss to the steps the policy sampled (not a replayed
      teacher prefix, whose chunks end where it does, nor padding).
    """
    rho = torch.exp(chunk_mean(logp_new - logp_old, ids, n_chunks))
    keep = mismatch_keep(logp_old, logp_behaviour, ids, n_chunks, mismatch_high, mismatch_low)
    learn = torch.ones_like(keep) if learn is None else learn
    masked_fraction = 1.0 - (keep * learn).sum().item() / max(learn.sum().item(), 1.0)
    keep = keep * learn
    weight = torch.where(positive, torch.ones_like(rho), rho.detach().clamp(0.0, 1.0))
    loss = -(weight * advantages * logp_new * keep).sum() / keep.sum().clamp(min=1.0)
    stats = {
        "ipa/masked_fraction": masked_fraction,
        "ipa/positive_fraction": (positive.to(keep.dtype) * learn).sum().item() / max(learn.sum().item(), 1.0),
        "ipa/ratio_mean": rho.mean().item(),
        "ipa/ratio_min": rho.min().item(),
        "ipa/ratio_max": rho.max().item(),
    }
    return loss, stats
