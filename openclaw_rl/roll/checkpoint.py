"""Checkpoints: atomic writes, and loads that never unpickle arbitrary objects.

Everything is stored as tensors, numbers, strings, lists and dicts, so ``torch.load`` runs with
``weights_only=True``; numpy arrays (env state, RNG) travel as raw bytes plus dtype and shape.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from openclaw_rl.errors import CheckpointError

FORMAT = "openclaw_rl.checkpoint/1"
_ARRAY = "__ndarray__"


def _encode(obj):
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        return {_ARRAY: data.dtype.str, "shape": list(data.shape),
                "bytes": torch.from_numpy(data.reshape(-1).view(np.uint8).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {key: _encode(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(value) for value in obj]
    return obj


def _decode(obj):
    if isinstance(obj, dict):
        if _ARRAY in obj:
            return obj["bytes"].numpy().view(np.dtype(obj[_ARRAY])).reshape(obj["shape"]).copy()
        return {key: _decode(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_decode(value) for value in obj]
    return obj


def checkpoint_path(run_dir: Path) -> Path:
    """Where a run keeps its latest checkpoint."""
    return Path(run_dir) / "checkpoints" / "last.pt"


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or the latest checkpoint of a run dir."""
    path = Path(path)
    return checkpoint_path(path) if path.is_dir() else path


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (a crash leaves the previous file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, **_encode(payload)}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, wrong format, disallowed pickled object
        raise CheckpointError(f"{path}: not a readable openclaw_rl checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an openclaw_rl checkpoint (format {data.get('format') if isinstance(data, dict) else type(data).__name__!r}, expected {FORMAT!r})")
    return _decode(data)


def load_policy_weights(policy: torch.nn.Module, state: dict, source: Path) -> None:
    """Load policy weights, turning a shape or key mismatch into a message that says so."""
    try:
        policy.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{source}: the checkpoint's policy does not fit this run's policy (different obs size, actions, "
            f"policy.hidden, policy.recurrent or policy.shared_trunk?): {err}"
        ) from None
