"""What a sweep leaves behind: optimization_results.yaml, archive.csv, best_so_far.png, and the
trials in TensorBoard's HParams view (``tensorboard --logdir <sweep dir>``)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import yaml

from openclaw_rl.alma.archive import COLUMNS, Archive
from openclaw_rl.alma.search import is_finite, operator_credit
from openclaw_rl.atomic import atomic_write


def write_results(archive: Archive, sweep_dir: Path, conf, utilization: float | None = None) -> dict:
    search = archive.trials(kind="search")
    finished = [t for t in search if t.status == "finished" and is_finite(t.score)]
    counts = {status: sum(t.status == status for t in search) for status in ("finished", "failed", "pruned", "interrupted", "running")}
    results: dict = {"name": "alma", "trials": counts}
    if finished:
        best = max(finished, key=lambda t: t.score)
        baseline = next((t for t in finished if t.mutation == "baseline"), None)
        results.update({
            "best_evaluated_params": dict(best.design),
            "best_evaluated_result": best.score,
            "best_trial": {"id": best.id, "overrides": best.overrides, "task_scores": best.task_scores, "run_dir": best.run_dir},
            "baseline_result": None if baseline is None else baseline.score,
            "operator_credit": operator_credit(search, finished),
        })
    holdout = [t for t in archive.trials(kind="holdout") if t.status == "finished"]
    if holdout:
        by_id = {t.id: t for t in search}
        results["holdout_transfer"] = [
            {"trial": t.parent, "overrides": t.overrides, "search_score": by_id[t.parent].score,
             "holdout_score": t.score, "holdout_task_scores": t.task_scores} for t in holdout]
    if utilization is not None:
        results["worker_utilization"] = round(utilization, 4)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(sweep_dir / "optimization_results.yaml", yaml.safe_dump(results, sort_keys=False).encode())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for trial in search + archive.trials(kind="holdout"):
        writer.writerow([getattr(trial, c) if not isinstance(getattr(trial, c), (dict, list)) else yaml.safe_dump(getattr(trial, c), default_flow_style=True).strip() for c in COLUMNS])
    atomic_write(sweep_dir / "archive.csv", buffer.getvalue().encode())
    _plot_best_so_far(search, sweep_dir / "best_so_far.png")
    if utilization is not None:
        _write_hparams(finished, sweep_dir / "hparams")
    return results


def best_so_far(trials) -> np.ndarray:
    """Best finite score among the first k trials, for k = 1..n (NaN before the first)."""
    best, out = -np.inf, []
    for t in trials:
        if t.status == "finished" and is_finite(t.score):
            best = max(best, t.score)
        out.append(best if np.isfinite(best) else np.nan)
    return np.array(out)


def _plot_best_so_far(trials, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = best_so_far(trials)
    scores = [t.score if t.status == "finished" and is_finite(t.score) else np.nan for t in trials]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(trials) + 1), scores, "o", alpha=0.5, label="trial score")
    ax.step(np.arange(1, len(trials) + 1), curve, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("score")
    ax.set_title("ALMA sweep")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def _write_hparams(finished, directory: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(directory, ignore_errors=True)
    writer = SummaryWriter(str(directory))
    for t in finished:
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in t.design.items()}
        writer.add_hparams(params, {"hparam/score": t.score}, run_name=f"trial_{t.id:04d}")
    writer.close()
