"""How much can any memory know about the hidden regime? The memory tasks' upper bound.

For each memory task of the suite, markets from the task's own model (validation seeds) give the
hidden regime per bar. Per bar we score, against the regime's drift sign:

- the sign of the trailing n-bar return, for n from the observation's window (4 bars) up: what a
  memory holding the last n bars' returns could read (``window`` with n - 3 frames holds ~n bars);
- the Bayes-optimal filter: the forward algorithm of the task's own Markov chain and Gaussian
  returns (and entry jumps), which no memory can beat.

The oracle row of ``bench/memory.py`` sees the regime itself (accuracy 1). The gap between a short
window and the filter is all a memory design can add on a task: when it is small, no design can
beat a window by much, whatever the search.

    python bench/memory_bound.py [--markets 4096] [--bars 256]     # seconds
    python bench/memory_bound.py --candidate 0.15 200 [5]          # also a would-be task: +-0.15%/bar, ~200-bar regimes
                                                                   # [announced by +-5% entry jumps]

Writes bench/results/memory_bound.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime

import numpy as np

from common import machine, write_results
from openclaw_rl.benchmark.tasks import TASKS
from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.markets import REGIME_NAMES, Regime, RegimeSwitching
from openclaw_rl.rock.splits import SEED_RANGES

LENGTHS = (4, 8, 16, 20, 32, 48, 64, 96)
# The memory tasks of suite 1.1, retired in 1.2 (fees do not change the bound): (drift %/bar, regime bars)
RETIRED = {"memory_regimes (suite 1.1)": (0.2, 60.0), "memory_slow (suite 1.1)": (0.1, 150.0)}
BURN_IN = 96  # bars before scoring: every trailing window is full and the filter has forgotten its prior


def model_of(task: str):
    """The task's market model (a RegimeSwitching chain)."""
    return EnvConfig(**{k: v for k, v in TASKS[task].env.items() if k == "market"}).make_market()


def candidate(mean_pct: float, duration_bars: float, entry_jump_pct: float = 0.0) -> RegimeSwitching:
    """A would-be memory task's chain: bull and bear of drift +-mean_pct and 1% vol per bar, each announced
    by a jump of +-entry_jump_pct on the bar it begins."""
    regimes = {name: Regime(sign * mean_pct, 1.0, duration_bars, sign * entry_jump_pct)
               for name, sign in (("bull", 1.0), ("bear", -1.0))}
    return RegimeSwitching(regimes=regimes, switching=("bull", "bear"))


def forward_filter(returns: np.ndarray, model: RegimeSwitching) -> np.ndarray:
    """``[T, N, K]`` filtered regime probabilities P(regime_t | returns of bars 1..t) of the model's chain
    with Gaussian returns and entry jumps (bar 0 shows no return; bar 1 enters its regime)."""
    if model.jump_lead_bars:
        raise SystemExit(f"memory_bound: no filter for announcements ahead (jump_lead_bars={model.jump_lead_bars})")
    names, matrix = model.transition_matrix()
    means, vols, jumps = (np.array([getattr(model.regimes[n], key) for n in names]) / 100
                          for key in ("mean_pct", "vol_pct", "entry_jump_pct"))
    T, N = returns.shape
    K = len(names)
    stay = np.eye(K, dtype=bool)
    belief = np.full((N, K), 1.0 / K)
    out = np.empty((T, N, K))
    out[0] = belief
    for t in range(1, T):
        # joint[n, i, j] = P(i at t-1) P(i -> j) p(r_t | i -> j): a move into j (or bar 1) adds j's jump
        mean = means + np.where(stay & (t > 1), 0.0, jumps)  # [i, j]
        log_like = -0.5 * ((returns[t, :, None, None] - mean) / vols) ** 2 - np.log(vols)
        log_like -= log_like.max(axis=(1, 2), keepdims=True)
        posterior = (belief[:, :, None] * matrix * np.exp(log_like)).sum(axis=1)
        belief = posterior / posterior.sum(axis=1, keepdims=True)
        out[t] = belief
    return out


def bound(model: RegimeSwitching, markets: int, bars: int) -> dict:
    """Accuracy of each trailing window's sign and of the filter, over every scored bar of ``markets`` markets."""
    low = SEED_RANGES["validation"][0]
    returns, _, codes = model.returns(np.arange(low, low + markets, dtype=np.uint64), bars)
    names, _ = model.transition_matrix()
    drift_up = np.isin(codes, [REGIME_NAMES.index(n) for n in names if model.regimes[n].mean_pct > 0])
    scored = slice(BURN_IN, bars)
    cumulative = np.vstack([np.zeros((1, markets)), np.cumsum(returns, axis=0)])
    windows = {}
    for n in LENGTHS:
        ending_at = cumulative[n:] - cumulative[:-n]  # row t - n + 1: the n bars ending at bar t
        windows[n] = float(((ending_at[BURN_IN - n + 1: bars - n + 1] > 0) == drift_up[scored]).mean())
    up = forward_filter(returns, model)[..., [model.regimes[n].mean_pct > 0 for n in names]].sum(axis=-1)
    return {"windows": windows, "filter": float(((up[scored] > 0.5) == drift_up[scored]).mean()),
            "regimes": {n: dataclasses.asdict(model.regimes[n]) for n in names}}


def report(payload: dict) -> str:
    lines = ["# How much of the hidden regime can a memory recover? (memory tasks)", "",
             f"Measured {payload['date']} by `bench/memory_bound.py`: {payload['markets']:,} validation markets x "
             f"{payload['bars']} bars of each task's own model, scored after bar {BURN_IN}. Accuracy of the regime's drift "
             "sign: from the sign of the trailing n-bar return (n = 4: the observation's own window), and from the "
             "Bayes-optimal forward filter of the task's Markov chain (the bound for any memory). The oracle sees the "
             "regime: accuracy 1.", "",
             "| task | " + " | ".join(f"{n} bars" for n in LENGTHS) + " | optimal filter |",
             "|---|" + "---:|" * (len(LENGTHS) + 1)]
    for task, row in payload["tasks"].items():
        lines.append(f"| {task} | " + " | ".join(f"{row['windows'][n]:.3f}" for n in LENGTHS) + f" | {row['filter']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=4096)
    parser.add_argument("--bars", type=int, default=256, help="per market: an episode (252 bars; memories reset at its start)")
    parser.add_argument("--candidate", type=float, nargs="+", action="append", default=[],
                        metavar="MEAN_PCT DURATION [JUMP_PCT]",
                        help="also score a would-be task: two regimes of drift +-MEAN_PCT%% per bar, 1%% vol, DURATION bars, "
                             "each announced by a +-JUMP_PCT%% jump (default 0)")
    args = parser.parse_args()
    tasks = {name: bound(model_of(name), args.markets, args.bars) for name, task in TASKS.items() if task.family == "memory"}
    for name, values in RETIRED.items():
        tasks[name] = bound(candidate(*values), args.markets, args.bars)
    for values in args.candidate:
        if len(values) not in (2, 3):
            parser.error(f"--candidate takes MEAN_PCT DURATION [JUMP_PCT], got {values}")
        jump = f", +-{values[2]:g}% entry jumps" if len(values) == 3 else ""
        tasks[f"candidate +-{values[0]:g}%, {values[1]:g} bars{jump}"] = bound(candidate(*values), args.markets, args.bars)
    payload = {"date": datetime.date.today().isoformat(), "machine": machine(), "markets": args.markets,
               "bars": args.bars, "tasks": tasks}
    print(write_results("memory_bound", payload, report(payload)))


if __name__ == "__main__":
    main()
