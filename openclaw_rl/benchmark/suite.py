"""Score one agent on a tier's tasks: every check before any work, all markets of a task stepped
in one batch, per-task statistics with intervals over seeds, and the aggregate."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from openclaw_rl.benchmark import stats
from openclaw_rl.benchmark.agents import Agent, checkpoint_agent, external_agent, strategy_agent
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.guard import contamination
from openclaw_rl.benchmark.report import RESULTS, write_outputs
from openclaw_rl.benchmark.tasks import (
    SUITE_VERSION, TIERS, Task, first_seed, load_user_task, read_salt, salt_fingerprint, select,
)
from openclaw_rl.episodes import run_episodes
from openclaw_rl.errors import ConfigError
from openclaw_rl.metrics import deflated_sharpe_ratio, episode_log_return, metrics
from openclaw_rl.progress import Progress
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.config import touched

log = logging.getLogger("openclaw_rl.bench")


class Contaminated(ConfigError):
    """An agent whose lineage overlaps a task's test split (``allow_contaminated=true`` scores it, marked)."""


@dataclass
class Plan:
    task: Task
    env: EnvConfig  # the task's split (test) with the agent's action interface, all seeds' markets
    first_seed: int
    overlaps: list[str]
    identity: str  # the task's env and test markets (their content for a historical one), hashed


def plan(agent: Agent, tasks: list[Task], tier: str, salt: str | None, allow_contaminated: bool,
         split: str = "test") -> list[Plan]:
    """Every task's env, seeds and contamination check, before any market is stepped."""
    spec = TIERS[tier]
    plans = []
    for task in tasks:
        env = agent.env_for(task.env_config(split, spec.n_seeds * spec.n_markets))
        seed = first_seed(task, salt if spec.private else None, split)
        test = touched(env, (seed, seed + env.n_envs))  # a historical task's data is loaded and checked here
        overlaps = contamination(agent.lineage, test, spec.private)
        if overlaps and not allow_contaminated:
            raise Contaminated(f"task {task.name}: {agent.name} is contaminated: {overlaps[0]}"
                               + (f" (and {len(overlaps) - 1} more)" if len(overlaps) > 1 else "")
                               + "; allow_contaminated=true scores it anyway, marked")
        plans.append(Plan(task, env, seed, overlaps, task_identity(task, test)))
    return plans


def task_identity(task: Task, test: dict) -> str:
    """What makes two results one task for ``compare``: its env (less a data file's path) and its test
    markets (seeds, or the bars themselves), whatever the task or its file is called."""
    env = {**task.env, "data": {k: v for k, v in dict(task.env.get("data", {})).items() if k != "path"}}
    by_file = ("source", "sha256") if "content" in test else ("source",)  # a record without content: its file's hash
    markets = {k: v for k, v in test.items() if k not in by_file}
    return hashlib.sha256(json.dumps({"env": env, "test": markets}, sort_keys=True, default=str).encode()).hexdigest()[:16]


def score(agent: Agent, plans: list[Plan], tier: str, salt: str | None, bar: bool | None = None) -> dict:
    """Play every task's test markets and return the results (what ``results.json`` holds)."""
    spec = TIERS[tier]
    started = time.time()
    results = {"suite_version": SUITE_VERSION, "tier": tier, "agent": agent.name, "n_trials": agent.n_trials,
               "n_seeds": spec.n_seeds, "n_markets": spec.n_markets,
               "salt_fingerprint": salt_fingerprint(salt) if spec.private else None, "tasks": {}}
    with Progress(len(plans), "task", log, bar=bar) as progress:
        for p in plans:
            start = time.perf_counter()
            results["tasks"][p.task.name] = _score_task(agent, p, spec.n_seeds, spec.n_markets, spec.private)
            progress.update(f"{p.task.name} ({time.perf_counter() - start:.1f}s)")
    normalized = {name: np.array(t["seeds"]["normalized_excess"]) for name, t in results["tasks"].items()}
    results["aggregate"] = stats.aggregate(normalized)
    results["elapsed_s"] = time.time() - started
    return results


def play(agent: Agent, env: EnvConfig, first_seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``agent`` on ``env``'s markets seeded from ``first_seed``, one episode each: per market the scores
    the suite reports, and every bar's simple return ``[bars * markets]``."""
    record = run_episodes(MarketVecEnv(config=env), first_seed, agent.actor_for(env, first_seed))
    m = metrics(record.equity, record.positions, env.bars_per_year)
    log_return = episode_log_return(record.equity[-1], env.initial_equity, env.ruin_fraction)
    excess = log_return - record.buy_and_hold
    per_market = {"log_return": log_return, "excess_log_return": excess,
                  "normalized_excess": stats.normalized_excess(excess, record.market_log_returns),
                  "buy_and_hold": record.buy_and_hold, "sharpe": m["sharpe"], "max_drawdown": m["max_drawdown"]}
    return per_market, (record.equity[1:] / record.equity[:-1] - 1.0).ravel()


def historical_interval(excess: np.ndarray, env: EnvConfig, level: float = 0.95) -> tuple[float, float, float]:
    """``(low, high, n)``: the interval of a historical task's score, the mean ``excess`` of episodes
    that are windows of one test range. Overlapping, they are not independent: the range holds
    ``n`` = (its bars less one window of history) / episode bars independent episodes' worth, so the
    t-interval takes the episodes' spread over ``n`` of them (``n - 1`` degrees of freedom). No
    interval (nan) when the range holds fewer than 2."""
    replay = env.make_market()
    n = (replay.end - replay.start - env.window) / env.episode_bars
    if n < 2:
        return math.nan, math.nan, n
    half = stats.student_t_quantile(0.5 + level / 2, n - 1) * float(np.std(excess, ddof=1)) / math.sqrt(n)
    return float(np.mean(excess)) - half, float(np.mean(excess)) + half, n


def _score_task(agent: Agent, p: Plan, n_seeds: int, n_markets: int, private: bool) -> dict:
    per_market, returns = play(agent, p.env, p.first_seed)
    seeds = {key: value.reshape(n_seeds, n_markets).mean(axis=1) for key, value in per_market.items()}
    mean, low, high = stats.mean_ci(seeds["excess_log_return"])
    interval = {}
    if p.task.historical:
        low, high, independent = historical_interval(per_market["excess_log_return"], p.env)
        interval = {"independent_episodes": independent}
    result = {
        "about": p.task.about, "historical": p.task.historical,
        "excess_log_return": mean, "low": low, "high": high, **interval,
        **{key: float(np.mean(value)) for key, value in per_market.items() if key != "excess_log_return"},
        # Under the null that all N designs tried have Sharpe 0, their estimates vary by 1/(bars - 1).
        "deflated_sharpe": deflated_sharpe_ratio(returns, agent.n_trials, 1.0 / (len(returns) - 1)),
        "contaminated": p.overlaps,
        "identity": p.identity,
        "seeds": {key: value.tolist() for key, value in seeds.items()},
    }
    if not private:  # the private tier keeps its markets secret
        result["market_seeds"] = [p.first_seed, p.first_seed + p.env.n_envs]
    return result


def run_benchmark(config: BenchConfig, out: Path, bar: bool | None = None) -> dict:
    """Check everything (agent, tier, tasks, salt, contamination), then score and write the outputs in ``out``."""
    if sum(x is not None for x in (config.checkpoint, config.strategy, config.agent)) != 1:
        raise ConfigError("checkpoint, strategy, agent: give exactly one, e.g. checkpoint=runs/my-run, strategy=trend "
                          "or agent=my_module:act lineage=lineage.yaml")
    if config.split not in ("test", "validation"):
        raise ConfigError(f"split: unknown split {config.split!r}; allowed: test, validation")
    if config.split != "test" and TIERS.get(config.tier) is not None and TIERS[config.tier].private:
        raise ConfigError("split=validation: the private tier scores its secret test markets only; use tier=full")
    if config.lineage is not None and config.agent is None:
        raise ConfigError("lineage: declares an agent's (agent=...); a checkpoint carries its own")
    if (Path(out) / RESULTS).exists():
        raise ConfigError(f"{out}: already holds a benchmark's {RESULTS}; choose another hydra.run.dir")
    user_tasks = [load_user_task(path) for path in config.user_tasks]
    tasks = select(config.tier, config.tasks, user_tasks)
    salt = read_salt(config.salt_file) if TIERS[config.tier].private else None
    if config.checkpoint is not None:
        agent = checkpoint_agent(config.checkpoint, torch.device(config.device))
    elif config.agent is not None:
        agent = external_agent(config.agent, config.lineage)
    else:
        agent = strategy_agent(config.strategy)
    plans = plan(agent, tasks, config.tier, salt, config.allow_contaminated, config.split)
    for p in plans:
        for overlap in p.overlaps:
            log.warning("task %s: scored although contaminated (allow_contaminated=true): %s", p.task.name, overlap)
    results = {"split": config.split, **score(agent, plans, config.tier, salt, bar)}
    write_outputs(results, Path(out))
    return results
