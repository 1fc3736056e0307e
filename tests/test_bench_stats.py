"""The benchmark suite's statistics against hand-computed values and table quantiles."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import scipy.stats

from openclaw_rl.benchmark.stats import (
    aggregate,
    compare_tasks,
    iqm,
    mean_ci,
    normalized_excess,
    detectable_regression,
    paired_difference,
    student_t_quantile,
    stratified_bootstrap_ci,
    welch_difference,
)

T_975_4 = 2.776445  # t tables
T_975_2 = 4.302653
T_BONFERRONI_3_4 = 3.960786  # t_{1 - 0.05/6, 4}: two-sided 95% split over 3 tasks


def mean(x):
    return np.mean(x, axis=-1)


@pytest.mark.parametrize(
    "p, df, expected",
    [(0.975, 4, T_975_4), (0.975, 1, 12.706205), (0.995, 9, 3.249836), (0.95, 29, 1.699127),
     (0.025, 4, -T_975_4), (0.975, 2, T_975_2), (1 - 0.05 / 6, 4, T_BONFERRONI_3_4), (0.5, 7, 0.0)],
)
def test_t_quantile_matches_tables(p, df, expected):
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=1e-6)


def test_t_quantile_tends_to_the_normal():
    for p in (0.6, 0.975, 0.999):
        assert student_t_quantile(p, 10**6) == pytest.approx(NormalDist().inv_cdf(p), abs=1e-5)
    assert student_t_quantile(0.975, 30) > student_t_quantile(0.975, 300) > NormalDist().inv_cdf(0.975)


@pytest.mark.parametrize("p, df", [(0.0, 4), (1.0, 4), (-0.1, 4), (0.5, 0), (0.5, -1.5)])
def test_t_quantile_rejects_bad_arguments(p, df):
    with pytest.raises(ValueError):
        student_t_quantile(p, df)


def test_mean_ci_by_hand():
    m, low, high = mean_ci([1, 2, 3, 4, 5])
    half = T_975_4 * math.sqrt(2.5) / math.sqrt(5)
    assert (m, low, high) == pytest.approx((3.0, 3.0 - half, 3.0 + half), abs=1e-6)


def test_mean_ci_identical_values_give_a_zero_width_interval():
    assert mean_ci([0.1, 0.1, 0.1]) == (0.1, 0.1, 0.1)  # exactly, though 0.1 * 3 / 3 != 0.1 in floats
    m, low, high = mean_ci([7.0])
    assert m == 7.0 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="level"):
        mean_ci([1.0, 2.0], level=1.0)


def test_paired_difference_is_over_b_minus_a():
    a = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    diff = paired_difference(a, a + [1, 2, 3, 4, 5])  # pairing removes the seeds' large spread
    half = T_975_4 * math.sqrt(2.5) / math.sqrt(5)
    assert diff["n"] == 5
    assert (diff["mean"], diff["low"], diff["high"]) == pytest.approx((3.0, 3.0 - half, 3.0 + half), abs=1e-6)
    assert diff["se"] == pytest.approx(math.sqrt(2.5 / 5)) and diff["df"] == 4
    assert paired_difference(a, a) == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 5, "se": 0.0, "df": 4}
    with pytest.raises(ValueError, match="3 and 4"):
        paired_difference([1, 2, 3], [1, 2, 3, 4])


def test_compare_tasks_uses_the_bonferroni_level():
    a, b = np.zeros(5), np.array([0.5, 1.5, 2.5, 3.5, 4.5])  # mean 2.5, standard error sqrt(0.5)
    se = math.sqrt(0.5)
    alone = compare_tasks({"x": a}, {"x": b})["x"]
    assert alone["low"] == pytest.approx(2.5 - T_975_4 * se, abs=1e-6) and alone["low"] > 0
    assert alone["improved"] and not alone["regressed"]
    three = compare_tasks({"x": a, "y": a, "z": a}, {"x": b, "y": a, "z": a})
    assert three["x"]["level"] == pytest.approx(1 - 0.05 / 3)
    assert three["x"]["low"] == pytest.approx(2.5 - T_BONFERRONI_3_4 * se, abs=1e-6) and three["x"]["low"] < 0
    assert not three["x"]["improved"] and not three["x"]["regressed"]  # significant alone, not among 3


def test_compare_tasks_signs():
    good, bad = np.array([5.0, 6.0, 7.0, 5.5]), np.array([1.0, 1.5, 2.0, 0.5])
    worse = compare_tasks({"t": good, "u": good}, {"t": bad, "u": good})
    assert worse["t"]["regressed"] and not worse["t"]["improved"] and worse["t"]["high"] < 0
    assert not worse["u"]["regressed"] and not worse["u"]["improved"]  # identical reruns: zero width at 0
    assert (worse["u"]["low"], worse["u"]["high"]) == (0.0, 0.0)
    better = compare_tasks({"t": bad}, {"t": good})["t"]
    assert better["improved"] and not better["regressed"]


def test_compare_tasks_names_the_differing_tasks():
    with pytest.raises(ValueError, match=r"\['c', 'd'\]"):
        compare_tasks({"a": np.ones(3), "c": np.ones(3)}, {"a": np.ones(3), "d": np.ones(3)})


def test_welch_difference_by_hand():
    a, b = np.array([0.0, 1, 2, 3, 4]), np.array([16.0, 10, 14, 12])  # variances 2.5 and 20/3, unequal sizes
    d = welch_difference(a, b)
    var_a, var_b = 2.5 / 5, (20 / 3) / 4
    df = (var_a + var_b) ** 2 / (var_a**2 / 4 + var_b**2 / 3)  # Welch-Satterthwaite: 4.749
    assert d["df"] == pytest.approx(df) and df == pytest.approx(4.7494, abs=1e-4)
    assert d["se"] == pytest.approx(math.sqrt(var_a + var_b)) and d["mean"] == 11.0 and d["n"] == 9
    half = student_t_quantile(0.975, df) * d["se"]
    assert (d["low"], d["high"]) == pytest.approx((11.0 - half, 11.0 + half))
    assert 2.571 < student_t_quantile(0.975, df) < 2.776  # between t_{5} and t_{4}: a fractional df
    reference = scipy.stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)  # an independent implementation
    assert (d["low"], d["high"]) == pytest.approx((reference.low, reference.high))
    swapped = welch_difference(b, a)
    assert (swapped["mean"], swapped["low"], swapped["high"]) == pytest.approx((-11.0, -11.0 - half, -11.0 + half))


def test_welch_difference_needs_two_values_a_side_and_constant_sides_are_exact():
    with pytest.raises(ValueError, match="at least 2 values a side, got 1 and 3"):
        welch_difference([1.0], [1.0, 2.0, 3.0])
    d = welch_difference([0.5, 0.5], [0.25, 0.25, 0.25])
    assert (d["mean"], d["low"], d["high"], d["se"]) == (-0.25, -0.25, -0.25, 0.0)


def test_welch_gate_false_alarm_rate_and_power_on_synthetic_seeds():
    """5 vs 5 normal training seeds: with no difference the one-sided "regressed" verdict of a 95% interval
    fires 2.5% of the time; with a true regression of detectable_regression(se) it fires 80% of the time."""
    rng = np.random.default_rng(0)
    trials, n, sd = 4000, 5, 0.07
    se = sd * math.sqrt(2 / n)
    delta = detectable_regression(se, 2 * n - 2)
    for shift, expected in ((0.0, 0.025), (-delta, 0.80)):
        a, b = rng.normal(0.0, sd, (trials, n)), rng.normal(shift, sd, (trials, n))
        rate = np.mean([welch_difference(x, y)["high"] < 0 for x, y in zip(a, b)])
        assert rate == pytest.approx(expected, abs=3.5 * math.sqrt(expected * (1 - expected) / trials) + 0.01)


def test_detectable_regression_tends_to_the_normal_formula_and_grows_with_few_seeds():
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    assert detectable_regression(1.0, 1e9) == pytest.approx(z, abs=1e-4)
    assert detectable_regression(0.5, 1e9) == pytest.approx(0.5 * z, abs=1e-4)
    assert detectable_regression(1.0, 4) > detectable_regression(1.0, 8) > detectable_regression(1.0, 100) > z
    assert detectable_regression(1.0, 8, power=0.9) > detectable_regression(1.0, 8, power=0.8)
    assert detectable_regression(1.0, 8, level=0.99) > detectable_regression(1.0, 8, level=0.95)
    assert detectable_regression(0.0, 8) == 0.0 and math.isnan(detectable_regression(math.nan, 0))
    for df in (2.5, 4, 8):  # its definition: the regressed verdict's probability at that true difference
        q = student_t_quantile(0.975, df)
        assert scipy.stats.nct.sf(q, df, detectable_regression(1.0, df)) == pytest.approx(0.8, abs=1e-6)
        assert scipy.stats.norm.sf(q - detectable_regression(1.0, df)) > 0.81  # the normal would overstate power


def test_compare_tasks_over_training_seeds_is_welch_at_the_bonferroni_level():
    a, b = np.array([0.0, 1, 2, 3, 4]), np.array([16.0, 10, 14, 12])
    out = compare_tasks({"x": a, "y": a}, {"x": b, "y": a}, paired=False)
    assert out["x"]["level"] == pytest.approx(0.975)
    assert (out["x"]["low"], out["x"]["high"]) == pytest.approx(
        tuple(scipy.stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.975)))
    assert out["x"]["improved"] and not out["y"]["improved"] and not out["y"]["regressed"]
    assert out["x"]["detectable"] == pytest.approx(detectable_regression(out["x"]["se"], out["x"]["df"], 0.975))
    with pytest.raises(ValueError, match="paired seeds need equal lengths"):
        compare_tasks({"x": a}, {"x": b})


def test_iqm_trims_a_quarter_from_each_end():
    assert iqm(np.arange(1.0, 9.0)) == 4.5  # mean of 3, 4, 5, 6
    assert iqm([-100.0, 1, 2, 3, 4, 5, 6, 1000]) == 3.5  # outliers dropped
    assert iqm([1e6, 0.0, 3.0, 1.0, 2.0]) == 2.0  # n=5 trims int(1.25) = 1 from each end, unsorted input
    assert iqm([100.0, 0, 1, 2, 3, 4, 10]) == 4.0  # n=7 trims int(1.75) = 1: mean of 1, 2, 3, 4, 10
    assert iqm([4.0]) == 4.0
    np.testing.assert_array_equal(iqm([[8.0, 1, 2, 3, 4, 5, 6, 7], [0.0, 0, 10, 10, 10, 10, 0, 0]]), [4.5, 5.0])


def test_bootstrap_resamples_only_within_tasks():
    scores = {"b": np.full(4, 10.0), "a": np.zeros(4)}
    assert stratified_bootstrap_ci(scores, mean) == (5.0, 5.0, 5.0)  # pooled resampling would spread
    assert stratified_bootstrap_ci(scores, iqm) == (5.0, 5.0, 5.0)


def test_bootstrap_by_hand_and_deterministic():
    # one task of seeds [0, 1]: resample means are 0, 0.5, 1 with chance 1/4, 1/2, 1/4
    assert stratified_bootstrap_ci({"t": np.array([0.0, 1.0])}, mean) == (0.5, 0.0, 1.0)
    rng = np.random.default_rng(3)
    scores = {"a": rng.normal(size=6), "b": rng.normal(2.0, size=6)}
    first = stratified_bootstrap_ci(scores, iqm, seed=1)
    assert first == stratified_bootstrap_ci(dict(reversed(scores.items())), iqm, seed=1)
    assert first != stratified_bootstrap_ci(scores, iqm, seed=2)
    point, low, high = first
    assert point == iqm(np.concatenate([scores["a"], scores["b"]])) and low < point < high


def test_aggregate_by_hand():
    scores = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([3.0, 4.0, 8.0])}
    result = aggregate(scores)
    half = T_975_2 * math.sqrt(3.25) / math.sqrt(3)  # over the per-seed means 2, 3, 5.5
    assert (result["mean"], result["mean_low"], result["mean_high"]) == pytest.approx(
        (3.5, 3.5 - half, 3.5 + half), abs=1e-6)
    assert result["iqm"] == 3.0  # [1, 2, 3, 3, 4, 8] trimmed to [2, 3, 3, 4]
    assert result["iqm_low"] <= result["iqm"] <= result["iqm_high"]
    assert (result["n_tasks"], result["n_seeds"]) == (2, 3)


def test_aggregate_needs_equal_seeds():
    with pytest.raises(ValueError, match=r"'a': 3, 'b': 2"):
        aggregate({"a": np.ones(3), "b": np.ones(2)})


def test_normalized_excess():
    # 4 bars x 2 markets: the pooled sd (ddof=1) of their 8 bar returns, times sqrt(4 bars)
    returns = np.array([[0.01, -0.01], [0.03, -0.03], [0.01, -0.01], [0.03, -0.03]])
    scale = np.std(returns.ravel(), ddof=1) * 2.0  # sqrt(4 bars)
    np.testing.assert_allclose(normalized_excess(np.array([0.2, -0.1]), returns), [0.2 / scale, -0.1 / scale])
    assert scale == pytest.approx(np.sqrt(0.004 / 7) * 2)  # sum of squares 4 x 1e-4 + 4 x 9e-4, mean 0
    assert normalized_excess(np.ones((2, 3)), returns).shape == (2, 3)
    np.testing.assert_array_equal(normalized_excess(np.array([0.2, 0.3]), np.zeros((4, 2))), [0.2, 0.3])  # sd 0
