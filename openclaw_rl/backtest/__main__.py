"""``python -m openclaw_rl.backtest``: policies and V7 strategies on the same markets, with the
metrics quants expect, equity and drawdown plots (PNG and TensorBoard images)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import numpy as np
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.backtest.plots import backtest_title, episode_dates, equity_figure
from openclaw_rl.backtest.run import backtest_policy, backtest_strategy, make_strategy
from openclaw_rl.cli import discard_failed_run, entry_point, refuse_chdir
from openclaw_rl.configs import CONFIG_DIR
from openclaw_rl.episodes import EpisodeRecord
from openclaw_rl.metrics import deflated_sharpe_ratio, episode_log_return
from openclaw_rl.progress import Progress
from openclaw_rl.errors import CheckpointError, DataError
from openclaw_rl.rock import ConfigError, EnvConfig
from openclaw_rl.rock.config import with_split
from openclaw_rl.rock.splits import SPLITS, seed_range

log = logging.getLogger("openclaw_rl.backtest")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="backtest")
def app(cfg: DictConfig) -> None:
    try:
        refuse_chdir()
        if cfg.split not in SPLITS:
            raise ConfigError(f"split: unknown split {cfg.split!r}; allowed: {', '.join(SPLITS)}")
        env = with_split(EnvConfig.from_mapping(OmegaConf.to_container(cfg.env, resolve=True)), cfg.split)
        strategies = {name: make_strategy(name, env, cfg.fit_seed, cfg.n_markets, key="strategies") for name in cfg.strategies}
        seed = seed_range(cfg.split)[0] if cfg.seed is None else cfg.seed
        if cfg.split == "train":
            log.warning("split=train: backtesting on the training split; the results are in-sample, and say so")
        runs = {name: (lambda s=strategy: backtest_strategy(s, env, cfg.n_markets, seed)) for name, strategy in strategies.items()}
        if cfg.checkpoint is not None:  # first: a checkpoint that does not load fails before any other work
            runs = {"policy": lambda: backtest_policy(Path(cfg.checkpoint), env, cfg.n_markets, seed), **runs}
        results: dict[str, tuple[EpisodeRecord, dict]] = {}
        with Progress(len(runs), "backtests", log) as progress:
            for name, run in runs.items():
                start = time.perf_counter()
                results[name] = run()
                progress.update(f"{name} ({time.perf_counter() - start:.1f}s)")
    except (ConfigError, DataError, CheckpointError) as err:
        discard_failed_run()
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    dates = episode_dates(env)
    title = backtest_title(env, cfg.n_markets, dates) + (", IN-SAMPLE (train split)" if cfg.split == "train"
                                                         else f", {cfg.split} split")
    write_report(results, Path(HydraConfig.get().runtime.output_dir), env, title, dates, cfg.split)


def write_report(results: dict, out: Path, env: EnvConfig, title: str, dates=None, split: str = "test") -> None:
    """metrics.yaml (means over markets, deflated Sharpe given the number of candidates, the ``split``),
    equity.png (titled ``title``; x axis ``dates`` when given), and the same curves in TensorBoard."""
    from torch.utils.tensorboard import SummaryWriter

    pooled = {name: (r.equity[1:] / r.equity[:-1] - 1.0).ravel() for name, (r, _) in results.items()}
    sharpes = [p.mean() / p.std(ddof=1) for p in pooled.values()]
    report = {}
    for name, (record, m) in results.items():
        report[name] = {key: float(np.mean(value)) for key, value in m.items()}
        report[name]["deflated_sharpe"] = deflated_sharpe_ratio(pooled[name], len(results), float(np.var(sharpes)) or 1e-12)
        report[name]["excess_log_return_vs_buy_and_hold"] = float(
            np.mean(episode_log_return(record.equity[-1], env.initial_equity, env.ruin_fraction) - record.buy_and_hold))
    (out / "metrics.yaml").write_text(yaml.safe_dump({name: {**values, "split": split} for name, values in report.items()},
                                                     sort_keys=False))
    figure = equity_figure({name: r for name, (r, _) in results.items()}, title, dates)
    figure.savefig(out / "equity.png", dpi=100)
    writer = SummaryWriter(str(out / "tb"))
    writer.add_figure("backtest/equity_and_drawdown", figure)
    for name, values in report.items():
        for key, value in values.items():
            writer.add_scalar(f"backtest/{name}/{key}", value)
    writer.close()
    width = max(len(n) for n in report)
    for name, values in report.items():
        log.info("%s  log return %+.4f  sharpe %+.2f  max drawdown %.1f%%  deflated sharpe %.2f%s", name.ljust(width),
                 np.log1p(values["total_return"]), values["sharpe"], 100 * values["max_drawdown"], values["deflated_sharpe"],
                 "  (in-sample)" if split == "train" else "")
    log.info("%s: wrote %s", title, out)



main = entry_point(app, "backtest")  # the console script: overrides checked before Hydra starts

if __name__ == "__main__":
    main()
