"""The ALMA sweeper: a steady-state outer loop over Hydra designs.

``n_workers`` trials are kept running: as soon as a trial ends, its result goes into the archive
and the next design is proposed and started (no batches, no round barrier). A trial runs the
task function once per task (``tasks``) through Hydra's own ``run_job``, in the job dir
``<sweep dir>/trial_NNNN/task_K``, and hands its scores back through a file. Running the same
command on the same sweep dir resumes: finished trials stay; of the trials a killed sweep left
running, a result an orphan worker wrote is adopted, an orphan still running is waited for, and
the others continue from their last checkpoints in their own job dirs (``resume_key=auto``).

Where trials run (``backend``, ``alma.backends``; the scheduling loop, the archive, retries,
pruning and resume are the same for both):

- ``local``: a process forked from the sweeper per trial;
- ``ray``: a Ray task per trial, asking Ray for ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs,
  on a local Ray the sweeper starts (``ray_address=null``: ``ceil(n_workers x cpus_per_trial)``
  CPUs) or on the cluster at ``ray_address``; ``pip install 'openclaw_rl[ray]'``. The task writes
  its job dirs and its result file in the sweep dir as a local worker does, so on a cluster of
  several nodes the sweep dir must be on a filesystem every node mounts at the same path. A
  task's worker that dies (killed, OOM, node lost) counts as a local worker killed by a signal
  (``max_retries``); a task that raises fails its trial. Ray reuses a worker process for later
  trials (what a trial imported stays imported). Ray tasks belong to the sweeper's Ray job: when
  the sweeper dies they die with it (a local Ray entirely), and the rerun continues them from
  their checkpoints.

Whatever the backend, the sweeper process itself holds the sweep-dir lock (``alma.lock``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hydra.core.singleton import Singleton
from hydra.core.utils import setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.alma.archive import Archive, Trial
from openclaw_rl.alma.backends import WORKER_RECORD, Ending, LocalBackend, Orphan, RayBackend, TrialWorker
from openclaw_rl.alma.compose import TrialConfigs
from openclaw_rl.alma.config import AGGREGATES, BACKENDS, LAUNCHERS, PROPOSERS, ALMASweeperConf
from openclaw_rl.alma.lock import SweepLock
from openclaw_rl.alma.results import write_results
from openclaw_rl.alma.search import (PROMOTE, Proposer, aggregate, expandable, is_finite, operator_credit, promotable,
                                      rungs)
from openclaw_rl.alma.space import SearchSpace, SpaceError
from openclaw_rl.alma.trial import run_trial, run_trial_in_ray
from openclaw_rl.cli import closest_key
from openclaw_rl.errors import ConfigError, DataError
from openclaw_rl.memory.designs import unread_keys
from openclaw_rl.progress import Progress
from openclaw_rl.roll.config import RunConfig

log = logging.getLogger("openclaw_rl.alma")
_ABSENT = object()  # OmegaConf.select's default: a key the config does not have


@dataclass
class Running:
    trial: Trial
    process: TrialWorker  # on the backend: a forked process, a Ray task, or an earlier sweep's orphan
    result: Path
    job_dirs: list[Path]
    started: float = field(default_factory=time.time)


class ALMASweeperImpl:
    def __init__(self, **conf):
        schema = OmegaConf.structured(ALMASweeperConf)
        self.conf: ALMASweeperConf = OmegaConf.to_object(OmegaConf.merge(schema, conf))
        self._validate()

    def _validate(self) -> None:
        c = self.conf

        def need(ok: bool, key: str, message: str):
            if not ok:
                raise SpaceError(f"hydra.sweeper.{key}: {message}")

        need(c.budget >= 1, "budget", f"must be >= 1, got {c.budget}")
        need(c.n_workers >= 1, "n_workers", f"must be >= 1, got {c.n_workers}")
        need(c.n_initial >= 1, "n_initial", f"must be >= 1, got {c.n_initial}")
        need(c.mutation_scale > 0, "mutation_scale", f"must be > 0, got {c.mutation_scale}")
        need(c.min_trials_for_failure >= 1, "min_trials_for_failure", f"must be >= 1, got {c.min_trials_for_failure}")
        need(c.poll_seconds > 0, "poll_seconds", f"must be > 0, got {c.poll_seconds}")
        need(c.holdout_top_k >= 1, "holdout_top_k", f"must be >= 1, got {c.holdout_top_k}")
        need(c.max_retries >= 0, "max_retries", f"must be >= 0, got {c.max_retries}")
        need(c.pruning.min_peers >= 1, "pruning.min_peers", f"must be >= 1, got {c.pruning.min_peers}")
        need(c.pruning.min_reports >= 1, "pruning.min_reports", f"must be >= 1, got {c.pruning.min_reports}")
        need(c.tau > 0, "tau", f"must be > 0, got {c.tau}")
        need(c.score_scale is None or c.score_scale > 0, "score_scale", f"must be > 0 or null, got {c.score_scale}")
        need(c.aggregate in AGGREGATES, "aggregate", f"unknown {c.aggregate!r}; allowed: {', '.join(AGGREGATES)}")
        need(0 <= c.max_failure_rate <= 1, "max_failure_rate", f"must be in [0, 1], got {c.max_failure_rate}")
        need(0 < c.pruning.quantile < 1, "pruning.quantile", f"must be in (0, 1), got {c.pruning.quantile}")
        need(c.launcher in LAUNCHERS, "launcher", f"unknown {c.launcher!r}; allowed: {', '.join(LAUNCHERS)}")
        need(not (c.launcher == "hydra" and c.pruning.enabled), "pruning.enabled",
             "pruning needs the local workers (hydra.sweeper.launcher=local): a Hydra launcher blocks per round")
        need(c.proposer in PROPOSERS, "proposer", f"unknown {c.proposer!r}; allowed: {', '.join(PROPOSERS)}")
        need(not (c.inherit_weights and c.proposer != "alma"), "inherit_weights",
             "children inherit their parents' weights under ALMA's rule only (random designs have no parent): "
             "set hydra.sweeper.proposer=alma")
        need(c.backend in BACKENDS, "backend", f"unknown {c.backend!r}; allowed: {', '.join(BACKENDS)}")
        need(not (c.backend == "ray" and c.launcher == "hydra"), "backend",
             "ray runs the steady-state workers: it needs hydra.sweeper.launcher=local, not hydra")
        need(c.promotion.eta > 1, "promotion.eta", f"must be > 1, got {c.promotion.eta}")
        need(not (c.promotion.enabled and c.launcher == "hydra"), "promotion.enabled",
             "promotion needs the local workers (hydra.sweeper.launcher=local)")
        need(c.cpus_per_trial >= 0, "cpus_per_trial", f"must be >= 0, got {c.cpus_per_trial}")
        need(c.gpus_per_trial >= 0, "gpus_per_trial", f"must be >= 0, got {c.gpus_per_trial}")

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self.launcher = None
        if self.conf.launcher == "hydra":
            from hydra.core.plugins import Plugins

            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=task_function, config=config)

    # ------------------------------------------------------------------ sweep
    def sweep(self, arguments: list[str]) -> dict:
        setup_globals()
        c = self.conf
        space = SearchSpace(arguments)
        tasks = [t.split() for t in c.tasks] or [[]]
        holdout = [t.split() for t in c.holdout_tasks]
        self._check_jobs(space, tasks, holdout)
        self.sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()  # the same for every worker's cwd
        self.lock = SweepLock(self.sweep_dir)
        self.lock.acquire()
        self.backend = None
        try:
            self.configs = TrialConfigs(self.hydra_context.config_loader, self.config)
            shared = (self.hydra_context, self.task_function, self.configs)
            if c.backend == "ray":  # connects (or fails, naming the key) before any trial starts
                self.backend = RayBackend(run_trial_in_ray, (Singleton.get_state(), *shared), c.n_workers,
                                          c.cpus_per_trial, c.gpus_per_trial, c.ray_address)
            else:
                self.backend = LocalBackend(run_trial, shared, c.n_workers)
            return self._sweep(space, tasks, holdout)
        finally:
            if self.backend is not None:
                self.backend.close()
            self.lock.release()

    def _check_jobs(self, space: SearchSpace, tasks: list[list[str]], holdout: list[list[str]]) -> None:
        """Compose and validate every task once with what every trial shares (the plain overrides, the
        inherit key), the searched keys at their defaults: a mistake there would fail every trial, so it
        fails the sweep before any job. An error in a searched key is left to the trials it concerns."""
        extra = [f"{self.conf.inherit_key}=null"] if self.conf.inherit_weights else []
        searched = {dim.key for dim in space.dims}
        self.lengths, annealed = [], False  # lengths: per search task, then per holdout task, promotion.key's value
        for k, task in enumerate(tasks + holdout):
            where = f"task '{' '.join(task)}'" if task else "the overrides every trial shares"
            try:
                composed = self.hydra_context.config_loader.load_sweep_config(self.config, space.fixed + task + extra)
            except Exception as err:  # noqa: BLE001  Hydra's override and composition errors
                raise SpaceError(f"{where} do not compose: {err}") from None
            self._check_searched_keys(space, composed, where)
            if self.conf.promotion.enabled:
                self.lengths.append(self._trial_length(composed, searched, where))
                annealed = annealed or OmegaConf.select(composed, "algo.anneal_lr", default=False) is True
            if "trainer" not in composed or "env" not in composed:
                continue  # not an openclaw_rl training run: the task function validates its own config
            try:
                RunConfig.from_mapping(_job_values(composed)).env.checked_market()
            except (ConfigError, DataError) as err:
                if str(err).split(":")[0] not in searched:
                    raise SpaceError(f"{where}: {err}") from None
        if annealed:
            log.warning("promotion with algo.anneal_lr=true: a promoted trial's learning rate decays over its new "
                        "length from where it stopped (a jump up); algo.anneal_lr=false keeps a run's prefix "
                        "independent of its length, as successive halving assumes")

    @staticmethod
    def _check_searched_keys(space: SearchSpace, composed: DictConfig, where: str) -> None:
        """A searched key the config does not have would fail every trial: refused before any job (a
        ``+key`` adds one; a group such as ``algo`` is known by its options)."""
        choices = OmegaConf.select(composed, "hydra.runtime.choices", default=None) or {}
        for dim in space.dims:
            if dim.key.startswith(("+", "~")) or dim.key in choices:
                continue
            if OmegaConf.select(composed, dim.key, default=_ABSENT) is _ABSENT:
                plain = OmegaConf.to_container(composed, resolve=False)
                raise SpaceError(f"{dim.key}: a searched key that {where} do not have; {closest_key(dim.key, plain)} "
                                 f"(+{dim.key}=... adds a new key)")

    def _trial_length(self, composed: DictConfig, searched: set[str], where: str) -> int:
        """One trial-length (``promotion.key``'s value) of a composed task."""
        key = self.conf.promotion.key
        length = OmegaConf.select(composed, key, default=None)
        if key in searched or not isinstance(length, int) or isinstance(length, bool) or length < 1:
            reason = "is searched" if key in searched else f"is {length!r} in {where}"
            raise SpaceError(f"hydra.sweeper.promotion.key: {key} {reason}; it must be a fixed positive integer "
                             "(a trial's length, raised when the trial is promoted)")
        return length

    def _sweep(self, space: SearchSpace, tasks: list[list[str]], holdout: list[list[str]]) -> dict:
        c = self.conf
        archive = Archive(self.sweep_dir / "archive.sqlite")
        known = archive.get_meta("space")
        if known is not None and known != space.signature:
            raise SpaceError(f"{self.sweep_dir}: this sweep dir holds a sweep over another search space; "
                             "use a new hydra.sweep.dir or the same overrides")
        archive.set_meta("space", space.signature)
        archive.set_meta("lengths", json.dumps(self.lengths[: len(tasks)]))  # successive halving's trial-lengths
        # with promotion, successive halving decides which trial continues, not the continue operator
        proposer = Proposer(space, c.tau, c.mutation_scale, c.score_scale,
                            continuing=c.inherit_weights and not c.promotion.enabled,
                            unread=self._unread)
        initial = [self._baseline_design(space)] + space.latin_hypercube(c.n_initial - 1, np.random.default_rng(c.seed))
        self.busy_seconds, start = 0.0, time.time()
        self.attempts: dict[int, int] = {}
        self.resumed: set[int] = set()  # trials this process continued from their checkpoints
        self.restarted: set[int] = set()  # and of those, the ones it started again from scratch
        self.tasks, self.holdout = tasks, holdout
        stop_reason = None
        self.objective = str(OmegaConf.select(self.config, "eval.objective", default=None) or "objective")
        done = sum(t.status in ("finished", "failed", "pruned") for t in archive.trials(kind="search"))
        self.progress = Progress(c.budget, "trials", log, initial=min(done, c.budget))
        running = self._recover(archive)
        while True:
            self._collect(archive, running)
            self._prune(archive, running)
            searched = [t for t in archive.trials(kind="search") if t.status != "interrupted"]
            stop_reason = stop_reason or self._failure_stop(searched)
            exhausted = False  # no new design now (a finite space fully tried; a promotion may still come)
            if self.launcher is not None:  # one round of n_workers trials through the Hydra launcher
                round_ = []
                while stop_reason is None and len(round_) < c.n_workers and len(searched) < c.budget:
                    trial = self._next_trial(archive, space, proposer, initial, len(searched))
                    if trial is None:
                        exhausted = True
                        break
                    round_.append(trial)
                    searched.append(trial)
                self._launch_round(archive, round_, tasks, "search")
            while self.launcher is None and stop_reason is None and len(running) < c.n_workers and len(searched) < c.budget:
                trial = self._next_trial(archive, space, proposer, initial, len(searched))
                if trial is None:
                    exhausted = True
                    break
                running[trial.id] = self._start(archive, trial)
                searched.append(trial)
            if not running and (stop_reason is not None or len(searched) >= c.budget or exhausted):
                if exhausted and stop_reason is None:
                    log.info("every design of the search space has been tried: the sweep ends after %d of its %d trials",
                             len(searched), c.budget)
                break
            self.backend.wait([r.process for r in running.values()], c.poll_seconds)
        self.progress.close()
        wall = time.time() - start
        utilization = self.busy_seconds / (c.n_workers * wall) if wall > 0 else 0.0
        if holdout and stop_reason is None:
            self._run_holdout(archive, holdout)
        results = write_results(archive, self.sweep_dir, c, utilization, objective=self.objective)
        searched = archive.trials(kind="search")
        archive.close()
        if stop_reason is None and not any(t.status == "finished" for t in searched):
            last = next((t.error for t in reversed(searched) if t.error), "") or ""
            stop_reason = (f"sweep failed: none of its {len(searched)} trials finished; last error: "
                           f"{(last.strip().splitlines() or [''])[-1]}; see {self.sweep_dir / 'archive.csv'}")
        if stop_reason is not None:
            raise RuntimeError(stop_reason)
        return results

    # -------------------------------------------------------------- proposals
    def _baseline_design(self, space: SearchSpace) -> dict:
        """The design the user runs without sweeping (config defaults; the center where unknown)."""
        design = space.center()
        choices = self.config.hydra.runtime.choices
        for dim in space.dims:
            value = choices.get(dim.key) if dim.key in choices else OmegaConf.select(self.config, dim.key, default=None)
            if isinstance(value, DictConfig) or value is None:
                continue
            value = OmegaConf.to_container(value) if not isinstance(value, (int, float, str, bool)) else value
            if space.contains({**design, dim.key: value}):
                design[dim.key] = value
        return space.canonical(design)

    def _unread(self, design: dict) -> set[str]:
        """The searched ``policy.memory.*`` keys a design's memory design does not read (a ``gru`` design
        with another ``capacity`` trains the same run)."""
        name = design.get("policy/memory", design.get("policy.memory.name"))
        if name is None:
            name = self.config.hydra.runtime.choices.get("policy/memory") or \
                OmegaConf.select(self.config, "policy.memory.name", default="none")
        return unread_keys(str(name))

    def _next_trial(self, archive: Archive, space: SearchSpace, proposer: Proposer, initial: list[dict],
                    n_searched: int) -> Trial | None:
        """The next search trial, added to the archive; None when the space holds no new design."""
        c = self.conf
        rng = np.random.default_rng([c.seed, n_searched])
        everything = archive.trials(kind="search")
        designs = [t.design for t in everything]
        taken = {proposer.run_key(design) for design in designs}
        for k, design in enumerate(initial):
            if proposer.run_key(design) not in taken:  # an initial design that repeats a known run is left out
                mutation = "baseline" if k == 0 else "initial"
                return archive.get(archive.add("search", design, space.overrides(design), mutation))
        evaluated = [t for t in everything if t.status == "finished" and is_finite(t.score)]
        promoted = promotable(everything, c.promotion.eta, c.inherit_weights) if c.promotion.enabled else None
        if promoted is not None:
            return archive.get(archive.add("search", promoted.design, promoted.overrides, PROMOTE, promoted.id))
        if not evaluated or c.proposer == "random":  # nothing to expand yet (more spread), or random search
            for _ in range(50):  # a design that is a new run
                design = space.latin_hypercube(1, rng)[0]
                if proposer.run_key(design) not in taken:
                    break
            else:
                return None
            return archive.get(archive.add("search", design, space.overrides(design), "initial" if not evaluated else "random"))
        parents = expandable(evaluated, c.inherit_weights)
        baseline = next((t.score for t in parents if t.mutation == "baseline"), float(np.median([t.score for t in parents])))
        ended = [t for t in everything if t.status in ("finished", "failed", "pruned")]
        credit = operator_credit(everything, ended)  # a failed or pruned child is a try its operator did not win
        proposal = proposer.propose(parents, baseline, credit, designs, rng)
        if proposal is None:
            return None
        design, operator, parent, other = proposal
        return archive.get(archive.add("search", design, space.overrides(design), operator, parent.id,
                                       other.id if other is not None else None))

    # ---------------------------------------------------------------- workers
    def _folder(self, trial: Trial) -> Path:
        """A trial's dir in the sweep dir (its job dirs are ``task_K`` inside)."""
        return self.sweep_dir / f"{'trial' if trial.kind == 'search' else 'holdout'}_{trial.id:04d}"

    def _jobs(self, archive: Archive, trial: Trial, tasks: list[list[str]], kind: str) -> tuple[list[list[str]], list[str]]:
        """The overrides and job subdirs of a trial's tasks; records the trial's run dir."""
        folder = self._folder(trial)
        subdirs = [f"{folder.name}/task_{k}" for k in range(len(tasks))]
        per_task = []
        depth = rungs(archive.trials(kind="search"), self.conf.inherit_weights) if self.conf.promotion.enabled else {}
        lengths = self.lengths[len(self.tasks):] if kind == "holdout" else self.lengths
        for k, task in enumerate(tasks):
            extra = []
            if trial.mutation == PROMOTE:  # continues its copy of the parent's run, for one more trial-length
                extra = [f"{self.conf.promotion.key}={depth[trial.id] * lengths[k]}", f"{self.conf.resume_key}=auto"]
            elif kind == "holdout" and depth:  # as long as the weights of the search trial it transfers trained
                extra = [f"{self.conf.promotion.key}={depth[trial.parent] * lengths[k]}"]
            elif self.conf.inherit_weights and trial.parent is not None and kind == "search":
                extra = [f"{self.conf.inherit_key}={self.sweep_dir / f'trial_{trial.parent:04d}' / f'task_{k}'}"]
            per_task.append(trial.overrides + task + extra)
        archive.set_run_dir(trial.id, str(folder))
        return per_task, subdirs

    def _launch_round(self, archive: Archive, trials: list[Trial], tasks: list[list[str]], kind: str) -> None:
        """Run trials through the configured Hydra launcher (blocks until the round ends)."""
        jobs, owners = [], []
        for trial in trials:
            per_task, subdirs = self._jobs(archive, trial, tasks, kind)
            jobs += [overrides + [f"hydra.sweep.subdir={subdir}"] for overrides, subdir in zip(per_task, subdirs)]
            owners += [trial.id] * len(per_task)
        returns = self.launcher.launch(jobs, initial_job_idx=trials[0].id) if jobs else []
        for trial in trials:
            try:
                scores = [float(r.return_value) for r, owner in zip(returns, owners) if owner == trial.id]
                if not all(is_finite(v) for v in scores):
                    raise ValueError(f"non-finite objective in {scores}")
            except Exception as err:  # the job's exception, re-raised by return_value
                archive.fail(trial.id, f"{type(err).__name__}: {err}")
                continue
            archive.finish(trial.id, aggregate(scores, self.conf.aggregate), scores)
            self.busy_seconds += time.time() - trial.started
        if kind == "search":
            for trial in trials:
                self._report_progress(archive, trial.id)
        write_results(archive, self.sweep_dir, self.conf, objective=self.objective)

    def _start(self, archive: Archive, trial: Trial, resume: bool = False) -> Running:
        """Start a worker for ``trial`` on the backend (the search tasks, or the holdout tasks for a
        holdout trial); ``resume``: it continues in its job dirs from their checkpoints."""
        tasks = self.tasks if trial.kind == "search" else self.holdout
        per_task, subdirs = self._jobs(archive, trial, tasks, trial.kind)
        if resume:
            self.resumed.add(trial.id)
            per_task = [overrides + [f"{self.conf.resume_key}=auto"] for overrides in per_task]
        job_dirs = [self.sweep_dir / s for s in subdirs]
        if trial.mutation == PROMOTE:
            for job_dir in job_dirs:
                self._copy_run(self.sweep_dir / f"trial_{trial.parent:04d}" / job_dir.name, job_dir)
        result = self._folder(trial) / "result.json"
        result.parent.mkdir(parents=True, exist_ok=True)
        (result.parent / WORKER_RECORD).unlink(missing_ok=True)  # the new worker writes its own
        if isinstance(self.backend, LocalBackend):  # the fork brings them composed
            for overrides in per_task:
                self.configs.compose_choices(overrides)
        process = self.backend.start(f"alma-{trial.kind}-{trial.id}", trial.id, per_task, str(self.sweep_dir), subdirs,
                                     result, self.backend.threads)
        log.info("%s %s %d (%s): %s", "resumed" if resume else "started", trial.kind, trial.id, trial.mutation,
                 " ".join(trial.overrides))
        return Running(trial, process, result, job_dirs)

    @staticmethod
    def _copy_run(source: Path, job_dir: Path) -> None:
        """A promoted trial's job dir starts as a copy of its parent's run (checkpoints, TensorBoard,
        reports; not Hydra's files or logs), made once and whole: a copy cut short is made again."""
        if job_dir.exists():
            return  # copied before (the trial resumes from its own, later checkpoint)
        partial = job_dir.with_name(job_dir.name + ".copying")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, ignore=shutil.ignore_patterns(".hydra", "*.log"))
        partial.rename(job_dir)

    def _recover(self, archive: Archive) -> dict[int, Running]:
        """The trials a killed sweep left running: the result an orphan worker wrote since is adopted,
        an orphan still running is waited for, and the others continue from their checkpoints."""
        running = {}
        for trial in archive.trials(status="running"):
            folder = self._folder(trial)
            result = folder / "result.json"
            orphan = Orphan.of(folder / WORKER_RECORD)
            if result.is_file():
                log.info("trial %d: adopting the result its worker wrote after the sweep stopped", trial.id)
                self._record(archive, trial, json.loads(result.read_text()))
            elif orphan is not None:
                log.info("trial %d: its worker (pid %d) is still running; waiting for it", trial.id, orphan.pid)
                n_tasks = len(self.tasks if trial.kind == "search" else self.holdout)
                running[trial.id] = Running(trial, orphan, result, [folder / f"task_{k}" for k in range(n_tasks)])
            else:
                running[trial.id] = self._start(archive, trial, resume=True)
        return running

    def _collect(self, archive: Archive, running: dict[int, Running]) -> None:
        for trial_id in [i for i, r in running.items() if not r.process.is_alive()]:
            run = running.pop(trial_id)
            ending = run.process.ending()
            self.busy_seconds += time.time() - run.started
            if archive.get(trial_id).status == "pruned":
                self._report_progress(archive, trial_id)
                continue
            outcome = json.loads(run.result.read_text()) if run.result.is_file() else None
            if outcome is not None and "error" in outcome and trial_id in self.resumed - self.restarted:
                self.restarted.add(trial_id)  # e.g. a checkpoint cut short by the kill: the trial is not at fault
                log.warning("trial %d: continuing from its checkpoints failed (%s); starting it again from scratch",
                            trial_id, outcome["error"].strip().splitlines()[-1])
                for job_dir in run.job_dirs:
                    shutil.rmtree(job_dir, ignore_errors=True)
                running[trial_id] = self._start(archive, run.trial)
                continue
            if outcome is None and ending.killed is not None and self.attempts.get(trial_id, 0) < self.conf.max_retries:
                self.attempts[trial_id] = self.attempts.get(trial_id, 0) + 1  # killed from outside: continue it
                log.warning("trial %d: its worker was killed (%s); continuing it from its checkpoints (retry %d of %d)",
                            trial_id, ending.killed, self.attempts[trial_id], self.conf.max_retries)
                running[trial_id] = self._start(archive, run.trial, resume=True)
                continue
            self._record(archive, run.trial, outcome, ending)

    def _record(self, archive: Archive, trial: Trial, outcome: dict | None, ending: Ending | None = None) -> None:
        """A trial's outcome into the archive (and the results files, for a search trial)."""
        if outcome is None:
            retries = f" (after {self.attempts[trial.id]} retries)" if self.attempts.get(trial.id) else ""
            archive.fail(trial.id, (ending or Ending(error="worker ended")).message() + retries)
        elif "error" in outcome:
            archive.fail(trial.id, outcome["error"])
            log.warning("trial %d failed: %s", trial.id, outcome["error"].strip().splitlines()[-1])
        else:
            score = aggregate(outcome["task_scores"], self.conf.aggregate)
            archive.finish(trial.id, score, outcome["task_scores"])
            log.info("trial %d: score %.6f (tasks %s)", trial.id, score, outcome["task_scores"])
        if trial.kind == "search":
            self._report_progress(archive, trial.id)
            write_results(archive, self.sweep_dir, self.conf, objective=self.objective)

    def _report_progress(self, archive: Archive, trial_id: int) -> None:
        """One search trial ended: trials done / budget, its score, the best so far, the ETA."""
        ended = archive.get(trial_id)
        finished = [t for t in archive.trials(kind="search", status="finished") if is_finite(t.score)]
        best = max(finished, key=lambda t: t.score, default=None)
        outcome = f"{ended.score:.6g}" if ended.status == "finished" else ended.status
        self.progress.update(f"trial {trial_id} {outcome}, best {self.objective} "
                             + (f"{best.score:.6g} (trial {best.id})" if best is not None else "none yet"))

    def _prune(self, archive: Archive, running: dict[int, Running]) -> None:
        p = self.conf.pruning
        if not p.enabled:
            return
        depth = rungs(archive.trials(kind="search"), self.conf.inherit_weights) if self.conf.promotion.enabled else {}
        for run in running.values():
            if run.trial.kind != "search":
                continue
            for task, job_dir in enumerate(run.job_dirs):
                copied = (depth[run.trial.id] - 1) * self.lengths[task] if run.trial.mutation == PROMOTE else -1
                reports = [r for r in _read_reports(job_dir / p.report_file) if r[0] > copied]  # not the parent's
                for index, (step, score) in enumerate(reports):
                    if not archive.report(run.trial.id, task, step, score) or index + 1 < p.min_reports:
                        continue
                    peers = archive.peers_at(task, step, excluding=run.trial.id)
                    if len(peers) >= p.min_peers and score < np.quantile(peers, p.quantile):
                        run.process.terminate()
                        archive.fail(run.trial.id, f"pruned at task {task}, step {step}: {score:.6g} is below the "
                                     f"{p.quantile:g} quantile {np.quantile(peers, p.quantile):.6g} of {len(peers)} peers",
                                     status="pruned")
                        log.info("pruned trial %d at task %d, step %d", run.trial.id, task, step)
                        break

    def _failure_stop(self, searched: list[Trial]) -> str | None:
        done = [t for t in searched if t.status in ("finished", "failed", "pruned")]
        failed = [t for t in done if t.status == "failed"]
        if len(done) >= self.conf.min_trials_for_failure and len(failed) / len(done) > self.conf.max_failure_rate:
            last = (failed[-1].error or "").strip().splitlines()[-1:] or [""]
            return (f"sweep stopped: {len(failed)} of {len(done)} trials failed (more than hydra.sweeper.max_failure_rate="
                    f"{self.conf.max_failure_rate}); last error: {last[0]}; see {self.sweep_dir / 'archive.csv'}")
        return None

    def _run_holdout(self, archive: Archive, holdout: list[list[str]]) -> None:
        """Evaluate the best search designs on the held-out tasks (their transfer)."""
        done = {t.parent for t in archive.trials(kind="holdout") if t.status == "finished"}
        best = sorted((t for t in archive.trials(kind="search", status="finished") if is_finite(t.score)),
                      key=lambda t: t.score, reverse=True)[: self.conf.holdout_top_k]
        queue = [t for t in best if t.id not in done]
        if self.launcher is not None:
            trials = [archive.get(archive.add("holdout", t.design, t.overrides, "holdout", t.id)) for t in queue]
            self._launch_round(archive, trials, holdout, "holdout")
            return
        running: dict[int, Running] = {}
        while queue or running:
            while queue and len(running) < self.conf.n_workers:
                source = queue.pop(0)
                trial = archive.get(archive.add("holdout", source.design, source.overrides, "holdout", source.id))
                running[trial.id] = self._start(archive, trial)
            self.backend.wait([r.process for r in running.values()], self.conf.poll_seconds)
            self._collect(archive, running)


def _job_values(composed: DictConfig) -> dict:
    """A composed sweep config as the task function receives it: plain values, without ``hydra``."""
    values = OmegaConf.to_container(composed, resolve=False)
    values.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(values), resolve=True)


def _read_reports(path: Path) -> list[tuple[int, float]]:
    if not path.is_file():
        return []
    lines = path.read_text().split("\n")[:-1]  # the last piece may be a line still being written
    return [(int(r["step"]), float(r["objective"])) for r in map(json.loads, lines) if is_finite(r.get("objective"))]

