"""``python -m openclaw_rl.data``: a trajectory dataset from a V7 strategy (see conf/generate.yaml)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.backtest.run import make_strategy, strategy_actor, strategy_env
from openclaw_rl.data.trajectories import generate
from openclaw_rl.rock import ConfigError, EnvConfig
from openclaw_rl.rock.historical import DataError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent.parent / "conf")
log = logging.getLogger("openclaw_rl.data")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        if OmegaConf.is_missing(cfg, "out"):
            raise ConfigError("out: the dataset directory is required, e.g. out=runs/data/trend")
        if cfg.n_trajectories < 1 or cfg.shard_size < 1:
            raise ConfigError(f"n_trajectories and shard_size must be >= 1, got {cfg.n_trajectories}, {cfg.shard_size}")
        env = strategy_env(EnvConfig.from_mapping(OmegaConf.to_container(cfg.env, resolve=True)), cfg.shard_size)
        strategy = make_strategy(cfg.strategy, env, cfg.fit_seed, cfg.shard_size)
        start = time.perf_counter()
        dataset = generate(strategy_actor(strategy), env, cfg.n_trajectories, cfg.seed, Path(cfg.out), cfg.strategy,
                           shard_size=cfg.shard_size)
    except (ConfigError, DataError) as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    log.info("%s: %d trajectories of %s in %.1f s (the dataset now holds %d)", cfg.out, cfg.n_trajectories,
             cfg.strategy, time.perf_counter() - start, len(dataset))


if __name__ == "__main__":
    main()
