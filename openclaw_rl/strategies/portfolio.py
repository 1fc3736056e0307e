"""Baseline portfolio strategies: target weights from observations of ``openclaw_rl/Portfolio-v0``.

A strategy maps observations (``rock/portfolio.py``'s layout, split by ``unpack``) to target weights
``[n, K]``: it sees what the agent sees after bar t's close and nothing later, so every rule is causal
by construction. The trailing window is the env's ``window``. The volatility rules give weight 0 to an
asset whose returns are all 0 over the window (no price history, e.g. not listed yet); a portfolio
with no such asset left holds cash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openclaw_rl.rock.portfolio import PortfolioObs


@dataclass(frozen=True)
class EqualWeight:
    """``1 / K`` in every asset, rebalanced whenever a weight drifts past the env's ``trade_threshold``."""

    def weights(self, obs: PortfolioObs) -> np.ndarray:
        k = obs.weights.shape[-1]
        return np.full(obs.weights.shape, 1.0 / k)


@dataclass(frozen=True)
class BuyAndHold:
    """Equal weights on an episode's first step, then the weights held: never rebalanced (the env
    trades an asset only when its target moves more than ``trade_threshold`` from its held weight)."""

    def weights(self, obs: PortfolioObs) -> np.ndarray:
        first = (obs.time_left == 1.0)[..., None]
        return np.where(first, 1.0 / obs.weights.shape[-1], obs.weights.astype(np.float64))


@dataclass(frozen=True)
class InverseVolatility:
    """Weights proportional to 1 / the trailing volatility of each asset's returns, summing to 1."""

    def weights(self, obs: PortfolioObs) -> np.ndarray:
        vol = obs.returns_pct.astype(np.float64).std(axis=-2)
        inverse = np.divide(1.0, vol, out=np.zeros_like(vol), where=vol > 0)
        total = inverse.sum(axis=-1, keepdims=True)
        return np.divide(inverse, total, out=np.zeros_like(inverse), where=total > 0)


@dataclass(frozen=True)
class MinimumVariance:
    """Long-only minimum variance: ``min w' C w`` over ``w >= 0, sum w = 1``, with ``C`` the trailing
    covariance pulled toward its diagonal by ``shrinkage`` (a short window gives a singular one),
    solved by ``iterations`` steps of projected gradient descent (step ``1 / largest eigenvalue``)."""

    shrinkage: float = 0.1
    iterations: int = 300

    def weights(self, obs: PortfolioObs) -> np.ndarray:
        returns = obs.returns_pct.astype(np.float64).reshape(-1, *obs.returns_pct.shape[-2:])
        centered = returns - returns.mean(axis=1, keepdims=True)
        cov = np.einsum("ntj,ntk->njk", centered, centered) / returns.shape[1]
        variance = np.diagonal(cov, axis1=1, axis2=2)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * (variance[:, :, None] * np.eye(cov.shape[-1]))
        active = variance > 0
        cov *= active[:, :, None] & active[:, None, :]
        step = 1.0 / np.maximum(np.linalg.eigvalsh(cov)[:, -1], 1e-12)
        w = project_simplex(np.zeros_like(variance), active)
        for _ in range(self.iterations):
            w = project_simplex(w - step[:, None] * np.einsum("njk,nk->nj", cov, w), active)
        return w.reshape(obs.weights.shape)


def project_simplex(v: np.ndarray, active: np.ndarray) -> np.ndarray:
    """The nearest point of ``{w >= 0, sum w = 1, w = 0 where not active}`` to each row of ``v`` ``[n, K]``
    (Duchi et al. 2008, sort-based); a row with no active asset is all 0."""
    v = np.where(active, v, -np.inf)
    u = -np.sort(-v, axis=1)  # descending, inactive (-inf) last
    partial = np.cumsum(np.where(np.isfinite(u), u, 0.0), axis=1) - 1.0
    fits = u - partial / np.arange(1, v.shape[1] + 1) > 0
    last = v.shape[1] - 1 - np.argmax(fits[:, ::-1], axis=1)  # the last index that fits
    theta = partial[np.arange(len(v)), last] / (last + 1)
    return np.maximum(v - theta[:, None], 0.0)


STRATEGIES = {
    "equal_weight": EqualWeight,
    "buy_and_hold": BuyAndHold,
    "inverse_volatility": InverseVolatility,
    "minimum_variance": MinimumVariance,
}
