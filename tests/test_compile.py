"""``trainer.compile``: the learner's minibatch pass through torch.compile gives the eager update's
weights (within float tolerance: other kernels), and refuses the design it cannot compile well."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from openclaw_rl.rock import ConfigError
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.trainer import build


@pytest.fixture(autouse=True)
def inductor_cache_per_kernel_set(monkeypatch):
    """Inductor's cache of one ``ATEN_CPU_CAPABILITY`` (its cache key omits it: code generated with vector
    intrinsics, reused under ``default``, does not compile), kept between runs."""
    capability = os.environ.get("ATEN_CPU_CAPABILITY", "native")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"openclaw-inductor-{capability}"))


def small(continuous: bool, **trainer) -> RunConfig:
    return RunConfig.from_mapping({"env": {"n_envs": 8, "window": 8, "episode_bars": 32, "continuous": continuous},
                                   "algo": {"name": "ipa", "update_epochs": 2, "num_minibatches": 2},
                                   "policy": {"hidden": [16, 16]},
                                   "trainer": {"rollout_steps": 16, "total_steps": 256, **trainer}})


@pytest.mark.parametrize("continuous", [False, True])
def test_a_compiled_update_moves_the_weights_as_the_eager_one(continuous):
    torch.manual_seed(0)
    _, policy, collector, compiled = build(small(continuous, compile=True), torch.device("cpu"))
    eager_policy = copy.deepcopy(policy)
    _, _, _, eager = build(small(continuous), torch.device("cpu"))
    eager.policy.load_state_dict(eager_policy.state_dict())
    batch, _ = collector.collect(16, version=0)
    graphs = counters["stats"]["unique_graphs"]
    stats = {name: learner.update(batch, 0, 1) for name, learner in (("compiled", compiled), ("eager", eager))}
    assert counters["stats"]["unique_graphs"] > graphs  # compiled, not run eagerly
    moved = 0.0
    for (name, p), q, before in zip(policy.named_parameters(), eager.policy.parameters(), eager_policy.parameters()):
        assert torch.allclose(p, q, atol=2e-6, rtol=1e-4), name
        moved = max(moved, (q - before).abs().max().item())
    assert moved > 1e-4  # the update did something to compare
    for key in ("losses/policy_loss", "losses/value_loss", "losses/entropy"):
        assert stats["compiled"][key] == pytest.approx(stats["eager"][key], rel=1e-4, abs=1e-6)


def test_compile_refuses_a_recurrent_memory_before_any_work():
    with pytest.raises(ConfigError, match=r"trainer.compile: a recurrent memory \(policy/memory=gru\)"):
        RunConfig.from_mapping({"trainer": {"compile": True}, "policy": {"memory": {"name": "gru"}}})
