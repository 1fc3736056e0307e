"""The README's quickstart runs verbatim: every ```python block, and every shell block whose first line
is a ``# run:`` comment, in a fresh directory beside a copy of examples/."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
SHELL = [code for lang, code in BLOCKS if lang == "bash" and code.startswith("# run:")]
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", work / "examples")
    return work


def test_the_readme_has_a_quickstart():
    assert SHELL and PYTHON


@pytest.mark.parametrize("index", range(len(SHELL)))
def test_shell_block_runs_verbatim(workdir, index):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", SHELL[index]], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{SHELL[index]}\n--- stderr:\n{out.stderr[-3000:]}"


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_verbatim(workdir, index):
    out = subprocess.run([sys.executable, "-c", PYTHON[index]], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{PYTHON[index]}\n--- stderr:\n{out.stderr[-3000:]}"
