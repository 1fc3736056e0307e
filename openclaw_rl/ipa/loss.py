"""IPA's policy loss (arXiv 2512.24873, Eq. 9, TOPR-style) with the chunk mismatch mask."""

from __future__ import annotations

import torch

from openclaw_rl.ipa.chunks import chunk_mean


def ipa_policy_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    logp_behaviour: torch.Tensor,
    advantages: torch.Tensor,
    ids: torch.Tensor,
    n_chunks: int,
    mismatch_h: float,
    sampled: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Chunk-level policy-gradient loss.

    - Chunk ratio: the geometric mean over the chunk, ``rho_c = exp(mean(log pi - log pi_old))``.
    - Positive advantages: advantage-weighted log-likelihood, no ratio. Others: the same
      term weighted by ``[rho_c]`` truncated to [0, 1] (no gradient through the weight).
    - Mismatch mask: a chunk whose geometric mean of ``pi_old / mu`` (mu: the behaviour
      policy that acted) exceeds ``mismatch_h`` is dropped whole.
    - ``sampled`` (0/1 per step) drops steps the policy did not sample (a replayed teacher prefix;
      its chunks end where the prefix does, so no chunk mixes the two).
    """
    rho = torch.exp(chunk_mean(logp_new - logp_old, ids, n_chunks))
    mismatch = torch.exp(chunk_mean(logp_old - logp_behaviour, ids, n_chunks))
    keep = (mismatch <= mismatch_h).to(logp_new.dtype)
    masked_fraction = 1.0 - keep.mean().item()
    if sampled is not None:
        masked_fraction = 1.0 - (keep * sampled).sum().item() / max(sampled.sum().item(), 1.0)
        keep = keep * sampled
    weight = torch.where(advantages > 0, torch.ones_like(rho), rho.detach().clamp(0.0, 1.0))
    loss = -(weight * advantages * logp_new * keep).sum() / keep.sum().clamp(min=1.0)
    stats = {
        "ipa/masked_fraction": masked_fraction,
        "ipa/ratio_mean": rho.mean().item(),
        "ipa/ratio_min": rho.min().item(),
        "ipa/ratio_max": rho.max().item(),
    }
    return loss, stats
