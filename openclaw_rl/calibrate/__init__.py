"""Fit openclaw_rl's market models to a price series: the calibration behind the shipped constants
(``conf/env/market/*.yaml``, ``rock.markets.DEFAULT_REGIMES``), rerun on any data.

Both fits take close-to-close log returns in percent, ``r_t = 100 log(C_t / C_{t-1})``, the units of
the models' parameters (daily when the bars are daily).

* ``regime_switching``: Hamilton's Markov-switching model, statsmodels
  ``MarkovRegression(r, k_regimes=3, trend="c", switching_variance=True)``: ``r_t ~ N(mu_s, sigma_s^2)``
  with ``s`` a 3-state Markov chain. The states are named by volatility, lowest first: bull, sideways,
  crash (vols are far better identified than means; on the S&P 500 the means fall in the same order).
  A regime's ``duration_bars`` is its expected duration ``1 / (1 - p_ii)``. The env's chain keeps only
  these: it leaves a regime for one of the others uniformly, so the fitted off-diagonal transition
  probabilities (``RegimeFit.transition``) are reported, not used.
* ``garch``: arch's ``arch_model(r, mean="Constant" | "Zero", vol="GARCH", p=1, q=1, dist="t")``:
  ``r_t = mu + sqrt(h_t) z_t``, ``h_t = omega + alpha (r_{t-1} - mu)^2 + beta h_{t-1}``, ``z`` a unit-variance
  Student-t with ``nu`` degrees of freedom: the recursion of ``rock.markets.Garch``, in the same units.

statsmodels and arch are the ``calibrate`` extra: ``pip install 'openclaw_rl[calibrate]'``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import warnings
from dataclasses import dataclass

import numpy as np

from openclaw_rl.rock.historical import DataConfig, PriceSeries, load_series, validate_frame
from openclaw_rl.rock.markets import Regime, SyntheticModel

log = logging.getLogger("openclaw_rl.calibrate")
MODELS = ("regime_switching", "garch")
GARCH_MEANS = ("zero", "constant")
REGIME_ORDER = ("bull", "sideways", "crash")  # fitted states sorted by volatility, lowest first
ARCH_SP500 = "sp500"  # data.builtin: the S&P 500 daily bars that ship with arch (1999-2018)
INSTALL = "pip install 'openclaw_rl[calibrate]'"


def _optional(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"calibration needs the {package} package: {INSTALL} (or: pip install {package})") from err


def load_prices(data: DataConfig) -> PriceSeries:
    """The bars named by ``data`` (``rock.historical.load_series``), or with ``builtin=sp500`` the
    S&P 500 daily bars that ship with arch, validated the same way."""
    if data.builtin != ARCH_SP500:
        return load_series(data)
    frame = _optional("arch.data.sp500", "arch").load().reset_index()
    columns = {"time": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}
    return validate_frame(frame, "arch.data.sp500", columns, None, data.start, data.end)


def log_returns_pct(close: np.ndarray) -> np.ndarray:
    """Close-to-close log returns in percent, ``[len(close) - 1]``."""
    return 100.0 * np.diff(np.log(np.asarray(close, dtype=np.float64)))


def _short(x: float) -> float:
    return float(f"{x:.6g}")  # enough digits that alpha + beta < 1 survives the rounding


def _unfitted() -> dict:
    """The fields every synthetic model shares, which these fits do not estimate (their defaults)."""
    return {f.name: f.default for f in dataclasses.fields(SyntheticModel)}


@dataclass(frozen=True)
class RegimeFit:
    regimes: dict[str, Regime]  # bull, sideways, crash
    transition: np.ndarray  # [3, 3]: row i is P(next regime | regime i), rows and columns in REGIME_ORDER
    log_likelihood: float
    n_returns: int

    def market(self) -> dict:
        """``env.market`` for these regimes (bear and volatile keep their hand-set defaults)."""
        regimes = {name: {k: _short(v) for k, v in dataclasses.asdict(r).items()} for name, r in self.regimes.items()}
        return {"kind": "regime_switching", "switching": list(REGIME_ORDER), **_unfitted(), "regimes": regimes}


def fit_regimes(returns_pct: np.ndarray) -> RegimeFit:
    """A 3-regime Markov-switching fit (switching mean and variance) of log returns in percent."""
    sm = _optional("statsmodels.api", "statsmodels")
    model = sm.tsa.MarkovRegression(np.asarray(returns_pct, dtype=np.float64), k_regimes=3, trend="c",
                                    switching_variance=True)
    with warnings.catch_warnings():  # EM steps may overshoot a probability, rescale and go on; BFGS then refines
        warnings.filterwarnings("ignore", "Invalid regime transition probabilities")
        result = model.fit(em_iter=50, disp=False)  # cheap EM steps first: fewer (numerical-gradient) BFGS steps
    if not result.mle_retvals.get("converged", True):
        log.warning("the Markov-switching fit did not converge; check the data (length, gaps, outliers)")
    params = dict(zip(model.param_names, result.params))
    means = np.array([params[f"const[{i}]"] for i in range(3)])
    vols = np.sqrt([params[f"sigma2[{i}]"] for i in range(3)])
    # statsmodels: regime_transition[i, j] = P(s_t = i | s_{t-1} = j); transpose to rows = from.
    transition = np.asarray(result.regime_transition)[..., 0].T
    order = np.argsort(vols)
    transition = transition[np.ix_(order, order)]
    durations = 1.0 / (1.0 - np.diag(transition))
    regimes = {name: Regime(float(means[i]), float(vols[i]), float(d))
               for name, i, d in zip(REGIME_ORDER, order, durations)}
    return RegimeFit(regimes, transition, float(result.llf), len(returns_pct))


@dataclass(frozen=True)
class GarchFit:
    omega: float
    alpha: float
    beta: float
    nu: float
    mean_pct: float
    log_likelihood: float
    n_returns: int

    @property
    def long_run_vol_pct(self) -> float:
        """``sqrt(omega / (1 - alpha - beta))``: the volatility every simulated episode starts at."""
        return float(np.sqrt(self.omega / (1.0 - self.alpha - self.beta))) if self.alpha + self.beta < 1 else float("inf")

    def market(self) -> dict:
        """``env.market`` for this GARCH(1,1)-t."""
        fitted = {k: _short(getattr(self, k)) for k in ("omega", "alpha", "beta", "nu", "mean_pct")}
        return {"kind": "garch", **fitted, **_unfitted()}


def fit_garch(returns_pct: np.ndarray, mean: str = "zero") -> GarchFit:
    """A GARCH(1,1) fit with Student-t errors of log returns in percent; ``mean``: zero (``mean_pct`` 0,
    as the shipped constants) | constant (fits ``mean_pct``, the drift)."""
    if mean not in GARCH_MEANS:
        raise ValueError(f"mean: unknown {mean!r}; allowed: {', '.join(GARCH_MEANS)}")
    arch = _optional("arch", "arch")
    model = arch.arch_model(np.asarray(returns_pct, dtype=np.float64), mean=mean.capitalize(), vol="GARCH",
                            p=1, q=1, dist="t", rescale=False)
    result = model.fit(disp="off")
    if result.convergence_flag != 0:
        log.warning("the GARCH fit did not converge (optimizer flag %s)", result.convergence_flag)
    p = result.params
    fitted = GarchFit(float(p["omega"]), float(p["alpha[1]"]), float(p["beta[1]"]), float(p["nu"]),
                      float(p.get("mu", 0.0)), float(result.loglikelihood), len(returns_pct))
    sample = float(np.std(returns_pct))
    if not 1 / 1.5 < fitted.long_run_vol_pct / sample < 1.5:
        log.warning("alpha + beta = %.4f: the fit's long-run volatility %.2f%% per bar is far from the data's %.2f%%; "
                    "simulated episodes start at the long-run variance and leave it slowly (half-life %.0f bars)",
                    fitted.alpha + fitted.beta, fitted.long_run_vol_pct, sample,
                    np.log(0.5) / np.log(min(fitted.alpha + fitted.beta, 1 - 1e-12)))
    return fitted


def fit(model: str, returns_pct: np.ndarray, garch_mean: str = "zero") -> RegimeFit | GarchFit:
    """``fit_regimes`` or ``fit_garch`` by the market model's name."""
    if model == "regime_switching":
        return fit_regimes(returns_pct)
    if model == "garch":
        return fit_garch(returns_pct, garch_mean)
    raise ValueError(f"model: unknown {model!r}; allowed: {', '.join(MODELS)}")
