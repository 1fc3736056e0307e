"""The suite's tasks and tiers, and which markets a tier scores.

A task is an env (``EnvConfig`` fields over their defaults: the market, costs, reward, episode
length) with the splits of ``rock/splits.py``: synthetic tasks split by seed range, historical
ones by time. The benchmark scores the **test** split only: public tiers from fixed seeds in the
test range, the private tier from seeds derived from a salt the user keeps outside configs.
Changing a task, a tier's size or the seed rule changes ``SUITE_VERSION``.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from openclaw_rl.errors import ConfigError
from openclaw_rl.rock import EnvConfig
from openclaw_rl.rock.config import with_split
from openclaw_rl.rock.splits import PRIVATE_SEEDS, seed_range

SUITE_VERSION = "1.4"  # 1.1: the memory tier (tiers smoke, full and private score what they scored in 1.0);
# 1.2: the memory tier's tasks memory_trend and memory_event replace memory_regimes and memory_slow;
# 1.3: historical intervals over independent episodes; the private tier scores no built-in historical task;
# 1.4: the long tier (1,000-bar episodes; the other tiers score what they scored in 1.3); split=validation
SALT_ENV = "OPENCLAW_BENCH_SALT"
MIN_SALT = 16  # characters: a salt is a secret, and results carry its fingerprint
SEED_BLOCK = 2**16  # seeds per task and tier: n_seeds * n_markets must fit


@dataclass(frozen=True)
class Tier:
    n_seeds: int  # independent sets of test markets; intervals are over these
    n_markets: int  # markets (episodes) per seed, stepped in one batch with the other seeds'
    smoke_only: bool = False  # only the tasks marked smoke
    private: bool = False  # seeds from the salt
    # the tasks it scores: market (trading), memory (the past beyond the window matters) or long (1,000-bar episodes)
    family: str = "market"

    def scores(self, task: "Task") -> bool:
        """Whether the tier scores a suite task; the private tier no built-in historical one: its bars
        are public, so no salt can hide them (a user's own private file comes as a user task)."""
        return (task.family == self.family and (task.smoke or not self.smoke_only)
                and not (self.private and task.historical))


TIERS = {
    "smoke": Tier(4, 32, smoke_only=True),
    "full": Tier(8, 64),
    "private": Tier(8, 64, private=True),
    "memory": Tier(8, 64, family="memory"),
    "long": Tier(8, 64, family="long"),
}


@dataclass(frozen=True)
class Task:
    name: str
    about: str
    env: Mapping[str, Any] = field(default_factory=dict)  # EnvConfig fields over their defaults
    smoke: bool = False
    family: str = "market"

    @property
    def historical(self) -> bool:
        return self.env.get("market", {}).get("kind") == "historical"

    def env_config(self, split: str, n_markets: int) -> EnvConfig:
        """The task's env drawing ``n_markets`` markets from ``split``."""
        return with_split(EnvConfig.from_mapping({**self.env, "n_envs": n_markets}, prefix=f"task {self.name}: env"), split)


def _drift_regimes(drift_pct: float, duration_bars: float, entry_jump_pct: float = 0.0, **env) -> dict:
    """A 4-bar window on a chain of two regimes of 1% volatility and opposite drift: the regime shows in
    the mean of many past returns, bars the window no longer holds, and in its entry jump (if any), a bar
    the window holds for 4 steps."""
    regimes = {name: {"mean_pct": sign * drift_pct, "vol_pct": 1.0, "duration_bars": duration_bars,
                      "entry_jump_pct": sign * entry_jump_pct} for name, sign in (("bull", 1.0), ("bear", -1.0))}
    return {"window": 4, "market": {"kind": "regime_switching", "regimes": regimes, "switching": ["bull", "bear"]}, **env}


def _historical(builtin: str, episode_bars: int, **env) -> dict:
    return {"market": {"kind": "historical"}, "data": {"builtin": builtin}, "episode_bars": episode_bars, **env}


TASKS = {task.name: task for task in (
    Task("bull", "regime switching held in the fitted bull regime (S&P 500 1990-2022)", {"regime": "bull"}),
    Task("sideways", "held in the fitted sideways regime", {"regime": "sideways"}),
    Task("crash", "held in the fitted crash regime", {"regime": "crash"}, smoke=True),
    Task("switching", "the fitted 3-regime Markov chain (the default env)", {}, smoke=True),
    Task("switching_costly", "the chain with 10 bps fees and 5 bps slippage", {"fee_bps": 10.0, "slippage_bps": 5.0},
         smoke=True),
    Task("garch", "GARCH(1,1) with Student-t shocks (fitted)", {"market": {"kind": "garch"}}),
    Task("heston", "Heston stochastic volatility (textbook parameters)", {"market": {"kind": "heston"}}),
    Task("merton", "Merton jump diffusion (textbook parameters)", {"market": {"kind": "merton"}}),
    Task("googl_daily", "GOOGL daily bars 2009-2018, half-year episodes", _historical("googl_daily", 126)),
    Task("eurusd_hourly", "EURUSD hourly bars 2017, one-week episodes",
         _historical("eurusd_hourly", 120, bars_per_year=6240.0)),
    # Memory tasks leave room beyond any window (bench/memory_bound.py): the regime is evidence spread over
    # the whole episode (memory_trend) or one event many chunks back (memory_event).
    Task("memory_trend", "+-0.15%/bar drift regimes (~400 bars each, longer than an episode) through a 4-bar "
         "window: the evidence is the episode's whole past", _drift_regimes(0.15, 400.0), family="memory"),
    Task("memory_event", "+-0.1%/bar drift regimes (~150 bars each) through a 4-bar window, each announced "
         "once by a +-5% jump: the evidence is one bar many chunks back", _drift_regimes(0.1, 150.0, 5.0),
         family="memory"),
    # Long tasks are where chunk-level credit should pay (arXiv 2512.24873: long horizons, sparse outcomes): an
    # order's consequences play out over hundreds of bars. Agents for them train on the same 1,000-bar episodes,
    # e.g. with the outcome reward env.reward=terminal_excess; they are scored on equity like every task.
    Task("long_switching", "the fitted 3-regime chain in 1,000-bar episodes (about 4 years of daily bars)",
         {"episode_bars": 1000}, family="long"),
    Task("long_switching_costly", "the chain with 10 bps fees and 5 bps slippage in 1,000-bar episodes: each "
         "order's cost is paid at once, its benefit over many bars", {"episode_bars": 1000, "fee_bps": 10.0,
                                                                       "slippage_bps": 5.0}, family="long"),
)}


def load_user_task(path: str | Path) -> Task:
    """A task from a YAML file ``{name, about, env}`` (e.g. a CSV with ``env.data.path``): validated in
    full, its data loaded and its test split checked to hold an episode, before any work."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"user_tasks: {path}: no such file")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("env", {}), dict):
        raise ConfigError(f"user_tasks: {path}: needs a mapping with a name (string) and an env (mapping), got {spec!r}")
    unknown = set(spec) - {"name", "about", "env"}
    if unknown:
        raise ConfigError(f"user_tasks: {path}: unknown key(s) {sorted(unknown)}; allowed: name, about, env")
    if spec["name"] in TASKS:
        raise ConfigError(f"user_tasks: {path}: the name {spec['name']!r} is a suite task; choose another")
    task = Task(spec["name"], spec.get("about", str(path)), spec.get("env", {}))
    env = task.env_config("test", 1)
    env.checked_market()
    return task


def select(tier: str, names: list[str] | None, user_tasks: list[Task]) -> list[Task]:
    """The tasks a run scores: the tier's (or ``names`` among the suite's and the user's), user tasks included."""
    if tier not in TIERS:
        raise ConfigError(f"tier: unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
    names_given = [task.name for task in user_tasks]
    twice = sorted({name for name in names_given if names_given.count(name) > 1})
    if twice:
        raise ConfigError(f"user_tasks: two tasks are named {twice[0]!r}; give each task its own name")
    known = {**TASKS, **{task.name: task for task in user_tasks}}
    if names is not None:
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"tasks: unknown task {unknown[0]!r}; allowed: {', '.join(known)}")
        public = [name for name in names if name in TASKS and TIERS[tier].private and TASKS[name].historical]
        if public:
            raise ConfigError(f"tasks: {public[0]} replays public bars, which the private tier cannot keep secret; "
                              "score it on the full tier, or give your own private price file as a user task")
        return [known[name] for name in names]
    suite = [task for task in TASKS.values() if TIERS[tier].scores(task)]
    return suite + list(user_tasks)


def read_salt(salt_file: str | None) -> str:
    """The private tier's salt, from ``salt_file`` or the environment (never from a config value)."""
    if salt_file is not None:
        path = Path(salt_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"salt_file: {path}: no such file")
        salt = path.read_text().strip()
        where = f"salt_file {path}"
    else:
        salt = os.environ.get(SALT_ENV, "").strip()
        where = f"${SALT_ENV}"
        if not salt:
            raise ConfigError(f"tier=private needs a salt: set {SALT_ENV}, or salt_file=PATH to a file holding it "
                              f"(kept outside configs and run dirs, at least {MIN_SALT} characters)")
    if len(salt) < MIN_SALT:
        raise ConfigError(f"{where}: the salt must have at least {MIN_SALT} characters, has {len(salt)}")
    return salt


def salt_fingerprint(salt: str) -> str:
    """What results record of a salt: enough to tell two salts apart, not to recover one."""
    return hashlib.sha256(f"openclaw_rl.bench/{salt}".encode()).hexdigest()[:16]


def first_seed(task: Task, salt: str | None, split: str = "test") -> int:
    """The first market seed a tier scores on ``task``: a fixed block of ``split``'s range for public
    tiers, a block of the private range picked by a hash of the salt and the task otherwise."""
    if salt is None:
        return seed_range(split)[0] + zlib.crc32(task.name.encode()) % 2**20 * SEED_BLOCK
    low, high = PRIVATE_SEEDS
    digest = int.from_bytes(hashlib.sha256(f"{salt}\0{task.name}".encode()).digest()[:8], "big")
    return low + digest % (high - low - SEED_BLOCK)

