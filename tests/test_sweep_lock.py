"""One sweep per sweep dir: the lock refuses a live holder, by name, and frees a dead one's at once.

Real processes: a holder in another process, killed with SIGKILL; a sweeper killed while a forked
worker (an orphan from then on) still runs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from openclaw_rl.alma.lock import SweepLock, SweepLocked
from openclaw_rl.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def line(proc: subprocess.Popen, prefix: str) -> str:
    got = proc.stdout.readline().strip()
    assert got.startswith(prefix), (got, proc.poll())
    return got[len(prefix):].strip()


def acquire_eventually(lock: SweepLock, seconds: float = 5.0) -> SweepLock:
    """A SIGKILLed process's descriptors close a moment after kill() returns (the kernel tears it down)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return lock.acquire()
        except SweepLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_second_lock_is_refused_naming_the_holder_until_released(tmp_path):
    sweep_dir = tmp_path / "sweeps" / "x"  # created on acquire
    first = SweepLock(sweep_dir).acquire()
    assert first.held and (sweep_dir / "sweep.lock").exists()
    second = SweepLock(sweep_dir)
    with pytest.raises(SweepLocked) as refused:
        second.acquire()
    message = str(refused.value)
    assert message.startswith(f"{sweep_dir}: in use by another sweep (")
    assert f"pid {os.getpid()} on host {socket.gethostname()}, started 20" in message
    assert "wait for it to finish, or use another hydra.sweep.dir" in message
    assert isinstance(refused.value, ConfigError) and refused.value.holder["pid"] == os.getpid()
    assert not second.held
    first.release()
    assert second.acquire().held and second.holder()["pid"] == os.getpid()
    second.release()


def test_a_holder_in_another_process_is_refused_then_taken_over_when_killed(tmp_path, caplog):
    holder = python("""
        import sys
        from openclaw_rl.alma.lock import SweepLock
        lock = SweepLock(sys.argv[1]).acquire()
        print("locked", flush=True)
        sys.stdin.read()
    """, str(tmp_path))
    try:
        line(holder, "locked")
        lock = SweepLock(tmp_path)
        with pytest.raises(SweepLocked, match=f"in use by another sweep \\(pid {holder.pid} on host "):
            lock.acquire()
        holder.kill()
        holder.wait(5)
        with caplog.at_level(logging.INFO, logger="openclaw_rl.alma"):
            acquire_eventually(lock)
        assert f"took over the stale lock of a dead sweep (pid {holder.pid} on host" in caplog.text
        record = json.loads((tmp_path / "sweep.lock").read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["started"].endswith("Z") and record["argv"] == sys.argv
        lock.release()
        assert (tmp_path / "sweep.lock").read_text() == ""  # a clean release leaves no record to take over
    finally:
        holder.kill()
        holder.wait(5)
        holder.stdout.close()
        holder.stdin.close()


# A sweeper that acquires, forks a worker and is then SIGKILLed: the worker lives on as an orphan.
SWEEPER = """
    import os, sys, time
    from openclaw_rl.alma.lock import SweepLock
    mode = sys.argv[2]
    lock = SweepLock(sys.argv[1], forget_on_fork=(mode == "auto")).acquire()
    if os.fork() == 0:
        if mode == "forget":
            lock.forget()
        print("worker", os.getpid(), flush=True)
        time.sleep(30)
        os._exit(0)
    time.sleep(30)
"""


@pytest.mark.parametrize("mode", ["auto", "forget", "keep"])
def test_orphaned_workers_of_a_killed_sweeper_do_not_keep_its_lock(tmp_path, mode):
    """``auto``: the fork hook forgets; ``forget``: the worker calls it; ``keep``: neither, and the orphan
    keeps the lock alive (why the fork must forget) until it dies too."""
    sweeper = python(SWEEPER, str(tmp_path), mode)
    worker = None
    try:
        worker = int(line(sweeper, "worker"))
        sweeper.kill()
        sweeper.wait(5)
        os.kill(worker, 0)  # the orphan still runs
        lock = SweepLock(tmp_path)
        if mode == "keep":
            with pytest.raises(SweepLocked, match=f"pid {sweeper.pid} on host"):
                lock.acquire()  # the record names the dead sweeper: its orphan holds the open file
            kill(worker)
        acquire_eventually(lock)
        assert lock.holder()["pid"] == os.getpid()
        lock.release()
    finally:
        sweeper.kill()
        sweeper.wait(5)
        if worker is not None:
            kill(worker)
        sweeper.stdout.close()
        sweeper.stdin.close()


def test_forget_in_a_forked_child_does_not_unlock_the_parent(tmp_path):
    lock = SweepLock(tmp_path, forget_on_fork=False).acquire()
    pid = os.fork()
    if pid == 0:
        lock.release()  # in a child, release only forgets: no LOCK_UN on the shared open file
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    with pytest.raises(SweepLocked):
        SweepLock(tmp_path).acquire()
    assert lock.holder()["pid"] == os.getpid()  # nor did the child empty the record
    lock.release()


def test_the_context_manager_releases_and_release_is_idempotent(tmp_path):
    with SweepLock(tmp_path) as lock:
        assert lock.held
        with pytest.raises(SweepLocked):
            SweepLock(tmp_path).acquire()
    assert not lock.held
    lock.release()
    lock.release()
    lock.forget()
    with SweepLock(tmp_path) as again:
        assert again.acquire() is again  # acquiring a held lock again is a no-op
    again.release()
    with pytest.raises(RuntimeError):
        with SweepLock(tmp_path):
            raise RuntimeError("the sweep failed")
    SweepLock(tmp_path).acquire().release()  # released on the way out of an exception too


def test_an_unusable_lock_path_is_a_config_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'file' / 'sweep.lock'}: cannot open the sweep lock"):
        SweepLock(tmp_path / "file").acquire()


def test_a_filesystem_without_flock_is_a_config_error(tmp_path, monkeypatch):
    import errno
    import fcntl

    def refuse(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refuse)
    message = "cannot lock the sweep dir .*No locks available.*local filesystem"
    with pytest.raises(ConfigError, match=message) as refused:
        SweepLock(tmp_path).acquire()
    assert not isinstance(refused.value, SweepLocked)
