"""The ALMA sweeper as a user runs it: cross-task scoring, transfer, inheritance, failures,
kill and resume, pruning."""

import csv
import re
import json
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

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from openclaw_rl.alma.archive import Archive
from openclaw_rl.alma.search import OPERATORS
from openclaw_rl.roll.checkpoint import load_checkpoint
from openclaw_rl.alma.space import SpaceError
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
          "hydra.sweeper.holdout_top_k=1", "hydra.sweeper.inherit_weights=true", "hydra.sweeper.proposer=alma", "hydra.sweeper.max_failure_rate=1.0",
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
    assert results["proposer"] == "alma" and set(results["operator_credit"]) == {*OPERATORS, "continue"}
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


LONGER = ["trainer.total_steps=8192", "trainer.checkpoint_every=1"]  # trials long enough to kill one mid-run


def wait_for(condition, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def checkpointed_in_flight(db: Path, sweep_dir: Path) -> list[int]:
    """Trials mid-run: running, with a checkpoint on disk and no result yet."""
    if status_counts(db).get("finished", 0) < 1:
        return []
    running = [sweep_dir / f"trial_{t.id:04d}" for t in Archive(db).trials(status="running")]
    return [int(trial.name[6:]) for trial in running
            if (trial / "task_0" / "checkpoints" / "last.pt").is_file() and not (trial / "result.json").is_file()]


def test_successive_halving_continues_the_better_trial_exactly_from_its_checkpoint(tmp_path):
    sweep(tmp_path, "hydra.sweeper.budget=3", "hydra.sweeper.n_initial=2", "hydra.sweeper.n_workers=1",
          "hydra.sweeper.promotion.enabled=true", "algo.anneal_lr=false", "algo.lr=tag(log, interval(1e-4, 1e-2))",
          "hydra.sweeper.holdout_tasks=['env.regime=bull']", "hydra.sweeper.holdout_top_k=1")
    first, second, third = Archive(tmp_path / "archive.sqlite").trials(kind="search")
    (holdout,) = Archive(tmp_path / "archive.sqlite").trials(kind="holdout")  # the best design, trained as long
    length = 2048 * (2 if holdout.parent == third.id else 1)  # as its search trial: 2 trial-lengths if promoted
    transfer = yaml.safe_load((Path(holdout.run_dir) / "task_0" / ".hydra" / "overrides.yaml").read_text())
    assert transfer[-1] == f"trainer.total_steps={length}" and "trainer.resume=auto" not in transfer
    better = max((first, second), key=lambda t: t.score)
    assert (third.mutation, third.parent, third.design) == ("promote", better.id, better.design)
    job = Path(third.run_dir) / "task_0"
    overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    assert overrides[-2:] == ["trainer.total_steps=4096", "trainer.resume=auto"]  # two trial-lengths, resumed
    assert f"resumed from {job / 'checkpoints' / 'last.pt'} at update 4 (step 2048)" in (job / "train.log").read_text()
    assert load_checkpoint(job / "checkpoints" / "last.pt")["global_step"] == 4096
    assert load_checkpoint(Path(better.run_dir) / "task_0" / "checkpoints" / "last.pt")["global_step"] == 2048  # a copy
    events = EventAccumulator(str(job / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("charts/SPS")]
    assert steps == sorted(steps) and steps[0] == 512 and steps[-1] == 4096  # one curve, the parent's part included
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["proposer"] == "random" and "operator_credit" not in results  # the default: no operators to credit
    best = results["best_trial"]
    trained = {first.id: 2048, second.id: 2048, third.id: 4096}[best["id"]]  # the overrides that train it from scratch
    assert [o for o in best["overrides"] if o.startswith("trainer.total_steps=")] == [f"trainer.total_steps={trained}"]


def test_promoted_and_transfer_jobs_train_as_many_trial_lengths_as_their_weights(tmp_path):
    sweeper = ALMASweeperImpl(promotion={"enabled": True})
    sweeper.sweep_dir, sweeper.tasks, sweeper.lengths = tmp_path, [[]], [2048, 1000]  # one search, one holdout task
    archive = Archive(tmp_path / "archive.sqlite")
    first = archive.add("search", {"algo.lr": 0.001}, ["algo.lr=0.001"], "initial")
    second = archive.add("search", {"algo.lr": 0.001}, ["algo.lr=0.001"], "promote", parent=first)
    third = archive.add("search", {"algo.lr": 0.001}, ["algo.lr=0.001"], "promote", parent=second)
    transfer = archive.add("holdout", {"algo.lr": 0.001}, ["algo.lr=0.001"], "holdout", parent=third)
    (jobs,), _ = sweeper._jobs(archive, archive.get(third), [[]], "search")
    assert jobs == ["algo.lr=0.001", "trainer.total_steps=6144", "trainer.resume=auto"]  # its third trial-length
    (jobs,), _ = sweeper._jobs(archive, archive.get(transfer), [["env.regime=bull"]], "holdout")
    assert jobs == ["algo.lr=0.001", "env.regime=bull", "trainer.total_steps=3000"]  # from scratch, 3 holdout lengths


def test_the_random_proposer_draws_new_designs_where_alma_would_mutate(tmp_path):
    sweep(tmp_path, "hydra.sweeper.budget=3", "hydra.sweeper.n_initial=1", "hydra.sweeper.n_workers=1",
          "hydra.sweeper.proposer=random", "algo.lr=tag(log, interval(1e-4, 1e-2))", "algo.gamma=interval(0.9, 0.99)")
    baseline, *drawn = Archive(tmp_path / "archive.sqlite").trials(kind="search")
    assert baseline.mutation == "baseline" and [(t.mutation, t.parent) for t in drawn] == [("random", None)] * 2
    assert len({json.dumps(t.design, sort_keys=True) for t in (baseline, *drawn)}) == 3


def test_killed_sweep_continues_its_trials_from_their_checkpoints(tmp_path):
    """kill -9 of the sweeper and its workers mid-trial, then the same command: no finished trial runs
    again, and the trials in flight continue from their checkpoints, under their own ids and job dirs."""
    args = ["hydra.sweeper.budget=5", "hydra.sweeper.n_initial=3", "hydra.sweeper.n_workers=2",
            "algo.lr=tag(log, interval(1e-4, 1e-2))", "ipa.chunker=choice(trade, fixed, step)", *LONGER]
    process = subprocess.Popen(sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    db = tmp_path / "archive.sqlite"
    wait_for(lambda: checkpointed_in_flight(db, tmp_path))
    os.killpg(process.pid, signal.SIGKILL)  # the sweeper and its workers
    process.wait()
    before = {t.id: t for t in Archive(db).trials() if t.status == "finished"}
    in_flight = checkpointed_in_flight(db, tmp_path)
    assert before and in_flight
    sweep(tmp_path, *args)
    after = Archive(db).trials(kind="search")
    for trial_id, trial in before.items():  # finished trials are kept as they were
        kept = next(t for t in after if t.id == trial_id)
        assert (kept.status, kept.score, kept.ended) == ("finished", trial.score, trial.ended)
    assert [t.status for t in after] == ["finished"] * 5 and max(t.id for t in after) == 5  # no trial added
    for trial_id in in_flight:
        log = (tmp_path / f"trial_{trial_id:04d}" / "task_0" / "train.log").read_text()
        assert "resumed from" in log, trial_id


def test_a_trial_whose_checkpoint_the_kill_cut_short_starts_again_from_scratch(tmp_path):
    args = ["hydra.sweeper.budget=2", "hydra.sweeper.n_initial=2", "hydra.sweeper.n_workers=1",
            "algo.lr=tag(log, interval(1e-4, 1e-2))", *LONGER]
    process = subprocess.Popen(sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    db = tmp_path / "archive.sqlite"
    wait_for(lambda: checkpointed_in_flight(db, tmp_path))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    (trial_id,) = checkpointed_in_flight(db, tmp_path)
    checkpoint = tmp_path / f"trial_{trial_id:04d}" / "task_0" / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # as a write cut short by the kill (not ours: atomic)
    result = sweep(tmp_path, *args)
    assert [t.status for t in Archive(db).trials()] == ["finished"] * 2
    assert f"trial {trial_id}: continuing from its checkpoints failed" in result.stdout
    log = (tmp_path / f"trial_{trial_id:04d}" / "task_0" / "train.log").read_text()
    assert "resumed from" not in log  # the job dir was started again, whole


def test_a_promoted_trial_killed_mid_run_continues_from_its_own_checkpoint(tmp_path):
    """kill -9 while a promoted trial runs past its copy of the parent's checkpoint: the rerun continues it
    from its own later checkpoint (no second copy), and the parent's run is left as it was."""
    args = ["hydra.sweeper.budget=3", "hydra.sweeper.n_initial=2", "hydra.sweeper.n_workers=1", "algo.anneal_lr=false",
            "hydra.sweeper.promotion.enabled=true", "algo.lr=tag(log, interval(1e-4, 1e-2))", *LONGER]
    process = subprocess.Popen(sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    promoted = tmp_path / "trial_0003" / "task_0" / "checkpoints" / "last.pt"

    def past_the_copy():
        try:
            return promoted.is_file() and load_checkpoint(promoted)["global_step"] > 8192
        except Exception:  # noqa: BLE001  the file is being replaced
            return False

    wait_for(past_the_copy)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    reached = load_checkpoint(promoted)["global_step"]
    sweep(tmp_path, *args)
    trials = Archive(tmp_path / "archive.sqlite").trials(kind="search")
    assert [(t.status, t.mutation) for t in trials][2] == ("finished", "promote") and len(trials) == 3
    log = (tmp_path / "trial_0003" / "task_0" / "train.log").read_text()
    assert f"(step {reached})" in log.split("resumed from")[-1]  # its own checkpoint, not the copy at 8192
    assert load_checkpoint(promoted)["global_step"] == 16384
    parent = Path(trials[trials[2].parent - 1].run_dir) / "task_0" / "checkpoints" / "last.pt"
    assert load_checkpoint(parent)["global_step"] == 8192


def test_an_orphan_workers_result_is_adopted_not_rerun(tmp_path):
    """Only the sweeper is killed: its workers finish as orphans, and the rerun adopts their results
    instead of running them again."""
    args = ["hydra.sweeper.budget=3", "hydra.sweeper.n_initial=3", "hydra.sweeper.n_workers=2",
            "algo.lr=tag(log, interval(1e-4, 1e-2))", *LONGER]
    process = subprocess.Popen(sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    db = tmp_path / "archive.sqlite"
    wait_for(lambda: status_counts(db).get("running", 0) == 2 and all(
        (tmp_path / f"trial_{i:04d}" / "worker.json").is_file() for i in (1, 2)))
    workers = {i: json.loads((tmp_path / f"trial_{i:04d}" / "worker.json").read_text())["pid"] for i in (1, 2)}
    process.kill()  # the sweeper alone: its workers go on as orphans
    process.wait()
    wait_for(lambda: all((tmp_path / f"trial_{i:04d}" / "result.json").is_file() for i in (1, 2)))
    result = sweep(tmp_path, *args)
    assert "adopting the result" in result.stderr + result.stdout
    trials = Archive(db).trials(kind="search")
    assert [t.status for t in trials] == ["finished"] * 3
    for i in (1, 2):
        adopted = json.loads((tmp_path / f"trial_{i:04d}" / "result.json").read_text())["task_scores"]
        assert trials[i - 1].task_scores == adopted
        log = (tmp_path / f"trial_{i:04d}" / "task_0" / "train.log").read_text()
        assert log.count("run dir:") == 1, "an adopted trial ran again"
    assert all(pid != json.loads((tmp_path / "trial_0003" / "worker.json").read_text())["pid"] for pid in workers.values())


def test_a_worker_killed_by_a_signal_continues_from_its_checkpoint(tmp_path):
    args = ["hydra.sweeper.budget=2", "hydra.sweeper.n_initial=2", "hydra.sweeper.n_workers=1",
            "algo.lr=tag(log, interval(1e-4, 1e-2))", *LONGER]
    process = subprocess.Popen(sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    checkpoint = tmp_path / "trial_0001" / "task_0" / "checkpoints" / "last.pt"
    wait_for(lambda: checkpoint.is_file() and (tmp_path / "trial_0001" / "worker.json").is_file())
    os.kill(json.loads((tmp_path / "trial_0001" / "worker.json").read_text())["pid"], signal.SIGKILL)  # as the OOM killer
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    assert "trial 1: its worker was killed (signal 9); continuing it from its checkpoints (retry 1 of 1)" in output
    trials = Archive(tmp_path / "archive.sqlite").trials()
    assert [(t.id, t.status) for t in trials] == [(1, "finished"), (2, "finished")]
    assert "resumed from" in (tmp_path / "trial_0001" / "task_0" / "train.log").read_text()


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
    sweeper = ALMASweeperImpl(pruning={"enabled": True, "min_peers": 3, "quantile": 0.25, "min_reports": 1})
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


def test_pruning_reads_a_promoted_trial_from_where_its_copy_ends(tmp_path):
    """The reports a promoted trial's job dir copied from its parent are the parent's: ranked there, the
    promoted trial would be pruned for a score its parent was promoted with."""
    sweeper = ALMASweeperImpl(pruning={"enabled": True, "min_peers": 1, "quantile": 0.25, "min_reports": 1},
                              promotion={"enabled": True})
    sweeper.lengths = [100]
    archive = Archive(tmp_path / "a.sqlite")
    parent = archive.add("search", {"x": 1}, [], "initial")
    peer = archive.add("search", {"x": 2}, [], "initial")
    for trial, step, score in ((parent, 100, 1.0), (peer, 100, 2.0), (peer, 200, 3.0)):
        archive.report(trial, 0, step, score)
    promoted = archive.get(archive.add("search", {"x": 1}, [], "promote", parent=parent))
    (tmp_path / "reports.jsonl").write_text('{"step": 100, "objective": 1.0}\n{"step": 200, "objective": 3.5}\n')
    runs = {promoted.id: Running(promoted, FakeProcess(), tmp_path / "result.json", [tmp_path])}
    sweeper._prune(archive, runs)
    assert not runs[promoted.id].process.terminated and archive.get(promoted.id).status == "running"
    assert archive.peers_at(0, 100, excluding=parent) == [2.0]  # the copied report was not recorded as its own


def test_pruning_waits_for_a_trials_second_report(tmp_path):
    """The grace period (pruning.min_reports=2): a trial far below its peers at its first report goes
    on, and is stopped at its second."""
    sweeper = ALMASweeperImpl(pruning={"enabled": True, "min_peers": 3, "quantile": 0.25})
    archive = Archive(tmp_path / "a.sqlite")
    for i, score in enumerate((1.0, 2.0, 3.0)):
        peer = archive.add("search", {"x": i}, [], "initial")
        archive.report(peer, 0, 100, score)
        archive.report(peer, 0, 200, score)
    trial = archive.get(archive.add("search", {"x": "low"}, [], "initial"))
    (tmp_path / "reports.jsonl").write_text('{"step": 100, "objective": 0.5}\n')
    runs = {trial.id: Running(trial, FakeProcess(), tmp_path / "result.json", [tmp_path])}
    sweeper._prune(archive, runs)
    assert not runs[trial.id].process.terminated and archive.get(trial.id).status == "running"
    (tmp_path / "reports.jsonl").write_text('{"step": 100, "objective": 0.5}\n{"step": 200, "objective": 0.5}\n')
    sweeper._prune(archive, runs)
    assert runs[trial.id].process.terminated and "pruned at task 0, step 200" in archive.get(trial.id).error


def test_trials_can_run_through_the_configured_hydra_launcher(tmp_path):
    sweep(tmp_path, "hydra.sweeper.launcher=hydra", "hydra.sweeper.budget=3", "hydra.sweeper.n_initial=2",
          "hydra.sweeper.n_workers=2", "hydra.sweeper.max_failure_rate=1.0", "algo.num_minibatches=choice(4, 3, 2)",
          "hydra.sweeper.holdout_tasks=['env.regime=crash']", "hydra.sweeper.holdout_top_k=1")
    archive = Archive(tmp_path / "archive.sqlite")
    search = archive.trials(kind="search")
    (holdout,) = archive.trials(kind="holdout")
    assert holdout.status == "finished" and (Path(holdout.run_dir) / "task_0" / ".hydra").is_dir()
    assert len(search) == 3
    for t in search:
        assert t.status == ("failed" if t.design["algo.num_minibatches"] == 3 else "finished")
        assert (Path(t.run_dir) / "task_0" / ".hydra" / "config.yaml").is_file()


@pytest.mark.parametrize("setting,message", [
    ({"mutation_scale": -0.1}, "hydra.sweeper.mutation_scale: must be > 0, got -0.1"),
    ({"min_trials_for_failure": 0}, "hydra.sweeper.min_trials_for_failure: must be >= 1, got 0"),
    ({"poll_seconds": -1.0}, "hydra.sweeper.poll_seconds: must be > 0, got -1.0"),
    ({"holdout_top_k": -1}, "hydra.sweeper.holdout_top_k: must be >= 1, got -1"),
    ({"max_retries": -1}, "hydra.sweeper.max_retries: must be >= 0, got -1"),
    ({"pruning": {"min_peers": -2}}, "hydra.sweeper.pruning.min_peers: must be >= 1, got -2"),
    ({"promotion": {"eta": 1.0}}, "hydra.sweeper.promotion.eta: must be > 1, got 1.0"),
    ({"proposer": "tpe"}, "hydra.sweeper.proposer: unknown 'tpe'; allowed: alma, random"),
    ({"promotion": {"enabled": True}, "launcher": "hydra"}, "hydra.sweeper.promotion.enabled: promotion needs the local workers"),
])
def test_sweeper_settings_are_checked_up_front(setting, message):
    with pytest.raises(SpaceError, match=re.escape(message)):
        ALMASweeperImpl(**setting)


@pytest.mark.parametrize("args,message", [
    (["hydra.sweeper.tasks=['env.regime=nope']"], "task 'env.regime=nope': env.regime: unknown regime 'nope'"),
    (["env.n_envs=10"], "the overrides every trial shares: algo.num_minibatches: must divide env.n_envs=10"),
    (["hydra.sweeper.inherit_weights=true", "hydra.sweeper.proposer=alma", "hydra.sweeper.inherit_key=trainer.nope"],
     "the overrides every trial shares do not compose: Could not override 'trainer.nope'"),
    (["hydra.sweeper.promotion.enabled=true", "hydra.sweeper.promotion.key=algo.lr"],
     "hydra.sweeper.promotion.key: algo.lr is searched; it must be a fixed positive integer"),
    (["hydra.sweeper.promotion.enabled=true", "hydra.sweeper.promotion.key=trainer.nope"],
     "hydra.sweeper.promotion.key: trainer.nope is None in the overrides every trial shares"),
    (["algo.gama=interval(0.9, 0.99)"], "algo.gama: a searched key that the overrides every trial shares do not "
                                        "have; did you mean algo.gamma? (+algo.gama=... adds a new key)"),
])
def test_shared_mistakes_fail_the_sweep_before_any_job(tmp_path, args, message):
    result = sweep(tmp_path, "algo.lr=tag(log, interval(1e-4, 1e-2))", *args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
    assert not list(tmp_path.glob("trial_*"))


def test_a_sweep_whose_every_trial_failed_exits_non_zero(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.budget=2", "hydra.sweeper.n_workers=1", "hydra.sweeper.max_failure_rate=1.0",
                   "algo.num_minibatches=choice(3, 5)", check=False)
    assert result.returncode != 0 and "sweep failed: none of its 2 trials finished" in result.stderr


def test_a_sweep_ends_when_its_space_holds_no_new_design(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.budget=5", "hydra.sweeper.n_initial=1", "hydra.sweeper.n_workers=1",
                   "algo=choice(ppo, ipa)")
    assert sorted(t.design["algo"] for t in Archive(tmp_path / "archive.sqlite").trials()) == ["ipa", "ppo"]
    assert "every design of the search space has been tried: the sweep ends after 2 of its 5 trials" in result.stdout


def test_the_baseline_of_a_group_choice_is_the_configs_own_default(tmp_path):
    sweep(tmp_path, "hydra.sweeper.budget=1", "hydra.sweeper.n_initial=1", "hydra.sweeper.n_workers=1", "algo=choice(ppo, ipa)")
    (baseline,) = Archive(tmp_path / "archive.sqlite").trials()
    assert baseline.mutation == "baseline" and baseline.design == {"algo": "ipa"}


def test_a_second_sweep_on_a_dir_in_use_is_refused(tmp_path):
    args = ["hydra.sweeper.budget=2", "hydra.sweeper.n_workers=1", "algo.lr=tag(log, interval(1e-4, 1e-2))", *LONGER]
    first = subprocess.Popen(sweep_command(tmp_path, *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: status_counts(tmp_path / "archive.sqlite").get("running", 0) >= 1)
        second = sweep(tmp_path, *args, check=False)
        assert second.returncode != 0
        assert f"in use by another sweep (pid {first.pid} on host" in second.stderr, second.stderr[-2000:]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    sweep(tmp_path, *args)  # the killed sweeper's lock is free: the rerun takes it and finishes the sweep
    assert [t.status for t in Archive(tmp_path / "archive.sqlite").trials()] == ["finished"] * 2


def test_a_sweep_over_memory_designs_never_trains_the_same_run_twice(tmp_path):
    sweep(tmp_path, "hydra.sweeper.budget=5", "hydra.sweeper.n_initial=4", "hydra.sweeper.n_workers=2",
          "policy/memory=choice(none, window)", "policy.memory.frames=range(2, 6)", "policy.memory.capacity=range(4, 40)")
    search = Archive(tmp_path / "archive.sqlite").trials(kind="search")
    runs = [(t.design["policy/memory"], t.design["policy.memory.frames"] if t.design["policy/memory"] == "window" else None)
            for t in search]
    assert len(search) == 5 and len(set(runs)) == 5, runs  # capacity is read by neither design: not a new run
    assert search[0].mutation == "baseline" and runs[0] == ("none", None)
