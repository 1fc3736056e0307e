"""What every command line (train, backtest, bench, data, calibrate) shares."""

from __future__ import annotations

import difflib
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

from openclaw_rl.errors import ConfigError

FLAG = "-"  # --help, --cfg, -m (a sweep's values are Hydra's to expand): left to Hydra itself
SWEEP_SYNTAX = re.compile(r"[,(]")  # a,b or range(...), choice(...): a sweep's value


def discard_failed_run() -> None:
    """After a command failed before doing any work: remove what Hydra wrote for it (the run dir's
    ``.hydra/`` and log file), and the run dir if nothing else is in it. A run dir holding any other
    output (an earlier run's, or this one's) is left as it is."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    run_dir, log_file = Path(hydra.runtime.output_dir), f"{hydra.job.name}.log"
    if not run_dir.is_dir() or any(path.name not in (".hydra", log_file) for path in run_dir.iterdir()):
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    (run_dir / log_file).unlink(missing_ok=True)
    try:
        run_dir.rmdir()
    except OSError:  # something appeared meanwhile: keep it
        pass


def entry_point(app: Callable, config_name: str) -> Callable[[], object]:
    """A command's entry point: its overrides are composed once before Hydra's app starts, so that a
    mistake gets one line naming the key and the fix, and an integer written ``1e6`` is taken as one."""

    def run():
        sys.argv[1:] = checked_overrides(sys.argv[1:], config_name)
        return app()

    return run


def checked_overrides(argv: list[str], config_name: str) -> list[str]:
    """``argv`` with integral numbers like ``1e6`` written as integers where an integer is wanted; a
    ``SystemExit`` with one line for an unknown key (and the closest known one), an unknown group option
    (and the closest), or a value of the wrong type. Flags and sweeps are left to Hydra."""
    from hydra.errors import ConfigCompositionException, MissingConfigException

    from openclaw_rl.configs import compose_config

    if any(arg.startswith(FLAG) for arg in argv):
        return argv
    argv = list(argv)
    checked = [i for i, arg in enumerate(argv) if "=" in arg and not arg.startswith(("hydra.", "+", "~"))
               and not SWEEP_SYNTAX.search(arg.partition("=")[2])]
    for _ in range(len(checked) + 1):
        try:
            compose_config([argv[i] for i in checked], config_name)
            return argv
        except MissingConfigException as err:
            raise SystemExit(f"ConfigError: {_missing_option(str(err))}") from None
        except ConfigCompositionException as err:
            cause = str(err.__cause__ or err)
            key = re.search(r"full_key: (\S+)", cause)
            position = next((i for i in checked if key and argv[i].partition("=")[0] == key.group(1)), None)
            value = argv[position].partition("=")[2] if position is not None else ""
            if "could not be converted to Integer" in cause and _integral(value):
                argv[position] = f"{key.group(1)}={int(float(value))}"
                continue
            if cause.startswith("Key '") and key:
                raise SystemExit(f"ConfigError: {_unknown_key(key.group(1), [argv[i] for i in checked if i != position], config_name)}") from None
            first = cause.splitlines()[0]
            raise SystemExit(f"ConfigError: {key.group(1) + ': ' if key else ''}{first}") from None
    return argv


def _integral(value: str) -> bool:
    try:
        return float(value).is_integer() and abs(float(value)) < 2**63
    except ValueError:
        return False


def _unknown_key(key: str, others: list[str], config_name: str) -> str:
    """``key`` is no key of the config: name the closest one (difflib over every key the config has)."""
    from omegaconf import OmegaConf

    from openclaw_rl.configs import compose_config

    return f"{key}: unknown key; {closest_key(key, OmegaConf.to_container(compose_config(others, config_name), resolve=False))}"


def closest_key(key: str, config: dict) -> str:
    """"did you mean K?" for the key of ``config`` (plain data, ``hydra`` left out) closest to ``key``."""
    close = difflib.get_close_matches(key, _keys(config), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else "--cfg job prints every key"


def _keys(node, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    out = [prefix] if prefix else []
    for name, value in node.items():
        if name != "hydra":
            out += _keys(value, f"{prefix}.{name}" if prefix else str(name))
    return out


def _missing_option(message: str) -> str:
    """Hydra's "Could not find 'group/option'" and its list of options, as one line with the closest."""
    found = re.search(r"Could not find '([^']+)'", message)
    options = re.findall(r"^\t(\S+)$", message.split("Config search path")[0], re.M)
    if not found:
        return message.splitlines()[0]
    group, _, option = found.group(1).rpartition("/")
    close = difflib.get_close_matches(option, options, n=1, cutoff=0.5)
    hint = f"; did you mean {group}={close[0]}?" if close else ""
    return f"{group}={option}: unknown option; allowed: {', '.join(options)}{hint}"


def refuse_chdir() -> None:
    """Refuse ``hydra.job.chdir=true``: relative paths in a config (data, checkpoints, datasets, outputs)
    are read from the directory a command was started in, and every output already goes to the run dir."""
    from hydra.core.hydra_config import HydraConfig  # light: the CLIs run inside Hydra anyway

    if HydraConfig.initialized() and HydraConfig.get().job.chdir:
        raise ConfigError("hydra.job.chdir: must be false; openclaw_rl writes every output under the run dir "
                          "(hydra.run.dir) and reads relative paths from the directory you started in")
