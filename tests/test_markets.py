"""Market models reproduce their parameters; the counter RNG is exact and batch-independent."""

import math

import numpy as np
import pytest

from openclaw_rl.rock import rng
from openclaw_rl.rock.markets import DEFAULT_REGIMES, GBM, Garch, Heston, MertonJump, Regime, RegimeSwitching

KEYS = rng.seed_keys(np.arange(2000))


def log_returns(bars):
    return np.diff(bars.log_close, axis=0)


def test_uniforms_are_in_the_open_unit_interval_and_normals_standard():
    u = rng.uniform(KEYS, 500)
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.002
    z = rng.normal(KEYS, 500)
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.005


def test_student_t_variance_and_kurtosis():
    nu = 6.14
    t = rng.student_t(KEYS, 2000, nu).ravel()
    assert t.var() == pytest.approx(nu / (nu - 2), rel=0.03)
    kurtosis = np.mean(t**4) / t.var() ** 2
    assert kurtosis == pytest.approx(3 + 6 / (nu - 4), rel=0.15)


def test_draws_depend_only_on_key_and_counter():
    np.testing.assert_array_equal(rng.normal(KEYS[:3], 10), rng.normal(KEYS, 10)[:, :3])
    np.testing.assert_array_equal(rng.normal(KEYS[5:6], 10)[:, 0], rng.normal(KEYS[:8], 10)[:, 5])


@pytest.mark.parametrize("model", [RegimeSwitching(), GBM(), MertonJump(), Heston(), Garch()])
def test_bars_are_consistent_ohlc(model):
    bars = model.sample(KEYS[:200], 300)
    assert bars.log_close.shape == (300, 200)
    assert np.all(np.isfinite(bars.log_close))
    assert np.all(bars.log_high >= np.maximum(bars.log_open, bars.log_close))
    assert np.all(bars.log_low <= np.minimum(bars.log_open, bars.log_close))


@pytest.mark.parametrize("name", ["bull", "sideways", "crash"])
def test_fixed_regime_reproduces_the_hamilton_fit(name):
    spec = DEFAULT_REGIMES[name]
    r = log_returns(RegimeSwitching(regime=name).sample(KEYS, 400)) * 100
    se = spec.vol_pct / math.sqrt(r.size)
    assert abs(r.mean() - spec.mean_pct) < 5 * se
    assert r.std() == pytest.approx(spec.vol_pct, rel=0.01)


def test_switching_regimes_have_the_calibrated_mean_durations():
    bars = RegimeSwitching().sample(KEYS, 1000)
    for code, name in [(0, "bull"), (1, "sideways"), (3, "crash")]:
        inside = bars.regime == code
        entries = (inside[1:] & ~inside[:-1]).sum()
        exits = (inside[:-1] & ~inside[1:]).sum()
        assert inside.sum() / ((entries + exits) / 2) == pytest.approx(DEFAULT_REGIMES[name].duration_bars, rel=0.08)


def test_entry_jumps_fall_on_bar_one_and_on_each_bar_that_enters_a_regime():
    plain = {"bull": Regime(0.1, 1.0, 5.0), "bear": Regime(-0.1, 1.0, 5.0), "crash": Regime(-0.3, 2.0, 5.0)}
    jumps = {"bull": 5.0, "bear": -3.0, "crash": 0.0}
    announced = {n: Regime(r.mean_pct, r.vol_pct, r.duration_bars, jumps[n]) for n, r in plain.items()}
    switching = ("bull", "bear", "crash")
    base, _, codes = RegimeSwitching(regimes=plain, switching=switching).returns(KEYS[:50], 60)
    with_jumps, _, same_codes = RegimeSwitching(regimes=announced, switching=switching).returns(KEYS[:50], 60)
    assert (codes == same_codes).all()  # the jumps change no draw
    code_jump = {0: 5.0, 2: -3.0, 3: 0.0}  # REGIME_NAMES codes of bull, bear, crash
    expected = np.zeros_like(base)
    for n in range(50):
        for t in range(1, 60):
            if t == 1 or codes[t, n] != codes[t - 1, n]:
                expected[t, n] = code_jump[codes[t, n]] / 100
    assert np.allclose(with_jumps - base, expected, atol=1e-15)
    assert (expected[2:] > 0).sum() > 20 and (expected[2:] < 0).sum() > 20  # switches into bull and bear were both seen


def test_a_lead_moves_each_announcement_that_many_bars_before_the_regime_it_announces():
    regimes = {"bull": Regime(0.1, 1.0, 8.0, 5.0), "bear": Regime(-0.1, 1.0, 8.0, -5.0)}
    no_jumps = {k: Regime(r.mean_pct, r.vol_pct, r.duration_bars) for k, r in regimes.items()}
    lead, n = 6, 60
    with_lead, _, codes = RegimeSwitching(regimes=regimes, switching=("bull", "bear"), jump_lead_bars=lead).returns(KEYS[:40], n)
    jumps = with_lead - RegimeSwitching(regimes=no_jumps, switching=("bull", "bear"), jump_lead_bars=lead).returns(KEYS[:40], n)[0]
    # the chain past the path: a model without a lead, drawn n + lead bars long, walks the same chain
    chain = RegimeSwitching(regimes=no_jumps, switching=("bull", "bear")).returns(KEYS[:40], n + lead)[2]
    assert (codes == chain[:n]).all()  # the regime in force on each bar
    expected = np.zeros_like(jumps)
    for m in range(40):
        for t in range(1, n):
            if t == 1 or chain[t + lead, m] != chain[t + lead - 1, m]:
                expected[t, m] = 0.05 if chain[t + lead, m] == 0 else -0.05
    np.testing.assert_allclose(jumps, expected, atol=1e-15)
    assert np.count_nonzero(expected[2:]) > 40


def test_gbm_drift_and_volatility_are_annualized():
    model = GBM(mu=0.10, sigma=0.20)
    r = log_returns(model.sample(KEYS, 253))
    assert r.std() * math.sqrt(252) == pytest.approx(0.20, rel=0.01)
    assert r.mean() * 252 == pytest.approx(0.10 - 0.02, abs=0.02)


def test_merton_jumps_arrive_at_the_given_intensity():
    model = MertonJump(sigma=0.0001, jump_intensity=20.0, jump_mean=-0.05, jump_std=0.0001)
    r = log_returns(model.sample(KEYS, 253))
    jumps = (r < -0.025).sum() / (r.size / 252)
    assert jumps == pytest.approx(20.0, rel=0.05)


def test_heston_variance_mean_reverts_to_theta():
    model = Heston(v0=0.09, theta=0.04, kappa=5.0)
    r = log_returns(model.sample(KEYS, 505))
    late = r[-252:]
    assert late.var() * 252 == pytest.approx(0.04, rel=0.1)


def test_garch_unconditional_variance_and_fat_tails():
    model = Garch()
    r = log_returns(model.sample(KEYS, 1001)) * 100
    unconditional = model.omega / (1 - model.alpha - model.beta)
    assert r.var() == pytest.approx(unconditional, rel=0.15)
    kurtosis = np.mean((r - r.mean()) ** 4) / r.var() ** 2
    assert kurtosis > 4  # Student-t shocks and volatility clustering
    squared = r**2  # time-major: lag 1 along axis 0 within each market
    assert np.corrcoef(squared[:-1].ravel(), squared[1:].ravel())[0, 1] > 0.05  # clustering
