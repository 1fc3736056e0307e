"""A run dir and what a run writes there: ``checkpoints/last.pt``, TensorBoard events under ``tb/``
and, with ``eval.every``, ``reports.jsonl`` (beside Hydra's own ``.hydra/`` and log file).

A run dir that already holds a run is never silently written over: ``trainer.resume=auto``
continues the run, ``trainer.overwrite=true`` deletes what it wrote and starts clean. A resumed
run first drops what the interrupted process logged from its last checkpoint's step on and logs
that step again from the checkpoint, so every logged step appears once in TensorBoard and in the
reports, whether the process died before or after its last checkpoint, or finished.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from openclaw_rl.rock import ConfigError
from openclaw_rl.roll.checkpoint import checkpoint_path

log = logging.getLogger("openclaw_rl.train")
OUTPUTS = ("checkpoints", "tb", "reports.jsonl")  # what a run writes, relative to its run dir


def claim(run_dir: Path, resuming: bool, resume: str | None, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a run that starts now (``resuming``: from a checkpoint).

    Refuses a run dir that holds another run's outputs unless ``overwrite`` (delete them) or
    ``resume == "auto"`` with no checkpoint to continue from (what is there never checkpointed:
    starting over is continuing it)."""
    if resuming:
        return
    found = [name for name in OUTPUTS if (Path(run_dir) / name).exists()]
    if not found:
        return
    if not (overwrite or resume == "auto"):
        what = "a run" if checkpoint_path(run_dir).is_file() else "the outputs of a run that never checkpointed"
        raise ConfigError(f"hydra.run.dir={run_dir}: already holds {what} ({', '.join(found)}); continue it with "
                          "trainer.resume=auto, or replace it with trainer.overwrite=true")
    for name in found:
        path = Path(run_dir) / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    log.warning("%s: deleted %s of the earlier run (%s)", run_dir, ", ".join(found),
                "trainer.overwrite=true" if overwrite else "trainer.resume=auto with no checkpoint to continue from")


def open_writer(run_dir: Path, resumed_step: int | None = None, logged: dict[str, float] | None = None) -> SummaryWriter:
    """The run's TensorBoard writer. Resumed from a checkpoint at ``resumed_step`` that stores the
    scalars ``logged`` at that step, it hides every event the interrupted process wrote from that step
    on (a purge) and writes ``logged`` again; ``reports.jsonl`` loses its lines after that step.
    (A checkpoint without ``logged``, from before it was stored: the purge starts after its step.)"""
    tb = Path(run_dir) / "tb"
    if resumed_step is None:
        return SummaryWriter(str(tb))
    reports = Path(run_dir) / "reports.jsonl"
    if reports.is_file():
        lines = reports.read_text().splitlines()
        reports.write_text("".join(f"{line}\n" for line in lines if line and json.loads(line)["step"] <= resumed_step))
    # Readers take event files in name order, and a name starts with its creation second: the purge
    # must sort after the files it purges, so the new file waits for a later second when needed.
    seconds = [p.name.split(".")[3] for p in tb.glob("events.out.tfevents.*")]
    newest = max((int(s) for s in seconds if s.isdigit()), default=0)
    while time.time() < newest + 1:
        time.sleep(0.05)
    writer = SummaryWriter(str(tb), purge_step=resumed_step if logged is not None else resumed_step + 1)
    for key, value in (logged or {}).items():
        writer.add_scalar(key, value, resumed_step)
    return writer


def hparams(values: dict) -> dict[str, bool | int | float | str]:
    """A run's configuration (``dataclasses.asdict``) as TensorBoard's HParams table takes it: keys
    flattened with dots (``env.market.kind``, ``env.data.path``), lists as JSON text, and nulls left
    out. The table shows a left-out key as an empty cell; the text 'null' would instead turn a numeric
    column (``algo.target_kl``) into text for every run it is compared with."""
    flat = {}

    def visit(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        elif value is not None:
            flat[prefix] = json.dumps(value)

    visit("", values)
    return flat


def write_hparams(writer: SummaryWriter, values: dict[str, bool | int | float | str], metrics: dict[str, float],
                  step: int, started: float) -> None:
    """One HParams session in the run's own event file: the hparams (start) and the final metrics
    (scalars at ``step``, which the HParams table reads as its metric columns), then the end;
    ``started``: the run's start, seconds since the epoch.

    No experiment summary is written: TensorBoard takes the first one it finds for all runs of a
    logdir, and one run's columns would hide the keys only other runs have; without it, the
    table's columns are the union over runs, each typed from its values."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=started)
    for key, value in values.items():
        if isinstance(value, bool):  # before int: a bool is an int in Python
            start.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[key].number_value = value
        else:
            start.hparams[key].string_value = value
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    for key, value in metrics.items():
        writer.add_scalar(key, value, step)
    for tag, data in ((metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
                      (metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))):
        summary = Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data),
                                               tensor=metadata.NULL_TENSOR)])
        writer.file_writer.add_summary(summary, step)
