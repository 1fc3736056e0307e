"""Entry point: ``python -m openclaw_rl.train [overrides]`` (Hydra).

The task function returns the objective (held-out evaluation score) for Hydra sweepers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.rock.config import ConfigError
from openclaw_rl.rock.historical import DataError
from openclaw_rl.roll.checkpoint import CheckpointError
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.learner import TrainingDiverged

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("openclaw_rl.train")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    from openclaw_rl.roll.trainer import train  # after config errors, so those stay fast

    try:
        config = RunConfig.from_mapping(OmegaConf.to_container(cfg, resolve=True))
        config.env.make_market()  # loads and validates historical data before anything runs
    except (ConfigError, DataError) as err:
        log.error("%s", err)
        raise SystemExit(f"configuration error: {err}") from None
    try:
        return train(config, Path(HydraConfig.get().runtime.output_dir))
    except CheckpointError as err:
        raise SystemExit(f"checkpoint error: {err}") from None
    except TrainingDiverged as err:
        log.error("%s", err)
        raise SystemExit(f"training diverged: {err}") from None


if __name__ == "__main__":
    main()
