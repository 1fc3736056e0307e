"""IPA's variants against PPO and GRPO, by the protocol in bench/PROTOCOL.md (section ``ipa.py``).

Two settings, each an arm x training-seed grid of runs composed by Hydra (``openclaw-train`` with the
same overrides), torch threads 1:

- ``suite``: the default env (regime-switching, 252-bar episodes, log-return reward), 500,000 env steps,
  scored on the full tier (every market task);
- ``long``: the outcome reward (``env.reward=terminal_excess``) in 1,000-bar episodes, 2,000,000 env steps,
  scored on the long tier (``long_switching``, ``long_switching_costly``): where chunk credit should pay.

Phases, in order (each writes ``bench/results/ipa_PHASE.{json,md}``; run dirs under bench/runs/ipa/, kept):

    python bench/ipa.py train               # every run not yet trained (resumable)
    python bench/ipa.py validate            # every checkpoint on the validation split: the only input to choices
    python bench/ipa.py test                # once, after the choice is committed: every checkpoint on the test split
    python bench/ipa.py train --quick       # a check that the script works (tiny budgets, 2 seeds, bench/runs/ipa_quick)
    python bench/ipa.py train --first-seed 5 --arms ppo ipa_huber   # fresh seeds 5-9 (round 5); then
    python bench/ipa.py validate --first-seed 5 --arms ...          # writes ipa_validation_seeds5-9

Per arm and setting: the aggregate (normalized excess) and per-task excess log returns, mean over
seeds with a 95% t-interval; the gradient norm before clipping (max over the run's minibatches, median
over updates, their ratio); and ``compare``'s seed-level gate of the arm against PPO.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import grad_norm_summary, machine, write_results
from openclaw_rl.api import make_config
from openclaw_rl.benchmark import stats
from openclaw_rl.benchmark.config import BenchConfig
from openclaw_rl.benchmark.report import compare
from openclaw_rl.benchmark.suite import run_benchmark
from openclaw_rl.benchmark.tasks import SUITE_VERSION
from openclaw_rl.roll.pipeline import run

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setting:
    tier: str
    steps: int
    overrides: tuple[str, ...]


SETTINGS = {
    "suite": Setting("full", 500_000, ()),
    "long": Setting("long", 2_000_000, ("env.reward=terminal_excess", "env.episode_bars=1000")),
}
QUICK = {"suite": Setting("smoke", 8192, ()),
         "long": Setting("long", 16384, ("env.reward=terminal_excess", "env.episode_bars=1000"))}
# IPA's config before this study (round 1's base): every key an arm relies on is named, so that a later change
# of IPA's defaults does not change what an arm trains (the paper: gamma per chunk, no baseline, no whitening).
ROUND1_IPA = {"ipa.discount": "time", "ipa.baseline": "none", "algo.norm_adv": "false", "algo.clip_vloss": "true",
              "algo.grad_clip": "global", "ipa.value_target": "chunk", "algo.value_loss": "mse"}


def ipa(changes: dict[str, str]) -> list[str]:
    """An IPA arm: round 1's base with ``changes``."""
    return ["algo=ipa", *(f"{key}={value}" for key, value in {**ROUND1_IPA, **changes}.items())]


GAE_WHITEN = {"ipa.baseline": "gae", "algo.norm_adv": "true"}
CHOSEN_ROUND2 = {**GAE_WHITEN, "algo.grad_clip": "separate", "algo.clip_vloss": "false"}
# Round 1: fixed before any run. ipa_paper is the default before this study; the others change one thing at a
# time from ipa_time.
ARMS = {
    "ppo": ["algo=ppo"],
    "grpo": ["algo=grpo", "trainer.group_size=8"],
    "ipa_paper": ipa({"ipa.discount": "chunk"}),
    "ipa_time": ipa({}),
    "ipa_value": ipa({"ipa.baseline": "value"}),
    "ipa_group": [*ipa({"ipa.baseline": "group"}), "trainer.group_size=8"],
    "ipa_gae": ipa({"ipa.baseline": "gae"}),
    "ipa_gae_whiten": ipa(GAE_WHITEN),
    "ipa_gae_whiten_separate": ipa({**GAE_WHITEN, "algo.grad_clip": "separate"}),
    # Round 2, named after round 1's validation: the value loss's clip (0.2 reward units, rewards x100) holds
    # the critic back where returns are large (the outcome reward); off for the best round-1 IPA arm and for PPO.
    "ipa_gae_whiten_separate_vclip_off": ipa(CHOSEN_ROUND2),
    "ppo_vclip_off": ["algo=ppo", "algo.clip_vloss=false"],
    # Round 3, named after rounds 1-2's test: the critic on PPO's lambda-returns instead of the chunk's Monte Carlo rest.
    "ipa_step_vtarget": ipa({**CHOSEN_ROUND2, "ipa.value_target": "step"}),
    # Round 4, named after round 3: the critic's spikes (outcome rewards) bounded by a Huber value loss; PPO beside
    # it. Round 5 made ipa_huber the default.
    "ipa_huber": ipa({**CHOSEN_ROUND2, "algo.value_loss": "huber", "algo.huber_delta": "1.0"}),
    "ppo_huber": ["algo=ppo", "algo.value_loss=huber", "algo.huber_delta=1.0"],
}
SEEDS = 5
PEER = "ppo"  # the gate's side A


def overrides(arm: str, seed: int, setting: Setting) -> list[str]:
    return [*ARMS[arm], *setting.overrides, f"seed={seed}", f"trainer.total_steps={setting.steps}",
            "trainer.threads=1", "trainer.progress=log", "trainer.checkpoint_every=1000000"]


def run_dir(root: Path, setting: str, arm: str, seed: int) -> Path:
    return root / setting / arm / f"seed{seed}"


def train(root: Path, settings: dict[str, Setting], arms: list[str], seeds: range) -> None:
    """Every (setting, arm, seed) run without a summary yet: trained from scratch, its gradient norms summarized."""
    for name, setting in settings.items():
        for arm in arms:
            for seed in seeds:
                folder = run_dir(root, name, arm, seed)
                if (folder / "summary.json").exists():
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                start = time.perf_counter()
                result = run(make_config(overrides(arm, seed, setting)), folder)
                summary = {"overrides": overrides(arm, seed, setting), "train_seconds": time.perf_counter() - start,
                           **grad_norm_summary(result.history),
                           "final_entropy": float(result.history[-1].get("losses/entropy", np.nan)),
                           "explained_variance": float(np.nanmean([h.get("losses/explained_variance", np.nan)
                                                                   for h in result.history[-10:]]))}
                (folder / "summary.json").write_text(json.dumps(summary, indent=2))
                print(f"{name} {arm} seed {seed}: trained in {summary['train_seconds']:.0f} s, grad spike "
                      f"{summary['grad_spike']:.1f}", flush=True)


def score(root: Path, settings: dict[str, Setting], arms: list[str], seeds: range, split: str) -> dict:
    """Every checkpoint on ``split`` (bench dirs beside the run dirs, replaced): per setting, arm -> runs."""
    scored: dict[str, dict[str, list[dict]]] = {}
    for name, setting in settings.items():
        scored[name] = {}
        for arm in arms:
            runs = []
            for seed in seeds:
                folder = run_dir(root, name, arm, seed)
                out = folder.parent / f"{split}-seed{seed}"
                shutil.rmtree(out, ignore_errors=True)
                results = run_benchmark(BenchConfig(checkpoint=str(folder), tier=setting.tier, split=split), out, bar=False)
                runs.append({"bench_dir": str(out.relative_to(REPO)), "results": trimmed(results),
                             **json.loads((folder / "summary.json").read_text())})
            scored[name][arm] = runs
            aggregate = [r["results"]["aggregate"]["mean"] for r in runs]
            print(f"{split} {name} {arm}: aggregate {np.mean(aggregate):+.3f}", flush=True)
    return scored


def trimmed(results: dict) -> dict:
    """What the results file keeps of a benchmark run (its bench dir has the rest): the aggregate, and per task
    the score, its interval and the per-seed scores."""
    return {"aggregate": results["aggregate"],
            "tasks": {name: {"excess_log_return": t["excess_log_return"], "low": t["low"], "high": t["high"],
                             "seeds": t["seeds"]["excess_log_return"]} for name, t in results["tasks"].items()}}


def cell(values) -> str:
    mean, low, high = stats.mean_ci(np.asarray(values, dtype=np.float64))
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def report(payload: dict) -> str:
    split = payload["split"]
    lines = [f"# IPA's variants vs PPO and GRPO: {split} split", "",
             f"Measured {payload['date']} on {payload['machine']['cores']} CPU cores (torch threads 1) by "
             f"`bench/ipa.py {split if split == 'test' else 'validate'}`, suite {payload['suite_version']}, protocol: "
             "bench/PROTOCOL.md. Every number is over training seeds "
             f"{payload['seeds'][0]}..{payload['seeds'][-1]} (mean, 95% t-interval). Aggregate: the suite's normalized excess, mean over "
             "the tier's tasks; tasks: excess log return over buy-and-hold. Gradient norms before clipping: the max "
             "over the run's minibatches over the median over updates (mean over seeds).", ""]
    for name, arms in payload["scored"].items():
        setting = payload["settings"][name]
        tasks = list(next(iter(arms.values()))[0]["results"]["tasks"])
        lines += [f"## {name}: tier {setting['tier']}, {setting['steps']:,} env steps"
                  + (f", `{' '.join(setting['overrides'])}`" if setting["overrides"] else ""), "",
                  "| arm | aggregate | " + " | ".join(tasks) + " | grad max / median | B - A vs ppo: aggregate |",
                  "|---|---|" + "---:|" * len(tasks) + "---:|---|"]
        for arm, runs in arms.items():
            gate = payload["gates"][name].get(arm)
            lines.append(
                f"| {arm} | {cell([r['results']['aggregate']['mean'] for r in runs])} | "
                + " | ".join(f"{np.mean([r['results']['tasks'][t]['excess_log_return'] for r in runs]):+.3f}" for t in tasks)
                + f" | {np.mean([r['grad_spike'] for r in runs]):.1f} | {gate['aggregate'] if gate else 'A'} |")
        lines.append("")
        for arm, gate in payload["gates"][name].items():
            lines += [f"<details><summary>{name}: {arm} (B) vs {PEER} (A), every row</summary>", "", gate["table"],
                      "</details>", ""]
    return "\n".join(lines) + "\n"


def gates(scored: dict) -> dict:
    """Per setting and arm: ``compare``'s seed-level gate of the arm (B) against PPO (A)."""
    out: dict[str, dict] = {}
    for name, arms in scored.items():
        out[name] = {}
        peer = [REPO / r["bench_dir"] for r in arms[PEER]]
        for arm, runs in arms.items():
            if arm == PEER:
                continue
            table, regressed = compare(peer, [REPO / r["bench_dir"] for r in runs])
            table = table.replace(f"{REPO}/", "")
            row = next(line for line in table.splitlines() if line.startswith("| aggregate |"))
            verdict = row.split("|")[4].strip() + (" **regressed**" if "aggregate" in regressed else
                                                    " improved" if "improved" in row else "")
            out[name][arm] = {"table": table, "regressed": regressed, "aggregate": verdict}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("train", "validate", "test"))
    parser.add_argument("--quick", action="store_true", help="tiny budgets, 2 seeds: checks the script works")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="train and score 5 seeds (2 with --quick) from FIRST "
                             "(results: ipa_SPLIT_seedsFIRST-LAST unless FIRST is 0)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    settings, count = (QUICK, 2) if args.quick else (SETTINGS, SEEDS)
    seeds = range(args.first_seed, args.first_seed + count)
    root = REPO / "bench" / "runs" / ("ipa_quick" if args.quick else "ipa")
    if args.phase == "train":
        train(root, settings, args.arms, seeds)
        return
    if PEER not in args.arms:
        sys.exit(f"--arms must include {PEER}, the gate's side A")
    scored = score(root, settings, args.arms, seeds, "validation" if args.phase == "validate" else "test")
    payload = {"machine": machine(), "date": str(datetime.date.today()), "suite_version": SUITE_VERSION,
               "split": "validation" if args.phase == "validate" else "test", "seeds": list(seeds),
               "settings": {name: {"tier": s.tier, "steps": s.steps, "overrides": list(s.overrides)}
                            for name, s in settings.items()},
               "arms": {arm: ARMS[arm] for arm in args.arms}, "scored": scored, "gates": gates(scored)}
    name = (f"ipa_{payload['split']}" + (f"_seeds{seeds[0]}-{seeds[-1]}" if seeds[0] else "")
            + ("_quick" if args.quick else ""))
    print(f"wrote {write_results(name, payload, report(payload))}")


if __name__ == "__main__":
    main()
