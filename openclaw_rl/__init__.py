"""openclaw_rl: reinforcement learning for trading agents on PyTorch."""

from openclaw_rl.rock import ENV_ID  # noqa: F401  (registers the Gymnasium envs)

__version__ = "0.1.0"
