"""Every command's overrides are checked before Hydra starts: one line naming the key and the fix."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openclaw_rl.cli import checked_overrides
from openclaw_rl.roll.checkpoint import load_checkpoint

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("argv,message", [
    (["trainer.total_step=5"], "ConfigError: trainer.total_step: unknown key; did you mean trainer.total_steps?"),
    (["algo=ppo", "algo.gama=0.9"], "ConfigError: algo.gama: unknown key; did you mean algo.gamma?"),
    (["nonsense=1"], "ConfigError: nonsense: unknown key; --cfg job prints every key"),
    (["env/market=garc"], "ConfigError: env/market=garc: unknown option; allowed: garch, gbm, heston, historical, "
                          "merton, regime_switching; did you mean env/market=garch?"),
    (["trainer.total_steps=abc"], "ConfigError: trainer.total_steps: Value 'abc' of type 'str' could not be "
                                  "converted to Integer"),
    (["trainer.total_steps=2.5"], "ConfigError: trainer.total_steps: Value '2.5' of type 'float' could not be "
                                  "converted to Integer"),
])
def test_a_wrong_override_gets_one_line_naming_the_fix(argv, message):
    with pytest.raises(SystemExit) as err:
        checked_overrides(argv, "config")
    assert err.value.code == message


def test_integers_written_as_floats_are_taken_where_exact_and_sweeps_and_flags_are_left_to_hydra():
    assert checked_overrides(["trainer.total_steps=1e6", "env.n_envs=3.2e1", "algo.lr=1e-3"], "config") == [
        "trainer.total_steps=1000000", "env.n_envs=32", "algo.lr=1e-3"]
    assert checked_overrides(["algo=ppo,ipa", "seed=range(3)"], "config") == ["algo=ppo,ipa", "seed=range(3)"]
    assert checked_overrides(["-m", "trainer.nope=1"], "config") == ["-m", "trainer.nope=1"]
    assert checked_overrides(["hydra.run.dir=x", "+extra=1"], "config") == ["hydra.run.dir=x", "+extra=1"]


@pytest.mark.parametrize("command,argv,message", [
    ("openclaw-train", ["trainer.total_step=100"], "ConfigError: trainer.total_step: unknown key; did you mean "
                                                   "trainer.total_steps?"),
    ("openclaw-backtest", ["n_market=3"], "ConfigError: n_market: unknown key; did you mean n_markets?"),
    ("openclaw-bench", ["run", "strategy=trend", "tierr=full"], "ConfigError: tierr: unknown key; did you mean tier?"),
    ("openclaw-data", ["n_trajectorie=4"], "ConfigError: n_trajectorie: unknown key; did you mean n_trajectories?"),
])
def test_every_command_checks_its_overrides_first(tmp_path, command, argv, message):
    out = subprocess.run([str(BIN / command), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.strip() == message
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_ctrl_c_leaves_an_intact_checkpoint_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["env.n_envs=8", "trainer.rollout_steps=32", "trainer.total_steps=10000000", "trainer.checkpoint_every=1",
                 "eval.n_envs=4", "trainer.progress=log"]
    # Ctrl-C's default action, whatever the test runner inherited (a shell's background job ignores SIGINT)
    process = subprocess.Popen([str(BIN / "openclaw-train"), *overrides, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted: the last checkpoint in {run_dir} is intact; resume with the same overrides and "
        f"trainer.resume=auto hydra.run.dir={run_dir}")
    assert "Traceback" not in stderr
    step = load_checkpoint(checkpoint)["global_step"]
    resumed = [*overrides[:2], f"trainer.total_steps={step + 256}", *overrides[3:], "trainer.resume=auto",
               f"hydra.run.dir={run_dir}"]
    out = subprocess.run([str(BIN / "openclaw-train"), *resumed], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert load_checkpoint(checkpoint)["global_step"] == step + 256


@pytest.mark.parametrize("rows", [5, 40])
def test_a_short_price_file_gets_its_sizes_and_the_fix(tmp_path, rows):
    lines = ["date,close"] + [f"2020-01-{day:02d},{100 + day}" for day in range(1, 32)]
    lines += [f"2020-02-{day:02d},{130 + day}" for day in range(1, 29)]
    (tmp_path / "short.csv").write_text("\n".join(lines[: rows + 1]) + "\n")
    columns = "env.data.columns={time: date, close: close, open: null, high: null, low: null, volume: null}"
    out = subprocess.run([str(BIN / "openclaw-train"), "env/market=historical", "env.data.path=short.csv", columns,
                          f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(
        f"DataError: short.csv: an episode needs 285 bars (env.window + env.episode_bars + 1) but env.data.split=train "
        f"has 0 (of {rows}); shorten env.window or env.episode_bars")
    assert not (tmp_path / "run").exists()  # no debris: Hydra's .hydra/ and log of a run that never started


def test_a_failed_command_keeps_a_run_dir_that_holds_outputs(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    out = subprocess.run([str(BIN / "openclaw-backtest"), f"checkpoint={tmp_path / 'none'}", f"hydra.run.dir={tmp_path / 'run'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "run" / "backtest.log").is_file()


def test_missing_gpu_and_missing_checkpoint_are_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = subprocess.run([str(BIN / "openclaw-train"), "trainer.device=cuda", f"hydra.run.dir={tmp_path / 'gpu'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == (
        "ConfigError: trainer.device=cuda: no CUDA device is available here; use trainer.device=auto or cpu")
    out = subprocess.run([str(BIN / "openclaw-backtest"), f"checkpoint={tmp_path / 'none'}",
                          f"hydra.run.dir={tmp_path / 'bt'}"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == (
        f"CheckpointError: {tmp_path / 'none'}: no such checkpoint")
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "gpu").exists() and not (tmp_path / "bt").exists()
