"""``python -m openclaw_rl.data``: a trajectory dataset from a V7 strategy or a trained policy
(see conf/generate.yaml)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.backtest.run import load_policy, make_strategy, strategy_env
from openclaw_rl.data.trajectories import generate
from openclaw_rl.episodes import policy_actor, strategy_actor
from openclaw_rl.rock import ConfigError, EnvConfig
from openclaw_rl.rock.historical import DataError
from openclaw_rl.roll.checkpoint import CheckpointError
from openclaw_rl.roll.lineage import checkpoint_lineage
from openclaw_rl.cli import entry_point, refuse_chdir
from openclaw_rl.configs import CONFIG_DIR

log = logging.getLogger("openclaw_rl.data")
BAR = {"auto": None, "bar": True, "log": False}  # progress -> Progress(bar=...)


def actor_for(cfg: DictConfig, env: EnvConfig):
    """(make_actor, the env it plays, source name) for a strategy or a policy checkpoint."""
    if (cfg.strategy is None) == (cfg.checkpoint is None):
        raise ConfigError("strategy, checkpoint: give exactly one, e.g. strategy=trend or checkpoint=runs/my-run")
    if cfg.checkpoint is not None:
        policy, _ = load_policy(Path(cfg.checkpoint), torch.device("cpu"), env)
        policy.eval()
        return policy_actor(policy, torch.device("cpu"), cfg.deterministic), env, cfg.source or "policy"
    env = strategy_env(env, cfg.shard_size)  # teachers keep their own position sizes
    strategy = make_strategy(cfg.strategy, env, cfg.fit_seed, cfg.shard_size)
    return strategy_actor(strategy), env, cfg.source or cfg.strategy


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
def app(cfg: DictConfig) -> None:
    try:
        refuse_chdir()
        if OmegaConf.is_missing(cfg, "out"):
            raise ConfigError("out: the dataset directory is required, e.g. out=runs/data/trend")
        if cfg.n_trajectories < 1 or cfg.shard_size < 1:
            raise ConfigError(f"n_trajectories and shard_size must be >= 1, got {cfg.n_trajectories}, {cfg.shard_size}")
        if cfg.progress not in BAR:
            raise ConfigError(f"progress: unknown mode {cfg.progress!r}; allowed: {', '.join(BAR)}")
        make_actor, env, source = actor_for(cfg, EnvConfig.from_mapping(OmegaConf.to_container(cfg.env, resolve=True)))
        start = time.perf_counter()
        lineage = checkpoint_lineage(cfg.checkpoint) if cfg.checkpoint is not None else None
        dataset = generate(make_actor, env, cfg.n_trajectories, cfg.seed, Path(cfg.out), source, shard_size=cfg.shard_size,
                           append=cfg.append, overwrite=cfg.overwrite, bar=BAR[cfg.progress], lineage=lineage)
    except (ConfigError, DataError, CheckpointError) as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    log.info("%s: %d trajectories of %s in %.1f s (the dataset now holds %d)", cfg.out, cfg.n_trajectories, source,
             time.perf_counter() - start, len(dataset))



main = entry_point(app, "generate")  # the console script: overrides checked before Hydra starts

if __name__ == "__main__":
    main()
