"""The learner: one update of the policy from a rollout, for any ``algo``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from openclaw_rl.roll.algorithms import compute_targets, loss_terms, mismatch_stats
from openclaw_rl.roll.config import AlgoConfig, IPAConfig, ResampleConfig
from openclaw_rl.roll.memory_eval import credit_stats
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.rollout import Batch
from openclaw_rl.errors import TrainingDiverged


class Learner:
    """With ``resample.teacher`` set the loss is hybrid: ``lambda_rl`` times the RL loss on the
    steps the policy sampled plus ``lambda_il`` times imitation of the replayed teacher steps.

    After its gradient steps an update feeds the rollout's observations to the policy's observation
    normalizer: statistics change between rollouts only, so the weights of version ``update`` act and
    score alike. Their steps (``batch.version == update``) take the logged behaviour log-prob as
    ``pi_old``: a synchronous rollout gives ``ipa/mismatch_max == 1`` by construction, on any CPU.
    """

    def __init__(self, policy: ActorCritic, algo: AlgoConfig, ipa: IPAConfig, seed: int,
                 resample: ResampleConfig = ResampleConfig(), compiled: bool = False):
        self.policy, self.algo, self.ipa, self.resample = policy, algo.with_defaults(), ipa, resample
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=algo.lr, eps=1e-5)
        self.rng = np.random.default_rng(seed)  # minibatch order; its state is checkpointed
        # trainer.compile: the minibatches' pass, one shape per run (and per thread count: torch guards on it)
        self.score_minibatch = torch.compile(self.score_actions, dynamic=False) if compiled else self.score_actions

    def learning_rate(self, update: int, num_updates: int) -> float:
        """Linear annealing to 0 over the run (a pure function of the update index)."""
        return self.algo.lr * (1.0 - update / num_updates) if self.algo.anneal_lr else self.algo.lr

    def score_actions(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's actions under the current policy: ``(logp, entropy, values)``, each ``[T, N]``. An
        observational memory reads the contexts the rollout kept (``batch.memory``), as the behaviour policy did."""
        head, values, _ = self.policy.forward_sequence(batch.obs, batch.initial_state, batch.starts, batch.memory)
        dist = self.policy.distribution(head)
        return self.policy.log_prob(dist, batch.actions), self.policy.entropy(dist), values

    def update(self, batch: Batch, update: int, num_updates: int) -> dict[str, float]:
        algo, policy = self.algo, self.policy
        lr = self.learning_rate(update, num_updates)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.no_grad():
            # Steps acted by the weights being updated: pi_old is mu by definition, and their values are
            # the ones logged (as CleanRL's PPO takes them). Taking both from the rollout makes it so exactly
            # (recomputed, they differ by kernels' rounding of other batch shapes) and saves a pass over the
            # batch; steps of older weights (asynchronous workers) are scored again.
            current = batch.version == update
            if current.all():
                logp_old, values_old = batch.logp, batch.values
            else:
                logp_old, _, values_old = self.score_actions(batch)
                logp_old = torch.where(current, batch.logp, logp_old)
                values_old = torch.where(current, batch.values, values_old)
            last_state = batch.last_state
            if policy.memory.recurrent:  # its state after the rollout under these weights
                last_state = policy.forward_sequence(batch.obs, batch.initial_state, batch.starts)[2]
            last_value = policy.value(batch.last_obs, last_state, batch.last_starts)
            targets = compute_targets(algo, self.ipa, batch, values_old, last_value)
        n_envs = batch.rewards.shape[1]
        per_minibatch = n_envs // algo.num_minibatches
        stats: dict[str, list[float]] = {}
        stop = False
        fixed = {"logp": logp_old, "values": values_old, "adv": targets.advantages, "ret": targets.value_targets,
                 "ids": targets.chunk_ids, "positive": targets.positive}
        for epoch in range(algo.update_epochs):
            # Shuffle env columns once per epoch; minibatches are then contiguous views.
            order = torch.as_tensor(self.rng.permutation(n_envs), device=batch.rewards.device)
            shuffled = batch.columns(order)
            old = {name: x[:, order] for name, x in fixed.items()}
            for start in range(0, n_envs, per_minibatch):
                cols = slice(start, start + per_minibatch)
                mb = shuffled.columns(cols)
                new = self.score_minibatch(mb)
                terms, term_stats = loss_terms(algo, self.ipa, self.resample, mb, new,
                                               {name: x[:, cols] for name, x in old.items()}, targets.n_chunks)
                loss = sum(terms.values())
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"non-finite loss at update {update}, epoch {epoch}: "
                        + ", ".join(f"{name} {term.item()}" for name, term in terms.items())
                        + "; the last checkpoint is intact"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm, actor_norm, critic_norm = clip_gradients(policy, algo)
                if not torch.isfinite(grad_norm):
                    raise TrainingDiverged(f"non-finite gradient norm at update {update}, epoch {epoch}; "
                                           "the last checkpoint is intact")
                self.optimizer.step()
                with torch.no_grad():
                    log_ratio = new[0] - old["logp"][:, cols]
                    sampled = (~mb.padding & ~mb.teacher).to(log_ratio.dtype)  # the steps the RL loss learns on
                    approx_kl = (((log_ratio.exp() - 1) - log_ratio) * sampled).sum().item() / max(sampled.sum().item(), 1.0)
                for key, value in {**term_stats, "losses/approx_kl": approx_kl, "losses/grad_norm": grad_norm.item(),
                                   "losses/grad_norm_actor": actor_norm, "losses/grad_norm_critic": critic_norm}.items():
                    stats.setdefault(key, []).append(value)
            if algo.target_kl is not None and np.mean(stats["losses/approx_kl"][-algo.num_minibatches:]) > algo.target_kl:
                stop = True
                break
        if policy.config.normalize_obs:  # the next rollout's statistics (this one acted with fixed ones)
            policy.norm.update(batch.obs[~batch.padding])
        out = {key: float(np.mean(values)) for key, values in stats.items()}
        for key in ("losses/grad_norm", "losses/grad_norm_actor", "losses/grad_norm_critic"):
            out[f"{key}_max"] = float(np.max(stats[key]))
        out["charts/learning_rate"] = lr
        out["losses/early_stop"] = float(stop)
        real = ~batch.padding
        out["losses/explained_variance"] = explained_variance(values_old[real], targets.value_targets[real])
        out.update(targets.stats)
        if policy.memory.state_size:
            out.update(credit_stats(policy, batch, targets.advantages, targets.chunk_ids, targets.n_chunks))
        out.update(mismatch_stats(logp_old, batch, targets.chunk_ids, targets.n_chunks, self.ipa))
        return out

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]


def clip_gradients(policy: ActorCritic, algo: AlgoConfig) -> tuple[torch.Tensor, float, float]:
    """Clip the gradients to ``algo.max_grad_norm`` (``algo.grad_clip``: over all weights, or the critic's and
    the rest's separately). Returns the norms before clipping: over all weights, over the actor's (all but the
    critic's own) and over the critic's, which tell a loss term's spike apart."""
    critic = {id(p) for p in policy.critic_parameters()}
    parts = [[p for p in policy.parameters() if (id(p) in critic) == is_critic] for is_critic in (False, True)]
    if algo.grad_clip == "global":
        actor_norm, critic_norm = (_grad_norm(part) for part in parts)
        total = nn.utils.clip_grad_norm_(policy.parameters(), algo.max_grad_norm)
    else:
        actor_norm, critic_norm = (nn.utils.clip_grad_norm_(part, algo.max_grad_norm) for part in parts)
        total = torch.linalg.vector_norm(torch.stack([actor_norm, critic_norm]))
    return total, float(actor_norm), float(critic_norm)


def _grad_norm(parameters: list[nn.Parameter]) -> torch.Tensor:
    """The 2-norm of the parameters' gradients (0 without any)."""
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def explained_variance(prediction: torch.Tensor, target: torch.Tensor) -> float:
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - prediction).var() / var)
