"""One source of configuration: the dataclasses in Hydra's ConfigStore; YAML only selects."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from openclaw_rl.api import make_config
from openclaw_rl.configs import CONFIG_DIR, compose_config
from openclaw_rl.rock.config import ConfigError, EnvConfig
from openclaw_rl.rock.markets import SYNTHETIC_MODELS
from openclaw_rl.roll.config import ALGOS, AlgoConfig, RunConfig


def composed(*overrides):
    cfg = OmegaConf.to_container(compose_config(overrides), resolve=True)
    cfg.pop("hydra", None)
    return cfg


def test_yaml_files_select_groups_and_set_no_defaults():
    """Every YAML file under conf/ is a defaults list, Hydra's own settings, or a preset/experiment."""
    for path in Path(CONFIG_DIR).rglob("*.yaml"):
        keys = set(yaml.safe_load(path.read_text()) or {})
        if path.parent.name == "experiment" or path.stem in ("generate", "backtest"):
            continue  # presets, and the CLIs' own top-level keys
        assert keys <= {"defaults", "hydra"}, f"{path}: sets {sorted(keys - {'defaults', 'hydra'})}; defaults live in the dataclasses"


def test_command_line_and_python_defaults_are_the_same_run():
    assert RunConfig.from_mapping(composed()) == RunConfig()


@pytest.mark.parametrize("algo", ALGOS)
def test_algo_choice_gives_the_same_config_from_every_entry(algo):
    """`algo=ppo` on the command line, {"algo": {"name": "ppo"}} and AlgoConfig(name="ppo") agree
    (the command line once normalized PPO's advantages while the Python API did not)."""
    cli = RunConfig.from_mapping(composed(f"algo={algo}", "trainer.group_size=2"))
    as_dict = make_config({"algo": {"name": algo}, "trainer": {"group_size": 2}})
    as_object = RunConfig(algo=AlgoConfig(name=algo), trainer=dataclasses.replace(RunConfig().trainer, group_size=2))
    assert cli == as_dict == as_object
    assert cli.algo.norm_adv == (algo in ("ipa", "ppo", "reinforce"))
    assert cli.algo.update_epochs == (1 if algo == "reinforce" else 4)
    assert (cli.algo.clip_vloss, cli.algo.grad_clip, cli.algo.value_loss) == (
        (False, "separate", "huber") if algo == "ipa" else (True, "global", "mse"))


def test_explicit_values_beat_the_algo_defaults():
    config = RunConfig.from_mapping(composed("algo=ppo", "algo.norm_adv=false", "algo.update_epochs=2"))
    assert (config.algo.norm_adv, config.algo.update_epochs) == (False, 2)


@pytest.mark.parametrize("kind", sorted(SYNTHETIC_MODELS))
def test_market_group_equals_model_defaults(kind):
    env = EnvConfig.from_mapping(composed(f"env/market={kind}")["env"])
    assert env == EnvConfig(market={"kind": kind})
    assert env.make_market() == SYNTHETIC_MODELS[kind](**({"bars_per_year": 252.0} if kind not in ("regime_switching", "garch") else {}))


def test_market_overrides_keep_the_other_defaults():
    env = EnvConfig.from_mapping(composed("env/market=heston", "env.market.rho=-0.3")["env"])
    assert env.market["rho"] == -0.3 and env.market["kappa"] == 2.0 and "regimes" not in env.market


@pytest.mark.parametrize("override,key,rule", [
    ("trainer.total_steps=abc", "trainer.total_steps", "Integer"),
    ("env.fee_bps=abc", "env.fee_bps", "Float"),
    ("algo.norm_adv=maybe", "algo.norm_adv", "valid bool"),
    ("trainer.colour=1", "trainer.colour", "not in"),
])
def test_wrong_types_on_the_command_line_name_the_key(override, key, rule):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override])
    assert key in str(err.value.__cause__ or err.value) and rule in str(err.value.__cause__ or err.value)


@pytest.mark.parametrize("values,message", [
    ({"trainer": {"total_steps": "abc"}}, r"^trainer\.total_steps: must be an integer, got 'abc'$"),
    ({"env": {"fee_bps": "abc"}}, r"^env\.fee_bps: must be a float, got 'abc'$"),
    ({"algo": {"colour": 1}}, r"^algo\.colour: unknown key; allowed: anneal_lr, clip_coef"),
    ({"trainer": {"threads": "many"}}, r"^trainer\.threads: must be auto or a positive integer, got 'many'$"),
])
def test_wrong_types_from_python_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        make_config(values)


def test_the_pipeline_experiment_composes_into_sft_then_rl_with_resampling():
    config = RunConfig.from_mapping(composed("+experiment=sft_then_ipa"))
    assert (config.trainer.stage, config.env.reward, config.resample.teacher) == ("sft_rl", "terminal_excess", "vol_target")
    assert config.sft.mix() == {"runs/data/vol_target": 1.0}
    other = RunConfig.from_mapping(composed("+experiment=sft_then_ipa", "sft.datasets=[a,b]", "sft.weights=[0.7,0.3]"))
    assert other.sft.mix() == {"a": 0.7, "b": 0.3}  # the README's way to swap the mix
    with pytest.raises(ConfigError, match=r"sft\.weights: needs one weight per dataset \(2\)"):
        RunConfig.from_mapping(composed("+experiment=sft_then_ipa", "sft.datasets=[a,b]", "sft.weights=[1.0]"))


def test_overrides_make_the_same_config_as_the_command_line():
    assert make_config(["algo=ppo", "env/market=garch", "seed=3"]) == RunConfig.from_mapping(
        composed("algo=ppo", "env/market=garch", "seed=3"))
