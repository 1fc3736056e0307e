"""One sweep per sweep dir: an exclusive ``flock`` on ``<sweep_dir>/sweep.lock``.

Why ``flock``: the kernel holds the lock for as long as the holder's open file lives and drops it
when the holder dies, however it dies (``kill -9`` included). So there is no stale state to guess
about: a killed sweeper's lock is free at once, and a live sweeper's lock is never stolen, whatever
its age. The file also keeps a record of the holder (pid, host, start time, argv), read only to
name the holder in the refusal and to log a takeover; the lock itself is the ``flock``, not the
record. A clean ``release`` empties the record, so a record found by a new holder is a dead one's.

Scope: processes on one host. On a network filesystem, sweepers on different hosts may not see each
other's ``flock`` (NFS emulates it with byte-range locks, other filesystems ignore it or refuse it);
a refusal of the lock call itself is reported as a ``ConfigError``.

Forked children: a ``fork`` copies the descriptor, and the lock belongs to the open file that both
copies share, so an orphaned worker of a killed sweeper would keep the lock alive. A forked child
therefore closes its copy without unlocking (``forget``); by default this happens on its own, in an
``os.register_at_fork`` hook (multiprocessing's fork context goes through ``os.fork``). The
descriptor is non-inheritable, so processes that ``exec`` (subprocess, spawn, forkserver) never get it.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import socket
import sys
import time
import weakref
from pathlib import Path

from openclaw_rl.errors import ConfigError

log = logging.getLogger("openclaw_rl.alma")

LOCK_NAME = "sweep.lock"


class SweepLocked(ConfigError):
    """The sweep dir is in use by another live sweep; ``holder`` is its record (may be empty)."""

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


_HELD: weakref.WeakSet[SweepLock] = weakref.WeakSet()  # locks this process holds, for the fork hook


def _forget_all_in_child() -> None:
    for lock in list(_HELD):
        if lock.forget_on_fork:
            lock.forget()


os.register_at_fork(after_in_child=_forget_all_in_child)


def _describe(holder: dict) -> str:
    if not holder:
        return "holder not recorded"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')}")


class SweepLock:
    """An exclusive lock on a sweep dir, held from ``acquire`` to ``release`` (or a ``with`` block).

    ``forget_on_fork`` (default True): a process forked while the lock is held closes its copy of the
    descriptor at once, so the lock stays with the sweeper alone and dies with it.
    """

    def __init__(self, sweep_dir: Path | str, *, forget_on_fork: bool = True):
        self.sweep_dir = Path(sweep_dir)
        self.path = self.sweep_dir / LOCK_NAME
        self.forget_on_fork = forget_on_fork
        self._fd: int | None = None
        self._owner: int | None = None  # pid that acquired; only it may unlock

    @property
    def held(self) -> bool:
        return self._fd is not None and self._owner == os.getpid()

    def acquire(self) -> SweepLock:
        """Take the lock, or raise ``SweepLocked`` naming the live holder. Returns self."""
        if self.held:
            return self
        try:
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise ConfigError(f"{self.path}: cannot open the sweep lock ({error.strerror or error})") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd, wait=True)
            os.close(fd)
            raise SweepLocked(
                f"{self.sweep_dir}: in use by another sweep ({_describe(holder)}); "
                "wait for it to finish, or use another hydra.sweep.dir", holder) from None
        except OSError as error:
            os.close(fd)
            raise ConfigError(
                f"{self.path}: cannot lock the sweep dir ({error.strerror or error}); "
                "put hydra.sweep.dir on a local filesystem") from error
        try:
            previous = _read_holder(fd, wait=False)
            if previous:
                log.info("%s: took over the stale lock of a dead sweep (%s)", self.sweep_dir, _describe(previous))
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "argv": list(sys.argv)}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)  # closing the only descriptor drops the lock
            raise
        self._fd, self._owner = fd, os.getpid()
        _HELD.add(self)
        return self

    def release(self) -> None:
        """Empty the record, unlock and close. Idempotent; in a forked child it only ``forget``s."""
        if self._fd is None:
            return
        if self._owner != os.getpid():
            self.forget()
            return
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        try:
            os.ftruncate(fd, 0)  # a record left behind means its holder died
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def forget(self) -> None:
        """In a forked child: close this process's copy of the descriptor WITHOUT unlocking.

        ``flock`` locks belong to the open file description, which parent and child share after a
        fork: the lock lasts until every descriptor of it is closed, and ``LOCK_UN`` from any of
        them (the child's included) would release the parent's lock. So the child only closes its
        copy; the parent keeps the lock, and it dies with the parent, not with the orphans. Idempotent.
        """
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        try:
            os.close(fd)
        except OSError:
            pass

    def holder(self) -> dict:
        """The record in the lock file (the holder's, or ours), or {} when there is none."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        try:
            return _read_holder(fd, wait=False)
        finally:
            os.close(fd)

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"SweepLock({str(self.sweep_dir)!r}, held={self.held})"


def _read_holder(fd: int, *, wait: bool) -> dict:
    """The JSON record in the lock file; {} if empty or unreadable.

    With ``wait``, an empty or partial record is read again for up to half a second: a holder that
    has just taken the lock may not have written it yet.
    """
    deadline = time.monotonic() + (0.5 if wait else 0.0)
    while True:
        try:
            record = json.loads(os.pread(fd, 1 << 16, 0).decode())
            if isinstance(record, dict):
                return record
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.02)
