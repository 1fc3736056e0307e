"""The errors a command ends with: each message names what is wrong (a key, a file and row, a checkpoint).

A leaf module: everything imports it, it imports nothing of ours. The CLIs turn these into a one-line
message and a non-zero exit; a sweep records them as the trial's failure.
"""


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


class DataError(ValueError):
    """Historical data that cannot be used, with the file, column and row at fault."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit this run."""


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or infinite."""


class RenderModeError(ValueError, TypeError):
    """A ``render_mode`` these envs do not have (they render nothing).

    Also a ``TypeError``, like an unexpected keyword argument: Stable-Baselines3's ``make_vec_env``
    asks ``gym.make`` for ``render_mode="rgb_array"`` and retries without it on a ``TypeError``.
    """
