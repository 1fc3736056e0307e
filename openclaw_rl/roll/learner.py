"""The learner: one update of the policy from a rollout, for any ``algo``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from openclaw_rl.roll.algorithms import compute_targets, policy_loss
from openclaw_rl.roll.config import AlgoConfig, IPAConfig, ResampleConfig
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.rollout import Batch


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or infinite."""


class Learner:
    """With ``resample.teacher`` set the loss is hybrid: ``lambda_rl`` times the RL loss on the
    steps the policy sampled plus ``lambda_il`` times imitation of the replayed teacher steps."""

    def __init__(self, policy: ActorCritic, algo: AlgoConfig, ipa: IPAConfig, seed: int,
                 resample: ResampleConfig = ResampleConfig()):
        self.policy, self.algo, self.ipa, self.resample = policy, algo.with_defaults(), ipa, resample
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=algo.lr, eps=1e-5)
        self.rng = np.random.default_rng(seed)  # minibatch order; its state is checkpointed

    def learning_rate(self, update: int, num_updates: int) -> float:
        """Linear annealing to 0 over the run (a pure function of the update index)."""
        return self.algo.lr * (1.0 - update / num_updates) if self.algo.anneal_lr else self.algo.lr

    def evaluate(self, batch: Batch):
        """Log-probs, entropy and values of the batch's actions under the current policy."""
        head, values, _ = self.policy.forward_sequence(batch.obs, batch.initial_state, batch.starts)
        dist = self.policy.distribution(head)
        return self.policy.log_prob(dist, batch.actions), self.policy.entropy(dist), values

    def update(self, batch: Batch, update: int, num_updates: int) -> dict[str, float]:
        algo, policy = self.algo, self.policy
        lr = self.learning_rate(update, num_updates)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.no_grad():
            logp_old, _, values_old = self.evaluate(batch)
            last_value = policy.value(batch.last_obs, self._last_state(batch), batch.last_starts)
            targets = compute_targets(algo, self.ipa, batch, values_old, last_value)
        n_envs = batch.rewards.shape[1]
        per_minibatch = n_envs // algo.num_minibatches
        stats: dict[str, list[float]] = {}
        stop = False
        hybrid = self.resample.teacher is not None
        for epoch in range(algo.update_epochs):
            # Shuffle env columns once per epoch; minibatches are then contiguous views.
            order = torch.as_tensor(self.rng.permutation(n_envs), device=batch.rewards.device)
            shuffled = batch.columns(order)
            old = {name: x[:, order] for name, x in (("logp", logp_old), ("values", values_old),
                   ("adv", targets.advantages), ("ret", targets.value_targets), ("ids", targets.chunk_ids))}
            for start in range(0, n_envs, per_minibatch):
                cols = slice(start, start + per_minibatch)
                mb = shuffled.columns(cols)
                logp, entropy, values = self.evaluate(mb)
                pg_loss, pg_stats = policy_loss(
                    algo, self.ipa, logp, old["logp"][:, cols], mb.logp, old["adv"][:, cols], old["ids"][:, cols],
                    targets.n_chunks, sampled=(~mb.teacher).to(logp.dtype) if hybrid else None,
                )
                v_loss = self._value_loss(values, old["values"][:, cols], old["ret"][:, cols])
                policy_term = pg_loss
                if hybrid:
                    replayed = mb.teacher.to(logp.dtype)
                    il_loss = -(logp * replayed).sum() / replayed.sum().clamp(min=1.0)
                    policy_term = self.resample.lambda_rl * pg_loss + self.resample.lambda_il * il_loss
                    pg_stats["losses/il_loss"] = il_loss.item()
                loss = policy_term + algo.vf_coef * v_loss - algo.ent_coef * entropy.mean()
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"non-finite loss at update {update}, epoch {epoch}: policy {pg_loss.item()}, "
                        f"value {v_loss.item()}, entropy {entropy.mean().item()}; the last checkpoint is intact"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), algo.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    raise TrainingDiverged(f"non-finite gradient norm at update {update}, epoch {epoch}; "
                                           "the last checkpoint is intact")
                self.optimizer.step()
                with torch.no_grad():
                    log_ratio = logp - old["logp"][:, cols]
                    approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean().item()
                for key, value in {"losses/policy_loss": pg_loss.item(), "losses/value_loss": v_loss.item(),
                                   "losses/entropy": entropy.mean().item(), "losses/approx_kl": approx_kl,
                                   "losses/grad_norm": grad_norm.item(), **pg_stats}.items():
                    stats.setdefault(key, []).append(value)
            if algo.target_kl is not None and np.mean(stats["losses/approx_kl"][-algo.num_minibatches:]) > algo.target_kl:
                stop = True
                break
        out = {key: float(np.mean(values)) for key, values in stats.items()}
        out["losses/grad_norm_max"] = float(np.max(stats["losses/grad_norm"]))
        out["charts/learning_rate"] = lr
        out["losses/early_stop"] = float(stop)
        out["losses/explained_variance"] = explained_variance(values_old, targets.value_targets)
        out.update(targets.stats)
        return out

    def _value_loss(self, values, values_old, value_targets) -> torch.Tensor:
        if not self.algo.clip_vloss:
            return 0.5 * ((values - value_targets) ** 2).mean()
        clipped = values_old + (values - values_old).clamp(-self.algo.clip_coef, self.algo.clip_coef)
        return 0.5 * torch.max((values - value_targets) ** 2, (clipped - value_targets) ** 2).mean()

    def _last_state(self, batch: Batch) -> torch.Tensor:
        """Recurrent state after the rollout's last step (re-run; empty for an MLP)."""
        if self.policy.gru is None:
            return batch.initial_state
        _, _, state = self.policy.forward_sequence(batch.obs, batch.initial_state, batch.starts)
        return state

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]


def explained_variance(prediction: torch.Tensor, target: torch.Tensor) -> float:
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - prediction).var() / var)
