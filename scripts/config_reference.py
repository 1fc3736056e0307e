"""Writes docs/reference/configuration.md: every configuration key, its type, default and meaning.

The config dataclasses are the one source. Types and defaults come from the classes themselves;
meanings from their source, read with ``ast`` and ``tokenize``: a field's trailing ``# comment``,
the comment lines right above it, and the class docstring. To change the reference, change the
comment in the code and run this again:

    python scripts/config_reference.py            # rewrites docs/reference/configuration.md
    python scripts/config_reference.py --check    # exit 1 if the file is out of date
    python scripts/config_reference.py --out X    # write elsewhere (the docs test compares)

The sweeps of ``openclaw-backtest`` and ``openclaw-data`` have no dataclass: their keys and
comments are read from their YAML files in ``openclaw_rl/conf/`` the same way.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reference" / "configuration.md"
sys.path.insert(0, str(ROOT))

from omegaconf import MISSING  # noqa: E402

from openclaw_rl.alma import config as alma_config  # noqa: E402
from openclaw_rl.alma.config import ALMASweeperConf, PromotionConf, PruningConf  # noqa: E402
from openclaw_rl.benchmark.agents import AGENTS  # noqa: E402
from openclaw_rl.benchmark.config import BenchConfig  # noqa: E402
from openclaw_rl.benchmark.tasks import TIERS  # noqa: E402
from openclaw_rl.calibrate import GARCH_MEANS, MODELS  # noqa: E402
from openclaw_rl.calibrate.__main__ import CalibrateConfig  # noqa: E402
from openclaw_rl.ipa.chunks import CHUNKERS  # noqa: E402
from openclaw_rl.memory.designs import DESIGN_KEYS, DESIGNS, OBSERVERS, READS, REFLECTORS, MemoryConfig  # noqa: E402
from openclaw_rl.rock.config import ENV_OWNED, REWARDS, SAMPLINGS, EnvConfig  # noqa: E402
from openclaw_rl.rock.faults import FaultConfig  # noqa: E402
from openclaw_rl.rock.historical import BUILTIN_DATASETS, DataConfig  # noqa: E402
from openclaw_rl.rock.markets import REGIME_NAMES, SYNTHETIC_MODELS, Regime, SyntheticModel  # noqa: E402
from openclaw_rl.rock.sandbox import BACKENDS  # noqa: E402
from openclaw_rl.rock.splits import SPLITS  # noqa: E402
from openclaw_rl.roll import config as run_config  # noqa: E402
from openclaw_rl.roll.config import (ALGO_DEFAULTS, AlgoConfig, EvalConfig, IPAConfig, ResampleConfig,  # noqa: E402
                                     RunConfig, SFTConfig, TrainerConfig)
from openclaw_rl.roll.policy import ACTIVATIONS, PolicyConfig  # noqa: E402
from openclaw_rl.strategies.v7 import STRATEGIES  # noqa: E402


@dataclass
class Section:
    """One table: the keys of ``cls`` under ``prefix`` (``trainer.`` ...), headed ``title``."""

    prefix: str
    cls: type
    title: str
    anchor: str
    level: int = 3
    note: str = ""  # written (generated text only) between the docstring and the table


TRAIN = [
    Section("", RunConfig, "The run: `RunConfig`", "run"),
    Section("env.", EnvConfig, "`env`: the market env (`EnvConfig`)", "env"),
    Section("env.data.", DataConfig, "`env.data`: historical bars (`DataConfig`)", "env-data"),
    Section("algo.", AlgoConfig, "`algo`: the learner (`AlgoConfig`)", "algo"),
    Section("ipa.", IPAConfig, "`ipa`: IPA's chunks, mask and update (`IPAConfig`)", "ipa"),
    Section("policy.", PolicyConfig, "`policy`: the network (`PolicyConfig`)", "policy"),
    Section("policy.memory.", MemoryConfig, "`policy.memory`: the memory design (`MemoryConfig`)", "policy-memory"),
    Section("trainer.", TrainerConfig, "`trainer`: the run's length, hardware, workers (`TrainerConfig`)", "trainer"),
    Section("trainer.faults.", FaultConfig, "`trainer.faults`: injected worker failures (`FaultConfig`)",
            "trainer-faults"),
    Section("eval.", EvalConfig, "`eval`: the held-out evaluation (`EvalConfig`)", "eval"),
    Section("sft.", SFTConfig, "`sft`: behaviour cloning (`SFTConfig`)", "sft"),
    Section("resample.", ResampleConfig, "`resample`: chunk-level initialized resampling (`ResampleConfig`)",
            "resample"),
]
MARKET_NAMES = {cls: kind for kind, cls in SYNTHETIC_MODELS.items()}
MARKETS = [Section("env.market.", cls, f"`env/market={kind}` (`{cls.__name__}`)", f"market-{kind}", level=4)
           for kind, cls in SYNTHETIC_MODELS.items()]
REGIME = Section("env.market.regimes.NAME.", Regime, "`env.market.regimes.NAME` (`Regime`)", "market-regime", level=4)
BENCH = [Section("", BenchConfig, "`openclaw-bench run` (`BenchConfig`)", "bench", level=2)]
ALMA = [
    Section("hydra.sweeper.", ALMASweeperConf, "`hydra.sweeper` (`ALMASweeperConf`)", "sweeper"),
    Section("hydra.sweeper.pruning.", PruningConf, "`hydra.sweeper.pruning` (`PruningConf`)", "sweeper-pruning"),
    Section("hydra.sweeper.promotion.", PromotionConf, "`hydra.sweeper.promotion` (`PromotionConf`)",
            "sweeper-promotion"),
]
CALIBRATE = [Section("", CalibrateConfig, "`openclaw-calibrate` (`CalibrateConfig`)", "calibrate", level=2)]
SECTIONS = [*TRAIN, *MARKETS, REGIME, *BENCH, *ALMA, *CALIBRATE]
# The values a key accepts, from the constants its validation checks against (null, where listed, is allowed too).
CHOICES = {
    (EnvConfig, "reward"): REWARDS,
    (EnvConfig, "regime"): (*REGIME_NAMES, None),
    (DataConfig, "builtin"): (*BUILTIN_DATASETS, None),
    (DataConfig, "sampling"): SAMPLINGS,
    (DataConfig, "split"): (*SPLITS, "all"),
    (AlgoConfig, "name"): run_config.ALGOS,
    (IPAConfig, "chunker"): CHUNKERS,
    (IPAConfig, "baseline"): run_config.BASELINES,
    (PolicyConfig, "activation"): tuple(ACTIVATIONS),
    (MemoryConfig, "name"): DESIGNS,
    (MemoryConfig, "observer"): tuple(OBSERVERS),
    (MemoryConfig, "reflector"): REFLECTORS,
    (MemoryConfig, "read"): READS,
    (MemoryConfig, "chunker"): (*CHUNKERS, None),
    (TrainerConfig, "stage"): run_config.STAGES,
    (TrainerConfig, "device"): run_config.DEVICES,
    (TrainerConfig, "progress"): run_config.PROGRESS,
    (TrainerConfig, "backend"): ("auto", *BACKENDS),
    (TrainerConfig, "collection"): run_config.COLLECTIONS,
    (EvalConfig, "objective"): run_config.OBJECTIVES,
    (ResampleConfig, "teacher"): (*STRATEGIES, None),
    (ResampleConfig, "mode"): run_config.RESAMPLE_MODES,
    (BenchConfig, "tier"): tuple(TIERS),
    (BenchConfig, "strategy"): (*AGENTS, None),
    (ALMASweeperConf, "aggregate"): alma_config.AGGREGATES,
    (ALMASweeperConf, "launcher"): alma_config.LAUNCHERS,
    (ALMASweeperConf, "backend"): alma_config.BACKENDS,
    (ALMASweeperConf, "proposer"): alma_config.PROPOSERS,
    (CalibrateConfig, "model"): MODELS,
    (CalibrateConfig, "garch_mean"): GARCH_MEANS,
}
YAML_COMMANDS = [  # (title, anchor, file): commands whose keys live in a YAML file, not a dataclass
    ("`openclaw-backtest` (`conf/backtest.yaml`)", "backtest", "backtest.yaml"),
    ("`openclaw-data` (`conf/generate.yaml`)", "data", "generate.yaml"),
]


# --- reading the source ---------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _module_source(path: str) -> tuple[ast.Module, dict[int, tuple[str, bool]]]:
    """A source file's syntax tree and its comments: line -> (text, whether the comment is alone on its line)."""
    text = Path(path).read_text()
    lines = text.splitlines()
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            alone = not lines[row - 1][:col].strip()
            comments[row] = (token.string.lstrip("#").strip(), alone)
    return ast.parse(text), comments


def _class_node(cls: type) -> tuple[ast.ClassDef, dict[int, tuple[str, bool]]]:
    tree, comments = _module_source(inspect.getsourcefile(cls))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node, comments
    raise LookupError(f"class {cls.__name__} not found at the top level of {inspect.getsourcefile(cls)}")


def docstring(cls: type) -> str:
    node, _ = _class_node(cls)
    return inspect.cleandoc(ast.get_docstring(node) or "")


def field_sources(cls: type) -> dict[str, tuple[str, str]]:
    """Field name -> (annotation as written, meaning from its comments), for ``cls`` and its bases."""
    found: dict[str, tuple[str, str]] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        node, comments = _class_node(klass)
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            above, line = [], item.lineno - 1
            while line in comments and comments[line][1]:
                above.insert(0, comments[line][0])
                line -= 1
            trailing = comments.get(item.end_lineno)
            parts = [" ".join(above)] if above else []
            if trailing and not trailing[1]:
                parts.append(trailing[0])
            found[item.target.id] = (ast.unparse(item.annotation), "; ".join(parts))
    return found


# --- writing -------------------------------------------------------------------------------------------

def show(value) -> str:
    """A default as it is typed in an override (YAML-like)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


def cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped (inside a code span a pipe needs no escape)."""
    parts = re.split(r"(`+[^`]*`+)", " ".join(text.split()))  # code spans at odd indices
    return "".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


def code(text: str) -> str:
    """A code span for a table cell."""
    return f"`{' '.join(text.split())}`"


def default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return MISSING


def section_of(cls: type) -> Section | None:
    return next((s for s in SECTIONS if s.cls is cls), None)


def render_default(value, extra: list[str]) -> str:
    if dataclasses.is_dataclass(value):
        target = section_of(type(value))
        return f"[its section](#{target.anchor})" if target else show(dataclasses.asdict(value))
    if value is MISSING or value == MISSING:
        return "required (`???`)"
    if isinstance(value, dict) and value and all(dataclasses.is_dataclass(v) for v in value.values()):
        extra.append(_dataclass_table(value))
        return "the table below"
    return f"`{show(value)}`"


def _dataclass_table(values: dict) -> str:
    """A mapping of names to dataclass instances (e.g. the default regimes) as a table."""
    names = [f.name for f in dataclasses.fields(next(iter(values.values())))]
    rows = [f"| name | {' | '.join(names)} |", "|---|" + "---:|" * len(names)]
    rows += [f"| `{key}` | " + " | ".join(show(getattr(v, n)) for n in names) + " |" for key, v in values.items()]
    return "\n".join(rows)


def render_section(section: Section) -> str:
    cls, sources = section.cls, field_sources(section.cls)
    out = [f"{'#' * section.level} {section.title} {{#{section.anchor}}}", ""]
    doc = docstring(cls)
    if doc:
        out += [doc, ""]
    if section.note:
        out += [section.note, ""]
    out += ["| key | type | default | meaning |", "|---|---|---|---|"]
    extra: list[str] = []
    for f in dataclasses.fields(cls):
        annotation, meaning = sources[f.name]
        value = default_of(f)
        if dataclasses.is_dataclass(value) and section_of(type(value)):
            target = section_of(type(value))
            annotation = f"[`{annotation}`](#{target.anchor})"
        else:
            annotation = code(annotation)
        if cls in MARKET_NAMES and f.name in ENV_OWNED:
            meaning = "; ".join(filter(None, [meaning, f"set from `env.{f.name}`, not from `env.market`"]))
        if not meaning and re.search(rf"``{f.name}``", doc):
            meaning = "described above"
        choices = CHOICES.get((cls, f.name))
        if choices:
            meaning = "; ".join(filter(None, [cell(meaning), "allowed: " + ", ".join(f"`{show(c)}`" for c in choices)]))
        else:
            meaning = cell(meaning)
        out.append(f"| `{section.prefix}{f.name}` | {annotation} | {render_default(value, extra)} | {meaning} |")
    for table in extra:
        out += ["", table]
    return "\n".join(out) + "\n"


def yaml_keys(path: Path) -> list[tuple[str, object, str]]:
    """A command's top-level keys (less ``defaults`` and ``hydra``): name, default and trailing comment."""
    values = yaml.safe_load(path.read_text())
    comments = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^(\w+):[^#]*#\s?(.*)$", line)
        if match:
            comments[match[1]] = match[2].strip()
    return [(key, value, comments.get(key, "")) for key, value in values.items() if key not in ("defaults", "hydra")]


def render_yaml_command(title: str, anchor: str, name: str) -> str:
    path = ROOT / "openclaw_rl" / "conf" / name
    header = [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]
    out = [f"## {title} {{#{anchor}}}", "", "```", *header, "```", "",
           "The `env.*` keys of [`env`](#env) choose the markets; the command's own keys:", "",
           "| key | type | default | meaning |", "|---|---|---|---|"]
    for key, value, meaning in yaml_keys(path):
        kind = "" if value is None or value == "???" else type(value).__name__
        default = "required (`???`)" if value == "???" else f"`{show(value)}`"
        out.append(f"| `{key}` | {f'`{kind}`' if kind else ''} | {default} | {cell(meaning)} |")
    return "\n".join(out) + "\n"


def render_algo_defaults() -> str:
    keys = sorted({key for preset in ALGO_DEFAULTS.values() for key in preset})
    rows = [f"| `algo=` | {' | '.join(f'`algo.{k}`' for k in keys)} |", "|---|" + "---|" * len(keys)]
    rows += [f"| `{name}` | " + " | ".join(f"`{show(preset.get(k))}`" for k in keys) + " |"
             for name, preset in ALGO_DEFAULTS.items()]
    return ("What each algorithm sets where its config leaves a key null (`ALGO_DEFAULTS` in "
            "`openclaw_rl/roll/config.py`):\n\n" + "\n".join(rows) + "\n")


def render_design_keys() -> str:
    rows = ["| `policy/memory=` | the `policy.memory.*` keys it reads |", "|---|---|"]
    rows += [f"| `{name}` | {', '.join(f'`{k}`' for k in keys) or 'none'} |" for name, keys in DESIGN_KEYS.items()]
    return ("Which keys each design reads (`DESIGN_KEYS` in `openclaw_rl/memory/designs.py`); two configs that "
            "differ only in keys their design does not read are the same run:\n\n" + "\n".join(rows) + "\n")


def render() -> str:
    parts = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/config_reference.py from the config dataclasses: do not edit by hand. "
        "Change a field's comment in the code and run `python scripts/config_reference.py`. -->",
        "",
        "Every key, its type, its default and what it means, generated from the config dataclasses and "
        "their comments (`scripts/config_reference.py`; a test fails when this page is out of date). "
        "Set a key with a Hydra override (`openclaw-train trainer.total_steps=2_000_000`), in "
        "`learn([...])`, a nested dict or a `RunConfig`; print every composed key with "
        "`openclaw-train --cfg job`. How the config is put together: [Configuration](../configuration.md).",
        "",
        "## `openclaw-train` and `learn()` {#train}",
        "",
    ]
    for section in TRAIN:
        parts.append(render_section(section))
        if section.cls is EnvConfig:
            parts.append(render_markets())
        if section.cls is AlgoConfig:
            parts.append(render_algo_defaults())
        if section.cls is MemoryConfig:
            parts.append(render_design_keys())
    parts += [render_section(s) for s in BENCH]
    parts += ["## ALMA: `hydra/sweeper=alma` {#alma}", "",
              "Set with `hydra.sweeper.KEY=VALUE` beside `-m hydra/sweeper=alma`.", ""]
    parts += [render_section(s) for s in ALMA]
    parts += [render_section(s) for s in CALIBRATE]
    parts += [render_yaml_command(*command) for command in YAML_COMMANDS]
    return "\n".join(parts).rstrip() + "\n"


def render_markets() -> str:
    kinds = ", ".join(f"[`{kind}`](#market-{kind})" for kind in SYNTHETIC_MODELS)
    out = ["### `env.market`: the market model {#env-market}", "",
           f"`env/market=NAME` picks the model: {kinds}, or `historical` (no parameters: its bars come from "
           "[`env.data`](#env-data)); `env.market.KEY=VALUE` sets one parameter of the chosen model. "
           "Every model has the fields of `SyntheticModel`:", "", docstring(SyntheticModel), ""]
    out += [render_section(section) for section in MARKETS]
    out.append(render_section(REGIME))
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if --out differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
