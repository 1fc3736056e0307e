"""The command line as a user runs it: exact resume after SIGKILL, TensorBoard, bad overrides."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from openclaw_rl.roll.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["env.n_envs=32", "env.window=8", "env.episode_bars=40", "trainer.rollout_steps=64",
         "algo.num_minibatches=4", "eval.n_envs=8", "trainer.checkpoint_every=1", "trainer.progress=log"]


def command(run_dir, *overrides):
    return [sys.executable, "-m", "openclaw_rl.train", f"hydra.run.dir={run_dir}", *SMALL, *overrides]


def run(run_dir, *overrides, check=True):
    result = subprocess.run(command(run_dir, *overrides), cwd=ROOT, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
    return result


def final_weights(run_dir):
    return load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["policy"]


def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path):
    total = "trainer.total_steps=81920"  # 40 updates of 2048 steps
    run(tmp_path / "straight", total)
    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed, total), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if checkpoint.exists() and load_checkpoint(checkpoint)["update"] >= 3:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    interrupted_at = load_checkpoint(checkpoint)["update"]
    assert 3 <= interrupted_at < 40
    run(killed, total, "trainer.resume=auto")
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(killed)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_run_writes_tensorboard_scalars_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run(tmp_path, "trainer.total_steps=4096", "algo=ipa")
    assert "objective log_return" in result.stdout + result.stderr
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("charts/SPS", "charts/learning_rate", "losses/policy_loss", "losses/value_loss", "losses/entropy",
                "losses/approx_kl", "losses/grad_norm", "losses/explained_variance", "ipa/mean_chunk_length",
                "ipa/chunks_per_episode", "ipa/masked_fraction", "ipa/ratio_mean", "eval/log_return", "eval/sharpe"):
        assert tag in tags, tag
    assert set(events.PluginTagToContent("hparams")) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert [p.name for p in (tmp_path / "tb").iterdir() if p.is_dir()] == []  # one run: the hparams are in its events


@pytest.mark.parametrize("override,message", [
    ("env.regime=moon", "env.regime: unknown regime 'moon'; allowed: bull, sideways, bear, crash, volatile"),
    ("env.fee_bps=-2", "env.fee_bps: must be >= 0, got -2"),
    ("algo.name=sac", "algo.name: unknown algo 'sac'"),
    ("algo.lr=-0.1", "algo.lr: must be > 0"),
    ("resample.teacher=oracle", "resample.teacher: unknown strategy 'oracle'; allowed: null, buy_and_hold, trend"),
    ("resample.scan_every=5", "resample.scan_every: a fork scan needs resample.teacher"),
])
def test_bad_overrides_fail_before_anything_runs(tmp_path, override, message):
    result = run(tmp_path, override, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "tb").exists() and not (tmp_path / "checkpoints").exists()


def test_resume_with_a_different_design_is_refused(tmp_path):
    run(tmp_path, "trainer.total_steps=2048")
    result = run(tmp_path, "trainer.total_steps=4096", "trainer.resume=auto", "algo=ppo", check=False)
    assert result.returncode != 0 and "different configuration (" in result.stdout + result.stderr
    assert "algo.name: 'ipa' != 'ppo'" in result.stdout + result.stderr


@pytest.mark.parametrize("module,extra", [
    ("openclaw_rl.train", []),
    ("openclaw_rl.data", ["strategy=trend", "out=data"]),
    ("openclaw_rl.backtest", []),
    ("openclaw_rl.calibrate", ["model=garch", "data.path=prices.csv", "out=market.yaml"]),
])
def test_every_cli_refuses_hydra_job_chdir_before_writing(tmp_path, module, extra):
    result = subprocess.run([sys.executable, "-m", module, "hydra.job.chdir=true", f"hydra.run.dir={tmp_path / 'run'}", *extra],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "hydra.job.chdir: must be false" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "run" / "data").exists() and not (tmp_path / "run" / "checkpoints").exists()
