"""What the benchmark scores: a trained checkpoint, a V7 strategy, a random policy, or an agent from
elsewhere (a Python callable, a Stable-Baselines3 model) whose lineage its user declares; each acts
through an env with the task's markets and its own action interface."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from openclaw_rl.backtest.run import STRATEGY_CHOICES, load_policy, make_strategy, strategy_env
from openclaw_rl.episodes import policy_actor, strategy_actor
from openclaw_rl.errors import CheckpointError, ConfigError
from openclaw_rl.imports import import_target
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.config import touched, with_split
from openclaw_rl.rock.splits import seeds_record, unknown_record
from openclaw_rl.roll.checkpoint import find_checkpoint
from openclaw_rl.roll.lineage import checkpoint_lineage
from openclaw_rl.strategies.v7 import RegimeEnsemble

AGENTS = (*STRATEGY_CHOICES, "random")  # strategy=NAME
FIT_SEED, FIT_MARKETS = 7, 64  # synthetic tasks: regime_ensemble is fitted on these training-range markets


@dataclass
class Agent:
    name: str
    lineage: list[dict]  # what its weights or rules touched (roll.lineage)
    n_trials: int  # designs tried before this one was chosen (the deflated Sharpe ratio's N)
    env_for: Callable[[EnvConfig], EnvConfig]  # the task's env with this agent's action interface
    actor_for: Callable[[EnvConfig, int], Callable]  # (env, first seed) -> make_actor for run_episodes


def checkpoint_agent(path: str, device: torch.device) -> Agent:
    """A trained policy, greedy. Its observation must be the task's (``env.window``), and its positions
    must stay within the task's ``max_position``; it keeps its own action levels."""
    policy, config = load_policy(Path(path), device)
    policy.eval()
    trained = config.env

    def env_for(task_env: EnvConfig) -> EnvConfig:
        if trained.window != task_env.window:
            raise CheckpointError(f"{path}: the policy observes env.window={trained.window} bars, the suite's "
                                  f"tasks give {task_env.window}")
        # An oracle (env.observe_regime) is scored seeing the true regime, as it was trained: an upper bound.
        return dataclasses.replace(
            acting_as(task_env, path, trained.continuous, trained.actions, trained.max_position),
            trade_threshold=trained.trade_threshold, observe_regime=trained.observe_regime)

    return Agent(str(path), checkpoint_lineage(path), designs_tried(find_checkpoint(path)), env_for,
                 lambda env, seed: policy_actor(policy, device, deterministic=True))


def acting_as(task_env: EnvConfig, who: str, continuous: bool, actions: tuple, max_position: float) -> EnvConfig:
    """The task's env with an agent's own action interface, whose positions must stay within the task's
    ``max_position``."""
    reach = max_position if continuous else max(abs(a) for a in actions)
    if reach > task_env.max_position:
        raise CheckpointError(f"{who}: the policy's positions reach {reach} of equity, the task allows "
                              f"{task_env.max_position} (env.max_position)")
    return dataclasses.replace(task_env, continuous=continuous, actions=tuple(actions), max_position=max_position)


def strategy_agent(name: str) -> Agent:
    """A V7 strategy (``regime_ensemble`` fitted on the task's training split) or ``random``
    (uniform over the task's discrete actions, seeded by the markets)."""
    if name not in AGENTS:
        raise ConfigError(f"strategy: unknown strategy {name!r}; allowed: {', '.join(AGENTS)}")
    if name == "random":
        return Agent(name, [], 1, lambda env: env, _random_actor)

    def actor_for(env: EnvConfig, seed: int):
        if name == "regime_ensemble" and env.market.get("kind") == "historical":  # fitted on the train bars
            replay = with_split(env, "train").make_market()
            return strategy_actor(RegimeEnsemble.fit(replay.series.close[replay.start : replay.end, None]))
        return strategy_actor(make_strategy(name, env, FIT_SEED, FIT_MARKETS))  # fitted on training-range seeds

    return Agent(name, [], 1, lambda env: strategy_env(env, env.n_envs), actor_for)


SB3_ALGORITHMS = ("PPO", "A2C", "DQN", "SAC", "TD3")  # tried in turn on a .zip: its policy is what acts


def external_agent(spec: str, lineage_file: str | None) -> Agent:
    """An agent from elsewhere, greedy: ``module:name`` (a callable taking a batch of observations
    ``[N, obs_dim]`` and returning actions, or an object with SB3's ``predict``) or a Stable-Baselines3
    model file (``.zip``), on the task's env as it is; or a policy exported to ONNX (``.onnx``). Its lineage is what ``lineage_file`` declares
    (:func:`declared_lineage`); without one it is unknown, which the guard refuses."""
    if lineage_file is None:
        lineage = [unknown_record("declared", spec, "declare what it trained on with lineage=FILE")]
    else:
        lineage = declared_lineage(lineage_file, spec)

    if spec.endswith(".onnx"):
        return _onnx_agent(spec, lineage)
    predict = _sb3_predict(spec) if spec.endswith(".zip") else _callable_predict(spec)

    def actor_for(env: EnvConfig, seed: int):
        def make(envs: MarketVecEnv):
            certain = np.zeros(envs.num_envs)
            return lambda obs, step, starts: (np.asarray(predict(obs)).reshape(envs.num_envs, *envs.single_action_space.shape),
                                              certain)
        return make

    return Agent(spec, lineage, 1, lambda env: env, actor_for)


def _onnx_agent(path: str, lineage: list[dict]) -> Agent:
    """A policy exported by ``openclaw-export format=onnx``: its step (memory state carried from bar to bar)
    in ONNX Runtime, on the task's markets with the action interface its JSON (``PATH.json``) records."""
    spec_file = Path(f"{path}.json")
    if not Path(path).is_file() or not spec_file.is_file():
        raise ConfigError(f"agent: {path}: needs the .onnx file and the {spec_file.name} beside it "
                          "(openclaw-export format=onnx writes both)")
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("agent: an .onnx policy needs ONNX Runtime: pip install 'openclaw_rl[onnx]'") from None
    spec = json.loads(spec_file.read_text())
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def env_for(task_env: EnvConfig) -> EnvConfig:
        if spec["obs_dim"] != task_env.obs_dim:
            raise ConfigError(f"agent: {path} observes {spec['obs_dim']} features, the task gives {task_env.obs_dim}")
        if spec["continuous"]:
            return acting_as(task_env, path, True, task_env.actions, spec["actions"]["max_position"])
        return acting_as(task_env, path, False, spec["actions"]["levels"], task_env.max_position)

    def actor_for(env: EnvConfig, seed: int):
        def make(envs: MarketVecEnv):
            n = envs.num_envs
            state = np.zeros((1, n, spec["state_size"]), dtype=np.float32)
            certain = np.zeros(n)

            def act(obs, step, starts):
                nonlocal state
                action, _, _, state = session.run(None, {"obs": np.asarray(obs, dtype=np.float32), "state": state,
                                                         "episode_start": np.asarray(starts, dtype=np.float32)})
                return action, certain

            return act
        return make

    return Agent(path, lineage, 1, env_for, actor_for)


def declared_lineage(path: str, by: str) -> list[dict]:
    """The records a YAML file declares, each ``{seeds: [low, high]}`` (synthetic markets) or ``{data: {...}}``
    (``env.data`` keys of a price file: the bars of its ``split``, train by default), with an optional
    ``use``; ``[]`` declares that the agent touched no market."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"lineage: {path}: no such file")
    entries = yaml.safe_load(file.read_text())
    if not isinstance(entries, list):
        raise ConfigError(f"lineage: {path}: needs a list of records ({{seeds: [low, high]}} or {{data: {{path: ...}}}}), "
                          f"got {entries!r}")
    records = []
    for i, entry in enumerate(entries):
        extra = set(entry) - {"seeds", "data", "use"} if isinstance(entry, dict) else {"?"}
        if extra or ("seeds" in entry) == ("data" in entry):
            raise ConfigError(f"lineage: {path}: record {i + 1} needs exactly one of seeds: [low, high] or data: {{...}} "
                              f"(and optionally use), got {entry!r}")
        if "seeds" in entry:
            low, high = entry["seeds"]
            record = seeds_record(low, high)
        else:
            data = {"split": "train", **entry["data"]}
            record = touched(EnvConfig.from_mapping(market={"kind": "historical"}, data=data, prefix="lineage"), (0, 1))
        records.append({**record, "use": entry.get("use", "train"), "by": f"{by} (declared in {path})"})
    return records


def _callable_predict(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    target = import_target(spec, "agent", "module:callable or a Stable-Baselines3 .zip file")
    if hasattr(target, "predict"):
        return lambda obs: target.predict(obs, deterministic=True)[0]
    if not callable(target):
        raise ConfigError(f"agent: {spec} is neither callable nor has predict()")
    return target


def _sb3_predict(path: str) -> Callable[[np.ndarray], np.ndarray]:
    if not Path(path).is_file():
        raise ConfigError(f"agent: {path}: no such file")
    try:
        import stable_baselines3
    except ImportError:
        raise ConfigError("agent: a .zip model needs Stable-Baselines3: pip install 'openclaw_rl[sb3]'") from None
    for name in SB3_ALGORITHMS:
        try:
            model = getattr(stable_baselines3, name).load(path, device="cpu")
        except Exception:  # another algorithm's file: try the next  # noqa: BLE001
            continue
        return lambda obs: model.predict(obs, deterministic=True)[0]
    raise ConfigError(f"agent: {path}: not a model of {', '.join(SB3_ALGORITHMS)} (Stable-Baselines3)")


def _random_actor(env: EnvConfig, seed: int):
    def make(envs: MarketVecEnv):
        rng = np.random.default_rng(seed)
        n, levels = envs.num_envs, len(env.actions)
        logp = np.full(n, -np.log(levels))
        return lambda obs, step, starts: (rng.integers(levels, size=n), logp)

    return make


def designs_tried(checkpoint: Path) -> int:
    """How many designs an ALMA sweep tried before this checkpoint's (1 outside a sweep): the
    finished search trials (not the holdout reruns of designs already counted) in the ``archive.sqlite``
    of the sweep dir that holds its run dir
    (``<sweep>/trial_NNNN/task_K/checkpoints/last.pt``)."""
    for folder in Path(checkpoint).resolve().parents[:4]:
        archive = folder / "archive.sqlite"
        if archive.is_file():
            with sqlite3.connect(f"file:{archive}?mode=ro", uri=True) as db:
                (count,) = db.execute("SELECT COUNT(*) FROM trials WHERE status = 'finished' AND kind = 'search'").fetchone()
            return max(int(count), 1)
    return 1
