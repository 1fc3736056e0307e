"""Configuration of a training run, validated in full before anything runs."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from openclaw_rl.ipa.chunks import CHUNKERS
from openclaw_rl.rock.config import ConfigError, EnvConfig, typed
from openclaw_rl.rock.faults import FaultConfig
from openclaw_rl.rock.sandbox import BACKENDS
from openclaw_rl.rock.splits import seed_range
from openclaw_rl.roll.policy import ACTIVATIONS, PolicyConfig
from openclaw_rl.strategies.v7 import STRATEGIES

ALGOS = ("ipa", "ppo", "grpo", "reinforce")
# What an algorithm sets when its config leaves the key null: its defining defaults, in one place.
# IPA's: the variant bench/ipa.py chose on validation (bench/PROTOCOL.md, rounds 1-5; the paper's own config is
# ipa.discount=chunk ipa.baseline=none algo.norm_adv=false algo.clip_vloss=true algo.grad_clip=global algo.value_loss=mse).
ALGO_DEFAULTS = {
    "ipa": {"norm_adv": True, "update_epochs": 4, "clip_vloss": False, "grad_clip": "separate", "value_loss": "huber"},
    "ppo": {"norm_adv": True, "update_epochs": 4, "clip_vloss": True, "grad_clip": "global",  # CleanRL's details
            "value_loss": "mse"},
    "grpo": {"norm_adv": False, "update_epochs": 4, "clip_vloss": True, "grad_clip": "global",  # group-normalized
             "value_loss": "mse"},
    "reinforce": {"norm_adv": True, "update_epochs": 1, "clip_vloss": True, "grad_clip": "global",  # one pass
                  "value_loss": "mse"},
}
BASELINES = ("none", "value", "group", "gae")
DISCOUNTS = ("time", "chunk")
VALUE_TARGETS = ("chunk", "step")
VALUE_LOSSES = ("mse", "huber")
GRAD_CLIPS = ("global", "separate")
OBJECTIVES = ("log_return", "excess_log_return", "sharpe", "episodic_return")
DEVICES = ("auto", "cpu", "cuda")
PROGRESS = ("auto", "bar", "log")
STAGES = ("rl", "sft", "sft_rl")
COLLECTIONS = ("sync", "async")
RESAMPLE_MODES = ("parallel", "sequential", "fork")
TRAIN_SEED_STRIDE = 100_000  # run seed s seeds its training markets from s * stride (rock/splits.py: below 2**40)


@dataclass
class AlgoConfig:
    """The learner. ``algo=ipa|ppo|grpo|reinforce`` sets ``name``; keys left null take the
    algorithm's own default (``ALGO_DEFAULTS``), whichever way the config was built."""

    name: str = "ipa"
    reward_scale: float = 100.0  # rewards are log returns (~1e-3 a bar); x100 puts them in percent
    lr: float = 3e-4
    anneal_lr: bool = True  # linear decay to 0 over the run
    update_epochs: int | None = None  # passes over each batch; null: the algo's (reinforce 1, others 4)
    num_minibatches: int = 4  # minibatches are groups of env columns (whole chunks, whole sequences)
    gamma: float = 0.99  # per step (ipa.discount=chunk: per chunk)
    gae_lambda: float = 0.95  # ppo's GAE; ipa.baseline=gae: per chunk
    clip_coef: float = 0.2
    clip_vloss: bool | None = None  # clip the value loss around the old values by clip_coef; null: the algo's
    # the critic's loss per step: mse (half the squared error: CleanRL, SB3) | huber (squared within huber_delta,
    # linear beyond: an outlier target moves the critic at most huber_delta per unit gradient); null: the algo's
    # (ipa: huber, the others: mse)
    value_loss: str | None = None
    huber_delta: float = 1.0  # in reward units (after reward_scale)
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    # global: one norm over all weights (CleanRL, SB3) | separate: the critic's own weights (critic_trunk, critic_head)
    # and the rest each clipped to max_grad_norm, so the value loss's gradient does not shrink the actor's step;
    # null: the algo's (ipa: separate, the others: global)
    grad_clip: str | None = None
    norm_adv: bool | None = None  # whiten advantages per minibatch; null: the algo's (ppo, reinforce: true)
    target_kl: float | None = None  # stop the epochs of an update once approx_kl exceeds it

    def with_defaults(self) -> "AlgoConfig":
        """This config with the null keys set to the algorithm's defaults."""
        preset = ALGO_DEFAULTS.get(self.name, {})
        return dataclasses.replace(self, **{k: v for k, v in preset.items() if getattr(self, k) is None})


@dataclass
class IPAConfig:
    chunker: str = "trade"
    fixed_k: int = 8  # chunk length of the ``fixed`` chunker
    mismatch_high: float = 2.0  # drop chunks whose geometric-mean pi_old / mu exceeds this
    # none (the paper) | value (the critic at the chunk's start) | group (mean over same-seed markets) |
    # gae (a chunk critic: GAE over chunks, delta_k = R_k + gamma^tau V(s_k+1) - V(s_k), lambda = algo.gae_lambda)
    baseline: str = "gae"
    discount: str = "time"  # time: a chunk of tau steps is discounted by gamma^tau (semi-MDP) | chunk: by gamma
    # the critic's target: chunk (the lambda-return of the chunk critic: inside a chunk its Monte Carlo rest) |
    # step (PPO's: lambda = algo.gae_lambda at every step, lower variance; the advantages are the baseline's either way)
    value_target: str = "chunk"
    topr_split: str = "trajectory"  # Eq. 9's no-ratio branch: trajectory (its return > 0: the paper, ROLL) | advantage (step's > 0)
    mismatch_low: float = 0.0  # ROLL's two-sided filter: also drop chunks whose geometric-mean pi_old / mu is below this


@dataclass
class SFTConfig:
    datasets: list[str] | None = None  # dataset dirs to clone, e.g. [runs/data/trend, runs/data/revert]
    weights: list[float] | None = None  # their shares of the mix, in order (null: equal)
    updates: int = 200  # gradient steps
    batch_trajectories: int = 32  # whole trajectories per step (observations replayed)

    def mix(self) -> dict[str, float]:
        """Dataset dir -> weight in the mix."""
        datasets = list(self.datasets or ())
        return dict(zip(datasets, self.weights if self.weights is not None else [1.0] * len(datasets)))


@dataclass
class ResampleConfig:
    """Chunk-level initialized resampling: episodes start from a teacher's prefix (off when no teacher)."""

    teacher: str | None = None  # a V7 strategy whose trajectory prefixes the policy continues
    mode: str = "parallel"  # parallel: any teacher chunk | sequential: rollback from the end | fork: the crucial fork
    lambda_il: float = 1.0  # weight of imitation (teacher actions on the replayed prefix)
    lambda_rl: float = 1.0  # weight of the RL loss on the resampled chunks
    success: float = 0.0  # an episode succeeds when its return (env reward units) exceeds this
    advance_at: float = 0.5  # sequential: roll the anchor back one chunk once this share of its episodes succeed
    fork_gap: float = 0.25  # crucial fork: success from after a chunk minus from before it, at least this
    scan_every: int = 0  # updates between crucial-fork scans (0: never)
    scan_markets: int = 16  # teacher trajectories per logged scan (mode=fork scans every new episode)
    scan_samples: int = 8  # policy continuations per anchor
    scan_anchors: int = 8  # anchors per teacher trajectory (evenly spaced over its chunks)


@dataclass
class TrainerConfig:
    stage: str = "rl"  # rl | sft (behaviour cloning on sft.datasets) | sft_rl (sft, then rl from it)
    total_steps: int = 500_000  # env steps over all envs, rounded up to whole rollouts (rollout_steps * n_envs)
    rollout_steps: int = 128  # steps per env per update
    group_size: int = 1  # envs that share a market seed (grpo, ipa.baseline=group)
    device: str = "auto"
    checkpoint_every: int = 10  # updates; the last checkpoint is replaced atomically
    log_every: int = 1  # updates between TensorBoard points
    progress: str = "auto"  # auto: a bar on a terminal, log lines otherwise
    resume: str | None = None  # auto (continue this run dir's run) | a checkpoint or run dir
    init_from: str | None = None  # start from these policy weights (e.g. an SFT checkpoint)
    overwrite: bool = False  # delete this run dir's checkpoints, events and reports and start clean (else a used run dir is refused)
    # torch CPU threads: a positive integer, or auto: 1 on a GPU; on the CPU the cores other processes leave
    # free, read before the first update and after each (roll/cores.py, bench/results/threads.md)
    threads: str = "auto"
    # torch.compile the learner's pass over each minibatch (the policy's forward, log-probs, entropy): faster
    # updates once compiled (a one-off cost, shorter from inductor's cache); pays on long runs (bench/train_sps.py)
    compile: bool = False
    # Rollout workers (roll/workers.py): each owns env.n_envs / workers markets (whole groups) and a copy of
    # the policy. workers=1 with backend=local is the collector in this process (no pool).
    workers: int = 1
    # auto: local for one sync worker, process otherwise | local (in this process) | process (a spawned process each) |
    # ray (an actor each)
    backend: str = "auto"
    collection: str = "sync"  # sync: each update waits for every worker | async: the first rollouts done, mu lags pi_old
    max_policy_lag: int = 2  # async: a rollout acted by a policy more updates old than this is collected again
    broadcast_every: int = 1  # updates between weight broadcasts to the workers (>1: mu lags even when sync)
    worker_timeout: float = 600.0  # seconds one worker call (a rollout, an evaluation) may take, start-up not counted; then it is killed and restarted
    worker_retries: int = 100  # failed attempts in a row at one worker's rollout before the run stops (3 identical: at once)
    ray_address: str | None = None  # backend=ray: a cluster (host:port, ray://host:port, auto); null: a local Ray
    faults: FaultConfig = field(default_factory=FaultConfig)  # injected worker failures (testing a setup)


@dataclass
class EvalConfig:
    n_envs: int = 64  # held-out markets, one episode each
    objective: str = "log_return"
    deterministic: bool = True
    every: int = 0  # updates between evaluations during training (0: only at the end)


@dataclass
class RunConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    ipa: IPAConfig = field(default_factory=IPAConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    seed: int = 0

    def __post_init__(self):
        self.algo = self.algo.with_defaults()
        memory = self.policy.memory  # PAOM's chunks are the learner's unless set
        memory.chunker = self.ipa.chunker if memory.chunker is None else memory.chunker
        memory.fixed_k = self.ipa.fixed_k if memory.fixed_k is None else memory.fixed_k
        trainer = self.trainer  # workers beside the learner unless told otherwise
        if trainer.backend == "auto":
            trainer.backend = "process" if trainer.workers > 1 or trainer.collection == "async" else "local"

    @property
    def batch_steps(self) -> int:
        return self.trainer.rollout_steps * self.env.n_envs

    def train_markets(self, columns):
        """The training market seeds and the group ids of env ``columns`` (an int array): envs of a group
        share a seed (``validate`` keeps the seeds in the train range)."""
        group = columns // self.trainer.group_size
        return self.seed * TRAIN_SEED_STRIDE + group, group

    @property
    def num_updates(self) -> int:
        return -(-self.trainer.total_steps // self.batch_steps)  # whole rollouts, rounded up

    def design(self) -> dict:
        """What a run is, as plain data: everything but trainer.* and eval.*, which a resumed run
        may change (how long it goes on, how it is evaluated). Stored in every checkpoint."""
        values = dataclasses.asdict(self)
        values.pop("trainer")
        values.pop("eval")
        return json.loads(json.dumps(values))  # tuples -> lists, as a checkpoint stores them

    @classmethod
    def from_design(cls, design: Mapping[str, Any], source: str) -> "RunConfig":
        """The config of a checkpoint's stored design (``source`` names it in errors). Designs written
        before memory designs (``policy.recurrent``, ``policy.gru_hidden``) load when they had none; those
        written before ``algo.value_loss`` trained on the squared error."""
        design = json.loads(json.dumps(design))
        design.setdefault("algo", {}).setdefault("value_loss", "mse")
        policy = design.get("policy", {})
        if policy.pop("recurrent", False):
            raise ConfigError(f"{source}: policy.recurrent=true was replaced by policy/memory=gru, whose GRU reads the "
                              "observation (not the trunk's output); retrain the policy")
        policy.pop("gru_hidden", None)
        return typed(cls, design, "")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "RunConfig":
        """A checked ``RunConfig`` from plain data (a composed Hydra config, a dict, a checkpoint's design)."""
        config = typed(cls, values, "")
        config.env.validate()
        config.validate()
        return config

    def validate(self) -> None:
        a, t, e = self.algo, self.trainer, self.eval

        def need(ok: bool, key: str, message: str):
            if not ok:
                raise ConfigError(f"{key}: {message}")

        max_seed = seed_range("train")[1] // TRAIN_SEED_STRIDE - 1  # training markets stay in the train seed range
        need(isinstance(self.seed, int) and 0 <= self.seed <= max_seed, "seed",
             f"must be an integer in [0, {max_seed}], got {self.seed!r}")
        need(self.env.data.split in ("train", "validation", "all"), "env.data.split",
             f"training reads the train split (or validation, all); the test split is the benchmark's, got {self.env.data.split!r}")
        need(a.name in ALGOS, "algo.name", f"unknown algo {a.name!r}; allowed: {', '.join(ALGOS)}")
        need(self.ipa.chunker in CHUNKERS, "ipa.chunker", f"unknown chunker {self.ipa.chunker!r}; allowed: {', '.join(CHUNKERS)}")
        need(self.ipa.baseline in BASELINES, "ipa.baseline", f"unknown baseline {self.ipa.baseline!r}; allowed: {', '.join(BASELINES)}")
        need(self.ipa.discount in DISCOUNTS, "ipa.discount",
             f"unknown discount {self.ipa.discount!r}; allowed: {', '.join(DISCOUNTS)}")
        need(self.ipa.value_target in VALUE_TARGETS, "ipa.value_target",
             f"unknown value target {self.ipa.value_target!r}; allowed: {', '.join(VALUE_TARGETS)}")
        need(a.value_loss in VALUE_LOSSES, "algo.value_loss",
             f"unknown value loss {a.value_loss!r}; allowed: {', '.join(VALUE_LOSSES)}")
        need(a.grad_clip in GRAD_CLIPS, "algo.grad_clip", f"unknown clipping {a.grad_clip!r}; allowed: {', '.join(GRAD_CLIPS)}")
        need(self.ipa.fixed_k >= 1, "ipa.fixed_k", f"must be >= 1, got {self.ipa.fixed_k}")
        need(self.ipa.mismatch_high > 0, "ipa.mismatch_high", f"must be > 0, got {self.ipa.mismatch_high}")
        need(self.ipa.topr_split in ("trajectory", "advantage"), "ipa.topr_split",
             f"unknown split {self.ipa.topr_split!r}; allowed: trajectory, advantage")
        need(0 <= self.ipa.mismatch_low < self.ipa.mismatch_high, "ipa.mismatch_low",
             f"must be in [0, ipa.mismatch_high={self.ipa.mismatch_high}), got {self.ipa.mismatch_low}")
        need(a.lr > 0, "algo.lr", f"must be > 0, got {a.lr}")
        need(a.reward_scale > 0, "algo.reward_scale", f"must be > 0, got {a.reward_scale}")
        need(0 < a.gamma <= 1, "algo.gamma", f"must be in (0, 1], got {a.gamma}")
        need(0 <= a.gae_lambda <= 1, "algo.gae_lambda", f"must be in [0, 1], got {a.gae_lambda}")
        for key in ("clip_coef", "max_grad_norm", "huber_delta"):
            need(getattr(a, key) > 0, f"algo.{key}", f"must be > 0, got {getattr(a, key)}")
        for key in ("vf_coef", "ent_coef"):
            need(getattr(a, key) >= 0, f"algo.{key}", f"must be >= 0, got {getattr(a, key)}")
        need(a.update_epochs >= 1, "algo.update_epochs", f"must be >= 1, got {a.update_epochs}")
        need(a.target_kl is None or a.target_kl > 0, "algo.target_kl", f"must be > 0 or null, got {a.target_kl}")
        need(a.num_minibatches >= 1 and self.env.n_envs % a.num_minibatches == 0, "algo.num_minibatches",
             f"must divide env.n_envs={self.env.n_envs} (minibatches are groups of envs), got {a.num_minibatches}")
        need(t.rollout_steps >= 1, "trainer.rollout_steps", f"must be >= 1, got {t.rollout_steps}")
        need(t.total_steps >= 1, "trainer.total_steps", f"must be >= 1 (rounded up to whole rollouts), got {t.total_steps}")
        need(t.group_size >= 1 and self.env.n_envs % t.group_size == 0, "trainer.group_size",
             f"must divide env.n_envs={self.env.n_envs}, got {t.group_size}")
        grouped = a.name == "grpo" or (a.name == "ipa" and self.ipa.baseline == "group")
        need(not grouped or t.group_size >= 2, "trainer.group_size",
             f"{a.name} with a group baseline needs trainer.group_size >= 2 (envs sharing a market seed)")
        need(t.stage in STAGES, "trainer.stage", f"unknown stage {t.stage!r}; allowed: {', '.join(STAGES)}")
        need(t.stage != "sft" or t.resume is None, "trainer.resume", "stage=sft runs are short; they do not resume")
        need(t.stage != "sft_rl" or t.resume in (None, "auto"), "trainer.resume",
             "stage=sft_rl resumes its own run dir only (trainer.resume=auto)")
        need(self.sft.weights is None or len(self.sft.weights) == len(self.sft.datasets or ()), "sft.weights",
             f"needs one weight per dataset ({len(self.sft.datasets or ())}), got {self.sft.weights}")
        need(all(w > 0 and w < float("inf") for w in self.sft.weights or ()), "sft.weights",
             f"must be finite and > 0, got {self.sft.weights}")
        need(self.sft.updates >= 1 and self.sft.batch_trajectories >= 1, "sft.updates",
             f"sft.updates and sft.batch_trajectories must be >= 1, got {self.sft.updates}, {self.sft.batch_trajectories}")
        r = self.resample
        need(r.teacher is None or r.teacher in STRATEGIES, "resample.teacher",
             f"unknown strategy {r.teacher!r}; allowed: null, {', '.join(STRATEGIES)}")
        need(r.mode in RESAMPLE_MODES, "resample.mode", f"unknown mode {r.mode!r}; allowed: {', '.join(RESAMPLE_MODES)}")
        for key in ("lambda_il", "lambda_rl"):
            need(getattr(r, key) >= 0, f"resample.{key}", f"must be >= 0, got {getattr(r, key)}")
        need(0 < r.advance_at <= 1, "resample.advance_at", f"must be in (0, 1], got {r.advance_at}")
        need(0 < r.fork_gap <= 1, "resample.fork_gap", f"must be in (0, 1], got {r.fork_gap}")
        need(r.scan_every >= 0, "resample.scan_every", f"must be >= 0, got {r.scan_every}")
        need(r.scan_every == 0 or r.teacher is not None, "resample.scan_every", "a fork scan needs resample.teacher")
        for key in ("scan_markets", "scan_samples"):
            need(getattr(r, key) >= 1, f"resample.{key}", f"must be >= 1, got {getattr(r, key)}")
        need(r.scan_anchors >= 2, "resample.scan_anchors", f"must be >= 2 (a fork lies between anchors), got {r.scan_anchors}")
        need(t.device in DEVICES, "trainer.device", f"unknown device {t.device!r}; allowed: {', '.join(DEVICES)}")
        need(t.progress in PROGRESS, "trainer.progress", f"unknown mode {t.progress!r}; allowed: {', '.join(PROGRESS)}")
        need(not (t.overwrite and t.resume is not None), "trainer.overwrite",
             f"true replaces the run in the run dir, trainer.resume={t.resume} continues one: give one of them")
        need(t.threads == "auto" or (str(t.threads).isdigit() and int(t.threads) >= 1), "trainer.threads",
             f"must be auto or a positive integer, got {t.threads!r}")
        need(not (t.compile and self.policy.memory.name == "gru"), "trainer.compile",
             "a recurrent memory (policy/memory=gru) would be unrolled over the rollout's steps in the compiled graph; "
             "use trainer.compile=false")
        self._validate_workers(need)
        need(t.checkpoint_every >= 1, "trainer.checkpoint_every", f"must be >= 1, got {t.checkpoint_every}")
        need(t.log_every >= 1, "trainer.log_every", f"must be >= 1, got {t.log_every}")
        need(e.n_envs >= 1, "eval.n_envs", f"must be >= 1, got {e.n_envs}")
        need(e.objective in OBJECTIVES, "eval.objective", f"unknown objective {e.objective!r}; allowed: {', '.join(OBJECTIVES)}")
        need(self.policy.activation in ACTIVATIONS, "policy.activation",
             f"unknown activation {self.policy.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        self.policy.memory.validate()
        memory = self.policy.memory
        if memory.name == "window":
            need(memory.frames <= self.env.episode_bars, "policy.memory.frames",
                 f"stacks more observations than an episode has (env.episode_bars={self.env.episode_bars}), got {memory.frames}")
        if memory.name == "paom":
            need(memory.capacity <= self.env.episode_bars, "policy.memory.capacity",
                 f"holds more records than an episode has steps (env.episode_bars={self.env.episode_bars}), got {memory.capacity}")
        need(len(self.policy.hidden) >= 1 and all(h >= 1 for h in self.policy.hidden), "policy.hidden",
             f"needs at least one positive layer width, got {list(self.policy.hidden)}")

    def _validate_workers(self, need) -> None:
        t, f = self.trainer, self.trainer.faults
        need(t.workers >= 1, "trainer.workers", f"must be >= 1, got {t.workers}")
        need(t.backend in BACKENDS, "trainer.backend", f"unknown backend {t.backend!r}; allowed: {', '.join(BACKENDS)}")
        need(t.collection in COLLECTIONS, "trainer.collection",
             f"unknown collection {t.collection!r}; allowed: {', '.join(COLLECTIONS)}")
        per_worker = t.workers * t.group_size
        need(self.env.n_envs % per_worker == 0, "trainer.workers",
             f"{t.workers} workers cannot share env.n_envs={self.env.n_envs} markets in equal whole groups "
             f"(trainer.group_size={t.group_size}); pick a divisor")
        need(t.collection == "sync" or t.backend != "local", "trainer.collection",
             "async collection needs workers that run beside the learner: trainer.backend=process or ray")
        need(t.max_policy_lag >= 0, "trainer.max_policy_lag", f"must be >= 0, got {t.max_policy_lag}")
        need(t.broadcast_every >= 1, "trainer.broadcast_every", f"must be >= 1, got {t.broadcast_every}")
        need(t.worker_timeout > 0, "trainer.worker_timeout", f"must be > 0 seconds, got {t.worker_timeout}")
        need(t.worker_retries >= 0, "trainer.worker_retries", f"must be >= 0, got {t.worker_retries}")
        need(t.ray_address is None or t.backend == "ray", "trainer.ray_address", "is read by trainer.backend=ray only")
        pooled = t.workers > 1 or t.backend != "local"
        if self.env.gym_id is not None:  # a user's env: no market to read, copy or score by log return
            need(self.eval.objective == "episodic_return", "eval.objective",
                 f"env.gym_id={self.env.gym_id} has no equity: use eval.objective=episodic_return")
            need(self.policy.memory.name != "paom", "policy.memory",
                 "paom's observer reads market bars; with env.gym_id use none, window or gru")
            need(t.group_size == 1, "trainer.group_size", "groups restart on a shared market; env.gym_id needs 1")
            need(self.resample.teacher is None, "resample.teacher", "teachers trade markets; env.gym_id has none")
        need(self.resample.teacher is None or not pooled, "resample.teacher",
             "chunk-level resampling replays teacher prefixes in this process: it needs trainer.workers=1, backend=local")
        need(not f.active or pooled, "trainer.faults", "injected faults act in rollout workers: set trainer.workers "
             "or trainer.backend")
        need(f.kill == 0 or t.backend != "local", "trainer.faults.kill", "would kill this process: needs backend=process or ray")
        for key in ("step_error", "hang", "kill"):
            need(0 <= getattr(f, key) < 1, f"trainer.faults.{key}", f"must be in [0, 1), got {getattr(f, key)}")


def design_differences(stored: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two designs (``RunConfig.design``), as ``key: a != b``."""
    found = []
    for key in sorted(set(stored) | set(current)):
        a, b, name = stored.get(key), current.get(key), f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += design_differences(a, b, name + ".")
        elif a != b:
            found.append(f"{name}: {a!r} != {b!r}")
    return found
