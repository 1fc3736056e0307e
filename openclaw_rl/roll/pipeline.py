"""The front door of a training run: ``trainer.stage`` picks RL (``trainer``), behaviour cloning
(``sft``), or cloning then RL from its weights. Above both stages, so neither imports the other."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from openclaw_rl.roll.checkpoint import checkpoint_path, load_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.sft import run_sft
from openclaw_rl.roll.trainer import TrainResult, run_training

log = logging.getLogger("openclaw_rl.train")


def run(config: RunConfig, run_dir: str | Path) -> TrainResult:
    """Train with ``config`` under ``run_dir``, whatever its ``trainer.stage``."""
    run_dir = Path(run_dir)
    config.validate()  # a RunConfig built in Python, not through from_mapping, is checked here too
    if config.trainer.stage == "sft":
        return run_sft(config, run_dir)
    if config.trainer.stage == "sft_rl":
        return run_sft_then_rl(config, run_dir)
    return run_training(config, run_dir)


def train(config: RunConfig, run_dir: str | Path) -> float:
    """``run``, returning the objective (for Hydra sweepers)."""
    return run(config, run_dir).objective


def run_sft_then_rl(config: RunConfig, run_dir: Path) -> TrainResult:
    """``trainer.stage=sft_rl``: behaviour cloning into ``run_dir/sft``, then RL (with the run's
    algo and resampling settings) from its weights into ``run_dir/rl``. With
    ``trainer.resume=auto`` a finished SFT stage is kept (an unfinished one starts over) and the RL
    stage resumes; ``trainer.overwrite=true`` replaces both."""
    sft_dir, rl_dir = run_dir / "sft", run_dir / "rl"
    trainer = config.trainer
    resuming = trainer.resume == "auto"
    if not (resuming and _finished_sft(sft_dir, config)):
        if resuming and sft_dir.exists():
            log.info("trainer.resume=auto: the sft stage in %s did not finish; it starts over", sft_dir)
        sft = dataclasses.replace(config, trainer=dataclasses.replace(
            trainer, stage="sft", resume=None, overwrite=trainer.overwrite or resuming))
        sft_result = run_sft(sft, sft_dir)
        log.info("sft stage done (objective %.6f); rl stage from %s", sft_result.objective, sft_dir)
    rl = dataclasses.replace(config, trainer=dataclasses.replace(trainer, stage="rl", init_from=str(sft_dir)))
    return run_training(rl, rl_dir)


def _finished_sft(sft_dir: Path, config: RunConfig) -> bool:
    path = checkpoint_path(sft_dir)
    if not path.is_file():
        return False
    state = load_checkpoint(path)
    return state.get("stage") == "sft" and state["update"] == config.sft.updates and state["config"] == config.design()
