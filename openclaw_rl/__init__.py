"""openclaw_rl: reinforcement learning for trading agents on PyTorch.

``import openclaw_rl`` registers the Gymnasium envs ``openclaw_rl/Market-v0`` and ``openclaw_rl/Portfolio-v0``;
``openclaw_rl.learn`` trains from Python as ``openclaw-train`` does from a shell; ``openclaw_rl.load_policy``
loads what a run trained.
"""

from openclaw_rl.rock import ENV_ID  # noqa: F401  (registers the Gymnasium envs)

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("learn", "load_policy", "make_config", "Trained"):  # imported on first use: torch and Hydra load only then
        from openclaw_rl import api

        return getattr(api, name)
    raise AttributeError(f"module 'openclaw_rl' has no attribute {name!r}")
