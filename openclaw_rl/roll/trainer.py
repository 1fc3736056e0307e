"""A training run of ``trainer.stage=rl``: rollouts, updates, TensorBoard, checkpoints, exact
resume, evaluation. ``roll.pipeline.run`` is the front door that runs every stage."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from openclaw_rl.memory.designs import read_settings
from openclaw_rl.progress import Progress
from openclaw_rl.rock import ConfigError, MarketVecEnv
from openclaw_rl.rock.vector import make_vec_env
from openclaw_rl.roll.allocator import keep_freed_memory
from openclaw_rl.roll.checkpoint import (
    CheckpointError, checkpoint_path, find_checkpoint, load_checkpoint, load_policy_weights, save_checkpoint,
)
from openclaw_rl.roll.config import TRAIN_SEED_STRIDE, RunConfig, design_differences
from openclaw_rl.roll.cores import CORES, FIRST_READING, OtherLoad, free_threads
from openclaw_rl.roll.evaluate import EVAL_SEED_BASE, evaluate, validation_env
from openclaw_rl.roll.learner import Learner
from openclaw_rl.roll.policy import ActorCritic, torch_threads
from openclaw_rl.roll.lineage import run_lineage, stored_lineage, union
from openclaw_rl.roll.memory_eval import memory_report
from openclaw_rl.roll.resample import TeacherReplay, fork_scan, markets_at_start
from openclaw_rl.roll.rollout import Collector
from openclaw_rl.roll.run_dir import claim, hparams, open_writer, write_hparams
from openclaw_rl.roll.workers import RolloutPool

log = logging.getLogger("openclaw_rl.train")
BAR = {"auto": None, "bar": True, "log": False}  # trainer.progress -> Progress(bar=...)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda: no CUDA device is available here; use trainer.device=auto or cpu")
    return torch.device(name)


def resolve_threads(spec: str | int, device: torch.device,
                    load: OtherLoad | None = None) -> tuple[int, OtherLoad | None]:
    """Torch's CPU threads for a run, and the machine's reading that goes on choosing them (``auto`` on the
    CPU: ``roll/cores.py``, from ``load``, begun while the run was built; one thread on a GPU, where the
    CPU only steps the envs)."""
    if str(spec) != "auto":
        return int(spec), None  # RunConfig.validate checked it
    if device.type == "cuda":
        return 1, None
    if load is None or load.age() < FIRST_READING:  # too short a reading to trust: one thread, the safe side,
        return 1, load or OtherLoad()              # until the first update's reading
    return free_threads(load.read()), load


def follow_load(load: OtherLoad | None, compiled_now: bool = False) -> None:
    """After an update: as many threads as cores the other processes left free during it (``auto``). An update
    that compiled (``trainer.compile``) keeps the count: its compiler's worker processes are no other load, and
    torch compiles again for each new count."""
    if load is None:
        return
    others = load.read()
    if compiled_now:
        return
    threads = free_threads(others)
    if threads != torch.get_num_threads():  # charts/torch_threads shows every update's
        log.debug("torch threads: %d -> %d (other processes kept %.1f of %d cores busy)", torch.get_num_threads(),
                  threads, others, CORES)
        torch.set_num_threads(threads)


def find_resume(resume: str | None, run_dir: Path) -> tuple[Path | None, Path]:
    """The checkpoint to resume from and the run dir to continue writing in."""
    if resume is None:
        return None, run_dir
    if resume == "auto":
        path = checkpoint_path(run_dir)
        return (path if path.is_file() else None), run_dir
    path = find_checkpoint(resume)
    if not path.is_file():
        raise CheckpointError(f"trainer.resume={resume}: no checkpoint at {path}")
    return path, path.parent.parent


def build(config: RunConfig, device: torch.device) -> tuple[MarketVecEnv | None, ActorCritic, Collector | RolloutPool,
                                                            Learner]:
    """The run's parts. With ``trainer.workers > 1`` or ``backend != local`` the rollouts come from a
    ``RolloutPool`` (the envs live in its workers: ``envs`` is ``None``), else from a ``Collector`` here."""
    policy = ActorCritic.for_env(config.env, config.policy).to(device)
    learner = Learner(policy, config.algo, config.ipa, config.seed, config.resample, config.trainer.compile)
    if config.trainer.workers > 1 or config.trainer.backend != "local":
        return None, policy, RolloutPool(config, policy, device), learner
    envs = make_vec_env(config.env)
    seeds, group = config.train_markets(np.arange(config.env.n_envs))
    teacher = TeacherReplay(config.resample, envs.engine, config.seed, policy, device) if config.resample.teacher else None
    collector = Collector(envs, policy, device, seeds, group, config.algo.reward_scale, teacher)
    return envs, policy, collector, learner


def scan_seeds(config: RunConfig) -> np.ndarray:
    """Training-range markets for crucial-fork scans, apart from the collector's."""
    return config.seed * TRAIN_SEED_STRIDE + TRAIN_SEED_STRIDE // 2 + np.arange(config.resample.scan_markets)


@dataclass
class TrainResult:
    objective: float  # config.eval.objective on the held-out markets
    metrics: dict[str, float]  # every held-out metric
    history: list[dict[str, float]]  # the logged scalars of each update of this process
    run_dir: Path


def run_training(config: RunConfig, run_dir: Path) -> TrainResult:
    """Train with ``config`` (``trainer.stage=rl``); write TensorBoard events and checkpoints under ``run_dir``."""
    trainer = config.trainer
    if trainer.stage != "rl":
        raise ConfigError(f"trainer.stage={trainer.stage}: run_training trains the rl stage; "
                          "openclaw_rl.roll.pipeline.run runs every stage")
    device = resolve_device(trainer.device)
    resume_from, run_dir = find_resume(trainer.resume, Path(run_dir))
    lineage = run_lineage(config, run_dir)
    claim(run_dir, resume_from is not None, trainer.resume, trainer.overwrite)
    log.info("run dir: %s", run_dir)
    if config.env.market["kind"] == "historical" and config.env.data.split != "train":
        log.warning("env.data.split=%s: the run trains on bars beyond the train split (its validation objective is "
                    "in-sample; the benchmark refuses it on any split it trained on)", config.env.data.split)
    torch.manual_seed(config.seed)
    keep_freed_memory()  # the updates' activations reuse their pages (roll/allocator.py)
    load = OtherLoad()  # the machine's load while the run is built chooses trainer.threads=auto
    _, policy, collector, learner = build(config, device)
    threads, load = resolve_threads(trainer.threads, device, load)
    try:
        with torch_threads(threads):
            return _train(config, run_dir, device, resume_from, policy, collector, learner, lineage, load)
    finally:
        collector.close()


def _train(config: RunConfig, run_dir: Path, device: torch.device, resume_from: Path | None, policy: ActorCritic,
           collector: Collector | RolloutPool, learner: Learner, lineage: list[dict],
           load: OtherLoad | None = None) -> TrainResult:
    started = time.time()
    update, global_step, logged = 0, 0, None
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        if state.get("stage") == "sft":
            raise CheckpointError(f"{resume_from}: an SFT checkpoint; start RL from its weights with "
                                  f"trainer.init_from={resume_from.parent.parent}")
        stored = RunConfig.from_design(state["config"], str(resume_from)).design()  # an older version's, upgraded
        if stored != config.design():
            raise CheckpointError(f"{resume_from}: was written by a run with a different configuration "
                                  f"({'; '.join(design_differences(stored, config.design())[:3])}); "
                                  "resume with the same overrides (trainer.* may differ)")
        load_policy_weights(policy, state["policy"], resume_from)
        learner.load_state_dict(state["learner"])
        collector.load_state_dict(state["collector"])
        torch.set_rng_state(state["torch_rng"])
        update, global_step, logged = state["update"], state["global_step"], state.get("logged")
        lineage = union(stored_lineage(state, resume_from, "resume"), lineage)
        log.info("resumed from %s at update %d (step %d)", resume_from, update, global_step)
    elif config.trainer.init_from is not None:
        source = find_checkpoint(config.trainer.init_from)
        state = load_checkpoint(source)
        stored = read_settings({"name": "none", **state["config"].get("policy", {}).get("memory", {})})
        memory = read_settings(dataclasses.asdict(config.policy.memory))
        if stored != memory:  # keys a design does not read (the chunker of none) may differ
            raise CheckpointError(f"trainer.init_from={config.trainer.init_from}: its policy has another memory design "
                                  f"({'; '.join(design_differences(stored, memory, 'policy.memory.'))}); "
                                  "start from a checkpoint of the same policy.memory")
        load_policy_weights(policy, state["policy"], source)
    num_updates = config.num_updates
    if config.trainer.total_steps % config.batch_steps:
        log.warning("trainer.total_steps=%d is not a multiple of one rollout (%d steps): training %d",
                    config.trainer.total_steps, config.batch_steps, num_updates * config.batch_steps)
    log.info("torch threads: %d (trainer.threads=%s)", torch.get_num_threads(), config.trainer.threads)
    writer = open_writer(run_dir, global_step if resume_from is not None else None, logged)
    # The fork scans' markets: fixed training-range seeds, built once.
    scan_markets = markets_at_start(config.env, scan_seeds(config)) if config.resample.scan_every else None
    progress = Progress(num_updates, "update", log, initial=update, bar=BAR[config.trainer.progress])
    history = []
    first = update  # this process's first update (trainer.compile: the one that compiles)
    try:
        while update < num_updates:
            start = time.perf_counter()
            batch, episodes = collector.collect(config.trainer.rollout_steps, version=update)
            stats = learner.update(batch, update, num_updates)
            stats["charts/torch_threads"] = torch.get_num_threads()  # this update's (trainer.threads=auto varies it)
            follow_load(load, compiled_now=config.trainer.compile and update == first)
            update += 1
            global_step += config.batch_steps
            stats["charts/SPS"] = config.batch_steps / (time.perf_counter() - start)
            for key, values in episodes.items():
                if values:
                    stats[f"charts/{key}"] = float(np.mean(values))
            if collector.teacher is not None:
                stats.update(collector.teacher.end_rollout())
            if isinstance(collector, RolloutPool):
                stats.update(collector.stats)
            if config.resample.scan_every and update % config.resample.scan_every == 0:
                scan = fork_scan(policy, collector.teacher.strategy, config.env, config.resample, scan_markets, device)
                stats.update(scan.stats(config.env.episode_bars))
            if config.eval.every and update % config.eval.every == 0:
                metrics = held_out(config, policy, device, collector)
                stats.update({f"eval/{key}": value for key, value in metrics.items()})
                # Intermediate reports for sweepers (pruning), one JSON line per evaluation.
                with open(run_dir / "reports.jsonl", "a") as reports:
                    reports.write(json.dumps({"update": update, "step": global_step,
                                              "objective": metrics[config.eval.objective]}) + "\n")
            logged = stats if update % config.trainer.log_every == 0 or update == num_updates else {}
            for key, value in logged.items():
                writer.add_scalar(key, value, global_step)
            history.append(stats)
            progress.update(_summary(global_step, stats))
            if update % config.trainer.checkpoint_every == 0 or update == num_updates:
                writer.flush()  # what was logged up to the checkpoint survives a kill
                save_checkpoint(checkpoint_path(run_dir), {
                    "config": config.design(), "policy": policy.state_dict(),
                    "learner": learner.state_dict(), "collector": collector.state_dict(),
                    "torch_rng": torch.get_rng_state(), "update": update, "global_step": global_step,
                    "logged": logged,  # this step's scalars, logged again by a resumed run (see open_writer)
                    "lineage": lineage,
                })
        progress.close()
        return final_evaluation(config, policy, device, writer, global_step, started, history, run_dir, logged or {},
                                collector)
    finally:
        writer.close()
        progress.close()


def held_out(config: RunConfig, policy: ActorCritic, device: torch.device,
             collector: Collector | RolloutPool | None) -> dict[str, float]:
    """The policy's held-out metrics: with rollout workers (a ``RolloutPool``) in its evaluation sandbox, with
    their isolation and retries (a user's env that fails there does not end the run), else in this process."""
    if isinstance(collector, RolloutPool):
        return collector.evaluate()
    return evaluate(policy, config.env, config.eval.n_envs, device, config.eval.deterministic)


def final_evaluation(config: RunConfig, policy: ActorCritic, device: torch.device, writer, step: int, started: float,
                     history: list[dict[str, float]], run_dir: Path, logged: dict[str, float],
                     collector: Collector | RolloutPool | None = None) -> TrainResult:
    """The end of a stage: held-out evaluation (``held_out``), its scalars (unless ``logged`` at this step already,
    as with ``eval.every``) and the run's HParams entry in TensorBoard, a log line, the result."""
    metrics = held_out(config, policy, device, collector)
    for key, value in metrics.items():
        if f"eval/{key}" not in logged:
            writer.add_scalar(f"eval/{key}", value, step)
    objective = metrics[config.eval.objective]
    if policy.memory.state_size and config.env.gym_id is None:  # the probes read market quantities
        log_memory_report(writer, memory_report(policy, validation_env(config.env, config.eval.n_envs), EVAL_SEED_BASE, device),
                          step)
    write_hparams(writer, hparams(dataclasses.asdict(config)),
                  {"hparam/objective": objective, **{f"hparam/{k}": v for k, v in metrics.items()}}, step, started)
    log.info("%s: eval on %d validation markets: %s -> objective %s = %.6f", config.trainer.stage, config.eval.n_envs,
             ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), config.eval.objective, objective)
    return TrainResult(objective, metrics, history, run_dir)


def log_memory_report(writer, report: dict, step: int) -> None:
    """``memory/probe/*`` at the run's last step, and ``memory/by_chunk/*`` against the chunk index (the
    first index of each bucket) instead of the step: does a probe decay as the memory fills?"""
    for key, value in report.get("overall", {}).items():
        if value is not None:
            writer.add_scalar(f"memory/probe/{key}", value, step)
    for bucket, row in report["buckets"].items():
        for key, value in row.items():
            if value is not None and key != "points":
                writer.add_scalar(f"memory/by_chunk/{key}", value, int(bucket.rstrip("+").split("-")[0]))


def _summary(step: int, stats: dict) -> str:
    ret = stats.get("charts/episodic_log_return")
    return f"step {step}, SPS {stats['charts/SPS']:,.0f}" + (f", episode log return {ret:+.4f}" if ret is not None else "")
