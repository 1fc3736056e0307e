"""A trial's config: Hydra's composition, once per set of config group choices.

Hydra composes a sweep job's config from scratch (``load_sweep_config``: the defaults list, every
config file, then the value overrides): about 75 ms, a twentieth of a 40,960-step trial. Trials of one
sweep differ in value overrides (``algo.lr=...``) and in a few group choices (``policy/memory=trace``),
so ``TrialConfigs`` composes once per distinct set of group choices and applies a trial's value
overrides to a copy, as Hydra applies them after the defaults, then writes the two fields Hydra derives
from the overrides (``hydra.overrides.task``, ``hydra.job.override_dirname``): ``load_sweep_config``'s
config, key for key (tests/test_alma_compose.py), in a few milliseconds. Group choices, packages,
sweeps and Hydra's own overrides go through Hydra's composition.
"""

from __future__ import annotations

import copy

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf


class TrialConfigs:
    """The sweep's job configs. The sweeper composes a trial's group choices before it forks the trial's
    worker, which then finds them composed; a Ray worker composes and keeps its own."""

    def __init__(self, loader: ConfigLoaderImpl, master: DictConfig):
        self.loader, self.master = loader, master
        self.composed: dict[tuple[str, ...], DictConfig] = {}

    def __call__(self, overrides: list[str]) -> DictConfig:
        """``loader.load_sweep_config(master, overrides)``."""
        parsed, structural, values = self._split(overrides)
        config = copy.deepcopy(self._composed(structural))
        ConfigLoaderImpl._apply_overrides_to_config(values, config)
        task = [o for o in parsed if not o.is_hydra_override()]
        config.hydra.overrides.task = [o.input_line for o in task]
        naming = config.hydra.job.config.override_dirname
        config.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task, kv_sep=naming.kv_sep, item_sep=naming.item_sep, exclude_keys=list(naming.exclude_keys))
        OmegaConf.copy_cache(from_config=self.master, to_config=config)
        return config

    def compose_choices(self, overrides: list[str]) -> None:
        """Compose ``overrides``' group choices now (the sweeper, before a fork). One that does not compose
        is left to the trial's worker, whose composition fails it as the trial's error."""
        try:
            self._composed(self._split(overrides)[1])
        except Exception:  # noqa: BLE001  Hydra's override and composition errors: the trial's to report
            return

    def _split(self, overrides: list[str]) -> tuple[list[Override], list[Override], list[Override]]:
        """The parsed overrides; those Hydra's composition takes (group choices, ...); the values it applies after."""
        parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
        is_value = [self._is_value(o) for o in parsed]
        return (parsed, [o for o, value in zip(parsed, is_value) if not value],
                [o for o, value in zip(parsed, is_value) if value])

    def _composed(self, structural: list[Override]) -> DictConfig:
        key = tuple(o.input_line for o in structural)
        if key not in self.composed:
            self.composed[key] = self.loader.load_sweep_config(self.master, list(key))
        return self.composed[key]

    def _is_value(self, override: Override) -> bool:
        """An override Hydra applies to the composed config as a value: not a group choice, a package, a
        sweep or one of Hydra's own settings."""
        return (not override.is_hydra_override() and override.package is None and not override.is_sweep_override()
                and not self.loader.repository.group_exists(override.key_or_group))
