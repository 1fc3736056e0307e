"""The YAML config tree and the dataclass defaults describe the same run."""

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.markets import SYNTHETIC_MODELS
from openclaw_rl.roll.config import RunConfig

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def composed(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def test_default_yaml_equals_dataclass_defaults():
    from_yaml, defaults = RunConfig.from_mapping(composed()), RunConfig()
    assert from_yaml.env.make_market() == defaults.env.make_market()
    same_market = dataclasses.replace(from_yaml.env, market=defaults.env.market)
    assert dataclasses.replace(from_yaml, env=same_market) == defaults


@pytest.mark.parametrize("kind", sorted(SYNTHETIC_MODELS))
def test_market_yaml_equals_model_defaults(kind):
    env = EnvConfig.from_mapping(composed(f"env/market={kind}")["env"])
    assert env.make_market() == EnvConfig(market={"kind": kind}).make_market()


@pytest.mark.parametrize("algo", ["ipa", "ppo", "grpo", "reinforce"])
def test_algo_yaml_composes_and_only_the_algo_section_changes(algo):
    config = RunConfig.from_mapping(composed(f"algo={algo}", "trainer.group_size=2"))
    base = RunConfig.from_mapping(composed("trainer.group_size=2"))
    assert config.algo.name == algo
    assert (config.env, config.policy, config.trainer, config.ipa) == (base.env, base.policy, base.trainer, base.ipa)


def test_the_pipeline_experiment_composes_into_sft_then_rl_with_resampling():
    config = RunConfig.from_mapping(composed("+experiment=sft_then_ipa"))
    assert (config.trainer.stage, config.env.reward, config.resample.teacher) == ("sft_rl", "terminal_excess", "vol_target")
    assert config.sft.datasets == {"runs/data/vol_target": 1.0}
    other = RunConfig.from_mapping(composed("+experiment=sft_then_ipa", "~sft.datasets", "+sft.datasets={a: 0.7, b: 0.3}"))
    assert other.sft.datasets == {"a": 0.7, "b": 0.3}  # the README's way to swap the mix
