"""``openclaw-bench list | run [overrides] | compare A B``, also ``python -m openclaw_rl.benchmark``.

``run`` takes Hydra overrides (``checkpoint=RUN_DIR tier=full``; keys in ``benchmark/config.py``) and
writes into its run dir (``hydra.run.dir``, ``runs/bench/DATE/TIME`` by default). ``compare A B``
exits 1 when B regresses on a task (or the aggregate) against A: over training seeds when a side
holds several runs, over market seeds (the fixed-weights test) when each holds one.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from openclaw_rl.benchmark.report import compare, result_dirs
from openclaw_rl.benchmark.suite import run_benchmark
from openclaw_rl.benchmark.tasks import SUITE_VERSION, TASKS, TIERS, first_seed
from openclaw_rl.cli import discard_failed_run, entry_point, refuse_chdir
from openclaw_rl.configs import CONFIG_DIR
from openclaw_rl.errors import CheckpointError, ConfigError, DataError
from openclaw_rl.rock.splits import seed_range, time_splits

log = logging.getLogger("openclaw_rl.bench")
USAGE = """usage: openclaw-bench list
       openclaw-bench run checkpoint=RUN_DIR|strategy=NAME [tier=smoke|full|private|memory] [tasks=[...]] [overrides]
       openclaw-bench compare A B [level=0.95]
  A, B: a results dir, a dir holding one per training seed, or a comma list or glob of them"""
BAR = {"auto": None, "bar": True, "log": False}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="bench")
def run(cfg: DictConfig) -> None:
    try:
        refuse_chdir()
        config = OmegaConf.to_object(cfg)
        if config.progress not in BAR:
            raise ConfigError(f"progress: unknown mode {config.progress!r}; allowed: {', '.join(BAR)}")
        results = run_benchmark(config, Path(HydraConfig.get().runtime.output_dir), BAR[config.progress])
    except (ConfigError, DataError, CheckpointError) as err:
        discard_failed_run()
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    a = results["aggregate"]
    log.info("%s: aggregate normalized excess %+.3f [%+.3f, %+.3f] over %d tasks in %.0f s; wrote %s", results["agent"],
             a["mean"], a["mean_low"], a["mean_high"], a["n_tasks"], results["elapsed_s"], HydraConfig.get().runtime.output_dir)


def list_tasks() -> str:
    """The tiers, and each task with its tiers and splits."""
    lines = [f"suite {SUITE_VERSION}; tiers: " + ", ".join(
        f"{name} ({t.n_seeds} seeds x {t.n_markets} markets{', smoke tasks only' if t.smoke_only else ''}"
        f"{', seeds from your salt, no public bars' if t.private else ''}"
        f"{f', {t.family} tasks' if t.family != 'market' else ''})"
        for name, t in TIERS.items()), ""]
    for task in TASKS.values():
        tiers = ", ".join(name for name, t in TIERS.items() if t.scores(task))
        lines += [f"{task.name}: {task.about} (tiers: {tiers})", f"    {split_summary(task)}"]
    return "\n".join(lines)


def split_summary(task) -> str:
    """A task's splits as a person reads them: seed ranges, or dates."""
    if not task.historical:
        (a, b), (c, d), seed = seed_range("train"), seed_range("validation"), first_seed(task, None)
        return (f"train seeds [{a}, {b}), validation [{c}, {d}) (split=validation from {first_seed(task, None, 'validation')}), "
                f"test from {seed}")
    try:
        env = task.env_config("test", 1)
        series = env.make_market().series
    except DataError as err:
        return f"splits unavailable: {err}"
    ranges = time_splits(len(series), env.data.split_fractions, env.data.embargo)
    return ", ".join(f"{split} {str(series.time[lo])[:10]} .. {str(series.time[hi - 1])[:10]} ({hi - lo} bars)"
                     for split, (lo, hi) in ranges.items())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else None
    if command in ("-h", "--help"):
        print(f"{USAGE}\n\n{__doc__.strip()}\n\nopenclaw-bench run --help: the run command's keys (Hydra).")
    elif command == "list":
        print(list_tasks())
    elif command == "run":
        sys.argv = [f"{sys.argv[0]} run", *argv[1:]]
        entry_point(run, "bench")()
    elif command == "compare" and len(argv) >= 3:
        level = 0.95
        for extra in argv[3:]:
            key, _, value = extra.partition("=")
            if key != "level":
                raise SystemExit(f"compare: unknown argument {extra!r}; allowed: level=0.95\n{USAGE}")
            try:
                level = float(value)
            except ValueError:
                raise SystemExit(f"compare: level must be a number in (0, 1), got {value!r}") from None
        try:
            text, regressed = compare(result_dirs(argv[1]), result_dirs(argv[2]), level)
        except (ConfigError, ValueError) as err:
            raise SystemExit(f"{type(err).__name__}: {err}") from None
        print(text)
        if regressed:
            print(f"regression on {len(regressed)} task(s): {', '.join(regressed)}")
            raise SystemExit(1)
    else:
        raise SystemExit(USAGE)


if __name__ == "__main__":
    main()
