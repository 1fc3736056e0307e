"""Checkpoints: exact round trip, atomic writes, safe loading, clear errors."""

import pickle

import numpy as np
import pytest
import torch

from openclaw_rl.roll.checkpoint import CheckpointError, load_checkpoint, load_policy_weights, save_checkpoint
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig


def test_round_trip_keeps_arrays_exact_including_uint64(tmp_path):
    state = {"keys": np.array([2**64 - 1, 3], dtype=np.uint64), "obs": np.random.rand(3, 4).astype(np.float32),
             "nested": {"rng": np.random.default_rng(1).bit_generator.state, "weights": torch.ones(2)}}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    np.testing.assert_array_equal(loaded["keys"], state["keys"])
    assert loaded["keys"].dtype == np.uint64
    np.testing.assert_array_equal(loaded["obs"], state["obs"])
    assert loaded["nested"]["rng"] == state["nested"]["rng"]
    assert not (tmp_path / "c.pt.tmp").exists()


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path):
    save_checkpoint(tmp_path / "good.pt", {"x": np.zeros(1000)})
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable openclaw_rl checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not an openclaw_rl checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


class Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"format": "openclaw_rl.checkpoint/1", "x": Payload()}, handle)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "evil.pt")


def test_mismatched_policy_shape_is_named(tmp_path):
    small = ActorCritic(10, 3, False, PolicyConfig(hidden=(16,)))
    other = ActorCritic(10, 3, False, PolicyConfig(hidden=(32,)))
    with pytest.raises(CheckpointError, match=r"does not fit this run's policy .*policy\.hidden"):
        load_policy_weights(other, small.state_dict(), tmp_path / "x.pt")
