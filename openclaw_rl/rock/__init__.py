"""ROCK: market sandboxes (market models, Gymnasium envs, the batched vector env)."""

import gymnasium

from openclaw_rl.rock.config import ConfigError, EnvConfig
from openclaw_rl.rock.env import MarketEnv
from openclaw_rl.rock.historical import DataError
from openclaw_rl.rock.vector import MarketVecEnv

ENV_ID = "openclaw_rl/Market-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="openclaw_rl.rock.env:MarketEnv",
        vector_entry_point="openclaw_rl.rock.vector:MarketVecEnv",
    )

__all__ = ["ENV_ID", "ConfigError", "DataError", "EnvConfig", "MarketEnv", "MarketVecEnv"]
