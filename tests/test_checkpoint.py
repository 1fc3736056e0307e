"""Checkpoints: exact round trip, atomic writes, a checksum, safe loading, clear errors."""

import logging
import pickle

import numpy as np
import pytest
import torch

from openclaw_rl.data.trajectories import generate
from openclaw_rl.episodes import strategy_actor
from openclaw_rl.rock import EnvConfig
from openclaw_rl.roll.checkpoint import (
    FORMAT, CheckpointError, checkpoint_path, load_checkpoint, load_policy_weights, save_checkpoint,
)
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.pipeline import run
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig
from openclaw_rl.strategies.v7 import TrendFollowing


def test_round_trip_keeps_arrays_exact_including_uint64(tmp_path):
    state = {"keys": np.array([2**64 - 1, 3], dtype=np.uint64), "obs": np.random.rand(3, 4).astype(np.float32),
             "nested": {"rng": np.random.default_rng(1).bit_generator.state, "weights": torch.ones(2)}}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    np.testing.assert_array_equal(loaded["keys"], state["keys"])
    assert loaded["keys"].dtype == np.uint64
    np.testing.assert_array_equal(loaded["obs"], state["obs"])
    assert loaded["nested"]["rng"] == state["nested"]["rng"]
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_round_trip_of_nested_dicts_and_lists_with_arrays(tmp_path):
    rng = np.random.default_rng(0)
    state = {"a": {"b": {"c": rng.normal(size=(2, 3, 4)), "d": [np.arange(5, dtype=np.int16), {"e": np.bool_(True)}]},
                   "f": np.zeros((0, 3), dtype=np.float32), "g": np.asfortranarray(rng.normal(size=(3, 2)))},
             "step": 7, "name": "x", "w": torch.arange(6.0).reshape(2, 3)}
    save_checkpoint(tmp_path / "c.pt", state)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["format"] == FORMAT == "openclaw_rl.checkpoint/2" and len(raw["sha256"]) == 64
    loaded = load_checkpoint(tmp_path / "c.pt")
    c, d = loaded["a"]["b"]["c"], loaded["a"]["b"]["d"]
    np.testing.assert_array_equal(c, state["a"]["b"]["c"])
    assert c.dtype == np.float64 and c.shape == (2, 3, 4)
    np.testing.assert_array_equal(d[0], state["a"]["b"]["d"][0])
    assert d[0].dtype == np.int16 and d[1] == {"e": True}
    assert loaded["a"]["f"].shape == (0, 3) and loaded["a"]["f"].dtype == np.float32
    np.testing.assert_array_equal(loaded["a"]["g"], state["a"]["g"])
    assert loaded["step"] == 7 and loaded["name"] == "x" and torch.equal(loaded["w"], state["w"])


def test_saving_again_replaces_the_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"update": 1})
    save_checkpoint(tmp_path / "c.pt", {"update": 2})
    assert load_checkpoint(tmp_path / "c.pt") == {"update": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


WEIGHT = torch.arange(4096, dtype=torch.float32) * 1.2345 + 7.0  # distinctive bytes, easy to find in a file


def flip_a_weight_byte(path):
    """Flip one byte inside the data of ``WEIGHT`` as stored in ``path``."""
    data = bytearray(path.read_bytes())
    needle = WEIGHT.numpy().tobytes()
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0  # the tensor's data is in the file, once
    data[at + len(needle) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_byte_inside_a_tensor_fails_the_checksum(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"policy": {"w": WEIGHT}, "update": 3})
    assert torch.equal(load_checkpoint(path)["policy"]["w"], WEIGHT)
    flip_a_weight_byte(path)
    with pytest.raises(CheckpointError, match=r"last\.pt: the checksum does not match .*corrupted or altered"):
        load_checkpoint(path)


def test_the_older_format_without_checksum_loads_with_a_warning_and_misses_corruption(tmp_path, caplog):
    path = tmp_path / "old.pt"
    torch.save({"format": "openclaw_rl.checkpoint/1", "policy": {"w": WEIGHT}, "update": 3,
                "keys": {"__ndarray__": "<u8", "shape": [2], "bytes": torch.from_numpy(
                    np.array([2**64 - 1, 3], dtype=np.uint64).view(np.uint8).copy())}}, path)
    with caplog.at_level(logging.WARNING, logger="openclaw_rl.train"):
        loaded = load_checkpoint(path)
    assert torch.equal(loaded["policy"]["w"], WEIGHT) and loaded["update"] == 3 and "format" not in loaded
    np.testing.assert_array_equal(loaded["keys"], np.array([2**64 - 1, 3], dtype=np.uint64))
    assert "carries no checksum" in caplog.text
    flip_a_weight_byte(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="openclaw_rl.train"):
        corrupted = load_checkpoint(path)["policy"]["w"]  # loads silently: why the checksum is needed
    assert not torch.equal(corrupted, WEIGHT) and "carries no checksum" in caplog.text


def test_a_checksummed_file_whose_payload_is_not_a_checkpoint_is_refused(tmp_path):
    torch.save({"format": FORMAT, "sha256": "0" * 64, "payload": torch.ones(3)}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="odd.pt: not a readable openclaw_rl checkpoint"):
        load_checkpoint(tmp_path / "odd.pt")


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path):
    save_checkpoint(tmp_path / "good.pt", {"x": np.zeros(1000)})
    data = (tmp_path / "good.pt").read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 10):
        (tmp_path / "cut.pt").write_bytes(data[:cut])
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


def rl_config(**trainer):
    return RunConfig.from_mapping({
        "env": {"window": 8, "episode_bars": 30, "n_envs": 4, "regime": "bull"}, "eval": {"n_envs": 2},
        "trainer": {"progress": "log", "rollout_steps": 16, "total_steps": 64, **trainer},
        "algo": {"num_minibatches": 2}})


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """A run dir holding a tiny SFT run's checkpoint."""
    root = tmp_path_factory.mktemp("sft")
    env = EnvConfig(window=8, episode_bars=30, n_envs=4, continuous=True, regime="bull")
    generate(strategy_actor(TrendFollowing(fast=3, slow=6)), env, 16, 0, root / "data", "trend_following")
    sft = RunConfig.from_mapping({
        "env": {"window": 8, "episode_bars": 30, "n_envs": 4, "regime": "bull"}, "eval": {"n_envs": 2},
        "trainer": {"stage": "sft", "progress": "log"}, "sft": {"datasets": [str(root / "data")], "updates": 3}})
    run(sft, root / "run")
    assert load_checkpoint(checkpoint_path(root / "run"))["stage"] == "sft"
    return root / "run"


def test_resuming_rl_from_an_sft_checkpoint_says_to_use_init_from(sft_run, tmp_path):
    written = checkpoint_path(sft_run).stat().st_mtime_ns
    with pytest.raises(CheckpointError, match=rf"an SFT checkpoint; .*trainer\.init_from={sft_run}"):
        run(rl_config(resume=str(sft_run)), tmp_path / "rl")
    with pytest.raises(CheckpointError, match=rf"an SFT checkpoint; .*trainer\.init_from={sft_run}"):
        run(rl_config(resume=str(checkpoint_path(sft_run))), tmp_path / "rl")
    with pytest.raises(CheckpointError, match=rf"an SFT checkpoint; .*trainer\.init_from={sft_run}"):
        run(rl_config(resume="auto"), sft_run)
    assert checkpoint_path(sft_run).stat().st_mtime_ns == written  # the SFT checkpoint is untouched
