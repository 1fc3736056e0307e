"""Calibration: the fits recover known parameters, agree with the shipped constants on the S&P 500
that ships with arch, and the command writes a market config that Hydra composes and the env steps."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from openclaw_rl.calibrate import ARCH_SP500, REGIME_ORDER, fit_garch, fit_regimes, load_prices, log_returns_pct
from openclaw_rl.calibrate.__main__ import market_overrides
from openclaw_rl.rock import EnvConfig, MarketVecEnv, rng
from openclaw_rl.rock.historical import DataConfig
from openclaw_rl.rock.markets import DEFAULT_REGIMES, Garch, Regime, RegimeSwitching

pytest.importorskip("arch")
pytest.importorskip("statsmodels")
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_GARCH = Garch()  # omega 0.0106, alpha 0.1007, beta 0.8959, nu 6.14: S&P 500 daily 1990-2022


def simulated_returns_pct(model, n_bars: int, seed: int) -> np.ndarray:
    """One path of the model's close-to-close log returns, in percent."""
    log_returns, _, _ = model.returns(rng.seed_keys(np.array([seed])), n_bars)
    return 100.0 * log_returns[:, 0]


@pytest.fixture(scope="module")
def sp500_returns():
    series = load_prices(DataConfig(builtin=ARCH_SP500))
    assert str(series.time[0])[:10] == "1999-01-04" and str(series.time[-1])[:10] == "2018-12-31"
    return log_returns_pct(series.close)


def test_garch_recovers_the_parameters_it_was_simulated_with():
    truth = Garch(omega=0.02, alpha=0.08, beta=0.9, nu=5.0, mean_pct=0.05)
    fitted = fit_garch(simulated_returns_pct(truth, 12_000, seed=3), mean="constant")
    assert fitted.alpha == pytest.approx(truth.alpha, abs=0.02)
    assert fitted.beta == pytest.approx(truth.beta, abs=0.02)
    assert fitted.nu == pytest.approx(truth.nu, abs=1.0)
    assert fitted.mean_pct == pytest.approx(truth.mean_pct, abs=0.03)
    unconditional = truth.omega / (1 - truth.alpha - truth.beta)
    assert fitted.omega / (1 - fitted.alpha - fitted.beta) == pytest.approx(unconditional, rel=0.25)


def test_regimes_are_recovered_and_named_by_volatility():
    # Named out of order on purpose: the fit must sort its states by volatility, and turn the
    # stay-probabilities into durations 1 / (1 - p_ii) (not p_ii, not 1 / p_ii).
    truth = {"bull": Regime(0.08, 0.5, 60.0), "sideways": Regime(0.0, 1.2, 30.0), "crash": Regime(-0.3, 3.0, 15.0)}
    model = RegimeSwitching(regimes={**DEFAULT_REGIMES, **truth}, switching=("crash", "bull", "sideways"))
    fitted = fit_regimes(simulated_returns_pct(model, 4000, seed=11))
    assert list(fitted.regimes) == list(REGIME_ORDER)
    for name, regime in truth.items():
        assert fitted.regimes[name].vol_pct == pytest.approx(regime.vol_pct, rel=0.1), name
        assert fitted.regimes[name].duration_bars == pytest.approx(regime.duration_bars, rel=0.4), name
    assert fitted.regimes["crash"].mean_pct < fitted.regimes["bull"].mean_pct
    np.testing.assert_allclose(fitted.transition.sum(axis=1), 1.0, atol=1e-9)


def test_garch_on_arch_sp500_matches_the_shipped_constants(sp500_returns, caplog):
    # arch's S&P 500 is 1999-2018, the shipped fit 1990-2022: the same persistence and tails,
    # a slightly different split between alpha and beta.
    fitted = fit_garch(sp500_returns, mean="zero")
    assert fitted.mean_pct == 0.0
    assert fitted.alpha + fitted.beta == pytest.approx(SHIPPED_GARCH.alpha + SHIPPED_GARCH.beta, abs=0.005)
    assert fitted.alpha == pytest.approx(SHIPPED_GARCH.alpha, abs=0.02)
    assert 5.0 < fitted.nu < 8.0 and 0.005 < fitted.omega < 0.02
    with caplog.at_level(logging.WARNING, logger="openclaw_rl.calibrate"):
        constant = fit_garch(sp500_returns, mean="constant")
    assert 0.02 < constant.mean_pct < 0.1  # the index drifted up: a few basis points a day
    # Nearly integrated: the long-run vol an episode starts at is far above the sample's; the fit says so.
    assert constant.long_run_vol_pct > 3 * np.std(sp500_returns) and "long-run volatility" in caplog.text


def test_regimes_on_arch_sp500_match_the_shipped_constants(sp500_returns):
    fitted = fit_regimes(sp500_returns)
    vols = [fitted.regimes[name].vol_pct for name in REGIME_ORDER]
    assert vols == sorted(vols) and fitted.regimes["crash"].mean_pct < 0 < fitted.regimes["bull"].mean_pct
    for name in REGIME_ORDER:
        shipped, got = DEFAULT_REGIMES[name], fitted.regimes[name]
        assert got.vol_pct == pytest.approx(shipped.vol_pct, rel=0.1), name
        assert got.mean_pct == pytest.approx(shipped.mean_pct, abs=0.05), name
        assert got.duration_bars == pytest.approx(shipped.duration_bars, rel=0.4), name


def test_missing_packages_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "arch", None)
    with pytest.raises(ImportError, match=r"pip install 'openclaw_rl\[calibrate\]'"):
        fit_garch(np.zeros(10))
    monkeypatch.setitem(sys.modules, "statsmodels.api", None)
    with pytest.raises(ImportError, match=r"pip install 'openclaw_rl\[calibrate\]'"):
        fit_regimes(np.zeros(10))


def calibrate(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "openclaw_rl.calibrate", f"hydra.run.dir={tmp_path / 'logs'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def compose_env(*overrides: str) -> EnvConfig:
    """The env as train and backtest compose it from these command-line overrides."""
    from omegaconf import OmegaConf

    from openclaw_rl.configs import compose_config

    return EnvConfig.from_mapping(OmegaConf.to_container(compose_config(list(overrides), "backtest").env, resolve=True))


def test_cli_writes_market_configs_that_compose_and_step(tmp_path):
    # A user's file with its own column names: regimes simulated with known vols.
    truth = {"bull": Regime(0.05, 0.6, 50.0), "sideways": Regime(0.0, 1.3, 30.0), "crash": Regime(-0.2, 3.0, 20.0)}
    bars = RegimeSwitching(regimes={**DEFAULT_REGIMES, **truth}).sample(rng.seed_keys(np.array([5])), 1500)
    prices = pd.DataFrame({"ts": pd.date_range("2001-01-01", periods=1500, freq="B"),
                           **{k: np.exp(getattr(bars, f"log_{k}")[:, 0]) for k in ("open", "high", "low", "close")}})
    prices.to_csv(tmp_path / "prices.csv", index=False)
    conf = tmp_path / "conf" / "env" / "market"
    columns = ["data.columns.time=ts", "data.columns.open=open", "data.columns.high=high", "data.columns.low=low",
               "data.columns.close=close", "data.columns.volume=null"]
    mine = calibrate(tmp_path, "model=regime_switching", f"data.path={tmp_path / 'prices.csv'}", *columns,
                     f"out={conf / 'mine.yaml'}")
    assert mine.returncode == 0, mine.stderr[-2000:]
    sp500 = calibrate(tmp_path, "model=garch", "data.builtin=sp500", f"out={conf / 'sp500_garch.yaml'}")
    assert sp500.returncode == 0, sp500.stderr[-2000:]

    written = yaml.safe_load((conf / "mine.yaml").read_text())
    assert written["kind"] == "regime_switching" and list(written["regimes"]) == list(REGIME_ORDER)
    assert written["regimes"]["crash"]["vol_pct"] == pytest.approx(3.0, rel=0.15)
    assert "2001-01-01 to" in (conf / "mine.yaml").read_text()
    for name, kind in (("mine", "regime_switching"), ("sp500_garch", "garch")):
        market = yaml.safe_load((conf / f"{name}.yaml").read_text())
        direct = EnvConfig.from_mapping(market=market)
        composed = compose_env(f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"env/market={name}")
        assert composed.market == direct.market and composed.market["kind"] == kind
        for key, value in market.items():  # regimes the file leaves out keep their defaults
            assert composed.market[key] == value if key != "regimes" else {n: composed.market[key][n] for n in value} == value
        assert compose_env(*market_overrides(market)).market == composed.market  # the logged overrides: the same market
        envs = MarketVecEnv(config=EnvConfig.from_mapping(market=market, n_envs=4, window=8, episode_bars=20))
        envs.reset(seed=0)
        _, reward, *_ = envs.step(np.zeros(4, dtype=np.int64))
        assert np.all(np.isfinite(reward))
    garch = yaml.safe_load((conf / "sp500_garch.yaml").read_text())
    assert garch["alpha"] + garch["beta"] == pytest.approx(SHIPPED_GARCH.alpha + SHIPPED_GARCH.beta, abs=0.005)

    unknown = calibrate(tmp_path, "model=heston", "data.builtin=sp500", f"out={tmp_path / 'x.yaml'}")
    assert unknown.returncode != 0 and "model: unknown 'heston'; allowed: regime_switching, garch" in unknown.stderr
