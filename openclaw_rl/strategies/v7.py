"""The V7 rule-based strategies: baselines and teachers, vectorized over markets and time.

A strategy maps time-major closes ``[T, N]`` to the target position held after each bar's close
``[T, N]``. Every rule is causal: the position at bar t uses closes up to t only (tested by
changing the future). Bars without enough history get position 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from openclaw_rl.rock.markets import REGIME_NAMES
from openclaw_rl.rock.rolling import rolling_mean, rolling_std


def log_returns(closes: np.ndarray) -> np.ndarray:
    """Close-to-close log returns; row 0 is 0."""
    out = np.zeros_like(closes)
    out[1:] = np.log(closes[1:] / closes[:-1])
    return out


def _held(signal: np.ndarray) -> np.ndarray:
    return np.nan_to_num(signal, nan=0.0)


@dataclass(frozen=True)
class BuyAndHold:
    def positions(self, closes: np.ndarray) -> np.ndarray:
        return np.ones_like(closes)


@dataclass(frozen=True)
class TrendFollowing:
    """Moving-average crossover: long when the fast average is above the slow one, else short (or flat)."""

    fast: int = 20
    slow: int = 50
    allow_short: bool = True

    def positions(self, closes):
        signal = np.sign(rolling_mean(closes, self.fast) - rolling_mean(closes, self.slow))
        return _held(signal if self.allow_short else np.maximum(signal, 0.0))


@dataclass(frozen=True)
class Momentum:
    """The sign of the log return over the last ``lookback`` bars."""

    lookback: int = 20
    allow_short: bool = True

    def positions(self, closes):
        signal = np.full_like(closes, np.nan)
        signal[self.lookback:] = np.sign(np.log(closes[self.lookback:] / closes[: -self.lookback]))
        return _held(signal if self.allow_short else np.maximum(signal, 0.0))


@dataclass(frozen=True)
class MeanReversion:
    """Against the z-score of the close around its moving average, beyond ``entry_z``."""

    window: int = 20
    entry_z: float = 1.0

    def positions(self, closes):
        std = rolling_std(closes, self.window)
        z = (closes - rolling_mean(closes, self.window)) / np.where(std > 0, std, np.nan)
        return _held(np.where(np.abs(z) > self.entry_z, -np.sign(z), 0.0))


@dataclass(frozen=True)
class VolatilityTargeting:
    """Long, sized so that realized volatility (annualized) matches ``target_vol``."""

    target_vol: float = 0.15
    window: int = 20
    max_leverage: float = 1.0
    bars_per_year: float = 252.0

    def positions(self, closes):
        realized = rolling_std(log_returns(closes), self.window) * math.sqrt(self.bars_per_year)
        size = self.target_vol / np.where(realized > 0, realized, np.nan)
        return _held(np.clip(size, 0.0, self.max_leverage))


@dataclass(frozen=True)
class RegimeClassifier:
    """An observable regime estimate from the trailing return and volatility (annualized)."""

    window: int = 20
    bars_per_year: float = 252.0
    trend: float = 0.15  # |annualized trailing return| beyond which the market trends
    crash: float = -0.60  # annualized trailing return below which it crashes
    volatile: float = 0.35  # annualized trailing volatility above which it is volatile

    def regimes(self, closes: np.ndarray) -> np.ndarray:
        """Codes into ``REGIME_NAMES`` per bar; -1 without enough history."""
        r = log_returns(closes)
        ret = rolling_mean(r, self.window) * self.bars_per_year
        vol = rolling_std(r, self.window) * math.sqrt(self.bars_per_year)
        code = np.full(closes.shape, REGIME_NAMES.index("sideways"), dtype=np.int64)
        code[ret > self.trend] = REGIME_NAMES.index("bull")
        code[ret < -self.trend] = REGIME_NAMES.index("bear")
        code[vol > self.volatile] = REGIME_NAMES.index("volatile")
        code[ret < self.crash] = REGIME_NAMES.index("crash")
        code[np.isnan(ret)] = -1
        return code


def default_members() -> dict:
    return {"trend": TrendFollowing(), "momentum": Momentum(), "mean_reversion": MeanReversion(),
            "vol_target": VolatilityTargeting()}


@dataclass(frozen=True)
class RegimeEnsemble:
    """Weights the member strategies per estimated regime: ``weights[regime][member]``.

    Weights are given, or fitted on training closes with ``fit``. A regime without weights (or
    bars without enough history for the classifier) holds no position.
    """

    weights: dict[str, dict[str, float]]
    members: dict = field(default_factory=default_members)
    classifier: RegimeClassifier = field(default_factory=RegimeClassifier)

    def positions(self, closes):
        regime = self.classifier.regimes(closes)
        member_positions = {name: s.positions(closes) for name, s in self.members.items()}
        out = np.zeros_like(closes)
        for name, per_member in self.weights.items():
            total = sum(abs(w) for w in per_member.values())
            if total == 0:
                continue
            mix = sum(w / total * member_positions[m] for m, w in per_member.items())
            out = np.where(regime == REGIME_NAMES.index(name), mix, out)
        return out

    @classmethod
    def fit(cls, closes: np.ndarray, members: dict | None = None, classifier: RegimeClassifier | None = None,
            temperature: float = 1.0) -> "RegimeEnsemble":
        """Per estimated regime, softmax over the members' annualized Sharpe ratio on the bars
        that follow that estimate (training closes only: what is fitted is then tested elsewhere)."""
        members = members or default_members()
        classifier = classifier or RegimeClassifier()
        regime = classifier.regimes(closes)[:-1]
        next_returns = np.exp(log_returns(closes))[1:] - 1.0
        weights = {}
        for code, name in enumerate(REGIME_NAMES):
            inside = regime == code
            if inside.sum() < 2:
                continue
            sharpe = {}
            for member, strategy in members.items():
                pnl = (strategy.positions(closes)[:-1] * next_returns)[inside]
                sharpe[member] = pnl.mean() / pnl.std() * math.sqrt(classifier.bars_per_year) if pnl.std() > 0 else 0.0
            best = max(sharpe.values())
            exp = {m: math.exp((s - best) / temperature) for m, s in sharpe.items()}
            weights[name] = {m: e / sum(exp.values()) for m, e in exp.items()}
        return cls(weights, members, classifier)


STRATEGIES = {
    "buy_and_hold": BuyAndHold,
    "trend": TrendFollowing,
    "momentum": Momentum,
    "mean_reversion": MeanReversion,
    "vol_target": VolatilityTargeting,
}
