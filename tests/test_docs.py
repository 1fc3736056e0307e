"""The docs: the configuration reference is generated from the dataclasses and up to date, every field of
every config dataclass is in it, the site builds with `mkdocs build --strict`, every page is in the nav,
and the README is short and links only to files that exist. (Their code blocks run in test_readme.py.)"""

import ast
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference" / "configuration.md"
README = ROOT / "README.md"
README_MAX_BYTES = 15_000


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_configuration_reference_is_up_to_date(generator, tmp_path):
    out = tmp_path / "configuration.md"
    assert generator.main(["--out", str(out)]) == 0
    assert out.read_text() == REFERENCE.read_text(), \
        "docs/reference/configuration.md is out of date: run python scripts/config_reference.py"


def config_classes() -> list[tuple[str, str]]:
    """(module, class) of every dataclass named *Config or *Conf in the package, found in the source."""
    found = []
    for path in sorted((ROOT / "openclaw_rl").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and re.search(r"Conf(ig)?$", node.name) and any(
                    "dataclass" in ast.unparse(d) for d in node.decorator_list):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found.append((module, node.name))
    return found


def section(text: str, name: str) -> str:
    """The part of the reference under the heading that names class ``name`` (up to the next heading)."""
    match = re.search(rf"^(#+) [^\n]*`{name}`[^\n]*\n(.*?)(?=^#+ |\Z)", text, re.S | re.M)
    assert match, f"no section of the configuration reference names `{name}`"
    return match[2]


def test_every_field_of_every_config_dataclass_is_in_the_reference(generator):
    text = REFERENCE.read_text()
    classes = {name for _, name in config_classes()}
    assert {"RunConfig", "EnvConfig", "DataConfig", "BenchConfig", "ALMASweeperConf", "PolicyConfig",
            "MemoryConfig", "TrainerConfig", "CalibrateConfig"} <= classes
    documented = {s.cls.__name__ for s in generator.SECTIONS}
    assert classes <= documented, f"config dataclasses missing from scripts/config_reference.py: {classes - documented}"
    for s in generator.SECTIONS:  # the market models and Regime too
        body = section(text, s.cls.__name__)
        for f in dataclasses.fields(s.cls):
            assert re.search(rf"^\| `(?:[\w.]+\.)?{re.escape(f.name)}` \|", body, re.M), \
                f"{s.cls.__name__}.{f.name} is not in docs/reference/configuration.md"


def test_the_yaml_configured_commands_keys_are_in_the_reference():
    text = REFERENCE.read_text()
    for name in ("backtest.yaml", "generate.yaml"):
        keys = [k for k in yaml.safe_load((ROOT / "openclaw_rl" / "conf" / name).read_text()) if k not in ("defaults", "hydra")]
        body = section(text, f"conf/{name}")
        for key in keys:
            assert f"| `{key}` |" in body, f"{name}: {key} is not in the configuration reference"


def test_a_field_comment_becomes_its_meaning(generator):
    """The meanings are read from the source: a trailing comment, and comment lines above a field."""
    sources = generator.field_sources(generator.TrainerConfig)
    assert sources["total_steps"][1].startswith("env steps over all envs")
    assert sources["threads"][1].startswith("torch CPU threads")  # two comment lines above the field
    assert sources["faults"][0] == "FaultConfig"
    assert "| `trainer.rollout_steps` | `int` | `128` | steps per env per update |" in REFERENCE.read_text()


def nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(pages) == on_disk
    assert len(pages) == len(set(pages))


def fences(path: Path) -> list[str]:
    return re.findall(r"^[ \t]*```(\S*)", path.read_text(), re.M)[::2]  # opening fences only


def test_code_blocks_use_languages_the_block_test_knows():
    """A ```py or ```sh block would silently escape test_readme.py: only python, bash and plain blocks."""
    for path in [README, *DOCS.rglob("*.md")]:
        assert set(fences(path)) <= {"", "python", "bash"}, f"{path}: {set(fences(path))}"


def anchors(path: Path) -> set[str]:
    """The ids a page's headings ({#id} or the toc's slug) and raw <a id> tags give."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    ids = set(re.findall(r'<a id="([^"]+)"', text))
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        explicit = re.search(r"\{#([\w-]+)\}\s*$", heading)
        ids.add(explicit[1] if explicit else slugify(re.sub(r"[`*]", "", heading), "-"))
    return ids


def test_the_readme_is_short():
    assert len(README.read_bytes()) <= README_MAX_BYTES


def test_the_readme_links_to_files_in_the_repository():
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    assert links
    for link in links:
        if re.match(r"\w+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"README links to {link}: no such file in the repository"
        if anchor:
            assert anchor in anchors(path), f"README links to {link}: no such anchor"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
                    reason="the docs extra is not installed (pip install -e '.[docs]')")
def test_mkdocs_builds_the_site_strictly(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").exists()
