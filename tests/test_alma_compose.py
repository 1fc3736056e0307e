"""``TrialConfigs``: a trial's config from a cached composition equals Hydra's own composition of it,
key for key (the hydra node included), for value overrides, group choices and their mix."""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from openclaw_rl.alma.compose import TrialConfigs
from openclaw_rl.configs import CONFIG_DIR, register

SHARED = ["env.n_envs=32", "trainer.total_steps=40960", "seed=3"]


@pytest.fixture(scope="module")
def sweep():
    """The loader and the multirun config a sweeper gets (``hydra/sweeper=alma``, as a sweep's command line)."""
    register()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config("config", ["hydra/sweeper=alma", "hydra.sweep.dir=/tmp/sweep", *SHARED],
                                      run_mode=RunMode.MULTIRUN)
        yield hydra.config_loader, master


def plain(config):
    return OmegaConf.to_container(config, resolve=False)


@pytest.mark.parametrize("overrides", [
    [*SHARED, "algo.lr=0.0012", "algo.ent_coef=0.0", "algo.gamma=0.95", "ipa.chunker=fixed", "algo.update_epochs=3"],
    [*SHARED, "policy/memory=trace", "algo.lr=1e-05", "policy.memory.half_life=12.5"],
    [*SHARED, "algo=ppo", "algo.lr=0.03", "+trainer.faults.seed=4"],
    [*SHARED, "policy/memory=gru", "trainer.total_steps=81920", "hydra.job.chdir=false"],
])
def test_a_trial_config_is_hydras_composition_of_its_overrides(sweep, overrides):
    loader, master = sweep
    configs = TrialConfigs(loader, master)
    fast = configs(overrides)
    assert plain(fast) == plain(loader.load_sweep_config(master, overrides))
    assert OmegaConf.is_struct(fast) and not OmegaConf.is_readonly(fast.hydra)
    again = configs([o.replace("0.03", "0.02") for o in overrides])  # from the cache, not changed by the first
    assert plain(again) == plain(loader.load_sweep_config(master, [o.replace("0.03", "0.02") for o in overrides]))


def test_group_choices_are_composed_once_and_values_never_leak_between_trials(sweep):
    loader, master = sweep
    configs = TrialConfigs(loader, master)
    configs.compose_choices([*SHARED, "policy/memory=window", "algo.lr=0.01"])
    first = configs([*SHARED, "policy/memory=window", "algo.lr=0.01"])
    second = configs([*SHARED, "policy/memory=window", "algo.lr=0.02"])
    assert len(configs.composed) == 1 and (first.algo.lr, second.algo.lr) == (0.01, 0.02)
    assert first.policy.memory.name == second.policy.memory.name == "window"


def test_an_unknown_key_fails_as_hydras_composition_fails(sweep):
    loader, master = sweep
    with pytest.raises(Exception, match="algo.lrr") as fast:
        TrialConfigs(loader, master)([*SHARED, "algo.lrr=0.1"])
    with pytest.raises(Exception) as hydra:
        loader.load_sweep_config(master, [*SHARED, "algo.lrr=0.1"])
    assert type(fast.value) is type(hydra.value)


def test_a_group_choice_that_does_not_compose_is_left_to_the_trial(sweep):
    loader, master = sweep
    configs = TrialConfigs(loader, master)
    configs.compose_choices([*SHARED, "policy/memory=nonexistent"])  # the sweeper goes on
    assert configs.composed == {}
    with pytest.raises(Exception, match="nonexistent"):  # the trial's worker fails with Hydra's error
        configs([*SHARED, "policy/memory=nonexistent"])
