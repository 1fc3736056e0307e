"""Fault-isolated sandboxes: an object built and called in this process, a child process or a Ray actor.

A ``Sandbox`` hosts one object made by ``factory(*args)`` and runs one method call at a time on it:
``submit(method, *args)``, then ``result(timeout)``. What can go wrong comes back as one of two errors,
whatever the backend: ``SandboxError`` (the call raised; the host lives on and takes the next call) and
``SandboxLost`` (the host died, or the call ran past ``timeout`` and the host was killed). The caller
decides what a failure means (``roll.workers`` restarts the host from a snapshot). Nothing here knows
what the hosted object does.

Backends:
- ``local``: the object lives in the caller's process; the call runs inside ``result`` (a reference
  for the others: no isolation, no timeout).
- ``process``: a ``spawn``-ed child process per sandbox (no forked copy of the caller's threads or
  locks), talking over a pipe; a timeout or a death kills it, a timeout in the middle of receiving
  a result too (a host stopped while sending it).
- ``ray``: a Ray actor per sandbox (``max_restarts=0``: restarts are the caller's, counted);
  ``pip install openclaw_rl[ray]``.

A call's ``timeout`` counts from its ``submit``; a host's start (a process or an actor, imports, the
object built) is not part of it: the first ``submit`` waits up to ``START_TIMEOUT`` for it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import socket
import threading
import time
import traceback
from typing import Any, Callable

from openclaw_rl.errors import ConfigError

BACKENDS = ("local", "process", "ray")
START_TIMEOUT = 120.0  # seconds to start a host: a fresh interpreter's imports and the object built
RECEIVE_GRACE = 2.0  # seconds a result that has begun to arrive may take to be read, past its call's timeout
RAY_EXTRA = "Ray is not installed; install the extra: pip install 'openclaw_rl[ray]'"


class SandboxError(RuntimeError):
    """The hosted call raised; the message holds the remote traceback. The sandbox takes more calls."""


class SandboxLost(RuntimeError):
    """The sandbox died or was killed (a timeout); build a new one."""


def import_ray():
    """The ``ray`` module, or a ``ConfigError`` that names the extra to install."""
    try:
        import ray
    except ImportError as error:
        raise ConfigError(RAY_EXTRA) from error
    return ray


def connect_ray(address: str | None = None, num_cpus: int | None = None, key: str = "ray_address"):
    """Ray, connected: to the cluster at ``address`` (``host:port``, ``ray://host:port`` or ``auto``), or a
    local Ray of ``num_cpus`` when ``None``. An address that does not answer, or a cluster that asks for a
    token this machine lacks, is a ``ConfigError`` naming ``key``, raised within seconds (``ray.init`` would
    retry much longer). Reuses a live connection."""
    ray = import_ray()
    if address not in (None, "auto", "local"):  # a cluster: does it answer?
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except (OSError, ValueError) as error:
            raise ConfigError(f"{key}={address}: no Ray cluster answers there ({error}); "
                              f"start one with `ray start --head` or leave {key} null for a local Ray") from error
        if not address.startswith("ray://") and not ray.is_initialized():
            _authenticate(host, int(port), f"{key}={address}")
    if ray.is_initialized():
        return ray
    try:
        local = address in (None, "local")  # "local": a new Ray here, never one that `ray start` left running
        ray.init(address="local" if local else address, num_cpus=num_cpus if local else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError) as error:
        raise ConfigError(f"{key}={address}: cannot connect to Ray: {error}") from error
    return ray


RAY_TOKEN_FIX = ("give this machine the cluster's token (`ray get-auth-token` on the head prints it) in "
                 "RAY_AUTH_TOKEN or ~/.ray/auth_token")


def _ray_token() -> tuple[str | None, str]:
    """This machine's Ray token and where it came from, looked up as Ray does (its token-auth docs):
    ``RAY_AUTH_TOKEN``, else the file at ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    source = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    try:
        with open(source) as handle:
            return handle.read().strip() or None, source
    except OSError:
        return None, source


def _refused(host: str, port: int, token: str | None) -> bool:
    """Whether the Ray head (its GCS) at ``host:port`` refuses a call that carries ``token`` (``None``: none).
    Anything but a refusal (an answer, not a GCS, an old Ray) is left to ``ray.init`` to judge."""
    try:
        import grpc  # Ray's own dependency, distribution grpcio (the ray and dev extras declare it)
    except ImportError:
        return False
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        call = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")  # an empty request: raw bytes
        try:
            call(b"", timeout=5, metadata=metadata)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


def _authenticate(host: str, port: int, setting: str) -> None:
    """Ray's token authentication (Ray >= 2.52) for a cluster named by address. ``ray start`` turns it on
    when its machine holds a token (any machine where ``ray.init()`` once started a local Ray does), but
    ``ray.init(address=...)`` sends a token only when ``RAY_AUTH_MODE=token`` is set, and otherwise retries
    for some 20 s and fails without saying why. So: if the cluster asks for a token and accepts this
    machine's, token mode is turned on for this process (as ``ray.init`` does for a cluster it finds itself,
    ``address=auto``); if it asks and there is none, or the wrong one, the error says so."""
    if not _refused(host, port, None):
        return  # no token asked
    mode = os.environ.get("RAY_AUTH_MODE", "token").lower()
    if mode != "token":
        raise ConfigError(f"{setting}: the Ray cluster there asks for a token but RAY_AUTH_MODE={mode}; "
                          f"set RAY_AUTH_MODE=token and {RAY_TOKEN_FIX}")
    token, source = _ray_token()
    if token is None:
        raise ConfigError(f"{setting}: the Ray cluster there asks for a token and this machine has none; "
                          f"{RAY_TOKEN_FIX}")
    if _refused(host, port, token):
        raise ConfigError(f"{setting}: the Ray cluster there refuses this machine's token (from {source}); "
                          f"{RAY_TOKEN_FIX}")
    if os.environ.get("RAY_AUTH_MODE") is None:
        os.environ["RAY_AUTH_MODE"] = "token"  # read by Ray in this process and in those it starts
        try:
            from ray._raylet import Config
        except ImportError:
            return
        Config.initialize("")  # Ray read its settings at import: again, as ray.init does to turn token mode on


class Sandbox:
    """The interface; ``make_sandbox`` picks the backend."""

    submitted_at: float = 0.0  # time.monotonic() of the last submit (a call's timeout counts from it)

    def submit(self, method: str, *args) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        """The submitted call's result can be taken without waiting."""
        raise NotImplementedError

    def result(self, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the host (kills a process or actor; idempotent)."""

    def _time_left(self, timeout: float | None) -> float | None:
        """Seconds left of a call's ``timeout`` (counted from its submit)."""
        return None if timeout is None else max(timeout - (time.monotonic() - self.submitted_at), 0.0)


class LocalSandbox(Sandbox):
    def __init__(self, factory: Callable, args: tuple):
        self.host, self.call = factory(*args), None

    def submit(self, method: str, *args) -> None:
        self.call, self.submitted_at = (method, args), time.monotonic()

    def ready(self) -> bool:
        return self.call is not None

    def result(self, timeout: float | None = None) -> Any:
        (method, args), self.call = self.call, None
        try:
            return getattr(self.host, method)(*args)
        except Exception as error:
            raise SandboxError(f"{type(error).__name__}: {error}\n{traceback.format_exc()}") from error


def _serve(conn, factory: Callable, args: tuple) -> None:
    """The child process's loop: build the host, then answer calls until the pipe closes."""
    try:
        host = factory(*args)
        conn.send(("ok", None))
    except Exception as error:  # the sandbox cannot even start: report it and end
        conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
        return
    while True:
        try:
            method, call_args = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            conn.send(("ok", getattr(host, method)(*call_args)))
        except Exception as error:
            conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


class ProcessSandbox(Sandbox):
    def __init__(self, factory: Callable, args: tuple):
        """Starts the process and returns; the first ``submit`` waits until the host is built (so that
        several sandboxes start side by side), and raises there if it could not be."""
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, factory, args), daemon=True)
        self.process.start()
        child.close()
        self.started = False

    def submit(self, method: str, *args) -> None:
        if not self.started:
            self._receive(START_TIMEOUT, START_TIMEOUT)
            self.started = True
        try:
            self.conn.send((method, args))
        except (BrokenPipeError, ConnectionError, OSError) as error:
            self.close()
            raise SandboxLost(f"sandbox process {self.process.pid} is gone (exit code {self.process.exitcode})") from error
        self.submitted_at = time.monotonic()

    def ready(self) -> bool:
        return self.conn.poll(0) or not self.process.is_alive()

    def result(self, timeout: float | None = None) -> Any:
        return self._receive(self._time_left(timeout), timeout)

    def _receive(self, left: float | None, timeout: float | None) -> Any:
        """The answer within ``left`` seconds (of the call's ``timeout``); a silent process is killed."""
        deadline = None if left is None else time.monotonic() + left
        ready = multiprocessing.connection.wait([self.conn, self.process.sentinel], left)
        status = "hung" if not ready else "lost"  # the wait ran out; a sentinel fired (or a pipe broke): it died
        if self.conn in ready or self.conn.poll(0):
            status, value = self._recv(None if deadline is None else max(deadline - time.monotonic(), RECEIVE_GRACE))
            if status == "ok":
                return value
            if status == "error":
                raise SandboxError(value)
        pid = self.process.pid
        self.close()
        if status == "hung":
            raise SandboxLost(f"sandbox process {pid} did not answer within {timeout} s; killed")
        raise SandboxLost(f"sandbox process {pid} died (exit code {self.process.exitcode})")

    def _recv(self, seconds: float | None) -> tuple[str, Any]:
        """The message on the pipe, read within ``seconds``: else ``("hung", None)`` and the process killed (one
        stopped or stuck while sending leaves a partial message, which ``conn.recv`` would wait for forever)."""
        message: list = []

        def read() -> None:
            try:
                message.append(self.conn.recv())
            except (EOFError, ConnectionError, OSError):
                message.append(("lost", None))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(seconds)
        if reader.is_alive():
            self.process.kill()  # its end of the pipe closes: the reader stops at EOF
            reader.join(10)
            return "hung", None
        return message[0]

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class _RayHost:
    """The Ray actor: the hosted object and one ``call`` method."""

    def __init__(self, factory: Callable, args: tuple):
        self.host = factory(*args)

    def call(self, method: str, *args) -> Any:
        return getattr(self.host, method)(*args)

    def ping(self) -> None:
        """Answers once the host is built (an actor runs its methods after its constructor)."""


class RaySandbox(Sandbox):
    def __init__(self, factory: Callable, args: tuple, num_cpus: float = 1.0):
        """Starts the actor and returns; the first ``submit`` waits until the host is built, as a process's."""
        self.ray = import_ray()
        actor = self.ray.remote(_RayHost).options(num_cpus=num_cpus, max_restarts=0, max_task_retries=0)
        self.actor, self.ref, self.started = actor.remote(factory, args), None, False

    def submit(self, method: str, *args) -> None:
        if not self.started:
            self._get(self.actor.ping.remote(), START_TIMEOUT, START_TIMEOUT)
            self.started = True
        self.ref, self.submitted_at = self.actor.call.remote(method, *args), time.monotonic()

    def ready(self) -> bool:
        return bool(self.ray.wait([self.ref], timeout=0)[0])

    def result(self, timeout: float | None = None) -> Any:
        return self._get(self.ref, self._time_left(timeout), timeout)

    def _get(self, ref, left: float | None, timeout: float | None) -> Any:
        """``ref``'s value within ``left`` seconds (of the call's ``timeout``); a silent actor is killed."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref, timeout=left)
        except exceptions.GetTimeoutError as error:
            self.close()
            raise SandboxLost(f"Ray actor did not answer within {timeout} s; killed") from error
        except exceptions.RayActorError as error:  # before RayTaskError: a dead actor is not a raised call
            self.close()
            raise SandboxLost(f"Ray actor died: {error}") from error
        except exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            raise SandboxError(f"{type(cause).__name__}: {cause}\n{error}" if cause else str(error)) from error

    def close(self) -> None:
        try:
            self.ray.kill(self.actor, no_restart=True)
        except Exception:  # already gone
            pass


def make_sandbox(backend: str, factory: Callable, *args, num_cpus: float = 1.0) -> Sandbox:
    """A sandbox hosting ``factory(*args)`` (``factory`` and ``args`` must pickle for ``process`` and ``ray``)."""
    if backend == "local":
        return LocalSandbox(factory, args)
    if backend == "process":
        return ProcessSandbox(factory, args)
    if backend == "ray":
        return RaySandbox(factory, args, num_cpus)
    raise ConfigError(f"unknown sandbox backend {backend!r}; allowed: {', '.join(BACKENDS)}")


def wait_any(sandboxes: list[Sandbox], timeout: float) -> None:
    """Block until one of ``sandboxes`` is ready, or ``timeout`` seconds (polls; the pipes and Ray
    futures of the backends have no common wait)."""
    deadline = time.monotonic() + timeout
    while not any(s.ready() for s in sandboxes) and time.monotonic() < deadline:
        time.sleep(0.002)
