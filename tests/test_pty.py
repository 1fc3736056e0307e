"""The command lines on a terminal: a progress bar with an ETA (stderr is a pseudo-terminal here)."""

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAR = re.compile(r"(\d+)/(\d+) \[\d+:\d\d<\d+:\d\d, +[\d.]+(\w*/s|s/\w*)")  # n/total [elapsed<ETA, rate


def on_a_terminal(*argv: str, timeout: float = 120) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a fresh 100x30 pseudo-terminal; its exit code and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(argv, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
    finally:
        os.close(master)
    return process.wait(), output.decode(errors="replace")


def test_training_shows_a_bar_with_an_eta(tmp_path):
    code, output = on_a_terminal(sys.executable, "-m", "openclaw_rl.train", "trainer.total_steps=2560", "env.n_envs=8",
                                 "trainer.rollout_steps=16", "eval.n_envs=4", "env.window=8", "env.episode_bars=30",
                                 f"hydra.run.dir={tmp_path}")
    assert code == 0, output[-3000:]
    bars = [m for m in BAR.finditer(output)]
    assert bars and "update" in output, output[-3000:]
    assert bars[-1].group(1) == bars[-1].group(2) == "20"  # 2560 steps = 20 updates of 8 x 16
    assert "SPS" in output  # the bar's postfix
    assert not re.search(r"update \d+/\d+ done", output)  # no log line per update on a terminal


def test_dataset_generation_shows_a_bar_with_an_eta(tmp_path):
    code, output = on_a_terminal(sys.executable, "-m", "openclaw_rl.data", "strategy=trend", "n_trajectories=12",
                                 "shard_size=4", "env.window=8", "env.episode_bars=30", f"out={tmp_path / 'trend'}",
                                 f"hydra.run.dir={tmp_path / 'log'}")
    assert code == 0, output[-3000:]
    bars = [m for m in BAR.finditer(output)]
    assert bars and bars[-1].group(1) == bars[-1].group(2) == "3", output[-3000:]  # 3 shards of 4
    assert "12/12 trajectories" in output
