"""``python -m openclaw_rl.calibrate``: fit a market model to a price series and write its
``env.market`` config (see conf/calibrate.yaml), e.g.

    python -m openclaw_rl.calibrate model=garch data.builtin=sp500 out=sp500_garch.yaml
    python -m openclaw_rl.calibrate model=regime_switching data.path=prices.csv out=conf/env/market/mine.yaml

The file is one ``env/market`` option: put it in ``<dir>/env/market/NAME.yaml`` and run with
``hydra.searchpath=[file://<dir>] env/market=NAME``; the log also prints the fitted values as
command-line overrides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from openclaw_rl.atomic import atomic_write
from openclaw_rl.cli import entry_point, refuse_chdir
from openclaw_rl.calibrate import GARCH_MEANS, MODELS, fit, load_prices, log_returns_pct
from openclaw_rl.rock import ConfigError, DataError, EnvConfig
from openclaw_rl.rock.historical import DataConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("openclaw_rl.calibrate")


@dataclass
class CalibrateConfig:
    model: str = "regime_switching"  # regime_switching | garch
    data: DataConfig = field(default_factory=DataConfig)  # as env.data; builtin=sp500: arch's S&P 500 daily 1999-2018
    out: str = MISSING  # the market config YAML to write
    garch_mean: str = "zero"  # garch: zero (mean_pct 0, as the shipped constants) | constant (fits mean_pct, the drift)


ConfigStore.instance().store(name="calibrate_schema", node=CalibrateConfig)


def market_yaml(market: dict, name: str, source: str, period: str, n_returns: int, log_likelihood: float) -> str:
    """The market config, with a header saying where it came from and how to use it as ``name``."""
    header = (f"# {market['kind']} fitted by openclaw-calibrate on {source}, {period}\n"
              f"# ({n_returns} close-to-close log returns; log-likelihood {log_likelihood:.1f}).\n"
              f"# start_price and overnight_frac are not fitted (the model's defaults).\n"
              f"# Use it as env/market: copy it to <dir>/env/market/{name}.yaml, then e.g.\n"
              f"#   openclaw-train hydra.searchpath=[file://<dir>] env/market={name}\n")
    return header + "".join(_dump(key, value) for key, value in market.items())


def _dump(key: str, value) -> str:
    """One top-level key in block style, innermost mappings and lists on one line each."""
    return yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=None if isinstance(value, (dict, list)) else False)


def market_overrides(market: dict) -> list[str]:
    """The same market as command-line overrides of train, backtest and data (fitted values only)."""
    out = [f"env/market={market['kind']}"]
    for key, value in market.items():
        if key == "regimes":
            out += [f"env.market.regimes.{name}.{k}={v}" for name, spec in value.items() for k, v in spec.items()]
        elif key in ("omega", "alpha", "beta", "nu", "mean_pct"):
            out.append(f"env.market.{key}={value}")
    return out


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="calibrate")
def app(cfg: DictConfig) -> None:
    try:
        refuse_chdir()
        if OmegaConf.is_missing(cfg, "out"):
            raise ConfigError("out: the market config file to write is required, e.g. out=my_market.yaml")
        if cfg.model not in MODELS:
            raise ConfigError(f"model: unknown {cfg.model!r}; allowed: {', '.join(MODELS)}")
        if cfg.garch_mean not in GARCH_MEANS:
            raise ConfigError(f"garch_mean: unknown {cfg.garch_mean!r}; allowed: {', '.join(GARCH_MEANS)}")
        data = DataConfig(**OmegaConf.to_container(cfg.data, resolve=True))
        series = load_prices(data)
        returns = log_returns_pct(series.close)
        if len(returns) < 250:
            raise DataError(f"{series.source}: {len(returns)} returns are too few to fit {cfg.model}; use at least 250 bars")
        log.info("fitting %s to %d log returns of %s", cfg.model, len(returns), series.source)
        result = fit(cfg.model, returns, cfg.garch_mean)
        market = result.market()
        EnvConfig.from_mapping({"market": market}, prefix="fitted")  # e.g. a GARCH with alpha + beta >= 1
    except (ConfigError, DataError, ImportError) as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    day = lambda t: np.datetime_as_string(t, unit="D")  # noqa: E731
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, market_yaml(market, out.stem, series.source, f"{day(series.time[0])} to {day(series.time[-1])}",
                                  result.n_returns, result.log_likelihood))
    log.info("fitted (log-likelihood %.1f):\n%s", result.log_likelihood, "".join(_dump(k, v) for k, v in market.items()))
    log.info("wrote %s: use it as env/market (see its header), or pass the values as overrides:\n%s",
             out, " ".join(market_overrides(market)))


main = entry_point(app, "calibrate")  # the console script: overrides checked before Hydra starts

if __name__ == "__main__":
    main()
