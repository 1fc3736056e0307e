"""Training from Python, without Hydra's app: the same config a command line composes.

    from openclaw_rl import learn
    result = learn(["algo=ppo", "trainer.total_steps=20000"])  # the overrides of `openclaw-train`
    action, _ = result.policy.predict(obs, deterministic=True)

    from openclaw_rl import load_policy
    policy = load_policy("runs/2025-01-01/12-00-00")  # a run dir or a checkpoint file
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from openclaw_rl.backtest.run import load_policy as load_trained
from openclaw_rl.configs import compose_config
from openclaw_rl.errors import CheckpointError, ConfigError
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.pipeline import run as run_training

log = logging.getLogger("openclaw_rl")


@dataclass
class Trained:
    """What ``learn`` returns: the run's held-out score, its trained policy (on the CPU, in eval mode)
    and where everything was written."""

    config: RunConfig
    objective: float  # config.eval.objective on the held-out markets
    metrics: dict[str, float]
    policy: ActorCritic
    run_dir: Path


def make_config(config: Sequence[str] | Mapping[str, Any] | RunConfig = ()) -> RunConfig:
    """A checked ``RunConfig`` from command-line overrides (``["algo=ppo", "env.regime=bull"]``), a nested
    dict (``{"algo": {"name": "ppo"}}``) or a ``RunConfig``; all three give what `openclaw-train` runs."""
    if isinstance(config, RunConfig):
        return RunConfig.from_mapping(OmegaConf.to_container(OmegaConf.structured(config)))
    if isinstance(config, Mapping):
        return RunConfig.from_mapping(config)
    if isinstance(config, str):
        raise TypeError("learn(config): give a list of overrides, e.g. ['algo=ppo'], not one string")
    try:
        composed = OmegaConf.to_container(compose_config(config), resolve=True)
    except ConfigCompositionException as err:  # a wrong type, an unknown key or group option: name it
        cause = err.__cause__
        raise ConfigError(f"{err}: {str(cause).splitlines()[0] if cause else ''}".rstrip(": ")) from None
    composed.pop("hydra", None)
    return RunConfig.from_mapping(composed)


def learn(config: Sequence[str] | Mapping[str, Any] | RunConfig = (), run_dir: str | Path | None = None,
          verbose: bool = True) -> Trained:
    """Train as `openclaw-train` would; ``run_dir`` defaults to ``runs/DATE/TIME`` like a command-line run.
    Progress goes to the console through ``logging`` when ``verbose`` and nothing else configured it."""
    if verbose:
        _console_logging()
    config = make_config(config)
    config.env.checked_market()  # loads and validates historical data before anything runs
    run_dir = Path(run_dir) if run_dir is not None else _new_run_dir()
    result = run_training(config, run_dir)
    return Trained(config, result.objective, result.metrics, load_policy(result.run_dir), result.run_dir)


def load_policy(path: str | Path) -> ActorCritic:
    """The policy a run trained, on the CPU and in eval mode: ``path`` is a run dir (its
    ``checkpoints/last.pt``) or a checkpoint file. The policy is rebuilt from the design the checkpoint
    records (its env's observation and actions, its memory); ``policy.predict(obs, state, episode_start,
    deterministic=True)`` acts with it, carrying its memory ``state`` from call to call."""
    if not Path(path).exists():
        raise CheckpointError(f"{path}: no such run dir or checkpoint file; give a run dir (with "
                              "checkpoints/last.pt) or a checkpoint .pt file")
    policy, _ = load_trained(Path(path), torch.device("cpu"))
    return policy.eval()


def _new_run_dir() -> Path:
    """``runs/DATE/TIME`` as on the command line, with ``-2``, ``-3``, ... for runs started in the same second."""
    base = Path("runs") / time.strftime("%Y-%m-%d/%H-%M-%S")
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def _console_logging() -> None:
    """INFO lines of openclaw_rl on stderr, unless the application set up logging itself."""
    package = logging.getLogger("openclaw_rl")
    if logging.getLogger().handlers or package.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s] %(message)s", "%H:%M:%S"))
    package.addHandler(handler)
    package.setLevel(logging.INFO)


__all__ = ["Trained", "learn", "load_policy", "make_config"]
