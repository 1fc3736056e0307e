"""`pip install .` (not editable, no Makefile) gives a working package: the wheel carries the config
tree and the Hydra plugin, and every console script runs, from a directory without the sources."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("openclaw-train", "openclaw-backtest", "openclaw-data", "openclaw-calibrate")
TINY = ["env.n_envs=4", "env.window=8", "env.episode_bars=20"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding only the built wheel; third-party packages come from this interpreter's
    site-packages through a .pth line (which does not run the editable install's finder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "dist")], check=True, cwd=tmp)
    wheel = next((tmp / "dist").glob("openclaw_rl-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q", str(wheel)],
                   check=True, cwd=tmp)
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", work


def run(bin_dir: Path, cwd: Path, *args, timeout=180, **env):
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **env}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_imports_from_its_own_install(installed):
    bin_dir, work = installed
    out = run(bin_dir, work, "python", "-c", "import openclaw_rl, openclaw_rl.configs as c; print(openclaw_rl.__file__); print(c.CONFIG_DIR)")
    assert out.returncode == 0, out.stderr
    module, conf = out.stdout.split()
    assert str(ROOT) not in module and Path(conf, "config.yaml").is_file() and Path(conf, "env", "default.yaml").is_file()


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_scripts_answer_help(installed, script):
    bin_dir, work = installed
    out = run(bin_dir, work, script, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{script}: ") and "is powered by Hydra" not in out.stdout  # its own name and purpose
    assert "== Configuration groups ==" in out.stdout and "docs/reference/configuration.md" in out.stdout


def test_installed_train_runs_a_tiny_run_and_its_completion_knows_the_groups(installed):
    bin_dir, work = installed
    out = run(bin_dir, work, "openclaw-train", *TINY, "trainer.total_steps=64", "trainer.rollout_steps=16",
              "algo.num_minibatches=2", "eval.n_envs=2", "hydra.run.dir=runs/tiny")
    assert out.returncode == 0, out.stderr
    assert (work / "runs" / "tiny" / "checkpoints" / "last.pt").is_file()
    # What bash's completion (installed by `openclaw-train -sc install=bash`) asks for.
    completion = run(bin_dir, work, "openclaw-train", "-sc", "query=bash", COMP_LINE="openclaw-train env/market=")
    assert completion.returncode == 0, completion.stderr
    assert {"env/market=garch", "env/market=heston", "env/market=historical"} <= set(completion.stdout.split())
    sweeper = run(bin_dir, work, "openclaw-train", "-sc", "query=bash", COMP_LINE="openclaw-train hydra/sweeper=")
    assert "hydra/sweeper=alma" in sweeper.stdout.split()


def test_installed_backtest_and_data_run(installed):
    bin_dir, work = installed
    out = run(bin_dir, work, "openclaw-backtest", *TINY, "strategies=[buy_and_hold,trend]", "n_markets=4", "hydra.run.dir=runs/bt")
    assert out.returncode == 0, out.stderr
    out = run(bin_dir, work, "openclaw-data", *TINY, "strategy=trend", "n_trajectories=8", "out=runs/data/trend",
              "hydra.run.dir=runs/data/log")
    assert out.returncode == 0, out.stderr
    assert (work / "runs" / "data" / "trend").is_dir()


def test_installed_bench_answers_help_and_scores_a_strategy(installed):
    bin_dir, work = installed
    out = run(bin_dir, work, "openclaw-bench", "--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: openclaw-bench list"), out.stderr
    assert run(bin_dir, work, "openclaw-bench", "run", "--help").stdout.startswith("openclaw-bench run: score an agent")
    out = run(bin_dir, work, "openclaw-bench", "run", "strategy=trend", "tier=smoke", "hydra.run.dir=runs/bench")
    assert out.returncode == 0, out.stderr
    assert (work / "runs" / "bench" / "results.json").is_file()


def test_installed_memory_designs_train_and_report(installed):
    bin_dir, work = installed
    out = run(bin_dir, work, "openclaw-train", *TINY, "policy/memory=paom", "policy.memory.capacity=4",
              "trainer.total_steps=64", "trainer.rollout_steps=16", "algo.num_minibatches=2", "eval.n_envs=16",
              "hydra.run.dir=runs/paom")
    assert out.returncode == 0, out.stderr
    out = run(bin_dir, work, "openclaw-memory", "runs/paom", "--markets", "16", "--out", "runs/paom/memory.json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# memory report: paom, 16 validation markets") and (work / "runs/paom/memory.json").is_file()
