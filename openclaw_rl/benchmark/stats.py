"""The statistics of a benchmark suite: intervals over seeds, paired comparisons, aggregates.

As rliable does for RL agents: a task's scores are an array over independent seeds; suites
aggregate tasks with the mean (a Student-t interval over seeds) and the interquartile mean (a
stratified bootstrap interval). The regression gate compares two sets of training seeds with
Welch's t (unequal variances) and reports the regression it would detect with 80% probability.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import scipy.stats
from scipy.optimize import brentq

Statistic = Callable[[np.ndarray], np.ndarray]


def student_t_quantile(p: float, df: float) -> float:
    """The ``p``-quantile of Student's t with ``df > 0`` degrees of freedom (Welch's may be fractional)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    return float(scipy.stats.t.ppf(p, df))


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
    """``{mean, low, high, n, se, df}``: the t-interval of ``b - a`` over paired seeds."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"paired seeds need equal lengths, got {a.size} and {b.size}")
    mean, low, high = mean_ci(b - a, level)
    se = float((b - a).std(ddof=1)) / math.sqrt(a.size) if a.size > 1 else math.nan
    return {"mean": mean, "low": low, "high": high, "n": int(a.size), "se": se, "df": a.size - 1}


def welch_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict:
    """``{mean, low, high, n, se, df}``: Welch's t-interval of ``mean(b) - mean(a)`` for independent
    samples (one value per training seed each), unequal variances, Welch-Satterthwaite ``df``."""
    _check_level(level)
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2 or b.size < 2:
        raise ValueError(f"Welch's test needs at least 2 values a side, got {a.size} and {b.size}")
    var_a, var_b = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(var_a + var_b)
    mean = float(b.mean() - a.mean())
    if se == 0.0:  # both sides constant: the difference is what it is
        return {"mean": mean, "low": mean, "high": mean, "n": int(a.size + b.size), "se": 0.0, "df": math.inf}
    df = (var_a + var_b) ** 2 / (var_a**2 / (a.size - 1) + var_b**2 / (b.size - 1))
    half = student_t_quantile(0.5 + level / 2, df) * se
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(a.size + b.size), "se": se, "df": df}


def detectable_regression(se: float, df: float, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true regression ``delta > 0`` that an interval at ``level`` with standard error ``se``
    and ``df`` degrees of freedom puts wholly below 0 with probability ``power``: the upper end
    ``d + q * se`` with ``q = t_{(1 + level) / 2, df}`` is below 0 when ``(-d) / se``, a noncentral t
    with noncentrality ``delta / se``, exceeds ``q``. ``se`` is the one observed (a plug-in)."""
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie in (0, 1), got {power}")
    if se == 0.0 or not math.isfinite(se):
        return 0.0 if se == 0.0 else math.nan
    df = min(df, 1e7)  # scipy's noncentral t at df = inf: the normal limit
    q = student_t_quantile(0.5 + level / 2, df)
    shortfall = lambda nc: float(scipy.stats.nct.sf(q, df, nc)) - power  # noqa: E731
    high = q + 10.0
    while shortfall(high) < 0:
        high *= 2.0
    return float(brentq(shortfall, 0.0, high, xtol=1e-10)) * se


def compare_tasks(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], level: float = 0.95,
                  paired: bool = True) -> dict[str, dict]:
    """Per task, ``b - a`` at the Bonferroni level ``1 - (1 - level) / n_tasks``: paired over the same
    market seeds (:func:`paired_difference`: one checkpoint a side, market noise only) or, with
    ``paired=False``, :func:`welch_difference` over independent training seeds.

    Adds ``level`` (the corrected one), ``regressed`` (``high < 0``: b significantly worse),
    ``improved`` (``low > 0``) and ``detectable`` (:func:`detectable_regression` at 80% power). The
    chance of flagging any task whose true difference is 0 is at most ``1 - level`` over the whole
    suite. A paired task with one seed is never flagged.
    """
    if set(a) != set(b):
        raise ValueError(f"tasks differ: {sorted(set(a) ^ set(b))}")
    corrected = 1.0 - (1.0 - level) / len(a)
    results = {}
    for task in sorted(a):
        diff = (paired_difference if paired else welch_difference)(a[task], b[task], corrected)
        results[task] = {**diff, "level": corrected, "regressed": diff["high"] < 0, "improved": diff["low"] > 0,
                         "detectable": detectable_regression(diff["se"], diff["df"], corrected)}
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
