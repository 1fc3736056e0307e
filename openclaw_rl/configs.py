"""The Hydra config tree: the dataclasses are its schema and the one source of defaults.

``register()`` puts them in Hydra's ConfigStore (``run_schema``, ``env/schema``, each market
model's parameters as an ``env/market`` option, each algorithm as an ``algo`` option, each memory
design as a ``policy/memory`` option); the YAML
files under ``conf/`` only select groups and presets. A value of the wrong type is then refused
while composing, with the key named, from the command line and from Python alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.memory import DESIGNS
from openclaw_rl.rock.config import EnvConfig, market_defaults
from openclaw_rl.rock.markets import SYNTHETIC_MODELS
from openclaw_rl.roll.config import ALGO_DEFAULTS, ALGOS, RunConfig

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")


def register() -> None:
    store = ConfigStore.instance()
    run_schema, env_schema = OmegaConf.structured(RunConfig), OmegaConf.structured(EnvConfig)
    # The env/market option fills env.market; merged onto another model's defaults it would mix two models.
    run_schema.env.market = env_schema.market = {}
    # A user env's keyword arguments are its own: env.gym_kwargs={mode: softmax} sets keys no schema knows.
    for schema in (run_schema.env, env_schema):
        OmegaConf.set_struct(schema.gym_kwargs, False)
    store.store(name="run_schema", node=run_schema, provider="openclaw_rl")
    store.store(name="bench_schema", node=BenchConfig, provider="openclaw_rl")
    store.store(group="env", name="schema", node=env_schema, provider="openclaw_rl")
    for kind in SYNTHETIC_MODELS:
        store.store(group="env/market", name=kind, node=market_defaults(kind), provider="openclaw_rl")
    store.store(group="env/market", name="historical", node={"kind": "historical"}, provider="openclaw_rl")
    for name in ALGOS:  # with the algorithm's own defaults, so that --cfg job and .hydra/ show them
        store.store(group="algo", name=name, node={"name": name, **ALGO_DEFAULTS[name]}, provider="openclaw_rl")
    for name in DESIGNS:  # policy/memory=NAME; the design's keys and defaults: openclaw_rl.memory.MemoryConfig
        store.store(group="policy/memory", name=name, node={"name": name}, provider="openclaw_rl")


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """The config a command line with these overrides would run (without starting Hydra's app)."""
    register()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name, overrides=list(overrides))



register()
