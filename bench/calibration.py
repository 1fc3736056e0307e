"""Calibration of the benchmark's verdicts: the regression gate's false alarms and power, and the
coverage of the suite's per-task intervals.

1. Pools of checkpoints, one per training seed, each scored on the tier (test split): ``A``, the
   default config trained ``steps`` env steps (training seeds 1..); and two planted degradations,
   the same config trained half and a quarter as long (seeds 1001.., 2001..: no seed shared).
2. **A/A**: draws of two disjoint sets of ``n`` checkpoints from pool A, judged by ``compare``'s
   gate (Welch's t over training seeds, Bonferroni over the tasks and the aggregate). The false-alarm
   rate is the share of draws where any row reads "regressed". Draws share checkpoints, so they are
   not independent trials: the rate's standard error is a jackknife over the pool's checkpoints.
   Beside it, the fixed-weights test (one checkpoint a side, paired over market seeds) on pairs of
   pool A's checkpoints: how often it calls two seeds of one config a regression.
3. **A/B**: ``n`` of pool A against ``n`` of a degraded pool: the gate's power, beside the true
   difference estimated from the whole pools.
4. **Seeds needed**: the regression each row detects with 80% probability at ``n`` seeds a side,
   from pool A's spread across seeds.
5. **Coverage**: one checkpoint of pool A, each synthetic task: ``REPLICATIONS`` fresh copies of
   the tier's test markets (disjoint seed blocks of the test range), each's 95% t-interval over
   seeds checked against the expected score, estimated on as many other markets. Historical tasks:
   synthetic price files (the regime chain, GARCH-t) as long as googl_daily's, scored as historical tasks.

    python bench/calibration.py            # ~15 minutes on 2 cores
    python bench/calibration.py --quick    # a check that the script works: tiny pools, smoke tier

Run dirs: bench/runs/NAME/ (ignored by git, replaced). Writes bench/results/NAME.{json,md} (NAME:
calibration, or calibration_quick).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
import torch

from common import machine, write_results
from openclaw_rl.api import make_config
from openclaw_rl.benchmark import stats
from openclaw_rl.benchmark.agents import checkpoint_agent
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.report import AGGREGATE, side_scores
from openclaw_rl.benchmark.suite import historical_interval, play, run_benchmark
from openclaw_rl.benchmark.tasks import SEED_BLOCK, SUITE_VERSION, TASKS, TIERS, Task, first_seed
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.splits import seed_range
from openclaw_rl.roll.pipeline import run

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "bench" / "runs"
LEVEL = 0.95


@dataclass(frozen=True)
class Budget:
    name: str
    steps: int  # env steps of pool A's checkpoints
    pool_a: int  # checkpoints (training seeds) in pool A
    pool_degraded: int  # in each degraded pool
    sizes: tuple[int, ...]  # n seeds a side in the A/A and A/B draws
    draws: int  # per n
    replications: int  # coverage: copies of the tier's test markets per task
    tier: str


FULL = Budget("calibration", 131_072, 30, 15, (3, 5, 10), 2000, 100, "full")
QUICK = Budget("calibration_quick", 32_768, 6, 4, (2, 3), 50, 4, "smoke")


def pools(budget: Budget) -> dict[str, dict]:
    """Train and score every pool: ``{name: {steps, seeds, results}}``."""
    specs = {"A": (budget.steps, budget.pool_a), "half steps": (budget.steps // 2, budget.pool_degraded),
             "quarter steps": (budget.steps // 4, budget.pool_degraded)}
    out = {}
    for k, (name, (steps, count)) in enumerate(specs.items()):
        results = []
        seeds = range(1000 * k + 1, 1000 * k + count + 1)  # pools share no training seed (no weights in common)
        for seed in seeds:
            folder = RUNS / budget.name / name.replace(" ", "_") / f"seed{seed}"
            trained = run(make_config([f"seed={seed}", f"trainer.total_steps={steps}", "trainer.threads=1",
                                       "trainer.progress=log"]), folder / "train")
            results.append(run_benchmark(BenchConfig(checkpoint=str(trained.run_dir), tier=budget.tier), folder / "bench",
                                         bar=False))
            print(f"{name} seed {seed}: aggregate {results[-1]['aggregate']['mean']:+.3f}", flush=True)
        out[name] = {"steps": steps, "seeds": list(seeds), "results": results}
    return out


def scores(results: list[dict]) -> dict[str, np.ndarray]:
    """Per row of ``compare`` (tasks and the aggregate), one score per checkpoint: what the gate reads."""
    return side_scores(results, fixed_weights=False)


def flags(a: dict[str, np.ndarray], b: dict[str, np.ndarray], paired: bool = False) -> dict[str, bool]:
    """Which rows the gate calls regressed, B against A."""
    return {row: d["regressed"] for row, d in stats.compare_tasks(a, b, LEVEL, paired=paired).items()}


def draws(rng: np.random.Generator, pool: int, n: int, count: int, other: int | None = None) -> list[tuple]:
    """``count`` draws of index sets: two disjoint sets of ``n`` from one pool (``other`` None), or
    ``n`` from the pool and ``n`` from another of ``other`` checkpoints."""
    out = []
    for _ in range(count):
        if other is None:
            picked = rng.permutation(pool)[: 2 * n]
            out.append((picked[:n], picked[n:]))
        else:
            out.append((rng.permutation(pool)[:n], rng.permutation(other)[:n]))
    return out


def jackknife(hits: np.ndarray, used: list[np.ndarray], pool: int) -> float:
    """The standard error of the hit rate over draws that share checkpoints: a jackknife over the
    pool's checkpoints, each left out by keeping the draws that did not use it."""
    rates = []
    for i in range(pool):
        keep = np.array([i not in u for u in used])
        if keep.any():
            rates.append(hits[keep].mean())
    rates = np.array(rates)
    return float(math.sqrt((len(rates) - 1) / len(rates) * ((rates - rates.mean()) ** 2).sum())) if len(rates) > 1 else math.nan


def gate_rates(a: dict, b: dict | None, budget: Budget, rng: np.random.Generator) -> dict:
    """Per ``n``: the share of draws with any row flagged (with its jackknife standard error over pool A's
    checkpoints), and per row."""
    pool = len(a[AGGREGATE])
    out = {}
    for n in budget.sizes:
        if 2 * n > pool and b is None:
            continue
        picked = draws(rng, pool, n, budget.draws, None if b is None else len(b[AGGREGATE]))
        verdicts = [flags({k: v[i] for k, v in a.items()}, {k: v[j] for k, v in (b or a).items()}) for i, j in picked]
        hits = np.array([any(v.values()) for v in verdicts], dtype=float)
        used = [np.concatenate([i, j]) if b is None else i for i, j in picked]
        out[n] = {"any": float(hits.mean()), "se": jackknife(hits, used, pool), "draws": len(picked),
                  "rows": {row: float(np.mean([v[row] for v in verdicts])) for row in a}}
    return out


def fixed_weights_rates(results: list[dict]) -> dict:
    """The fixed-weights test on every ordered pair of distinct checkpoints of one config: how often it
    flags a regression (any row) though both come from the same config."""
    per_seed = [side_scores([r], fixed_weights=True) for r in results]
    hits = [any(flags(per_seed[i], per_seed[j], paired=True).values())
            for i in range(len(results)) for j in range(len(results)) if i != j]
    return {"pairs": len(hits), "any": float(np.mean(hits))}


def seeds_needed(a: dict, budget: Budget) -> dict:
    """Per row, the regression detected with 80% power at n seeds a side, given pool A's sd per row."""
    corrected = 1.0 - (1.0 - LEVEL) / len(a)
    out = {}
    for row, values in a.items():
        sd = float(np.std(values, ddof=1))
        out[row] = {"sd": sd, **{str(n): stats.detectable_regression(sd * math.sqrt(2 / n), 2 * n - 2, corrected)
                                  for n in (3, 5, 10, 20)}}
    return out


def coverage(checkpoint: str, budget: Budget) -> dict:
    """Per synthetic task of the tier: the share of REPLICATIONS 95% t-intervals (the tier's seeds x
    markets, fresh test markets each) that cover the expected score, estimated on as many other markets."""
    spec = TIERS[budget.tier]
    agent = checkpoint_agent(checkpoint, torch.device("cpu"))
    block = spec.n_seeds * spec.n_markets
    out = {}
    for task in TASKS.values():
        if task.historical or not spec.scores(task):
            continue
        env = agent.env_for(task.env_config("test", 2 * budget.replications * block))
        start = first_seed(task, None) + SEED_BLOCK  # past the block the tier scores
        excess = play(agent, env, start)[0]["excess_log_return"]
        truth_markets, replicas = excess[: budget.replications * block], excess[budget.replications * block:]
        truth = float(truth_markets.mean())
        truth_se = float(truth_markets.std(ddof=1) / math.sqrt(truth_markets.size))
        per_seed = replicas.reshape(budget.replications, spec.n_seeds, spec.n_markets).mean(axis=2)
        intervals = [stats.mean_ci(row, LEVEL) for row in per_seed]
        covered = [low <= truth <= high for _, low, high in intervals]
        low, high = clopper_pearson(sum(covered), len(covered))
        out[task.name] = {"truth": truth, "truth_se": truth_se, "coverage": float(np.mean(covered)),
                          "coverage_low": low, "coverage_high": high,
                          "half_width": float(np.mean([(h - lo) / 2 for _, lo, h in intervals]))}
        print(f"coverage {task.name}: {out[task.name]['coverage']:.2f}", flush=True)
    return out


HISTORICAL_MODELS = ("regime_switching", "garch")  # the S&P-fitted chain; GARCH(1,1)-t, heavy-tailed paths
TRUTH_PER_TEST = 2  # series estimating the expected score per series whose interval is checked


def historical_coverage(checkpoint: str, budget: Budget, folder: Path, kind: str) -> dict:
    """The historical interval's coverage where the truth is known: synthetic ``kind`` series as long as
    googl_daily's file, each written as a price file and scored as a historical task (its test split, the
    tier's windows). ``TRUTH_PER_TEST x REPLICATIONS`` of them estimate the expected score (the mean of
    their scores); the intervals of ``REPLICATIONS`` others are checked against it, beside the t-interval
    over seeds of overlapping windows (the suite's interval for historical tasks before)."""
    spec, agent = TIERS[budget.tier], checkpoint_agent(checkpoint, torch.device("cpu"))
    googl = TASKS["googl_daily"]
    length = len(googl.env_config("test", 1).make_market().series)
    window = googl.env_config("test", 1).window
    n_truth = TRUTH_PER_TEST * budget.replications
    series_env = EnvConfig.from_mapping(market={"kind": kind}, window=window, episode_bars=length - window - 1,
                                        n_envs=n_truth + budget.replications)
    markets = MarketVecEnv(config=series_env)
    markets.reset(seed=seed_range("test")[0] + 7 * SEED_BLOCK)
    closes = markets.engine.close.copy()
    folder.mkdir(parents=True, exist_ok=True)
    dates = pd.bdate_range("2009-05-22", periods=length).strftime("%Y-%m-%d")
    columns = {"time": "date", "close": "close", "open": None, "high": None, "low": None, "volume": None}
    scores, intervals = [], {"independent episodes": [], "t over seeds": []}
    for i in range(closes.shape[1]):
        path = folder / f"{kind}_{i}.csv"
        pd.DataFrame({"date": dates, "close": closes[:, i]}).to_csv(path, index=False)
        task = Task(f"{kind}_{i}", "", {**googl.env, "data": {"path": str(path), "columns": columns}})
        env = agent.env_for(task.env_config("test", spec.n_seeds * spec.n_markets))
        excess = play(agent, env, first_seed(task, None))[0]["excess_log_return"]
        scores.append(float(excess.mean()))
        if i >= n_truth:
            low, high, independent = historical_interval(excess, env)
            intervals["independent episodes"].append((low, high))
            intervals["t over seeds"].append(stats.mean_ci(excess.reshape(spec.n_seeds, spec.n_markets).mean(axis=1))[1:])
    truth_scores = np.array(scores[:n_truth])
    out = {"model": kind, "truth": float(truth_scores.mean()),
           "truth_se": float(truth_scores.std(ddof=1) / math.sqrt(n_truth)), "truth_series": n_truth,
           "most_extreme": float(truth_scores[np.argmax(np.abs(truth_scores - np.median(truth_scores)))]),
           "independent_episodes": independent, "series_bars": length}
    for name, bounds in intervals.items():
        covered = [low <= out["truth"] <= high for low, high in bounds]
        low, high = clopper_pearson(sum(covered), len(covered))
        out[name] = {"coverage": float(np.mean(covered)), "coverage_low": low, "coverage_high": high,
                     "half_width": float(np.mean([(h - lo) / 2 for lo, h in bounds]))}
        print(f"historical coverage ({kind}), {name}: {out[name]['coverage']:.2f}", flush=True)
    return out


def clopper_pearson(hits: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    alpha = 1.0 - level
    low = 0.0 if hits == 0 else float(scipy.stats.beta.ppf(alpha / 2, hits, trials - hits + 1))
    high = 1.0 if hits == trials else float(scipy.stats.beta.ppf(1 - alpha / 2, hits + 1, trials - hits))
    return low, high


def report(payload: dict) -> str:
    b = payload["budget"]
    aa, fixed, need, cov = payload["aa"], payload["fixed_weights"], payload["seeds_needed"], payload["coverage"]
    pools_line = ", ".join(f"{name}: {len(p['seeds'])} checkpoints of {p['steps']:,} steps, aggregate "
                           f"{np.mean(p['aggregate']):+.3f} (sd {np.std(p['aggregate'], ddof=1):.3f})"
                           for name, p in payload["pools"].items())
    lines = [
        "# Calibration of the benchmark's verdicts", "",
        f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores by `bench/calibration.py`: suite "
        f"{payload['suite_version']}, tier {b['tier']}, the default config (IPA), one checkpoint per training seed "
        f"(no seed in two pools). Pools: {pools_line}.", "",
        "## The regression gate over training seeds (A/A: no true difference)", "",
        f"Draws of two disjoint sets of n checkpoints from pool A ({b['draws']} per n), judged by `compare` "
        f"(Welch's t, {100 * LEVEL:g}% intervals, Bonferroni over {len(need)} rows: the tasks and the aggregate). A "
        "false alarm is any row read as regressed; the target is at most 5% (by construction the one-sided rate is at "
        "most 2.5%). The draws share checkpoints, so the standard error is a jackknife over pool A's checkpoints.", "",
        "| n seeds a side | false alarms (any row) | ± 1.96 jackknife SE | worst row |", "|---:|---:|---:|---|"]
    for n, r in aa.items():
        worst = max(r["rows"], key=r["rows"].get)
        lines.append(f"| {n} | {100 * r['any']:.1f}% | ±{196 * r['se']:.1f} pp | {worst} {100 * r['rows'][worst]:.1f}% |")
    lines += ["", f"The fixed-weights test (one checkpoint a side, paired over market seeds: the gate before this "
              f"version) on the {fixed['pairs']} ordered pairs of pool A's distinct checkpoints flags a regression on "
              f"**{100 * fixed['any']:.0f}%** of them: it measures market noise for fixed weights, not training's.", "",
              "## Power (A/B: planted degradations)", "",
              "| degradation | true difference of the aggregate (pools' means) | n seeds a side | flagged (any row) "
              "| aggregate row flagged |", "|---|---:|---:|---:|---:|"]
    for name, rates in payload["ab"].items():
        true = np.mean(payload["pools"][name]["aggregate"]) - np.mean(payload["pools"]["A"]["aggregate"])
        for n, r in rates.items():
            lines.append(f"| {name} | {true:+.3f} | {n} | {100 * r['any']:.1f}% | {100 * r['rows'][AGGREGATE]:.1f}% |")
    lines += ["", "## Seeds needed", "",
              "The regression each row detects with 80% probability at n training seeds a side (Welch, Bonferroni over "
              "the rows, pool A's sd across seeds):", "",
              "| row | sd across seeds | n = 3 | n = 5 | n = 10 | n = 20 |", "|---|---:|---:|---:|---:|---:|"]
    for row, r in need.items():
        lines.append(f"| {row} | {r['sd']:.4f} | " + " | ".join(f"{r[n]:.4f}" for n in ("3", "5", "10", "20")) + " |")
    lines += ["", "## Coverage of the per-task intervals (fixed weights, synthetic tasks)", "",
              f"One checkpoint of pool A; per task {b['replications']} fresh copies of the tier's test markets, each's "
              "95% t-interval over its seeds against the expected score estimated on as many other markets. Target: "
              "90-98%.", "",
              "| task | expected excess (± SE) | mean half-width | coverage [95% Clopper-Pearson] |", "|---|---:|---:|---:|"]
    for task, r in cov.items():
        lines.append(f"| {task} | {r['truth']:+.4f} (±{r['truth_se']:.4f}) | {r['half_width']:.4f} "
                     f"| {100 * r['coverage']:.0f}% [{100 * r['coverage_low']:.0f}, {100 * r['coverage_high']:.0f}] |")
    hc = payload["historical_coverage"]
    first = next(iter(hc.values()))
    lines += ["", "## Coverage of the historical tasks' intervals", "",
              f"One price path has no brute-force truth, so synthetic ones stand in: per market model, series of "
              f"{first['series_bars']:,} bars (googl_daily's length), each written as a price file and scored as a "
              f"historical task (its test split, googl_daily's episodes: {first['independent_episodes']:.1f} "
              f"independent episodes' worth). {first['truth_series']} series estimate the expected score; the 95% "
              f"intervals of {b['replications']} others are checked against it.", "",
              "| model | expected score (± SE; the most extreme series) | interval | mean half-width "
              "| coverage [95% Clopper-Pearson] |", "|---|---|---|---:|---:|"]
    for kind, h in hc.items():
        for name in ("independent episodes", "t over seeds"):
            r = h[name]
            lines.append(f"| {kind} | {h['truth']:+.4f} ± {h['truth_se']:.4f}; {h['most_extreme']:+.3f} | {name} "
                         f"| {r['half_width']:.4f} | {100 * r['coverage']:.0f}% "
                         f"[{100 * r['coverage_low']:.0f}, {100 * r['coverage_high']:.0f}] |")
    lines += ["", "`independent episodes` is the suite's: the windows' spread over the number n of independent "
              "episodes the test range holds, Student's t with n - 1 degrees of freedom. `t over seeds`, the "
              "interval before, treats overlapping windows as independent. The expected score's SE and the most "
              "extreme series' score show how heavy each model's tails are: a truth that is itself uncertain "
              "lowers the measured coverage."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny pools and the smoke tier: checks the script works")
    budget = QUICK if parser.parse_args().quick else FULL
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    shutil.rmtree(RUNS / budget.name, ignore_errors=True)
    trained = pools(budget)
    rng = np.random.default_rng(0)
    a = scores(trained["A"]["results"])
    payload = {
        "machine": machine(), "date": str(datetime.date.today()), "suite_version": SUITE_VERSION,
        "budget": asdict(budget), "level": LEVEL,
        "pools": {name: {"steps": p["steps"], "seeds": p["seeds"], "aggregate": scores(p["results"])[AGGREGATE].tolist(),
                         "scores": {row: v.tolist() for row, v in scores(p["results"]).items()}}
                  for name, p in trained.items()},
        "aa": gate_rates(a, None, budget, rng),
        "ab": {name: gate_rates(a, scores(trained[name]["results"]), budget, rng)
               for name in trained if name != "A"},
        "fixed_weights": fixed_weights_rates(trained["A"]["results"]),
        "seeds_needed": seeds_needed(a, budget),
        "coverage": coverage(trained["A"]["results"][0]["agent"], budget),
        "historical_coverage": {kind: historical_coverage(trained["A"]["results"][0]["agent"], budget,
                                                          RUNS / budget.name / "series", kind)
                                for kind in HISTORICAL_MODELS},
    }
    print(f"wrote {write_results(budget.name, payload, report(payload))}")


if __name__ == "__main__":
    main()
