"""The README's and the docs' code runs verbatim: every ```python block, and every shell block whose first line
is a ``# run:`` comment, of README.md and docs/**/*.md. Each file's blocks run in the order they appear, in a
fresh directory of that file beside a copy of examples/; a block that appears twice (the README's quickstart
is also in docs/getting-started.md) runs once, where it first appears."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^[ \t]*```(python|bash)\n(.*?)^[ \t]*```", re.S | re.M)  # fences in list items too


def runnable(path: Path) -> list[tuple[str, str]]:
    """(language, code) of the blocks of ``path`` that a test runs, in order."""
    blocks = [(lang, textwrap.dedent(code)) for lang, code in FENCE.findall(path.read_text())]
    return [(lang, code) for lang, code in blocks if lang == "python" or code.startswith("# run:")]


def collect() -> list:
    params, seen = [], set()
    for path in SOURCES:
        name = path.relative_to(ROOT).as_posix()
        for index, (lang, code) in enumerate(runnable(path)):
            if code in seen:
                continue
            seen.add(code)
            params.append(pytest.param(name, lang, code, id=f"{name}:{index}:{lang}"))
    return params


BLOCKS = collect()


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """One working directory per markdown file, each with a copy of examples/."""
    made = {}

    def get(name: str) -> Path:
        if name not in made:
            work = tmp_path_factory.mktemp(re.sub(r"\W", "_", name))
            shutil.copytree(ROOT / "examples", work / "examples")
            made[name] = work
        return made[name]

    return get


def test_the_readme_has_a_quickstart_and_the_docs_have_python():
    assert any(lang == "bash" for lang, _ in runnable(ROOT / "README.md"))
    assert any(lang == "python" for path in SOURCES for lang, _ in runnable(path))


@pytest.mark.parametrize("source, lang, code", BLOCKS)
def test_block_runs_verbatim(workdirs, source, lang, code):
    cwd = workdirs(source)
    if lang == "bash":
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=600)
    else:
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{source}:\n{code}\n--- stderr:\n{out.stderr[-3000:]}"
