"""The ALMA sweeper as a user runs it: cross-task scoring, transfer, inheritance, failures,
kill and resume, pruning."""

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from openclaw_rl.alma.archive import Archive
from openclaw_rl.alma.sweeper import ALMASweeperImpl, Running

ROOT = Path(__file__).resolve().parent.parent
TINY = ["env.n_envs=16", "env.window=8", "env.episode_bars=40", "trainer.rollout_steps=32",
        "trainer.total_steps=2048", "eval.n_envs=8", "trainer.progress=log"]


def sweep_command(sweep_dir, *args):
    return [sys.executable, "-m", "openclaw_rl.train", "-m", "hydra/sweeper=alma", f"hydra.sweep.dir={sweep_dir}",
            *TINY, *args]


def sweep(sweep_dir, *args, check=True):
    result = subprocess.run(sweep_command(sweep_dir, *args), cwd=ROOT, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout[-2000:] + result.stderr[-3000:])
    return result


def test_tasks_holdout_inheritance_and_failed_trials(tmp_path):
    sweep(tmp_path, "hydra.sweeper.budget=6", "hydra.sweeper.n_initial=3", "hydra.sweeper.n_workers=2",
          "hydra.sweeper.tasks=['env.regime=bull','env.regime=crash']", "hydra.sweeper.holdout_tasks=['env.regime=sideways']",
          "hydra.sweeper.holdout_top_k=1", "hydra.sweeper.inherit_weights=true", "hydra.sweeper.max_failure_rate=1.0",
          "algo.lr=tag(log, interval(1e-4, 1e-2))", "algo.num_minibatches=choice(4, 3)")
    archive = Archive(tmp_path / "archive.sqlite")
    search = archive.trials(kind="search")
    assert len(search) == 6 and {t.status for t in search} <= {"finished", "failed"}
    for t in search:
        if t.design["algo.num_minibatches"] == 3:  # does not divide env.n_envs=16: the trial fails, the sweep goes on
            assert t.status == "failed" and "algo.num_minibatches: must divide env.n_envs=16" in t.error
        else:
            assert t.status == "finished" and len(t.task_scores) == 2
            assert t.score == pytest.approx(np.mean(t.task_scores))
    children = [t for t in search if t.parent is not None and t.status == "finished"]
    assert children, "ALMA proposed no child"
    child = children[0]
    overrides = yaml.safe_load((Path(child.run_dir) / "task_1" / ".hydra" / "overrides.yaml").read_text())
    assert f"trainer.init_from={tmp_path / f'trial_{child.parent:04d}' / 'task_1'}" in overrides
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    best = max((t for t in search if t.status == "finished"), key=lambda t: t.score)
    assert results["best_evaluated_result"] == best.score
    assert results["holdout_transfer"][0]["trial"] == best.id
    assert len(results["holdout_transfer"][0]["holdout_task_scores"]) == 1
    assert 0 < results["worker_utilization"] <= 1
    with open(tmp_path / "archive.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 + 1 and {r["kind"] for r in rows} == {"search", "holdout"}
    assert (tmp_path / "best_so_far.png").stat().st_size > 0
    assert list((tmp_path / "hparams").rglob("events.out.tfevents.*"))


def status_counts(db: Path) -> dict[str, int]:
    """Trials per status, or {} while the sweeper has not yet created the archive's schema."""
    if not db.exists():
        return {}
    connection = sqlite3.connect(db)
    try:
        return dict(connection.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall())
    except sqlite3.OperationalError:  # the file exists but its tables do not yet, or it is locked
        return {}
    finally:
        connection.close()


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    args = ["hydra.sweeper.budget=8", "hydra.sweeper.n_initial=3", "hydra.sweeper.n_workers=2",
            "algo.lr=tag(log, interval(1e-4, 1e-2))", "ipa.chunker=choice(trade, fixed, step)"]
    process = subprocess.Popen(sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    db = tmp_path / "archive.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:
        counts = status_counts(db)
        if counts.get("finished", 0) >= 2 and counts.get("running", 0) >= 1:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the sweeper and its workers
    process.wait()
    before = {t.id: t for t in Archive(db).trials() if t.status == "finished"}
    in_flight = [t.id for t in Archive(db).trials() if t.status == "running"]
    assert before and in_flight
    sweep(tmp_path, *args)
    after = Archive(db).trials(kind="search")
    for trial_id, trial in before.items():  # finished trials are kept as they were
        kept = next(t for t in after if t.id == trial_id)
        assert (kept.status, kept.score) == ("finished", trial.score)
    retried = {t.retry_of for t in after if t.mutation == "retry"}
    assert set(in_flight) <= retried  # every trial in flight was run again, under a new id
    assert sum(t.status == "finished" for t in after) == 8
    assert len({t.run_dir for t in after}) == len(after)  # job dirs never collide


def test_failure_rate_stops_the_sweep_and_bad_spaces_fail_before_any_job(tmp_path):
    result = sweep(tmp_path / "fail", "hydra.sweeper.budget=6", "hydra.sweeper.n_workers=1", "hydra.sweeper.min_trials_for_failure=2",
                   "hydra.sweeper.max_failure_rate=0.4", "algo.num_minibatches=choice(3, 5)", check=False)
    assert result.returncode != 0
    assert "sweep stopped: 2 of 2 trials failed" in result.stderr
    assert len(Archive(tmp_path / "fail" / "archive.sqlite").trials()) == 2
    result = sweep(tmp_path / "bad", "algo.lr=tag(log, interval(0, 1e-2))", check=False)
    assert result.returncode != 0 and "tag(log) needs a positive interval" in result.stderr
    assert not list((tmp_path / "bad").glob("trial_*"))


class FakeProcess:
    terminated = False

    def terminate(self):
        self.terminated = True


def test_pruning_stops_a_trial_below_its_peers(tmp_path):
    sweeper = ALMASweeperImpl(pruning={"enabled": True, "min_peers": 3, "quantile": 0.25})
    archive = Archive(tmp_path / "a.sqlite")
    peers = [archive.add("search", {"x": i}, [], "initial") for i in range(3)]
    for trial, score in zip(peers, (1.0, 2.0, 3.0)):
        archive.report(trial, 0, 100, score)
    runs = {}
    for name, score in (("low", 0.5), ("fine", 2.5)):
        trial = archive.get(archive.add("search", {"x": name}, [], "initial"))
        job = tmp_path / name
        job.mkdir()
        (job / "reports.jsonl").write_text(f'{{"step": 100, "objective": {score}}}\n{{"step": 200, "obj')
        runs[trial.id] = Running(trial, FakeProcess(), job / "result.json", [job])
    sweeper._prune(archive, runs)
    low, fine = runs.values()
    assert low.process.terminated and archive.get(low.trial.id).status == "pruned"
    assert "below the 0.25 quantile 1.5 of 3 peers" in archive.get(low.trial.id).error
    assert not fine.process.terminated and archive.get(fine.trial.id).status == "running"


def test_trials_can_run_through_the_configured_hydra_launcher(tmp_path):
    sweep(tmp_path, "hydra.sweeper.launcher=hydra", "hydra.sweeper.budget=3", "hydra.sweeper.n_initial=2",
          "hydra.sweeper.n_workers=2", "hydra.sweeper.max_failure_rate=1.0", "algo.num_minibatches=choice(4, 3)",
          "hydra.sweeper.holdout_tasks=['env.regime=crash']", "hydra.sweeper.holdout_top_k=1")
    archive = Archive(tmp_path / "archive.sqlite")
    search = archive.trials(kind="search")
    (holdout,) = archive.trials(kind="holdout")
    assert holdout.status == "finished" and (Path(holdout.run_dir) / "task_0" / ".hydra").is_dir()
    assert len(search) == 3
    for t in search:
        assert t.status == ("failed" if t.design["algo.num_minibatches"] == 3 else "finished")
        assert (Path(t.run_dir) / "task_0" / ".hydra" / "config.yaml").is_file()
