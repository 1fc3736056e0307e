"""Learner: GAE and group statistics by hand, one update per algo, NaN handling, bad config."""

import dataclasses

import pytest
import torch

from openclaw_rl.rock import ConfigError
from openclaw_rl.roll.algorithms import gae, group_mean_std
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.learner import TrainingDiverged
from openclaw_rl.roll.trainer import build

SMALL = {"env": {"n_envs": 8, "window": 8, "episode_bars": 20}, "trainer": {"rollout_steps": 16, "total_steps": 128},
         "algo": {"num_minibatches": 2}, "eval": {"n_envs": 4}}


def small(**sections):
    values = {k: dict(v) for k, v in SMALL.items()}
    for key, value in sections.items():
        values.setdefault(key, {}).update(value) if isinstance(value, dict) else values.update({key: value})
    return RunConfig.from_mapping(values)


class _Steps:
    def __init__(self, rewards, terminated, truncated, final_values):
        self.rewards, self.terminated, self.truncated, self.final_values = rewards, terminated, truncated, final_values


def test_gae_by_hand_with_termination_and_truncation():
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    terminated = torch.tensor([[False], [False], [False]])
    truncated = torch.tensor([[False], [True], [False]])  # time limit after t=1
    final_values = torch.tensor([[0.0], [4.0], [0.0]])
    adv = gae(_Steps(rewards, terminated, truncated, final_values), values, torch.tensor([2.0]), gamma, lam)
    d2 = 3 + gamma * 2.0 - 1.5
    d1 = 2 + gamma * 4.0 - 1.0  # bootstraps from the final observation, does not look past the end
    d0 = 1 + gamma * 1.0 - 0.5
    assert adv[:, 0].tolist() == pytest.approx([d0 + gamma * lam * d1, d1, d2])


def test_group_mean_and_std_per_step():
    x = torch.tensor([[1.0, 3.0, 10.0, 20.0]])
    mean, std = group_mean_std(x, torch.tensor([0, 0, 1, 1]), 2)
    assert mean[0].tolist() == [2.0, 2.0, 15.0, 15.0]
    assert std[0].tolist() == [1.0, 1.0, 5.0, 5.0]


@pytest.mark.parametrize("algo,extra", [
    ("ipa", {}), ("ppo", {}), ("reinforce", {}),
    ("grpo", {"trainer": {"group_size": 2}}),
    ("ipa", {"ipa": {"baseline": "group"}, "trainer": {"group_size": 4}}),
    ("ipa", {"ipa": {"baseline": "value", "chunker": "fixed"}}),
    ("ppo", {"policy": {"recurrent": True}}),
    ("ppo", {"env": {"continuous": True}}),
    ("ipa", {"resample": {"teacher": "momentum"}, "policy": {"recurrent": True}}),
    ("ppo", {"resample": {"teacher": "momentum", "mode": "sequential"}, "env": {"continuous": True}}),
])
def test_one_update_moves_the_policy(algo, extra):
    config = small(algo={"name": algo}, **extra)
    torch.manual_seed(0)
    _, policy, collector, learner = build(config, torch.device("cpu"))
    before = [p.detach().clone() for p in policy.parameters()]
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)
    stats = learner.update(batch, 0, config.num_updates)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in stats.items() if k != "losses/explained_variance")
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert stats["ipa/mean_chunk_length"] >= 1.0


def test_group_members_share_their_market():
    config = small(algo={"name": "grpo"}, trainer={"group_size": 4})
    envs, *_ = build(config, torch.device("cpu"))
    close = envs.engine.close
    assert torch.equal(torch.from_numpy(close[:, 0]), torch.from_numpy(close[:, 3]))
    assert not torch.equal(torch.from_numpy(close[:, 0]), torch.from_numpy(close[:, 4]))


def test_nan_loss_stops_with_a_clear_error():
    config = small()
    _, policy, collector, learner = build(config, torch.device("cpu"))
    batch, _ = collector.collect(config.trainer.rollout_steps, version=0)
    batch.rewards[3, 2] = float("nan")
    with pytest.raises(TrainingDiverged, match="non-finite loss at update 0"):
        learner.update(batch, 0, config.num_updates)


@pytest.mark.parametrize("values,message", [
    ({"algo": {"name": "sac"}}, r"algo\.name: unknown algo 'sac'; allowed: ipa, ppo, grpo, reinforce"),
    ({"ipa": {"chunker": "token"}}, r"ipa\.chunker: unknown chunker 'token'; allowed: trade, fixed, env, step, episode"),
    ({"algo": {"lr": -1e-3}}, r"algo\.lr: must be > 0, got -0\.001"),
    ({"algo": {"num_minibatches": 3}}, r"algo\.num_minibatches: must divide env\.n_envs=8"),
    ({"trainer": {"total_steps": 10}}, r"trainer\.total_steps: must be at least one rollout"),
    ({"algo": {"name": "grpo"}}, r"trainer\.group_size: grpo with a group baseline needs trainer\.group_size >= 2"),
    ({"trainer": {"group_size": 3}}, r"trainer\.group_size: must divide env\.n_envs=8"),
    ({"algo": {"learning_rate": 1.0}}, r"algo\.learning_rate: unknown key"),
])
def test_bad_run_config_names_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        small(**values)


def test_defaults_are_valid():
    assert dataclasses.asdict(RunConfig.from_mapping({}))["algo"]["name"] == "ipa"


def test_divergence_mid_run_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from openclaw_rl.roll import trainer
    from openclaw_rl.roll.checkpoint import load_checkpoint
    from openclaw_rl.roll.learner import Learner

    config = small(trainer={"total_steps": 128 * 6, "checkpoint_every": 1, "progress": "log"})
    real_update = Learner.update

    def update(self, batch, update, num_updates):
        if update == 3:
            batch.rewards[0, 0] = float("inf")
        return real_update(self, batch, update, num_updates)

    monkeypatch.setattr(Learner, "update", update)
    with pytest.raises(TrainingDiverged, match="non-finite loss at update 3"):
        trainer.run_training(config, tmp_path)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["update"] == 3 and state["global_step"] == 3 * 128
