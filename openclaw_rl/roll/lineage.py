"""A run's lineage: every market it touched, and everything its weights came from.

Each record says what was touched (``rock.splits``: market seeds, or bars of a data file by
its hash), for what (``use``: train, validation, a teacher's dataset) and by which run or dataset
(``by``). A run copies the lineage of the checkpoint it starts from (``trainer.init_from``, the
SFT stage of ``sft_rl``, an ALMA child inheriting its parent's weights) and of the datasets it
clones, so the record is transitive. Checkpoints carry it; the benchmark's contamination guard
reads it. A source whose lineage is unknown (a checkpoint written before lineages existed) is an
``unknown`` record, which the guard treats as touching everything.
"""

from __future__ import annotations

from pathlib import Path

from openclaw_rl.data.trajectories import TrajectoryDataset
from openclaw_rl.rock.config import touched
from openclaw_rl.rock.splits import unknown_record
from openclaw_rl.roll.checkpoint import find_checkpoint, load_checkpoint
from openclaw_rl.roll.config import TRAIN_SEED_STRIDE, RunConfig
from openclaw_rl.roll.evaluate import validation_touched


def run_lineage(config: RunConfig, run_dir: Path) -> list[dict]:
    """What a run with ``config`` in ``run_dir`` touches, its sources' lineages included."""
    by = str(run_dir)
    low = config.seed * TRAIN_SEED_STRIDE
    records = [
        {**touched(config.env, (low, low + TRAIN_SEED_STRIDE)), "use": "train", "by": by},
        {**validation_touched(config.env, config.eval.n_envs), "use": "validation", "by": by},
    ]
    if config.trainer.stage == "sft":  # (sft_rl runs as an sft stage, then rl from its checkpoint)
        for path in config.sft.datasets or ():
            records += [{**record, "by": record.get("by", str(path))} for record in TrajectoryDataset(Path(path)).touched()]
    if config.trainer.init_from is not None:
        records += checkpoint_lineage(config.trainer.init_from)
    return records


def checkpoint_lineage(path: str | Path) -> list[dict]:
    """The lineage a checkpoint (or run dir) carries; ``unknown`` if it has none."""
    return stored_lineage(load_checkpoint(find_checkpoint(path)), path)


def stored_lineage(state: dict, path: str | Path, use: str = "init_from") -> list[dict]:
    """The lineage a loaded checkpoint ``state`` carries; ``unknown`` if it has none."""
    return state["lineage"] if "lineage" in state else [unknown_record(use, str(path), "written before lineages existed")]


def union(*lineages: list[dict]) -> list[dict]:
    """Every record of ``lineages``, in order, each once: a lineage only grows (a resumed run keeps
    what it touched before, whatever its sources are now)."""
    out: list[dict] = []
    for record in (record for lineage in lineages for record in lineage):
        if record not in out:
            out.append(record)
    return out
