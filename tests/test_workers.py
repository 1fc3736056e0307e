"""Rollout workers (roll/workers.py) in fault-isolated sandboxes (rock/sandbox.py).

What must hold: the same run on every backend, bit for bit; failures (a raise, a SIGKILL, a hang)
that leave the run exactly as it would have been; async collection whose lag the mismatch mask sees;
exact resume; clear errors for bad settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import torch
import user_sim

from openclaw_rl.errors import ConfigError
from openclaw_rl.rock.sandbox import SandboxError, SandboxLost, make_sandbox
from openclaw_rl.roll.algorithms import compute_targets
from openclaw_rl.roll.checkpoint import checkpoint_path, load_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import ActorCritic, torch_threads
from openclaw_rl.roll.trainer import build, run_training
from openclaw_rl.roll.workers import RolloutPool, RolloutWorker

N, T, UPDATES = 8, 32, 3


def config(updates: int = UPDATES, ipa: dict | None = None, algo: dict | None = None, **trainer) -> RunConfig:
    return RunConfig.from_mapping({
        "env": {"n_envs": N, "episode_bars": 48},
        "trainer": {"total_steps": N * T * updates, "rollout_steps": T, "progress": "log", "workers": 2,
                    "checkpoint_every": 1, **trainer},
        "ipa": ipa or {},
        "algo": algo or {},
        "eval": {"n_envs": 4},
    })


def user_config(gym_id: str, updates: int = UPDATES, every: int = 0, **trainer) -> RunConfig:
    """A user's env (``tests/user_sim.py``) in two workers of two envs each; evaluated ``every`` updates and at the end."""
    return RunConfig.from_mapping({
        "env": {"gym_id": gym_id, "n_envs": 4},
        "algo": {"name": "ppo", "num_minibatches": 2},
        "eval": {"objective": "episodic_return", "n_envs": 4, "every": every},
        "trainer": {"total_steps": 4 * T * updates, "rollout_steps": T, "progress": "log", "workers": 2, **trainer},
    })


def train(path, **trainer):
    """The run's history and its final weights."""
    result = run_training(config(**trainer), path)
    return result.history, load_checkpoint(checkpoint_path(path))


def assert_same_run(a, b) -> None:
    (history_a, state_a), (history_b, state_b) = a, b
    assert state_a["global_step"] == state_b["global_step"]
    for key, value in state_a["policy"].items():
        assert torch.equal(value, state_b["policy"][key]), key
    for h_a, h_b in zip(history_a, history_b, strict=True):
        assert h_a["losses/policy_loss"] == h_b["losses/policy_loss"]
        assert h_a.get("charts/episodic_return") == h_b.get("charts/episodic_return")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Two workers in this process: the run every backend and every survived fault must reproduce (under
    one thread, as the tests are: the policy's orthogonal init depends on the thread count)."""
    with torch_threads(1):
        return train(tmp_path_factory.mktemp("reference") / "run", backend="local")


def test_process_and_ray_workers_give_the_local_run_bit_for_bit(reference, tmp_path, local_ray):
    assert_same_run(reference, train(tmp_path / "process", backend="process"))
    assert_same_run(reference, train(tmp_path / "ray", backend="ray"))


def test_workers_split_the_markets_of_one_process_in_order():
    """Worker i owns columns i*n/W ...: the joined batch starts on the markets one collector starts on,
    with each group's id kept (group_size 2 over 2 workers)."""
    single = RunConfig.from_mapping({"env": {"n_envs": N, "episode_bars": 48},
                                     "trainer": {"rollout_steps": T, "group_size": 2}})
    pooled = config(group_size=2, backend="local")
    _, policy, collector, _ = build(single, torch.device("cpu"))
    pool = RolloutPool(pooled, policy, torch.device("cpu"))
    batch, _ = collector.collect(T, version=0)
    joined, _ = pool.collect(T, version=0)
    assert torch.equal(joined.obs[0], batch.obs[0])
    assert torch.equal(joined.group, batch.group) and joined.group.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert joined.obs.shape == batch.obs.shape and torch.equal(joined.version, batch.version)
    pool.close()


@pytest.mark.parametrize("memory", [{"name": "gru"}, {"name": "paom", "capacity": 4}])
def test_memory_states_and_contexts_come_back_from_process_workers_unchanged(memory):
    """A recurrent state (gru) and an observational memory's contexts (paom) cross the process boundary
    and are joined per column: the same batches as workers in this process."""
    def pool(backend):
        run = RunConfig.from_mapping({"env": {"n_envs": N, "episode_bars": 48}, "policy": {"memory": memory},
                                      "trainer": {"rollout_steps": T, "workers": 2, "backend": backend}})
        return RolloutPool(run, policy, torch.device("cpu"))

    run = RunConfig.from_mapping({"env": {"n_envs": N, "episode_bars": 48}, "policy": {"memory": memory}})
    policy = ActorCritic.for_env(run.env, run.policy)
    process, local = pool("process"), pool("local")
    try:
        for version in range(2):
            got, want = process.collect(T, version)[0], local.collect(T, version)[0]
            for name in ("initial_state", "last_state", "logp", "actions"):
                assert torch.equal(getattr(got, name), getattr(want, name)), name
            assert (got.memory is None) == (memory["name"] == "gru")
            assert got.memory is None or torch.equal(got.memory, want.memory)
        assert got.last_state.abs().sum() > 0  # the memory held something
    finally:
        process.close()
        local.close()


def test_a_worker_restored_to_a_state_repeats_its_rollout_and_moves_its_rng_on():
    """The worker's state (env, memory, RNG, weights) is everything its rollout depends on: from a restored
    state it collects the same rollout, and its RNG advances, so the next rollout draws new numbers."""
    worker = RolloutWorker(config(backend="local"), 0, isolated=False)
    start = worker.state_dict()
    first, _, after = worker.collect(None, 0, T)
    worker.load_state_dict(start)
    again, _, _ = worker.collect(None, 0, T)
    assert torch.equal(first.actions, again.actions) and torch.equal(first.obs, again.obs)
    assert not torch.equal(after["rng"], start["rng"])


def test_raised_hung_and_killed_workers_leave_the_run_unchanged(reference, tmp_path):
    """Injected faults in the workers' env steps (a raise 4% of steps, a SIGKILL 0.5%, a hang 0.5% past a
    2 s timeout): every failed attempt is thrown away whole and collected again from the worker's state
    before it, so the run equals the run without faults, step count included."""
    faulty = train(tmp_path / "faulty", backend="process", worker_timeout=2.0, worker_retries=100,
                   faults={"step_error": 0.04, "kill": 0.005, "hang": 0.005, "hang_seconds": 60})
    assert_same_run(reference, faulty)
    restarts = sum(h["sandbox/restarts"] for h in faulty[0])
    assert restarts > 0  # no fault in 6 rollouts of 32 steps: probability 0.96**192 < 0.001
    assert sum(h["sandbox/resampled"] for h in faulty[0]) == restarts * N // 2
    assert faulty[1]["global_step"] == UPDATES * N * T


def test_random_injected_faults_never_read_as_one_recurring_failure():
    """Three random injected errors at the same step are bad luck, not a bug: their messages differ, so the
    pool's same-failure rule (a bug: stop after 3) does not stop a run with trainer.faults (it did, ~2% of runs)."""
    from openclaw_rl.rock.faults import FaultConfig, FaultyVecEnv, InjectedFault
    from openclaw_rl.roll.workers import SAME_FAILURE, record_failure

    envs = FaultyVecEnv(None, FaultConfig(step_error=1.0))
    failures = []
    for _ in range(SAME_FAILURE + 1):
        with pytest.raises(InjectedFault) as raised:
            envs.step(None)
        record_failure(failures, SandboxError(f"RuntimeError: at step 4 of the rollout: {raised.value}"), 100, "worker 0")
    assert len(set(failures)) == len(failures)
    with pytest.raises(RuntimeError, match="failed the same way 3 times"):
        for _ in range(SAME_FAILURE):
            record_failure(failures, SandboxError("RuntimeError: at step 4 of the rollout: ValueError: a bug"), 100, "w")


def test_a_worker_killed_between_rollouts_is_rebuilt_from_its_state():
    pooled = RolloutPool(config(backend="process"), ActorCritic.for_env(config().env, config().policy),
                         torch.device("cpu"))
    local = RolloutPool(config(backend="local"), pooled.policy, torch.device("cpu"))
    try:
        for version in range(2):
            pid = pooled.pids()[1]
            if version == 1:
                os.kill(pid, signal.SIGKILL)
            got, _ = pooled.collect(T, version)
            want, _ = local.collect(T, version)
            assert torch.equal(got.obs, want.obs) and torch.equal(got.actions, want.actions)
            assert torch.equal(got.logp, want.logp)
        assert pooled.stats["sandbox/restarts"] == 1 and pooled.pids()[1] != pid
    finally:
        pooled.close()
        local.close()


def test_a_user_env_that_raises_in_evaluation_is_evaluated_again_and_the_run_ends_with_metrics(tmp_path, caplog):
    """The simulator raises at a random step of its first two evaluation episodes in a process. Evaluation runs in a
    sandbox with the workers' retries (it ran in the trainer's process: the run exited 1, without metrics or HParams),
    at eval.every as at the end."""
    run = user_config("user_sim:EvalCrash-v0", 2, every=2, backend="process")
    with caplog.at_level(logging.WARNING, logger="openclaw_rl.train"):
        result = run_training(run, tmp_path / "run")
    assert set(result.metrics) == {"episodic_return"} and 0 <= result.objective <= user_sim.HORIZON
    assert caplog.text.count("crashed in an evaluation episode") == 2  # two failed attempts, then one that ended
    reports = (tmp_path / "run" / "reports.jsonl").read_text().splitlines()
    assert [json.loads(line)["update"] for line in reports] == [2]


def test_a_user_env_restarted_after_a_failure_plays_fresh_episodes_not_replays():
    """A user env has no snapshot: a worker restored after a failure (here a SIGKILL) starts its episodes again. On
    their first seeds they replayed the episodes trained on already; the seeds after a restart are fresh, derived
    from the run seed and the worker's restart count (in its state), so a worker restored from the same state
    plays the same episodes."""
    run = user_config("user_sim:Keyed-v0", backend="process")
    pool = RolloutPool(run, ActorCritic.for_env(run.env, run.policy), torch.device("cpu"))
    try:
        before = [pool.collect(T, version)[0] for version in range(2)]
        state = pool.states[1]
        os.kill(pool.pids()[1], signal.SIGKILL)
        after, _ = pool.collect(T, 2)
        assert pool.stats["sandbox/restarts"] == 1
        states = pool.states
    finally:
        pool.close()
    ours = slice(2, 4)  # worker 1's columns
    assert (after.obs[0, ours, 0] == 0).all()  # its episodes started again
    seen = set(torch.cat([b.obs[..., 1] for b in before]).flatten().tolist())
    assert seen.isdisjoint(after.obs[:, ours, 1].flatten().tolist()), "episodes of earlier rollouts played again"
    assert [s["restarts"] for s in states] == [0, 1]
    worker = RolloutWorker(run, 1, isolated=False)
    worker.load_state_dict(state)
    again, _, _ = worker.collect(pool.policy.state_dict(), 2, T)
    assert torch.equal(again.obs, after.obs[:, ours]) and torch.equal(again.actions, after.actions[:, ours])


def test_the_mismatch_on_either_side_of_its_bounds_is_logged():
    """A behaviour policy likelier than pi_old (pi_old / mu < 1) was invisible in the max and the mean: the min and
    the fraction of chunks beyond each bound show both sides (two-sided bounds 0.5 and 1.5)."""
    run = RunConfig.from_mapping({"env": {"n_envs": N, "episode_bars": 48}, "trainer": {"rollout_steps": T},
                                  "algo": {"name": "ipa", "update_epochs": 1, "num_minibatches": 1},
                                  "ipa": {"mismatch_high": 1.5, "mismatch_low": 0.5}})
    torch.manual_seed(0)
    _, _, collector, learner = build(run, torch.device("cpu"))
    batch, _ = collector.collect(T, version=3)
    kind = torch.arange(N) % 4  # 0, 2: acted by the weights being updated; 1: pi_old / mu = e; 3: pi_old / mu = 1 / e
    shift = torch.tensor([0.0, 1.0, 0.0, -1.0])[kind]
    stale = dataclasses.replace(batch, logp=batch.logp - shift, version=torch.where(shift != 0, 2, batch.version))
    ids = compute_targets(learner.algo, learner.ipa, batch, batch.values, torch.zeros(N)).chunk_ids
    chunks = [len(ids[:, column].unique()) for column in range(N)]
    stats = learner.update(stale, 3, 4)
    assert stats["ipa/mismatch_max"] == pytest.approx(math.e, rel=1e-4)
    assert stats["ipa/mismatch_min"] == pytest.approx(1 / math.e, rel=1e-4)
    for key, side in (("ipa/mismatch_high_fraction", 1), ("ipa/mismatch_low_fraction", 3)):
        want = sum(c for c, k in zip(chunks, kind.tolist()) if k == side) / sum(chunks)
        assert 0 < want < 1 and stats[key] == pytest.approx(want), key


def test_async_collection_lags_and_the_mismatch_mask_acts(tmp_path):
    """Async workers act with weights an update old: pi_old / mu departs from 1 and a tight mismatch
    bound drops chunks; the same bound drops nothing in sync collection (mu == pi_old exactly)."""
    tight = {"mismatch_high": 1.0001}
    updates = 4
    run = run_training(config(updates, ipa=tight, backend="process", collection="async"), tmp_path / "async")
    lag = [h["sandbox/policy_lag_max"] for h in run.history]
    assert max(lag) >= 1 and max(lag) <= 2  # trainer.max_policy_lag
    assert max(h["ipa/mismatch_max"] for h in run.history) > 1.0001
    assert max(h["ipa/masked_fraction"] for h in run.history) > 0
    assert load_checkpoint(checkpoint_path(tmp_path / "async"))["global_step"] == updates * N * T
    sync = run_training(config(updates, ipa=tight, backend="local"), tmp_path / "sync")
    assert all(h["ipa/mismatch_max"] == 1.0 and h["ipa/masked_fraction"] == 0 for h in sync.history)


def test_weights_broadcast_every_other_update_make_mu_lag_by_one(tmp_path):
    """Sync collection with trainer.broadcast_every=2: odd updates are collected by the weights of the update
    before, and the batch says so (its version), so the lag and pi_old / mu show it."""
    run = run_training(config(4, backend="local", broadcast_every=2), tmp_path / "run")
    assert [h["sandbox/policy_lag_max"] for h in run.history] == [0.0, 1.0, 0.0, 1.0]
    assert [h["ipa/mismatch_max"] == 1.0 for h in run.history] == [True, False, True, False]


def test_a_rollout_staler_than_max_policy_lag_is_collected_again(tmp_path):
    run = run_training(config(4, backend="process", collection="async", max_policy_lag=0), tmp_path / "run")
    assert all(h["sandbox/policy_lag_max"] == 0 for h in run.history)
    assert sum(h["sandbox/stale"] for h in run.history) > 0  # every rollout in flight during an update


def test_a_pooled_run_resumes_exactly_and_only_with_its_workers(tmp_path):
    """Stopped after 2 of 3 updates and resumed: the run without the stop (a constant learning rate, so
    that the shorter first leg anneals nothing differently)."""
    constant = {"anneal_lr": False}
    straight = run_training(config(algo=constant, backend="local"), tmp_path / "straight")
    run_training(config(UPDATES - 1, algo=constant, backend="local"), tmp_path / "run")
    resumed = run_training(config(algo=constant, backend="local", resume="auto"), tmp_path / "run")
    assert resumed.history[-1]["losses/policy_loss"] == straight.history[-1]["losses/policy_loss"]
    want = load_checkpoint(checkpoint_path(tmp_path / "straight"))
    got = load_checkpoint(checkpoint_path(tmp_path / "run"))
    for key, value in want["policy"].items():
        assert torch.equal(value, got["policy"][key]), key
    for a, b in zip(want["collector"]["workers"], got["collector"]["workers"], strict=True):
        assert torch.equal(a["rng"], b["rng"]) and np.array_equal(a["collector"]["obs"], b["collector"]["obs"])
    with pytest.raises(ConfigError, match="trainer.workers=4"):
        run_training(config(UPDATES + 1, algo=constant, backend="local", resume="auto", workers=4), tmp_path / "run")
    with pytest.raises(ConfigError, match="2 rollout workers"):
        run_training(config(UPDATES + 1, algo=constant, backend="local", resume="auto", workers=1), tmp_path / "run")


@pytest.mark.parametrize("trainer, key", [
    ({"workers": 0}, "trainer.workers"),
    ({"workers": 3}, "trainer.workers"),  # 8 markets do not split in 3
    ({"backend": "slurm"}, "trainer.backend"),
    ({"collection": "eventually"}, "trainer.collection"),
    ({"backend": "local", "collection": "async"}, "trainer.collection"),
    ({"worker_timeout": 0}, "trainer.worker_timeout"),
    ({"max_policy_lag": -1}, "trainer.max_policy_lag"),
    ({"broadcast_every": 0}, "trainer.broadcast_every"),
    ({"backend": "local", "faults": {"kill": 0.1}}, "trainer.faults.kill"),
    ({"faults": {"step_error": 1.5}}, "trainer.faults.step_error"),
    ({"workers": 1, "faults": {"step_error": 0.1}}, "trainer.faults"),
    ({"backend": "process", "ray_address": "127.0.0.1:6379"}, "trainer.ray_address"),
])
def test_bad_worker_settings_name_the_key(trainer, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config(**trainer)


def test_backend_auto_puts_more_workers_or_async_ones_beside_the_learner():
    assert RunConfig.from_mapping({}).trainer.backend == "local"  # one collector in the trainer's process
    assert config().trainer.backend == "process"  # workers=2
    assert config(workers=1, collection="async").trainer.backend == "process"
    assert config(backend="local").trainer.backend == "local"


def test_an_unreachable_ray_address_fails_before_any_work(tmp_path):
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"trainer\.ray_address=127\.0\.0\.1:1: no Ray cluster answers"):
        run_training(config(backend="ray", ray_address="127.0.0.1:1"), tmp_path / "run")
    assert time.monotonic() - started < 30
    assert not checkpoint_path(tmp_path / "run").exists()


class SlowStartWorker(RolloutWorker):
    """A rollout worker that takes 2 s to start (a simulator that loads a large file, checks a licence)."""

    def __init__(self, *args):
        time.sleep(2.0)
        super().__init__(*args)


def test_a_slow_starting_ray_worker_trains_with_a_tiny_worker_timeout(tmp_path, local_ray, monkeypatch):
    """trainer.worker_timeout bounds a call, not an actor's start (a worker process, imports, the worker built),
    which has its own allowance as a process sandbox's: 1 s calls of 2 s starts train (each start timed out before)."""
    local_ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import the tests
    monkeypatch.setattr(RolloutPool, "_build", lambda pool, i: make_sandbox("ray", SlowStartWorker, pool.config, i, True))
    result = run_training(config(2, backend="ray", worker_timeout=1.0), tmp_path / "run")
    assert len(result.history) == 2 and "log_return" in result.metrics


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'openclaw_rl\[ray\]'"):
        RolloutPool(config(backend="ray"), ActorCritic.for_env(config().env, config().policy), torch.device("cpu"))


# ---------------------------------------------------------------------- the sandboxes themselves
class Host:
    """A hosted object for the sandbox tests."""

    def __init__(self, start: int):
        if start < 0:
            raise ValueError("a host cannot start below 0")
        self.total = start

    def add(self, x: int) -> int:
        self.total += x
        return self.total

    def fail(self) -> None:
        raise ValueError("boom")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def payload(self, size: int) -> bytes:
        return bytes(size)

    def pid(self) -> int:
        return os.getpid()


@pytest.fixture(params=["local", "process", "ray"])
def backend(request):
    if request.param == "ray":
        ray = request.getfixturevalue("local_ray")
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import the tests
    return request.param


def call(sandbox, method, *args, timeout=60.0):
    sandbox.submit(method, *args)
    return sandbox.result(timeout)


def test_a_raised_call_is_an_error_and_the_host_lives_on(backend):
    sandbox = make_sandbox(backend, Host, 1)
    try:
        assert call(sandbox, "add", 2) == 3
        with pytest.raises(SandboxError, match="ValueError: boom"):
            call(sandbox, "fail")
        assert call(sandbox, "add", 4) == 7  # the same host, its state kept
    finally:
        sandbox.close()


@pytest.mark.parametrize("isolated", ["process", "ray"])
def test_a_hung_or_killed_host_is_lost(isolated, request):
    if isolated == "ray":
        request.getfixturevalue("local_ray").cloudpickle.register_pickle_by_value(sys.modules[__name__])
    sandbox = make_sandbox(isolated, Host, 0)
    pid = call(sandbox, "pid")
    started = time.monotonic()
    with pytest.raises(SandboxLost, match="did not answer within 1.0 s"):
        call(sandbox, "sleep", 60, timeout=1.0)
    assert time.monotonic() - started < 10
    assert _gone_within(pid, 10)  # killed, not left running
    other = make_sandbox(isolated, Host, 0)
    pid = call(other, "pid")
    os.kill(pid, signal.SIGKILL)
    assert _gone_within(pid, 10)
    with pytest.raises(SandboxLost, match="gone|died"):
        call(other, "add", 1, timeout=10)


def test_a_host_stopped_while_sending_its_result_is_lost_within_the_timeout():
    """A host stopped (SIGSTOP) partway through sending its result: ``result`` kills it at the call's timeout (it
    waited for the rest forever). 64 MiB do not fit the pipe's buffer: once the first bytes are readable and the
    host is stopped, the result is only partly sent."""
    sandbox = make_sandbox("process", Host, 0)
    pid = call(sandbox, "pid")
    sandbox.submit("payload", 64 * 2**20)
    deadline = time.monotonic() + 60
    while not sandbox.ready() and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(pid, signal.SIGSTOP)
    outcome = []

    def receive():
        try:
            outcome.append(sandbox.result(2.0))
        except Exception as error:
            outcome.append(error)

    reader = threading.Thread(target=receive, daemon=True)
    started = time.monotonic()
    reader.start()
    reader.join(30)
    try:
        assert not reader.is_alive(), "result(timeout=2.0) still waited after 30 s"
        assert time.monotonic() - started < 2.0 + 10
        assert isinstance(outcome[0], SandboxLost) and "did not answer within 2.0 s" in str(outcome[0])
        assert _gone_within(pid, 10)
    finally:
        sandbox.close()  # kills a stopped host too


def test_a_host_that_cannot_be_built_fails_at_its_first_call():
    sandbox = make_sandbox("process", Host, -1)
    with pytest.raises(SandboxError, match="cannot start below 0"):
        call(sandbox, "add", 1)
    sandbox.close()


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    """A zombie (killed, not yet reaped by its parent) counts as gone, once every thread has exited: a killed
    process's main thread turns zombie while its other threads (torch's, numpy's) may still be exiting and
    holding its pipes open, so a call to it would not yet see the death."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] not in ("Z", "X"):  # the state, after "(comm)"
                    return True
        except FileNotFoundError:  # released meanwhile
            continue
    return False
