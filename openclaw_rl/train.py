"""Entry point: ``openclaw-train [overrides]`` or ``python -m openclaw_rl.train [overrides]`` (Hydra).

The task function returns the objective (held-out evaluation score) for Hydra sweepers.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.cli import discard_failed_run, entry_point, refuse_chdir
from openclaw_rl.configs import CONFIG_DIR
from openclaw_rl.rock.config import ConfigError
from openclaw_rl.rock.historical import DataError
from openclaw_rl.roll.checkpoint import CheckpointError, checkpoint_path
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.learner import TrainingDiverged
from openclaw_rl.roll.pipeline import train

log = logging.getLogger("openclaw_rl.train")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def app(cfg: DictConfig) -> float:
    try:
        refuse_chdir()
        config = RunConfig.from_mapping(OmegaConf.to_container(cfg, resolve=True))
        config.env.checked_market()  # loads and validates historical data before anything runs
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        objective = train(config, run_dir)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            log.info("done: the curves in TensorBoard: tensorboard --logdir %s (then http://localhost:6006)", run_dir)
        return objective
    except (ConfigError, DataError, CheckpointError, TrainingDiverged) as err:
        log.error("%s", err)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a sweep records the failed trial and goes on
        discard_failed_run()
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    except KeyboardInterrupt:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        run_dir = HydraConfig.get().runtime.output_dir
        if checkpoint_path(Path(run_dir)).is_file():  # written atomically: the last one is whole
            print(f"interrupted: the last checkpoint in {run_dir} is intact; resume with the same overrides and "
                  f"trainer.resume=auto hydra.run.dir={run_dir}", file=sys.stderr)
        else:
            print(f"interrupted before the first checkpoint: nothing to resume in {run_dir}", file=sys.stderr)
        raise SystemExit(130) from None



main = entry_point(app, "config")  # the console script: overrides checked before Hydra starts

if __name__ == "__main__":
    main()
