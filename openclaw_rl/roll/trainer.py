"""A training run: rollouts, updates, TensorBoard, checkpoints, exact resume, evaluation."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from openclaw_rl.rock import MarketVecEnv
from openclaw_rl.roll.checkpoint import (
    CheckpointError, checkpoint_path, find_checkpoint, load_checkpoint, load_policy_weights, save_checkpoint,
)
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.evaluate import EVAL_SEED_BASE, evaluate
from openclaw_rl.roll.learner import Learner
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.resample import TeacherReplay, fork_scan, markets_at_start
from openclaw_rl.roll.rollout import Collector

log = logging.getLogger("openclaw_rl.train")
TRAIN_SEED_STRIDE = 100_000  # run seed s seeds its training markets s * stride + i // group_size


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device=cuda but no CUDA device is available; use trainer.device=auto or cpu")
    return torch.device(name)


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


def build(config: RunConfig, device: torch.device) -> tuple[MarketVecEnv, ActorCritic, Collector, Learner]:
    envs = MarketVecEnv(config=config.env)
    policy = ActorCritic.for_env(config.env, config.policy).to(device)
    n, group_size = config.env.n_envs, config.trainer.group_size
    group = np.arange(n) // group_size
    seeds = config.seed * TRAIN_SEED_STRIDE + group
    assert seeds.max() < EVAL_SEED_BASE, "training seeds must stay below the held-out range"
    teacher = TeacherReplay(config.resample, envs.engine, config.seed, policy, device) if config.resample.teacher else None
    collector = Collector(envs, policy, device, seeds, group, config.algo.reward_scale, teacher)
    learner = Learner(policy, config.algo, config.ipa, config.seed, config.resample)
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


def train(config: RunConfig, run_dir: Path) -> float:
    """Train with ``config`` under ``run_dir``; return the objective (for Hydra sweepers)."""
    return run_training(config, run_dir).objective


def run_training(config: RunConfig, run_dir: Path) -> TrainResult:
    """Train with ``config``; write TensorBoard events and checkpoints under ``run_dir``."""
    device = resolve_device(config.trainer.device)
    torch.manual_seed(config.seed)
    if config.trainer.stage != "rl":
        from openclaw_rl.roll.sft import run_pipeline, run_sft

        if config.trainer.stage == "sft_rl":
            return run_pipeline(config, Path(run_dir), device)
        return run_sft(config, Path(run_dir), device)
    resume_from, run_dir = find_resume(config.trainer.resume, Path(run_dir))
    envs, policy, collector, learner = build(config, device)
    update, global_step = 0, 0
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        if state["config"] != config.design():
            raise CheckpointError(f"{resume_from}: was written by a run with a different configuration; "
                                  "resume with the same overrides (trainer.* may differ)")
        load_policy_weights(policy, state["policy"], resume_from)
        learner.load_state_dict(state["learner"])
        collector.load_state_dict(state["collector"])
        torch.set_rng_state(state["torch_rng"])
        update, global_step = state["update"], state["global_step"]
        log.info("resumed from %s at update %d (step %d)", resume_from, update, global_step)
    elif config.trainer.init_from is not None:
        source = find_checkpoint(config.trainer.init_from)
        load_policy_weights(policy, load_checkpoint(source)["policy"], source)
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=global_step if resume_from is not None else None)
    num_updates = config.num_updates
    # The fork scans' markets: fixed training-range seeds, built once.
    scan_markets = markets_at_start(config.env, scan_seeds(config)) if config.resample.scan_every else None
    progress = _progress(config.trainer.progress, num_updates, update)
    history = []
    try:
        while update < num_updates:
            start = time.perf_counter()
            batch, episodes = collector.collect(config.trainer.rollout_steps, version=update)
            stats = learner.update(batch, update, num_updates)
            update += 1
            global_step += config.batch_steps
            stats["charts/SPS"] = config.batch_steps / (time.perf_counter() - start)
            for key, values in episodes.items():
                if values:
                    stats[f"charts/{key}"] = float(np.mean(values))
            if collector.teacher is not None:
                stats.update(collector.teacher.end_rollout())
            if config.resample.scan_every and update % config.resample.scan_every == 0:
                scan = fork_scan(policy, collector.teacher.strategy, config.env, config.resample, scan_markets, device)
                stats.update(scan.stats(config.env.episode_bars))
            if config.eval.every and update % config.eval.every == 0:
                metrics = evaluate(policy, config.env, config.eval.n_envs, device, config.eval.deterministic)
                stats.update({f"eval/{key}": value for key, value in metrics.items()})
                # Intermediate reports for sweepers (pruning), one JSON line per evaluation.
                with open(run_dir / "reports.jsonl", "a") as reports:
                    reports.write(json.dumps({"update": update, "step": global_step,
                                              "objective": metrics[config.eval.objective]}) + "\n")
            if update % config.trainer.log_every == 0 or update == num_updates:
                for key, value in stats.items():
                    writer.add_scalar(key, value, global_step)
            history.append(stats)
            _report(progress, update, num_updates, global_step, stats)
            if update % config.trainer.checkpoint_every == 0 or update == num_updates:
                save_checkpoint(checkpoint_path(run_dir), {
                    "config": config.design(), "policy": policy.state_dict(),
                    "learner": learner.state_dict(), "collector": collector.state_dict(),
                    "torch_rng": torch.get_rng_state(), "update": update, "global_step": global_step,
                })
        metrics = evaluate(policy, config.env, config.eval.n_envs, device, config.eval.deterministic)
        for key, value in metrics.items():
            writer.add_scalar(f"eval/{key}", value, global_step)
        objective = metrics[config.eval.objective]
        writer.add_hparams(_hparams(config), {"hparam/objective": objective, **{f"hparam/{k}": v for k, v in metrics.items()}},
                           run_name="hparams", global_step=global_step)
        log.info("eval on %d held-out markets: %s -> objective %s = %.6f", config.eval.n_envs,
                 ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), config.eval.objective, objective)
        return TrainResult(objective, metrics, history, run_dir)
    finally:
        writer.close()
        if progress is not None:
            progress.close()
        envs.close()


def _hparams(config: RunConfig) -> dict:
    flat = {}
    for section in ("algo", "ipa", "trainer"):
        for key, value in dataclasses.asdict(getattr(config, section)).items():
            if isinstance(value, (int, float, str, bool)):
                flat[f"{section}.{key}"] = value
    flat.update({"env.regime": str(config.env.regime), "env.reward": config.env.reward,
                 "env.market": config.env.market["kind"], "env.n_envs": config.env.n_envs, "seed": config.seed})
    return flat


def _progress(mode: str, total: int, initial: int):
    if mode == "log" or (mode == "auto" and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="update", dynamic_ncols=True)


def _report(progress, update: int, total: int, step: int, stats: dict) -> None:
    ret = stats.get("charts/episodic_log_return")
    summary = f"SPS {stats['charts/SPS']:,.0f}" + (f", episode log return {ret:+.4f}" if ret is not None else "")
    if progress is not None:
        progress.set_postfix_str(summary)
        progress.update(1)
    else:
        log.info("update %d/%d, step %d, %s", update, total, step, summary)
