"""The CUDA path (``trainer.device=cuda``): envs step on the CPU, the policy learns on the GPU. These tests
run only where CUDA exists (never in CI, which has no GPU); ``bench/gpu_sps.py`` measures the path."""

import dataclasses

import numpy as np
import pytest
import torch

from openclaw_rl import load_policy
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import Tanh
from openclaw_rl.roll.trainer import build, run_training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def config(**trainer) -> RunConfig:
    return RunConfig.from_mapping({"env": {"n_envs": 8, "window": 8, "episode_bars": 20},
                                   "algo": {"num_minibatches": 2},
                                   "trainer": {"rollout_steps": 16, "total_steps": 512, "device": "cuda", **trainer},
                                   "eval": {"n_envs": 4}})


def test_a_run_trains_on_the_gpu_and_its_checkpoint_plays_on_the_cpu(tmp_path):
    run = config()
    result = run_training(run, tmp_path / "run")
    assert np.isfinite(result.objective) and len(result.history) == 4
    policy = load_policy(tmp_path / "run")
    assert next(policy.parameters()).device.type == "cpu"
    action, _ = policy.predict(np.zeros((3, run.env.obs_dim), dtype=np.float32), deterministic=True)
    assert action.shape == (3,)


def test_an_update_on_the_gpu_matches_the_cpu_within_float_tolerance():
    """The same batch and weights: one update's new weights on the GPU and on the CPU agree to rounding."""
    run = config()
    torch.manual_seed(0)
    _, cpu_policy, collector, cpu_learner = build(dataclasses.replace(run, trainer=dataclasses.replace(run.trainer, device="cpu")),
                                                  torch.device("cpu"))
    batch, _ = collector.collect(run.trainer.rollout_steps, version=0)
    torch.manual_seed(0)
    _, gpu_policy, _, gpu_learner = build(run, CUDA)
    gpu_policy.load_state_dict(cpu_policy.state_dict())
    gpu_batch = type(batch)(**{f.name: getattr(batch, f.name).to(CUDA) if isinstance(getattr(batch, f.name), torch.Tensor)
                               else getattr(batch, f.name) for f in dataclasses.fields(batch)})
    cpu_stats, gpu_stats = cpu_learner.update(batch, 0, 4), gpu_learner.update(gpu_batch, 0, 4)
    for (name, a), b in zip(cpu_policy.state_dict().items(), gpu_policy.state_dict().values()):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-5, msg=name)
    assert cpu_stats["losses/approx_kl"] == pytest.approx(gpu_stats["losses/approx_kl"], rel=1e-3, abs=1e-7)


def test_the_tanh_activation_on_the_gpu():
    x = torch.linspace(-20, 20, 100_001, device=CUDA, requires_grad=True)
    ours, theirs = Tanh()(x), torch.tanh(x)
    assert (ours - theirs).abs().max().item() < 3e-7
    grad = torch.ones_like(x)
    torch.testing.assert_close(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(theirs, x, grad)[0],
                               rtol=0, atol=2e-6)
