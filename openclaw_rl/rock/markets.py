"""Synthetic market models: seeded, vectorized generators of OHLC bar paths.

Each model maps episode keys ``[n]`` to ``Bars``: time-major ``[n_bars, n]`` log prices, the
layout the engine steps through and the one the recursions walk contiguously. A model first draws
close-to-close log returns and the per-bar volatility behind them; ``bars_from_returns``
turns these into OHLC bars with a Brownian bridge (the open is the bridge at the overnight
fraction of the bar, high and low are exact draws of the bridge's maximum and minimum).
Recursive models (regime chain, GARCH, Heston) loop over bars, vectorized over markets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from openclaw_rl.rock import rng
from openclaw_rl.rock.rolling import cumsum_time

REGIME_NAMES = ("bull", "sideways", "bear", "crash", "volatile")
NO_REGIME = -1


@dataclass(frozen=True)
class Regime:
    """Daily log-return distribution of one regime, in percent, and its mean duration.

    ``entry_jump_pct`` is a log return added on the bar the chain enters the regime: an announcement the
    market makes once, which a policy must keep (in a memory, or in its position) while the regime lasts.
    """

    mean_pct: float
    vol_pct: float
    duration_bars: float
    entry_jump_pct: float = 0.0


# bull, sideways and crash: 3-state Hamilton fit on S&P 500 daily log returns 1990-2022.
# bear and volatile are hand-set (not fitted) and are not in the default switching set.
DEFAULT_REGIMES = {
    "bull": Regime(0.091, 0.55, 47.0),
    "sideways": Regime(-0.004, 1.16, 33.0),
    "bear": Regime(-0.080, 1.50, 30.0),
    "crash": Regime(-0.192, 2.80, 25.0),
    "volatile": Regime(0.000, 2.00, 10.0),
}


@dataclass(frozen=True)
class Bars:
    """Log OHLC price paths ``[n_bars, n]`` (float64) and the true regime code per bar (int8); historical
    replay adds the observation features it computed over its series ``[n_bars, n, F]`` (float32)."""

    log_open: np.ndarray
    log_high: np.ndarray
    log_low: np.ndarray
    log_close: np.ndarray
    regime: np.ndarray
    features: np.ndarray | None = None


def bars_from_returns(
    keys: np.ndarray,
    log_returns: np.ndarray,
    bar_vol: np.ndarray,
    regime: np.ndarray,
    start_price: float,
    overnight_frac: float,
) -> Bars:
    """OHLC bars whose closes follow ``log_returns``; ``bar_vol`` is each bar's log-return std."""
    n_bars = log_returns.shape[0]
    log_close = cumsum_time(log_returns)
    log_close += math.log(start_price)
    log_open = np.empty_like(log_close)
    log_open[0] = math.log(start_price)
    log_open[1:] = log_close[:-1]
    var = bar_vol**2
    gap = rng.normal(rng.substream(keys, 10), n_bars)
    gap *= np.sqrt(overnight_frac * (1 - overnight_frac) * var)
    gap += overnight_frac * log_returns
    log_open += gap
    # Bridge from log_open to log_close with variance s2 = (1 - f) var; its maximum M has
    # P(M > m) = exp(-2 (m - a)(m - b) / s2), inverted exactly below (minimum: by symmetry).
    spread = log_close - log_open
    spread *= spread
    mid = log_open + log_close
    mid *= 0.5
    log_u = np.log(rng.uniform(rng.substream(keys, 11), 2 * n_bars))
    log_u *= -2 * (1 - overnight_frac) * np.concatenate([var, var])
    log_u += np.concatenate([spread, spread])
    half_range = np.sqrt(log_u)
    half_range *= 0.5
    # Clamp so rounding never puts the high below the body (or the low above it).
    body = np.maximum(log_open, log_close)
    high = np.maximum(mid + half_range[:n_bars], body)
    np.minimum(log_open, log_close, out=body)
    low = np.minimum(np.subtract(mid, half_range[n_bars:], out=mid), body, out=body)
    return Bars(log_open, high, low, log_close, regime)


@dataclass(frozen=True)
class SyntheticModel:
    """Common fields: the first close and the share of a bar's variance that falls overnight."""

    start_price: float = 100.0
    overnight_frac: float = 0.2

    def sample(self, keys: np.ndarray, n_bars: int) -> Bars:
        log_returns, bar_vol, regime = self.returns(keys, n_bars)
        return bars_from_returns(keys, log_returns, bar_vol, regime, self.start_price, self.overnight_frac)

    def returns(self, keys: np.ndarray, n_bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log returns, per-bar volatility and regime codes, each ``[n_bars, n]``."""
        raise NotImplementedError

    @staticmethod
    def _no_regime(keys: np.ndarray, n_bars: int) -> np.ndarray:
        return np.full((n_bars, len(keys)), NO_REGIME, dtype=np.int8)


@dataclass(frozen=True)
class RegimeSwitching(SyntheticModel):
    """Markov chain over named regimes, Gaussian daily log returns per regime.

    ``regime`` fixes one regime for the whole path; otherwise the chain switches among
    ``switching``: it stays with probability 1 - 1/duration, else moves to one of the
    others uniformly; the first regime is drawn from the stationary distribution.

    A regime's entry jump falls ``jump_lead_bars`` bars before each bar that enters it (0: on that
    bar), and on bar 1 for the regime in force ``jump_lead_bars`` after it (bar 0 has no close-to-close
    return: bar 1 is the first a path shows). With a lead, the announcement tells what comes, not when
    unless it is remembered: acting on it at once is wrong for the lead's bars.
    """

    regimes: dict[str, Regime] = field(default_factory=lambda: dict(DEFAULT_REGIMES))
    switching: tuple[str, ...] = ("bull", "sideways", "crash")
    regime: str | None = None
    jump_lead_bars: int = 0

    def transition_matrix(self) -> tuple[list[str], np.ndarray]:
        names = [self.regime] if self.regime is not None else list(self.switching)
        k = len(names)
        leave = np.array([1.0 / self.regimes[name].duration_bars for name in names])
        matrix = np.full((k, k), 0.0) if k == 1 else (leave / (k - 1))[:, None] * np.ones((k, k))
        np.fill_diagonal(matrix, 1.0 - leave if k > 1 else 1.0)
        return names, matrix

    def returns(self, keys, n_bars):
        names, matrix = self.transition_matrix()
        eigvals, eigvecs = np.linalg.eig(matrix.T)
        stationary = np.real(eigvecs[:, np.argmin(np.abs(eigvals - 1.0))])
        stationary = stationary / stationary.sum()
        cum_rows = np.cumsum(matrix, axis=1)
        lead = int(self.jump_lead_bars)
        u = rng.uniform(rng.substream(keys, 0), n_bars + lead)  # the chain runs `lead` bars past the path
        last = len(names) - 1
        states = np.empty((n_bars + lead, len(keys)), dtype=np.intp)
        states[0] = np.searchsorted(np.cumsum(stationary), u[0], side="right").clip(max=last)
        for t in range(1, n_bars + lead):
            states[t] = (u[t, :, None] > cum_rows[states[t - 1]]).sum(axis=1).clip(max=last)
        mean = np.array([self.regimes[n].mean_pct for n in names]) / 100
        vol = np.array([self.regimes[n].vol_pct for n in names]) / 100
        codes = np.array([REGIME_NAMES.index(n) for n in names], dtype=np.int8)
        jump = np.array([self.regimes[n].entry_jump_pct for n in names]) / 100
        z = rng.normal(rng.substream(keys, 1), n_bars)
        ahead, states = states[lead:], states[:n_bars]  # the regime `lead` bars on, and the one in force
        log_returns = mean[states] + vol[states] * z
        if jump.any() and n_bars > 1:
            entered = np.zeros(ahead.shape, dtype=bool)
            entered[1] = True
            np.not_equal(ahead[2:], ahead[1:-1], out=entered[2:])
            log_returns += np.where(entered, jump[ahead], 0.0)
        return log_returns, vol[states], codes[states]


@dataclass(frozen=True)
class GBM(SyntheticModel):
    """Geometric Brownian motion; ``mu`` and ``sigma`` annualized, ``dt`` = 1 / bars_per_year."""

    mu: float = 0.07
    sigma: float = 0.18
    bars_per_year: float = 252.0

    def returns(self, keys, n_bars):
        dt = 1.0 / self.bars_per_year
        z = rng.normal(rng.substream(keys, 0), n_bars)
        vol = np.full_like(z, self.sigma * math.sqrt(dt))
        return (self.mu - 0.5 * self.sigma**2) * dt + vol * z, vol, self._no_regime(keys, n_bars)


@dataclass(frozen=True)
class MertonJump(SyntheticModel):
    """GBM plus compound-Poisson log-normal jumps (Merton 1976); ``mu`` is the total drift."""

    mu: float = 0.07
    sigma: float = 0.15
    jump_intensity: float = 5.0  # jumps per year
    jump_mean: float = -0.03  # mean log jump size
    jump_std: float = 0.06
    bars_per_year: float = 252.0

    def returns(self, keys, n_bars):
        dt = 1.0 / self.bars_per_year
        lam = self.jump_intensity * dt
        kappa = math.exp(self.jump_mean + 0.5 * self.jump_std**2) - 1.0
        z = rng.normal(rng.substream(keys, 0), 2 * n_bars)
        counts = self._poisson(rng.uniform(rng.substream(keys, 1), n_bars), lam)
        jumps = counts * self.jump_mean + np.sqrt(counts) * self.jump_std * z[n_bars:]
        drift = (self.mu - 0.5 * self.sigma**2 - self.jump_intensity * kappa) * dt
        vol = np.full((n_bars, len(keys)), self.sigma * math.sqrt(dt))
        return drift + vol * z[:n_bars] + jumps, vol, self._no_regime(keys, n_bars)

    @staticmethod
    def _poisson(u: np.ndarray, lam: float, k_max: int = 30) -> np.ndarray:
        """Poisson(lam) by inversion of the CDF (exact up to a tail below 1e-16 for small lam)."""
        k = np.arange(k_max + 1)
        log_pmf = k * math.log(max(lam, 1e-300)) - lam - np.array([math.lgamma(i + 1) for i in k])
        return np.searchsorted(np.cumsum(np.exp(log_pmf)), u).clip(max=k_max).astype(np.float64)


@dataclass(frozen=True)
class Heston(SyntheticModel):
    """Heston stochastic volatility, full-truncation Euler; parameters annualized."""

    mu: float = 0.07
    kappa: float = 2.0
    theta: float = 0.04
    xi: float = 0.5
    rho: float = -0.7
    v0: float = 0.04
    bars_per_year: float = 252.0

    def returns(self, keys, n_bars):
        dt = 1.0 / self.bars_per_year
        z = rng.normal(rng.substream(keys, 0), 2 * n_bars)
        z_var, z_ind = z[:n_bars], z[n_bars:]
        z_price = self.rho * z_var + math.sqrt(1 - self.rho**2) * z_ind
        variance = np.empty((n_bars, len(keys)))
        v = np.full(len(keys), self.v0)
        for t in range(n_bars):
            v_pos = np.maximum(v, 0.0)
            variance[t] = v_pos
            v = v + self.kappa * (self.theta - v_pos) * dt + self.xi * np.sqrt(v_pos * dt) * z_var[t]
        vol = np.sqrt(variance * dt)
        return (self.mu - 0.5 * variance) * dt + vol * z_price, vol, self._no_regime(keys, n_bars)


@dataclass(frozen=True)
class Garch(SyntheticModel):
    """GARCH(1,1) with standardized Student-t errors, on returns in percent.

    Defaults: fit on S&P 500 daily log returns 1990-2022. The first variance is the
    unconditional one, omega / (1 - alpha - beta).
    """

    omega: float = 0.0106
    alpha: float = 0.1007
    beta: float = 0.8959
    nu: float = 6.14
    mean_pct: float = 0.0

    def returns(self, keys, n_bars):
        shocks = rng.student_t(rng.substream(keys, 0), n_bars, self.nu) * math.sqrt((self.nu - 2) / self.nu)
        variance = np.empty((n_bars, len(keys)))
        h = np.full(len(keys), self.omega / (1 - self.alpha - self.beta))
        for t in range(n_bars):
            variance[t] = h
            h = self.omega + (self.alpha * shocks[t] ** 2 + self.beta) * h
        vol_pct = np.sqrt(variance)
        return (self.mean_pct + vol_pct * shocks) / 100, vol_pct / 100, self._no_regime(keys, n_bars)


SYNTHETIC_MODELS = {
    "regime_switching": RegimeSwitching,
    "gbm": GBM,
    "merton": MertonJump,
    "heston": Heston,
    "garch": Garch,
}
