"""Checkpoints: atomic writes, a checksum, and loads that never unpickle arbitrary objects.

Everything is stored as tensors, numbers, strings, lists and dicts, so ``torch.load`` runs with
``weights_only=True``; numpy arrays (env state, RNG) travel as raw bytes plus dtype and shape.

A file holds ``{"format": FORMAT, "sha256": hex, "payload": uint8 tensor}``: the payload is
serialized once (``torch.save`` into memory) and its SHA-256 is checked before it is unpickled, so
a flipped byte anywhere, inside a tensor's data included, is an error rather than silently wrong
weights. Files of the older format ``openclaw_rl.checkpoint/1`` (the payload's keys at the top level,
no checksum) still load, with a warning.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import torch
from openclaw_rl.atomic import atomic_file
from openclaw_rl.errors import CheckpointError

FORMAT = "openclaw_rl.checkpoint/2"
_FORMAT_V1 = "openclaw_rl.checkpoint/1"  # no checksum: read for compatibility
_ARRAY = "__ndarray__"

log = logging.getLogger("openclaw_rl.train")


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
    """Write ``payload`` to ``path`` atomically (a crash leaves the previous file intact), with the
    SHA-256 of its serialized bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(_encode(payload), buffer)
    view = buffer.getbuffer()
    digest = hashlib.sha256(view).hexdigest()
    data = torch.frombuffer(view, dtype=torch.uint8)  # the buffer's bytes, not a copy
    with atomic_file(path) as file:
        torch.save({"format": FORMAT, "sha256": digest, "payload": data}, file)


def load_checkpoint(path: Path) -> dict:
    """The payload ``save_checkpoint`` wrote to ``path``, after checking its checksum."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    data = _torch_load(path, path)
    found = data.get("format") if isinstance(data, dict) else None
    if found == _FORMAT_V1:
        log.warning("%s: a checkpoint of the older format %s, which carries no checksum: corruption in it "
                    "cannot be detected (saving it again writes %s)", path, _FORMAT_V1, FORMAT)
        return _decode({key: value for key, value in data.items() if key != "format"})
    if found != FORMAT:
        what = found if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path}: not an openclaw_rl checkpoint (format {what!r}, expected {FORMAT!r})")
    payload, expected = data.get("payload"), data.get("sha256")
    if not (isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8 and payload.dim() == 1
            and isinstance(expected, str)):
        raise CheckpointError(f"{path}: not a readable openclaw_rl checkpoint (format {FORMAT!r} without "
                              "a uint8 payload and its sha256)")
    raw = payload.numpy()
    if hashlib.sha256(raw).hexdigest() != expected:
        raise CheckpointError(f"{path}: the checksum does not match its contents (a corrupted or altered "
                              "file); resume from another checkpoint or start over")
    del data
    inner = _torch_load(io.BytesIO(raw), path)  # one copy of the bytes, freed once loaded
    if not isinstance(inner, dict):
        raise CheckpointError(f"{path}: not an openclaw_rl checkpoint (payload is a {type(inner).__name__})")
    return _decode(inner)


def _torch_load(source, path: Path):
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, wrong format, disallowed pickled object
        raise CheckpointError(f"{path}: not a readable openclaw_rl checkpoint ({type(err).__name__}: {err})") from None


def load_policy_weights(policy: torch.nn.Module, state: dict, source: Path) -> None:
    """Load policy weights, turning a shape or key mismatch into a message that says so."""
    try:
        policy.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{source}: the checkpoint's policy does not fit this run's policy (different obs size, actions, "
            f"policy.hidden, policy.memory or policy.shared_trunk?): {err}"
        ) from None
