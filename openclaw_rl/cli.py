"""What every command line (train, backtest, data, calibrate) shares."""

from __future__ import annotations

from openclaw_rl.errors import ConfigError


def refuse_chdir() -> None:
    """Refuse ``hydra.job.chdir=true``: relative paths in a config (data, checkpoints, datasets, outputs)
    are read from the directory a command was started in, and every output already goes to the run dir."""
    from hydra.core.hydra_config import HydraConfig  # light: the CLIs run inside Hydra anyway

    if HydraConfig.initialized() and HydraConfig.get().job.chdir:
        raise ConfigError("hydra.job.chdir: must be false; openclaw_rl writes every output under the run dir "
                          "(hydra.run.dir) and reads relative paths from the directory you started in")
