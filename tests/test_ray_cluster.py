"""Rollout workers and ALMA trials on an existing Ray cluster, named by its address, as a user runs them.

The cluster has two nodes of 2 CPUs on this machine, each started with ``ray start`` (its own temp dir,
addressed as 127.0.0.1, which Ray maps to this machine's own IP) and with Ray's token authentication
on, as a cluster is once its head machine holds a token (Ray >= 2.52; by default from 2.61). The
drivers run as subprocesses (the CLIs, as a user runs them): this process's own Ray, if a test before
started one (``local_ray``), is neither used nor disturbed, and what connecting sets in a process
(token mode) stays in those. They get the token in ``RAY_AUTH_TOKEN`` only: ``connect_ray`` turns
token mode on when the cluster asks for it.

What fits only across both nodes: 4 rollout workers of a CPU each; two ALMA trials of 2 CPUs that run
side by side. The cluster's processes are killed at the end, whatever happened, by their process groups
(not ``ray stop``, which stops every Ray process on the machine).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from openclaw_rl.alma.archive import Archive
from openclaw_rl.errors import ConfigError
from openclaw_rl.rock import sandbox
from openclaw_rl.roll.checkpoint import checkpoint_path
from test_alma_ray import RAY, TINY, TOY_APP, events

ROOT = Path(__file__).resolve().parent.parent
RAY_CLI = Path(sys.executable).parent / "ray"
NODE_CPUS = 2

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ray's multi-node clusters run on Linux")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plain_env(**values: str) -> dict[str, str]:
    """This process's environment without a Ray address or token settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH_", "RAY_ADDRESS"))}
    return {**env, **values}


def group_alive(pgid: int) -> bool:
    """A process of the group that is not yet a zombie (a zombie is gone, but for its parent's wait)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # after "pid (name)": state, ppid, pgrp, ...
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class Cluster:
    address: str
    token: str


@pytest.fixture(scope="module")
def cluster():
    """A two-node Ray cluster on this machine, started as ``ray start`` starts one, killed at the end.
    Its dir is short: Ray's unix sockets live under it, and their paths may not pass ~107 characters."""
    if shutil.which(str(RAY_CLI)) is None:
        pytest.skip("the ray CLI is not installed (pip install 'openclaw_rl[ray]')")
    root = Path(f"/tmp/ocr-{secrets.token_hex(4)}")
    root.mkdir()
    token = secrets.token_hex(32)
    env = plain_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    common = [f"--num-cpus={NODE_CPUS}", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    groups: list[int] = []  # each `ray start` in a session of its own: its pid is its node's process group

    def start(name: str, *args: str) -> None:
        process = subprocess.Popen([str(RAY_CLI), "start", f"--temp-dir={root / name}", *common, *args],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        groups.append(process.pid)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output[-3000:]

    try:
        port = free_port()
        start("head", "--head", f"--port={port}", "--include-dashboard=false",
              f"--ray-client-server-port={free_port()}")
        start("node", f"--address=127.0.0.1:{port}")
        yield Cluster(f"127.0.0.1:{port}", token)
    finally:
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)  # a test cluster: nothing to shut down gracefully
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(map(group_alive, groups)) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
        assert not any(map(group_alive, groups)), f"Ray processes left behind in process groups {groups}"


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_training_with_four_rollout_workers_across_the_two_nodes(cluster, tmp_path):
    """4 workers of a CPU each: more than a node has, so both nodes host them. The driver has the
    cluster's token but not RAY_AUTH_MODE=token (which ray.init needs for a cluster named by address)."""
    result = run([sys.executable, "-m", "openclaw_rl.train", *TINY, "trainer.backend=ray", "trainer.workers=4",
                  f"trainer.ray_address={cluster.address}", f"hydra.run.dir={tmp_path}"],
                 plain_env(RAY_AUTH_TOKEN=cluster.token))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert checkpoint_path(tmp_path).is_file()


def test_an_alma_sweep_runs_its_trials_on_both_nodes(cluster, tmp_path):
    """Two trials of 2 CPUs (a node's all) at once: only both nodes together hold them; each waits for the
    other to start before its first step, so that one slow to start cannot hide a queue."""
    app = tmp_path / "toy_app.py"
    app.write_text(TOY_APP)
    sweep_dir = tmp_path / "sweep"
    result = run([sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", *RAY,
                  f"hydra.sweeper.ray_address={cluster.address}", "hydra.sweeper.budget=2", "hydra.sweeper.n_workers=2",
                  f"hydra.sweeper.cpus_per_trial={NODE_CPUS}", "steps=2", "step_seconds=0.2", "peer_seconds=60"],
                 plain_env(RAY_AUTH_TOKEN=cluster.token))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    trials = Archive(sweep_dir / "archive.sqlite").trials(kind="search")
    assert [t.status for t in trials] == ["finished", "finished"]
    (start_1, end_1), (start_2, end_2) = events(sweep_dir, 1), events(sweep_dir, 2)
    assert start_1["resources"] == start_2["resources"] == {"CPU": float(NODE_CPUS)}
    assert start_2["start"] < end_1["end"] and start_1["start"] < end_2["end"]  # side by side


def test_without_the_token_the_error_names_the_key_and_the_fix(cluster, tmp_path):
    """No RAY_AUTH_TOKEN and no ~/.ray/auth_token (HOME is empty): one line, within seconds (ray.init alone
    retries for some 20 s and says only that it failed to connect)."""
    started = time.monotonic()
    result = run([sys.executable, "-m", "openclaw_rl.train", *TINY, "trainer.backend=ray", "trainer.workers=4",
                  f"trainer.ray_address={cluster.address}", f"hydra.run.dir={tmp_path / 'run'}"],
                 plain_env(HOME=str(tmp_path)))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"ConfigError: trainer.ray_address={cluster.address}: the Ray cluster there asks for a token and "
                    "this machine has none; give this machine the cluster's token (`ray get-auth-token` on the head "
                    "prints it) in RAY_AUTH_TOKEN or ~/.ray/auth_token"), result.stderr[-2000:]
    assert time.monotonic() - started < 30
    assert not checkpoint_path(tmp_path / "run").exists()


@pytest.mark.parametrize("env, message", [
    ({"RAY_AUTH_TOKEN": "0" * 64}, "refuses this machine's token (from RAY_AUTH_TOKEN); give this machine"),
    ({"RAY_AUTH_MODE": "disabled"}, "asks for a token but RAY_AUTH_MODE=disabled; set RAY_AUTH_MODE=token and"),
], ids=["wrong token", "token mode off"])
def test_a_wrong_token_or_token_mode_off_is_named(cluster, monkeypatch, env, message):
    """The head's answer alone decides (no ray.init: this process's Ray, if any, is not touched)."""
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    host, _, port = cluster.address.rpartition(":")
    setting = f"trainer.ray_address={cluster.address}"
    with pytest.raises(ConfigError, match=re.escape(f"{setting}: the Ray cluster there {message}")):
        sandbox._authenticate(host, int(port), setting)
