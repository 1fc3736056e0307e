"""``python -m openclaw_rl.backtest``: policies and V7 strategies on the same markets, with the
metrics quants expect, equity and drawdown plots (PNG and TensorBoard images)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.backtest.metrics import deflated_sharpe_ratio
from openclaw_rl.backtest.run import EpisodeRecord, backtest_policy, backtest_strategy, make_strategy
from openclaw_rl.backtest.plots import equity_figure
from openclaw_rl.rock import ConfigError, EnvConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent.parent / "conf")
log = logging.getLogger("openclaw_rl.backtest")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="backtest")
def main(cfg: DictConfig) -> None:
    try:
        env = EnvConfig.from_mapping(OmegaConf.to_container(cfg.env, resolve=True))
        strategies = {name: make_strategy(name, env, cfg.fit_seed, cfg.n_markets, key="strategies") for name in cfg.strategies}
    except ConfigError as err:
        raise SystemExit(f"ConfigError: {err}") from None
    results: dict[str, tuple[EpisodeRecord, dict]] = {}
    if cfg.checkpoint is not None:
        results["policy"] = backtest_policy(Path(cfg.checkpoint), env, cfg.n_markets, cfg.seed)
    for name, strategy in strategies.items():
        results[name] = backtest_strategy(strategy, env, cfg.n_markets, cfg.seed)
    out = Path(HydraConfig.get().runtime.output_dir)
    write_report(results, out, env.bars_per_year)


def write_report(results: dict, out: Path, bars_per_year: float) -> None:
    """metrics.yaml (means over markets, deflated Sharpe given the number of candidates),
    equity.png, and the same curves in TensorBoard."""
    from torch.utils.tensorboard import SummaryWriter

    pooled = {name: (r.equity[1:] / r.equity[:-1] - 1.0).ravel() for name, (r, _) in results.items()}
    sharpes = [p.mean() / p.std(ddof=1) for p in pooled.values()]
    report = {}
    for name, (record, m) in results.items():
        report[name] = {key: float(np.mean(value)) for key, value in m.items()}
        report[name]["deflated_sharpe"] = deflated_sharpe_ratio(pooled[name], len(results), float(np.var(sharpes)) or 1e-12)
        report[name]["excess_log_return_vs_buy_and_hold"] = float(
            np.mean(np.log(record.equity[-1] / record.equity[0]) - record.buy_and_hold))
    (out / "metrics.yaml").write_text(yaml.safe_dump(report, sort_keys=False))
    figure = equity_figure({name: r for name, (r, _) in results.items()})
    figure.savefig(out / "equity.png", dpi=100)
    writer = SummaryWriter(str(out / "tb"))
    writer.add_figure("backtest/equity_and_drawdown", figure)
    for name, values in report.items():
        for key, value in values.items():
            writer.add_scalar(f"backtest/{name}/{key}", value)
    writer.close()
    width = max(len(n) for n in report)
    for name, values in report.items():
        log.info("%s  log return %+.4f  sharpe %+.2f  max drawdown %.1f%%  deflated sharpe %.2f", name.ljust(width),
                 np.log1p(values["total_return"]), values["sharpe"], 100 * values["max_drawdown"], values["deflated_sharpe"])
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
