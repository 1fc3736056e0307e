"""ROCK: market sandboxes (market models, Gymnasium envs, the batched vector env)."""

import gymnasium

from openclaw_rl.rock.config import ConfigError, EnvConfig
from openclaw_rl.rock.env import MarketEnv
from openclaw_rl.rock.historical import DataError
from openclaw_rl.rock.portfolio import PortfolioEnv, PortfolioVecEnv
from openclaw_rl.rock.vector import MarketVecEnv

ENV_ID = "openclaw_rl/Market-v0"
PORTFOLIO_ID = "openclaw_rl/Portfolio-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="openclaw_rl.rock.env:MarketEnv",
        vector_entry_point="openclaw_rl.rock.vector:MarketVecEnv",
    )
if PORTFOLIO_ID not in gymnasium.registry:
    gymnasium.register(
        id=PORTFOLIO_ID,
        entry_point="openclaw_rl.rock.portfolio:PortfolioEnv",
        vector_entry_point="openclaw_rl.rock.portfolio:PortfolioVecEnv",
    )

__all__ = ["ENV_ID", "PORTFOLIO_ID", "ConfigError", "DataError", "EnvConfig", "MarketEnv", "MarketVecEnv",
           "PortfolioEnv", "PortfolioVecEnv"]
