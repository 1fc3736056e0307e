"""Hydra's entry to the ALMA sweeper (found by ``--info plugins``); the logic is in openclaw_rl.alma.

Hydra imports this module at every start of every app: it imports only the settings' schema, and the
sweeper itself (with torch) when a sweep uses it.
"""

from typing import Any, List

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from openclaw_rl.alma.config import ALMASweeperConf

# hydra/sweeper=alma: the schema is the one source of the settings and their defaults.
ConfigStore.instance().store(group="hydra/sweeper", name="alma", node=ALMASweeperConf, provider="openclaw_rl")


class ALMASweeper(Sweeper):
    def __init__(self, **conf: Any) -> None:
        from openclaw_rl.alma.sweeper import ALMASweeperImpl

        self.impl = ALMASweeperImpl(**conf)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.impl.sweep(arguments)
