"""The statistics of a benchmark suite: intervals over seeds, paired comparisons, aggregates.

As rliable does for RL agents: a task's scores are an array over independent seeds; suites
aggregate tasks with the mean (a Student-t interval over seeds) and the interquartile mean (a
stratified bootstrap interval). Only numpy and the standard library.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]


def student_t_quantile(p: float, df: int) -> float:
    """The ``p``-quantile of Student's t with ``df >= 1`` degrees of freedom (to ~1e-9 relative or better)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if p == 0.5:
        return 0.0
    tail, sign = (1.0 - p, 1.0) if p > 0.5 else (p, -1.0)  # solve P(T > t) = tail: it falls as t grows
    low, high = 0.0, 1.0
    while _t_upper_tail(high, df) > tail:
        low, high = high, 2.0 * high
    while high - low > 1e-13 * high:
        mid = 0.5 * (low + high)
        low, high = (mid, high) if _t_upper_tail(mid, df) > tail else (low, mid)
    return sign * 0.5 * (low + high)


def _t_upper_tail(t: float, df: int) -> float:
    """P(T > t) for ``t >= 0``: half the regularized incomplete beta I_{df/(df+t²)}(df/2, 1/2)."""
    return 0.5 * _incomplete_beta(df / (df + t * t), t * t / (df + t * t), 0.5 * df, 0.5)


def _incomplete_beta(x: float, y: float, a: float, b: float) -> float:
    """The regularized incomplete beta I_x(a, b), given ``y = 1 - x`` too (each accurate where it is small),
    by its continued fraction on the side where it converges."""
    if x <= 0.0 or y <= 0.0:
        return float(y <= 0.0)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(x, a, b) / a
    return 1.0 - front * _beta_fraction(y, b, a) / b


def _beta_fraction(x: float, a: float, b: float, tiny: float = 1e-300) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method (Numerical Recipes' betacf)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),  # the even step
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),  # the odd step
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            return fraction
    raise ArithmeticError(f"incomplete beta did not converge at x={x}, a={a}, b={b}")


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval of the mean of independent values (seeds).

    One value gives ``(value, nan, nan)``: no spread, no interval. Identical values give
    ``low == high == mean`` exactly (the values are centred on the first before summing).
    """
    _check_level(level)
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("mean_ci needs at least one value")
    shifted = values - values[0]
    mean = float(values[0] + shifted.mean())
    if values.size == 1:
        return mean, math.nan, math.nan
    half = student_t_quantile(0.5 + level / 2, values.size - 1) * float(shifted.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict:
    """``{mean, low, high, n}``: the t-interval of ``b - a`` over paired seeds."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"paired seeds need equal lengths, got {a.size} and {b.size}")
    mean, low, high = mean_ci(b - a, level)
    return {"mean": mean, "low": low, "high": high, "n": int(a.size)}


def compare_tasks(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], level: float = 0.95) -> dict[str, dict]:
    """Per task, :func:`paired_difference` of ``b - a`` at the Bonferroni level ``1 - (1 - level) / n_tasks``.

    Adds ``level`` (the corrected one), ``regressed`` (``high < 0``: b significantly worse) and
    ``improved`` (``low > 0``). The chance of flagging any task whose true difference is 0 is
    at most ``1 - level`` over the whole suite. A task with one seed is never flagged.
    """
    if set(a) != set(b):
        raise ValueError(f"tasks differ: {sorted(set(a) ^ set(b))}")
    corrected = 1.0 - (1.0 - level) / len(a)
    results = {}
    for task in sorted(a):
        diff = paired_difference(a[task], b[task], corrected)
        results[task] = {**diff, "level": corrected, "regressed": diff["high"] < 0, "improved": diff["low"] > 0}
    return results


def iqm(values: np.ndarray) -> np.ndarray | float:
    """Interquartile mean along the last axis: drop ``int(n / 4)`` sorted scores from each end (as rliable)."""
    values = np.sort(np.asarray(values, dtype=np.float64), axis=-1)
    n = values.shape[-1]
    cut = int(0.25 * n)
    return values[..., cut : n - cut].mean(axis=-1)


def stratified_bootstrap_ci(
    scores: Mapping[str, np.ndarray],
    statistic: Statistic,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``statistic`` of all scores and its percentile bootstrap interval.

    Tasks are concatenated in sorted order; each resample redraws seeds with replacement
    within each task (stratified, as rliable). ``statistic`` reduces the last axis of a 1-D
    array or of the ``[n_resamples, n]`` resamples, e.g. :func:`iqm` or ``lambda x: x.mean(-1)``.
    """
    _check_level(level)
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(scores[task], dtype=np.float64).ravel() for task in sorted(scores)]
    resamples = np.concatenate([x[rng.integers(0, x.size, size=(n_resamples, x.size))] for x in tasks], axis=1)
    low, high = np.quantile(statistic(resamples), [(1.0 - level) / 2, (1.0 + level) / 2])
    return float(statistic(np.concatenate(tasks))), float(low), float(high)


def aggregate(scores: Mapping[str, np.ndarray], level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict:
    """The suite's mean (t-interval over seed indices) and IQM (stratified bootstrap interval).

    Every task has the same seeds: seed ``k``'s aggregate is the mean over tasks of
    ``scores[task][k]``, and those per-seed aggregates are independent draws.
    """
    if not scores:
        raise ValueError("aggregate needs at least one task")
    counts = {task: np.asarray(scores[task]).size for task in sorted(scores)}
    if len(set(counts.values())) != 1:
        raise ValueError(f"tasks need the same number of seeds, got {counts}")
    table = np.stack([np.asarray(scores[task], dtype=np.float64).ravel() for task in counts])  # [tasks, seeds]
    mean, mean_low, mean_high = mean_ci(table.mean(axis=0), level)
    point, iqm_low, iqm_high = stratified_bootstrap_ci(scores, iqm, level, n_resamples, seed)
    return {
        "mean": mean, "mean_low": mean_low, "mean_high": mean_high,
        "iqm": point, "iqm_low": iqm_low, "iqm_high": iqm_high,
        "n_tasks": table.shape[0], "n_seeds": table.shape[1],
    }


def normalized_excess(excess: np.ndarray, market_log_returns: np.ndarray) -> np.ndarray:
    """Excess log return in units of the market's volatility over an episode: the sd (ddof=1) of the
    task's per-bar log returns ``[bars, markets]``, pooled, times sqrt(bars).

    The scale is the same for every agent on those markets, and it is a property of each market's
    own path, so it does not shrink when a short real series yields overlapping windows (a spread of
    the markets' total returns would). Markets that never moved (sd 0): the scale is 1.
    """
    returns = np.asarray(market_log_returns, dtype=np.float64)
    sd = float(returns.std(ddof=1)) if returns.size > 1 else 0.0
    return np.asarray(excess, dtype=np.float64) / (sd * np.sqrt(returns.shape[0]) if sd > 0 else 1.0)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
