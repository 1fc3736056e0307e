"""The ALMA sweeper on Ray (``hydra.sweeper.backend=ray``): faults, kill and resume, bad input, resources.

The sweeps run a toy ``@hydra.main`` app (a few timed steps, a checkpoint after each, faults on
request) so that each takes seconds: as a subprocess, as a user runs it (it starts its own local
Ray), or in this process on the session's 2-CPU Ray (``local_ray``) where the test needs to know
the Ray's size. The real training task on Ray: ``test_the_training_task_runs_on_ray``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openclaw_rl.alma.archive import Archive
from openclaw_rl.alma.backends import RayBackend
from openclaw_rl.alma.space import SpaceError
from openclaw_rl.alma.sweeper import ALMASweeperImpl
from openclaw_rl.errors import ConfigError
from test_alma_sweep import wait_for

ROOT = Path(__file__).resolve().parent.parent

TOY_APP = '''
"""A toy task: ``steps`` timed steps, a checkpoint after each; faults by trial id (hydra.job.num)."""
import json, os, signal, sys, time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig


@dataclass
class Toy:
    x: float = 0.5
    steps: int = 3
    step_seconds: float = 0.05
    resume: Optional[str] = None  # auto: continue from the step checkpointed in the job dir
    raise_in: int = 0  # the trial that raises
    kill_once_in: int = 0  # the trial whose worker SIGKILLs itself after its first step, on its first try
    kill_in: int = 0  # the trial whose worker SIGKILLs itself after its first step, on every try
    peer_seconds: float = 0.0  # wait up to this long for another trial to start before the first step


ConfigStore.instance().store(name="toy", node=Toy)


def event(job, **values):
    with open(job / "events.jsonl", "a") as handle:
        handle.write(json.dumps(values) + "\\n")


@hydra.main(version_base="1.3", config_path=None, config_name="toy")
def main(cfg) -> float:
    trial, job = HydraConfig.get().job.num, Path(HydraConfig.get().runtime.output_dir)
    checkpoint = job / "checkpoint.json"
    step = json.loads(checkpoint.read_text())["step"] if cfg.resume == "auto" and checkpoint.is_file() else 0
    ray = sys.modules.get("ray")
    in_ray = ray is not None and ray.is_initialized()
    resources = ray.get_runtime_context().get_assigned_resources() if in_ray else None
    event(job, start=time.time(), from_step=step, pid=os.getpid(), resources=resources)
    if trial == cfg.raise_in:
        raise ValueError(f"trial {trial} raises")
    deadline = time.time() + cfg.peer_seconds
    while time.time() < deadline and not [p for p in job.parent.parent.glob("trial_*/task_0/events.jsonl")
                                          if p.parent != job]:
        time.sleep(0.02)
    while step < cfg.steps:
        time.sleep(cfg.step_seconds)
        step += 1
        partial = job / "checkpoint.json.partial"  # atomic, as a real app's checkpoint: a kill mid-write keeps the last
        partial.write_text(json.dumps({"step": step}))
        os.replace(partial, checkpoint)
        if trial == cfg.kill_in or (trial == cfg.kill_once_in and not (job / "killed").exists()):
            (job / "killed").touch()
            os.kill(os.getpid(), signal.SIGKILL)
    event(job, end=time.time())
    return -(cfg.x - 0.3) ** 2


if __name__ == "__main__":
    main()
'''

RAY = ["hydra/sweeper=alma", "hydra.sweeper.backend=ray", "hydra.sweeper.resume_key=resume", "x=interval(0, 1)"]


@pytest.fixture
def app(tmp_path) -> Path:
    path = tmp_path / "toy_app.py"
    path.write_text(TOY_APP)
    return path


def toy_command(app: Path, sweep_dir: Path, *args: str) -> list[str]:
    return [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", *RAY, *args]


def run(command: list[str], check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout[-2000:] + result.stderr[-3000:])
    return result


def events(sweep_dir: Path, trial: int) -> list[dict]:
    path = sweep_dir / f"trial_{trial:04d}" / "task_0" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_a_trial_that_raises_and_one_whose_worker_is_killed_are_recorded(app, tmp_path):
    """Trial 2 raises: failed, with its error. Trial 3's Ray worker is SIGKILLed once: it continues from its
    checkpoint (a retry) and finishes. Trial 4's worker is SIGKILLed at every try: failed once its retry is
    spent. The sweep runs its whole budget and exits 0 (2 failures of 5 are within max_failure_rate=0.5)."""
    result = run(toy_command(app, tmp_path, "hydra.sweeper.budget=5", "hydra.sweeper.n_workers=2",
                             "hydra.sweeper.max_retries=1", "raise_in=2", "kill_once_in=3", "kill_in=4"))
    output = result.stdout + result.stderr
    trials = {t.id: t for t in Archive(tmp_path / "archive.sqlite").trials(kind="search")}
    assert sorted(trials) == [1, 2, 3, 4, 5]
    assert {i: t.status for i, t in trials.items()} == {1: "finished", 2: "failed", 3: "finished", 4: "failed",
                                                       5: "finished"}
    assert "ValueError: trial 2 raises" in trials[2].error
    assert re.search(r"worker killed \(Ray WorkerCrashedError: .*\) before reporting a result \(after 1 retries\)",
                     trials[4].error), trials[4].error
    for trial in (3, 4):
        assert f"trial {trial}: its worker was killed (Ray WorkerCrashedError" in output
        first, second = [e for e in events(tmp_path, trial) if "start" in e]
        assert (first["from_step"], second["from_step"]) == (0, 1)  # the retry continued from its checkpoint
        assert first["pid"] != second["pid"] and first["resources"] == {"CPU": 1.0}
    assert trials[3].score == pytest.approx(-(trials[3].design["x"] - 0.3) ** 2)


def checkpointed(sweep_dir: Path, trial: int) -> int:
    path = sweep_dir / f"trial_{trial:04d}" / "task_0" / "checkpoint.json"
    try:
        return json.loads(path.read_text())["step"]
    except (OSError, ValueError):
        return 0


def in_flight(sweep_dir: Path, before_step: int = 1_000_000) -> list[int]:
    """Trials mid-run once one has finished: running, with a checkpoint before ``before_step`` and no result."""
    db = sweep_dir / "archive.sqlite"
    if not db.exists() or not any(t.status == "finished" for t in Archive(db).trials()):
        return []
    return [t.id for t in Archive(db).trials(status="running")
            if 0 < checkpointed(sweep_dir, t.id) < before_step
            and not (sweep_dir / f"trial_{t.id:04d}" / "result.json").is_file()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_sweeper_takes_its_ray_tasks_with_it_and_the_rerun_continues_them(app, tmp_path):
    """kill -9 of the sweeper alone mid-trial: the local Ray it started and the trials' Ray workers die with it.
    The same command again: no finished trial runs again, none is added, and the trials in flight continue
    from their checkpoints under their own ids and job dirs."""
    args = ["hydra.sweeper.budget=4", "hydra.sweeper.n_workers=2", "steps=16", "step_seconds=0.2"]
    process = subprocess.Popen(toy_command(app, tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: in_flight(tmp_path, before_step=4))  # far from its end
        process.kill()  # the sweeper only
        process.wait()
        db = tmp_path / "archive.sqlite"
        records = [tmp_path / f"trial_{t.id:04d}" / "worker.json" for t in Archive(db).trials(status="running")]
        workers = [json.loads(r.read_text())["pid"] for r in records if r.is_file()]
        wait_for(lambda: not any(map(pid_alive, workers)), 30)  # Ray's tasks die with the sweeper that owns them
        before = {t.id: t for t in Archive(db).trials() if t.status == "finished"}
        flying = in_flight(tmp_path)
        steps = {i: checkpointed(tmp_path, i) for i in flying}
        assert before and flying
    finally:  # whatever of its session is left (nothing, when Ray went with the sweeper)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    run(toy_command(app, tmp_path, *args))
    after = Archive(tmp_path / "archive.sqlite").trials(kind="search")
    for trial_id, trial in before.items():
        kept = next(t for t in after if t.id == trial_id)
        assert (kept.status, kept.score, kept.ended) == ("finished", trial.score, trial.ended)
        assert len([e for e in events(tmp_path, trial_id) if "start" in e]) == 1  # not run again
    assert [t.status for t in after] == ["finished"] * 4 and max(t.id for t in after) == 4
    for trial_id in flying:
        starts = [e["from_step"] for e in events(tmp_path, trial_id) if "start" in e]
        assert starts == [0, steps[trial_id]] and steps[trial_id] > 0, (trial_id, starts)


def test_an_unreachable_ray_address_fails_before_any_trial(app, tmp_path):
    started = time.monotonic()
    result = run(toy_command(app, tmp_path, "hydra.sweeper.ray_address=127.0.0.1:1"), check=False)
    assert result.returncode != 0
    assert "hydra.sweeper.ray_address=127.0.0.1:1: no Ray cluster answers there" in result.stderr, result.stderr[-2000:]
    assert time.monotonic() - started < 60
    assert not list(tmp_path.glob("trial_*")) and not (tmp_path / "archive.sqlite").exists()


def test_without_ray_the_error_names_the_extra(app, tmp_path):
    no_ray = ("import runpy, sys; sys.modules['ray'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    result = run([sys.executable, "-c", no_ray, *toy_command(app, tmp_path)[1:]], check=False)
    assert result.returncode != 0
    assert "Ray is not installed; install the extra: pip install 'openclaw_rl[ray]'" in result.stderr, result.stderr[-2000:]
    assert not list(tmp_path.glob("trial_*"))


@pytest.mark.parametrize("setting,message", [
    ({"backend": "slurm"}, "hydra.sweeper.backend: unknown 'slurm'; allowed: local, ray"),
    ({"backend": "ray", "launcher": "hydra"}, "hydra.sweeper.backend: ray runs the steady-state workers: it needs "
                                              "hydra.sweeper.launcher=local"),
    ({"cpus_per_trial": -1}, "hydra.sweeper.cpus_per_trial: must be >= 0, got -1.0"),
    ({"gpus_per_trial": -0.5}, "hydra.sweeper.gpus_per_trial: must be >= 0, got -0.5"),
])
def test_ray_settings_are_checked_up_front(setting, message):
    with pytest.raises(SpaceError, match=re.escape(message)):
        ALMASweeperImpl(**setting)


def in_process_sweep(app: Path, sweep_dir: Path, ray, monkeypatch, *args: str) -> None:
    """The toy app's sweep in this process, on the session's Ray (its workers get the app by value)."""
    from hydra.core.global_hydra import GlobalHydra

    spec = importlib.util.spec_from_file_location(f"toy_app_{sweep_dir.name}", app)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    ray.cloudpickle.register_pickle_by_value(module)
    inspect.unwrap(module.main).__module__ = "__main__"  # Hydra finds the app by its file, as for a script
    monkeypatch.setattr(sys, "argv", toy_command(app, sweep_dir, *args)[1:])
    try:
        module.main()
    finally:
        GlobalHydra.instance().clear()
        ray.cloudpickle.unregister_pickle_by_value(module)
        del sys.modules[spec.name]


@pytest.mark.parametrize("cpus,budget,peer_seconds,overlap", [(2, 3, 0, False), (1, 2, 60, True)])
def test_each_trial_gets_the_cpus_it_asks_ray_for(app, tmp_path, local_ray, monkeypatch, cpus, budget, peer_seconds,
                                                  overlap):
    """On a 2-CPU Ray with 2 workers: trials of 2 CPUs run one at a time (Ray queues the second), each task
    holding 2 CPUs. The control: trials of 1 CPU run side by side (each waits for the other to start, so a
    worker slow to start cannot hide it)."""
    sweep_dir = tmp_path / f"cpus{cpus}"
    in_process_sweep(app, sweep_dir, local_ray, monkeypatch, f"hydra.sweeper.budget={budget}", "hydra.sweeper.n_workers=2",
                     f"hydra.sweeper.cpus_per_trial={cpus}", "steps=4", "step_seconds=0.2", f"peer_seconds={peer_seconds}")
    assert [t.status for t in Archive(sweep_dir / "archive.sqlite").trials()] == ["finished"] * budget
    spans = []
    for trial in range(1, budget + 1):
        (start, end) = events(sweep_dir, trial)
        assert start["resources"] == {"CPU": float(cpus)}
        spans.append((start["start"], end["end"]))
    spans.sort()
    overlaps = any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    assert overlaps == overlap, spans


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fail(message: str) -> None:
    raise ValueError(message)


def call(shared, function, *args):
    return function(*args)


def test_ray_task_endings_killed_raised_and_cancelled(local_ray):
    """What the sweeper retries (killed from outside, cancelled) and what it records (a raised task)."""
    local_ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    backend = RayBackend(call, (), n_workers=2, cpus=1.0, gpus=0.0)
    killed, raised, slow = (backend.start("crash", crash), backend.start("fail", fail, "boom"),
                            backend.start("sleep", time.sleep, 60))
    wait_for(lambda: not killed.is_alive() and not raised.is_alive(), 60)
    assert killed.ending().killed.startswith("Ray WorkerCrashedError: ")
    ending = raised.ending()
    assert ending.killed is None and ending.error.startswith("Ray task failed: ") and "ValueError: boom" in ending.error
    slow.terminate()
    wait_for(lambda: not slow.is_alive(), 30)
    assert slow.ending().killed.startswith("Ray TaskCancelledError")
    backend.close()
    assert local_ray.is_initialized()  # a Ray it did not start is left running


def test_a_trial_asking_for_more_than_the_local_ray_has_is_refused(local_ray):
    with pytest.raises(ConfigError, match=r"hydra.sweeper.cpus_per_trial=1, gpus_per_trial=1: no Ray node has that much"):
        RayBackend(call, (), n_workers=2, cpus=1.0, gpus=1.0)


TINY = ["env.n_envs=16", "env.window=8", "env.episode_bars=40", "trainer.rollout_steps=32", "trainer.total_steps=2048",
        "eval.n_envs=8", "trainer.progress=log"]


def test_the_training_task_runs_on_ray(tmp_path):
    """openclaw_rl.train as a user runs it, its trials as Ray tasks: the task function, Hydra's context and
    config reach the workers; a design the trainer refuses fails its trial, the others finish."""
    run([sys.executable, "-m", "openclaw_rl.train", "-m", "hydra/sweeper=alma", f"hydra.sweep.dir={tmp_path}", *TINY,
         "hydra.sweeper.backend=ray", "hydra.sweeper.budget=3", "hydra.sweeper.n_initial=2", "hydra.sweeper.n_workers=2",
         "hydra.sweeper.max_failure_rate=1.0", "algo.num_minibatches=choice(4, 3, 2)"])
    search = Archive(tmp_path / "archive.sqlite").trials(kind="search")
    assert len(search) == 3
    for t in search:
        if t.design["algo.num_minibatches"] == 3:
            assert t.status == "failed" and "algo.num_minibatches: must divide env.n_envs=16" in t.error
        else:
            assert t.status == "finished" and (Path(t.run_dir) / "task_0" / ".hydra" / "config.yaml").is_file()
    assert {t.design["algo.num_minibatches"] for t in search} == {2, 3, 4}
