"""What a sweep leaves behind: optimization_results.yaml, archive.csv, best_so_far.png, and the
trials in TensorBoard's HParams view (``tensorboard --logdir <sweep dir>``)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from openclaw_rl.alma.archive import COLUMNS, Archive
from openclaw_rl.alma.config import ALMASweeperConf
from openclaw_rl.alma.search import is_finite, operator_credit, rungs
from openclaw_rl.atomic import atomic_write


def write_results(archive: Archive, sweep_dir: Path, conf: ALMASweeperConf, utilization: float | None = None,
                  objective: str = "objective") -> dict:
    """Write the sweep's results into ``sweep_dir``; ``objective`` names the score (the task's
    ``eval.objective``) on the best-so-far plot. After each trial: the YAML and CSV; with
    ``utilization`` (at the sweep's end) also ``best_so_far.png`` and the HParams events."""
    search = archive.trials(kind="search")
    finished = [t for t in search if t.status == "finished" and is_finite(t.score)]
    counts = {status: sum(t.status == status for t in search) for status in ("finished", "failed", "pruned", "interrupted", "running")}
    results: dict = {"name": "alma", "proposer": conf.proposer, "objective": objective, "trials": counts}
    if finished:
        best = max(finished, key=lambda t: t.score)
        by_id = {t.id: t for t in search}
        baseline = next((t for t in finished if origin(t, by_id) == "baseline"), None)
        results.update({
            "best_evaluated_params": dict(best.design),
            "best_evaluated_result": best.score,
            "best_trial": {"id": best.id, "overrides": trained_overrides(archive, best, conf),
                           "task_scores": best.task_scores, "run_dir": best.run_dir},
            "baseline_result": None if baseline is None else baseline.score,
        })
        if conf.proposer == "alma":  # its operators' credit (random proposals have none)
            ended = [t for t in search if t.status in ("finished", "failed", "pruned")]
            results["operator_credit"] = operator_credit(search, ended)
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
    if utilization is not None:  # the sweep's end: the figure and TensorBoard (too slow to redo after every trial)
        atomic_write(sweep_dir / "best_so_far.png", _png(best_so_far_figure(search, objective)))
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


def trained_overrides(archive: Archive, trial, conf: ALMASweeperConf) -> list[str]:
    """The overrides that train ``trial``'s weights from scratch: its design's, with successive halving's
    length key at the trial-lengths behind its weights (a promoted trial trained several; per task when the
    tasks' lengths differ, the first task's here). With ``inherit_weights`` its weights also began as its
    parent's, which no override reproduces."""
    lengths = json.loads(archive.get_meta("lengths") or "[]")
    if not conf.promotion.enabled or not lengths:
        return list(trial.overrides)
    depth = rungs(archive.trials(kind="search"), conf.inherit_weights)[trial.id]
    key = conf.promotion.key
    return [o for o in trial.overrides if not o.startswith(f"{key}=")] + [f"{key}={depth * lengths[0]}"]


def origin(trial, by_id: dict) -> str | None:
    """How a trial's design was made: its ``mutation``, or for a retry (archives of sweeps before trials
    resumed in place) that of the trial it reruns."""
    while trial.mutation == "retry" and trial.retry_of in by_id:
        trial = by_id[trial.retry_of]
    return trial.mutation


def best_so_far_figure(trials, objective: str = "objective"):
    """Each finished trial's score by how its design was made (the baseline design, space-filling
    initial designs, designs proposed by ALMA's rule or at random, promoted trials), the best score so far as a step line, and
    the baseline design's score as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = {t.id: t for t in trials}
    x = np.arange(1, len(trials) + 1)
    scores = np.array([t.score if t.status == "finished" and is_finite(t.score) else np.nan for t in trials])
    made = [origin(t, by_id) for t in trials]
    group = np.array([m if m in ("baseline", "initial", "promote", "random") else "proposed" for m in made])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.step(x, best_so_far(trials), where="post", color="black", linewidth=1.5, label="best so far")
    for name, marker, color, label in (("baseline", "*", "tab:red", "baseline design"),
                                       ("initial", "s", "tab:grey", "initial (space-filling)"),
                                       ("proposed", "o", "tab:blue", "proposed (ALMA rule)"),
                                       ("random", "o", "tab:olive", "proposed (random)"),
                                       ("promote", "^", "tab:green", "promoted (continued a run)")):
        keep = (group == name) & np.isfinite(scores)
        if keep.any():
            ax.plot(x[keep], scores[keep], marker, color=color, alpha=0.8, markersize=10 if marker == "*" else 6,
                    linestyle="none", label=label)
    baseline = scores[(group == "baseline") & np.isfinite(scores)]
    if len(baseline):
        ax.axhline(baseline[0], color="tab:red", linestyle="--", linewidth=1, label=f"baseline score {baseline[0]:.4g}")
    failed = [t.status in ("failed", "pruned") for t in trials]
    ax.set_xlabel("search trial (in the order started)")
    ax.set_ylabel(objective)
    ax.set_title(f"ALMA sweep: best {objective} so far ({int(np.isfinite(scores).sum())} finished, "
                 f"{sum(failed)} failed or pruned, of {len(trials)} trials)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _write_hparams(finished, directory: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(directory, ignore_errors=True)
    writer = SummaryWriter(str(directory))
    for t in finished:
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in t.design.items()}
        writer.add_hparams(params, {"hparam/score": t.score}, run_name=f"trial_{t.id:04d}")
    writer.close()
