"""``openclaw-memory RUN_DIR`` (``python -m openclaw_rl.memory``): the memory report of a trained policy.

Compression ratio and linear-probe scores (memory state vs the observation alone) per chunk index,
on validation markets (``roll.memory_eval``). Prints a table; ``--out FILE`` also writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from openclaw_rl.atomic import atomic_write
from openclaw_rl.backtest.run import load_policy
from openclaw_rl.errors import CheckpointError, ConfigError
from openclaw_rl.roll.evaluate import EVAL_SEED_BASE, validation_env
from openclaw_rl.roll.memory_eval import memory_report

COLUMNS = ("points", "compression_ratio", "memory/regime_accuracy", "observation/regime_accuracy", "memory/vol_r2",
           "observation/vol_r2", "memory/since_order_r2", "observation/since_order_r2")


def table(report: dict) -> str:
    """The report as a markdown table, one row per chunk-index bucket and one overall."""
    present = [c for c in COLUMNS if c in report.get("overall", {})]
    lines = [f"# memory report: {report['design']}, {report['n_markets']} validation markets, {report['n_points']} chunk ends",
             "", "| chunk index | " + " | ".join(present) + " |", "|---" * (len(present) + 1) + "|"]
    rows = [*report["buckets"].items(), ("all", report.get("overall", {}))]
    for name, row in rows:
        cells = ["-" if row.get(c) is None else f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in present]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "note" in report:
        lines.append(f"\n{report['note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="openclaw-memory", description="The memory report of a trained policy: "
                                     "compression ratio and linear probes per chunk index, on validation markets.")
    parser.add_argument("checkpoint", help="a run dir or a checkpoint file")
    parser.add_argument("--markets", type=int, default=64, help="validation markets (probes fit on half, score on half)")
    parser.add_argument("--out", help="also write the report as JSON here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.markets < 16:
        raise SystemExit("--markets: must be >= 16 (probes fit on half of them and score on the other half)")
    try:
        policy, config = load_policy(Path(args.checkpoint), torch.device("cpu"))
    except (CheckpointError, ConfigError) as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    report = memory_report(policy, validation_env(config.env, args.markets), EVAL_SEED_BASE, torch.device("cpu"))
    print(table(report))
    if args.out:
        atomic_write(Path(args.out), json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
