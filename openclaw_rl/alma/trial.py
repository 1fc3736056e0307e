"""A trial's worker: what runs in the forked process or the Ray task (``alma.backends``) the sweeper
starts for a trial. It runs the task function once per task through Hydra's own ``run_job`` and
hands the scores, or the error, back through a file in the trial's dir.

Kept apart from the sweeper so that a Ray worker imports only Hydra and this (the task function
brings what it needs).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import run_job, setup_globals
from omegaconf import open_dict

from openclaw_rl.alma.backends import record_worker
from openclaw_rl.alma.compose import TrialConfigs
from openclaw_rl.alma.search import is_finite
from openclaw_rl.atomic import atomic_write


def share_cores(threads: int) -> None:
    """Give each worker its share of the cores (the backend's ``threads``): torch's default (all cores
    in every worker) oversubscribes the CPU and collapses throughput."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def run_trial(hydra_context, task_function, configs: TrialConfigs, trial_id: int, per_task: list[list[str]],
              sweep_dir: str, subdirs: list[str], result: Path, threads: int) -> None:
    """A trial's worker (a forked process: its copy of the sweep lock dropped at the fork, ``alma.lock``;
    or a Ray task): run the task function once per task; write scores or the error."""
    record_worker(result.parent)
    share_cores(threads)
    scores, outcome = [], None
    try:
        for k, overrides in enumerate(per_task):
            sweep_config = configs(overrides)
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"{trial_id}_{k}"
                sweep_config.hydra.job.num = trial_id
                sweep_config.hydra.sweep.dir = sweep_dir  # absolute: a Ray worker's cwd is not the sweeper's
                sweep_config.hydra.sweep.subdir = subdirs[k]
            job = run_job(hydra_context=hydra_context, task_function=task_function, config=sweep_config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            value = job.return_value  # re-raises the task's exception
            if not is_finite(value):
                raise ValueError(f"task {k} returned a non-finite objective {value!r}")
            scores.append(float(value))
        outcome = {"task_scores": scores}
    except BaseException as err:  # noqa: BLE001  (SystemExit from a task's config error, too)
        outcome = {"error": f"{type(err).__name__}: {err}\n{traceback.format_exc()}"}
    atomic_write(result, json.dumps(outcome))


def run_trial_in_ray(shared: tuple, *args) -> None:
    """A trial as a Ray task: Hydra's global state (its config store, resolvers) as the sweeper had it,
    as a fork would have brought it (so does Hydra's joblib launcher), then ``run_trial``."""
    singleton_state, hydra_context, task_function, configs = shared
    setup_globals()
    Singleton.set_state(singleton_state)
    run_trial(hydra_context, task_function, configs, *args)
