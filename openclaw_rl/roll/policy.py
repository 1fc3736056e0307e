"""Torch actor-critic policies: a memory design (``openclaw_rl.memory``) in front of MLP trunks,
a discrete or Gaussian head, and an observation normalizer whose statistics travel with the checkpoint."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from openclaw_rl.memory import Memory, MemoryConfig, build_memory
from openclaw_rl.rock.config import EnvConfig


@contextmanager
def torch_threads(n: int):
    """``torch.set_num_threads(n)`` inside the block; the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class PolicyConfig:
    hidden: tuple[int, ...] = (64, 64)  # widths of the MLP trunk's layers
    activation: str = "tanh"  # tanh | relu
    shared_trunk: bool = False  # one trunk for actor and critic, or two
    memory: MemoryConfig = field(default_factory=MemoryConfig)  # policy/memory=none|window|trace|gru|paom; its read feeds both trunks
    init_log_std: float = -0.5  # continuous actions: state-independent log std
    normalize_obs: bool = True  # running mean/std of observations, saved with the weights

    def __post_init__(self):
        if isinstance(self.hidden, list):
            self.hidden = tuple(self.hidden)


def sigmoid_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1, making one new tensor (as torch.tanh does)."""
    return (2 * x).sigmoid_().mul_(2).sub_(1)


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2 sigmoid(2x) - 1, with tanh's own backward ``g (1 - y^2)`` from the output."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = sigmoid_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Module):
    """The tanh activation computed as ``2 sigmoid(2x) - 1`` (within 2e-7 of ``torch.tanh`` in float32).

    On CPU torch's tanh kernel is not vectorized (1.05 ms for 8192 x 64 floats on one AVX-512 core,
    sigmoid 0.10 ms), so it was the largest cost of an update of the 64x64 MLPs; a trunk's forward,
    backward and Adam step take 4.7 ms instead of 8.5 (bench/activation.py). Without a gradient
    (acting, export) it is the plain formula, which every exporter knows.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            return _SigmoidTanh.apply(x)
        return sigmoid_tanh(x)


ACTIVATIONS = {"tanh": Tanh, "relu": nn.ReLU}


def layer(n_in: int, n_out: int, gain: float) -> nn.Linear:
    """A linear layer with orthogonal weights and zero bias (the PPO implementation detail)."""
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, gain)
    nn.init.zeros_(linear.bias)
    return linear


def mlp(n_in: int, hidden: tuple[int, ...], activation: str) -> tuple[nn.Sequential, int]:
    layers, width = [], n_in
    for size in hidden:
        layers += [layer(width, size, np.sqrt(2)), ACTIVATIONS[activation]()]
        width = size
    return nn.Sequential(*layers), width


class RunningNorm(nn.Module):
    """Running mean/variance of observations (parallel-variance update), clipped to +-10 std.

    Part of the policy: statistics change only between rollouts (``Learner.update`` feeds it each
    rollout's observations after its gradient steps), so the policy that acts in a rollout is the one
    the learner scores it with (``mu == pi_old``).
    """

    def __init__(self, dim: int, clip: float = 10.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).to(torch.float64)
        if x.shape[0] == 0:
            return
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + 1e-8)
        return z.clamp(-self.clip, self.clip)


class ActorCritic(nn.Module):
    """pi(a|s) and V(s) over ``[observation, memory read]``. ``forward_sequence`` runs ``[T, N, obs]``
    with the memory reset per env where an episode starts."""

    def __init__(self, obs_dim: int, action_dim: int, continuous: bool, config: PolicyConfig, memory=None):
        super().__init__()
        self.config, self.continuous, self.action_dim = config, continuous, action_dim
        self.norm = RunningNorm(obs_dim) if config.normalize_obs else nn.Identity()
        if memory is None and config.memory.name != "none":
            raise ValueError(f"policy.memory.name={config.memory.name}: build the policy with ActorCritic.for_env")
        self.memory = memory if memory is not None else Memory()
        n_in = obs_dim + self.memory.read_size
        self.actor_trunk, width = mlp(n_in, config.hidden, config.activation)
        self.critic_trunk = None if config.shared_trunk else mlp(n_in, config.hidden, config.activation)[0]
        self.actor_head = layer(width, action_dim, 0.01)
        self.critic_head = layer(width, 1, 1.0)
        self.log_std = nn.Parameter(torch.full((action_dim,), config.init_log_std)) if continuous else None

    def critic_parameters(self) -> list[nn.Parameter]:
        """The weights only the value head reads (a shared trunk and the memory count as the actor's)."""
        return [*(self.critic_trunk.parameters() if self.critic_trunk is not None else ()), *self.critic_head.parameters()]

    @classmethod
    def for_env(cls, env: EnvConfig, config: PolicyConfig) -> "ActorCritic":
        """A policy whose input, memory and heads fit ``env``'s observations and actions. Built on one
        thread: the orthogonal init's QR depends on the thread count, and the weights must depend on the
        seed alone (the same run on a 2-core and a 16-core machine)."""
        with torch_threads(1):
            return cls(env.obs_dim, env.action_dim, env.continuous, config, build_memory(config.memory, env))

    def initial_state(self, n: int, device=None) -> torch.Tensor:
        """The memory state ``[1, n, state_size]`` of ``n`` fresh episodes (empty without a memory)."""
        return torch.zeros(1, n, self.memory.state_size, device=device)

    def memory_context(self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor):
        """An observational memory's per-step context and its state after the last step (no gradient,
        no weights): ``(context, state)``; ``(None, None)`` for a recurrent memory."""
        if self.memory.recurrent:
            return None, None
        context, last = self.memory.write(obs, starts, state[0], self.norm)
        return context, last[None]

    def forward_sequence(self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor,
                         context: torch.Tensor | None = None):
        """``obs [T, N, d]``, ``starts [T, N]`` (1 where an episode begins) -> logits/means, values, state.
        ``context``: the memory's precomputed context (``memory_context``); the state returned is then ``state``."""
        x = self.norm(obs)
        if self.memory.recurrent:
            read, last = self.memory.recur(x, starts, state[0])
            state = last[None]
        else:
            if context is None:
                context, state = self.memory_context(obs, state, starts)
            read = self.memory.read(x, context)
        features = torch.cat([x, read], -1) if read.shape[-1] else x
        actor = self.actor_trunk(features)
        critic = actor if self.critic_trunk is None else self.critic_trunk(features)
        return self.actor_head(actor), self.critic_head(critic).squeeze(-1), state

    def distribution(self, head: torch.Tensor):
        # Argument validation costs more than the tiny networks here; inputs are ours.
        if self.continuous:
            return Normal(head, self.log_std.exp().expand_as(head), validate_args=False)
        return Categorical(logits=head, validate_args=False)

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        return dist.log_prob(actions).sum(-1) if self.continuous else dist.log_prob(actions)

    def entropy(self, dist) -> torch.Tensor:
        return dist.entropy().sum(-1) if self.continuous else dist.entropy()

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor, deterministic: bool = False,
            given: tuple[torch.Tensor, torch.Tensor] | None = None, context: torch.Tensor | None = None):
        """One step for ``N`` envs: action, its log-prob, the value, the next memory state.

        ``given = (mask [N], actions)`` takes those actions where ``mask`` (e.g. a teacher's) and
        scores them: the log-prob is always that of the action returned. ``context [N, K]``: the memory's
        context for this step, computed by the caller (``memory_context``; the state returned is then ``state``).
        """
        context = None if context is None else context[None]
        head, value, state = self.forward_sequence(obs[None], state, starts[None], context)
        dist = self.distribution(head[0])
        if deterministic:
            action = head[0] if self.continuous else head[0].argmax(-1)
        else:
            action = dist.sample()
        if given is not None:
            mask, actions = given
            action = torch.where(mask.view(-1, *([1] * (action.dim() - 1))), actions.to(action.dtype), action)
        return action, self.log_prob(dist, action), value[0], state

    @torch.inference_mode()
    def value(self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return self.forward_sequence(obs[None], state, starts[None])[1][0]

    def predict(self, obs, state: torch.Tensor | None = None, episode_start=None,
                deterministic: bool = False) -> tuple[np.ndarray, torch.Tensor | None]:
        """Stable-Baselines3's ``predict``: ``(actions, state)`` for one observation ``[obs_dim]`` or a batch
        ``[N, obs_dim]`` (numpy or torch). Discrete envs get action indices, continuous ones target
        positions ``[N, 1]``. A policy with a memory carries ``state`` between calls (None: fresh episodes);
        ``episode_start`` (``[N]`` bools) resets it where an episode begins."""
        param = next(self.parameters())
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=param.device)
        single = x.dim() == 1
        x = x.reshape(-1, x.shape[-1])
        n = x.shape[0]
        starts = torch.zeros(n, device=param.device) if episode_start is None else \
            torch.as_tensor(np.asarray(episode_start, dtype=np.float32).reshape(n), device=param.device)
        state = self.initial_state(n, param.device) if state is None else state
        was_training = self.training
        self.eval()
        action, _, _, state = self.act(x, state, starts, deterministic)
        self.train(was_training)
        action = action.cpu().numpy()
        return (action[0] if single else action), (state if self.memory.state_size else None)

