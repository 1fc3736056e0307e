"""Policy memory designs: what a policy remembers beyond its observation, batched over all envs.

A memory sits in front of the policy's trunks: at step t it gives a read ``m_t`` that the trunks
see beside the normalized observation ``x_t``. Its state is one float tensor ``[N, state_size]``
per env (the policy carries it as ``[1, N, state_size]``; the collector checkpoints it), zeroed
where an episode starts.

Two kinds:

- **Observational** (``none``, ``window``, ``trace``, ``paom``): the state is data, a function of the raw
  observations alone, never of the weights. ``write`` scans the observations without gradient and
  returns, for every step, the context the read needs (normalized with the policy's observation
  statistics, which change only between rollouts); the learned ``read`` is then one vectorized pass
  over all steps. The collector keeps each step's context in the batch and the learner reads the
  same ones: no stale hidden state, no second scan, and ``pi_old`` equals the behaviour policy ``mu``.
- **Recurrent** (``gru``): a learned hidden vector; ``recur`` runs it step by step with gradient.

PAOM (``paom``): an *observer* summarizes each interaction chunk (order to order, by the learner's
chunk function ``ipa.chunks.chunk_boundaries``) into a record of sufficient statistics of the
features it sees (count, mean, mean square: records merge exactly), and keeps the chunk still open
as a working record (the freshest bars, which a long-held position would otherwise hide until its
next order); a *reflector* makes room
when the memory is full (merge the two most similar records, merge the two oldest, or evict the
oldest); the policy reads the records' learned linear encodings (``record_size`` wide) by
attention with a query from the current observation (``heads`` heads), by their count-weighted
mean, or both (``read``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from openclaw_rl.errors import ConfigError
from openclaw_rl.ipa.chunks import CHUNKERS, chunk_boundaries
from openclaw_rl.rock.config import FEATURES, EnvConfig

DESIGNS = ("none", "window", "trace", "gru", "paom")
OBSERVERS = {"bars": ("return", "volatility", "range"), "all": FEATURES}  # the features a PAOM record summarizes
REFLECTORS = ("merge_similar", "merge_oldest", "evict_oldest")
READS = ("attention", "pooled", "both")  # PAOM: attention by the current observation, the count-weighted mean, or both
MAX_HALF_LIFE = 1e5  # trace: steps
# The MemoryConfig keys each design reads (the others do not change it).
DESIGN_KEYS = {"none": (), "window": ("frames",), "trace": ("half_life", "traces"), "gru": ("hidden",),
               "paom": ("capacity", "record_size", "observer", "reflector", "heads", "read", "chunker", "fixed_k")}


@dataclass
class MemoryConfig:
    """``policy/memory=none|window|trace|gru|paom`` picks ``name``; a design reads only its own keys."""

    name: str = "none"
    frames: int = 4  # window: observations stacked, the current one included
    half_life: float = 64.0  # trace: the longest trace's half-life, in steps
    traces: int = 3  # trace: traces per feature, half-lives half_life, half_life / 4, half_life / 16, ...
    hidden: int = 64  # gru: hidden units
    capacity: int = 16  # paom: records kept
    record_size: int = 16  # paom: width of a record's learned encoding, which the read attends over
    observer: str = "bars"  # paom: what a record summarizes: bars (return, volatility, range) | all (+ position, pnl, time left)
    reflector: str = "merge_similar"  # paom, when full: merge_similar | merge_oldest | evict_oldest
    heads: int = 1  # paom: attention heads of the read (must divide record_size)
    read: str = "attention"  # paom: attention (query from the observation) | pooled (count-weighted mean of the records) | both
    chunker: str | None = None  # paom: where a chunk ends (a record is written); null: the learner's ipa.chunker
    fixed_k: int | None = None  # paom with chunker=fixed; null: ipa.fixed_k

    def validate(self) -> None:
        def need(ok: bool, key: str, message: str):
            if not ok:
                raise ConfigError(f"policy.memory.{key}: {message}")

        need(self.name in DESIGNS, "name", f"unknown memory design {self.name!r}; allowed: {', '.join(DESIGNS)}")
        need(self.frames >= 1, "frames", f"must be >= 1, got {self.frames}")
        need(0 < self.half_life <= MAX_HALF_LIFE, "half_life", f"must be > 0 and at most {MAX_HALF_LIFE:g} steps "
             f"(a float32 decay rounds to 1 beyond; any episode's running mean is shorter), got {self.half_life}")
        need(self.traces >= 1, "traces", f"must be >= 1, got {self.traces}")
        need(self.hidden >= 1, "hidden", f"must be >= 1, got {self.hidden}")
        need(self.capacity >= 1, "capacity", f"must be >= 1, got {self.capacity}")
        need(self.record_size >= 1, "record_size", f"must be >= 1, got {self.record_size}")
        need(self.observer in OBSERVERS, "observer", f"unknown observer {self.observer!r}; allowed: {', '.join(OBSERVERS)}")
        need(self.reflector in REFLECTORS, "reflector",
             f"unknown reflector {self.reflector!r}; allowed: {', '.join(REFLECTORS)}")
        need(self.heads >= 1 and self.record_size % self.heads == 0, "heads",
             f"must be >= 1 and divide policy.memory.record_size={self.record_size}, got {self.heads}")
        need(self.read in READS, "read", f"unknown read {self.read!r}; allowed: {', '.join(READS)}")
        need(self.chunker is None or self.chunker in CHUNKERS, "chunker",
             f"unknown chunker {self.chunker!r}; allowed: null (ipa.chunker), {', '.join(CHUNKERS)}")
        need(self.fixed_k is None or self.fixed_k >= 1, "fixed_k", f"must be >= 1 or null, got {self.fixed_k}")


def unread_keys(name: str) -> set[str]:
    """The ``policy.memory.*`` keys design ``name`` does not read: two configs that differ only there
    train the same run (an unknown design reads them all, so that its error is not hidden)."""
    if name not in DESIGN_KEYS:
        return set()
    return {f"policy.memory.{f.name}" for f in dataclasses.fields(MemoryConfig)
            if f.name != "name" and f.name not in DESIGN_KEYS[name]}


def read_settings(memory: dict) -> dict:
    """A memory config (``policy.memory`` as a dict) cut to what its design reads: its name and its own
    keys (an unknown design keeps them all)."""
    name = memory.get("name", "none")
    return {k: v for k, v in memory.items() if f"policy.memory.{k}" not in unread_keys(name)}


class Memory(nn.Module):
    """The ``none`` design, and the interface of every design."""

    recurrent = False
    state_size = 0  # floats per env carried from step to step
    read_size = 0  # features the read adds to the trunks' input

    def write(self, obs: torch.Tensor, starts: torch.Tensor, state: torch.Tensor, norm: nn.Module):
        """Observational designs: ``obs [T, N, D]`` (raw), ``starts [T, N]``, ``state [N, S]``, the policy's
        normalizer -> ``(context [T, N, K], state)``: what the read needs at each step, the state after the last."""
        return obs.new_zeros(*obs.shape[:2], 0), state

    def read(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``x [T, N, D]`` (normalized), ``context [T, N, K]`` -> ``[T, N, read_size]``: here the context
        itself (``none``, ``window`` and ``trace`` write what they read; PAOM learns its read)."""
        return context

    def recur(self, x: torch.Tensor, starts: torch.Tensor, state: torch.Tensor):
        """Recurrent designs: ``(reads [T, N, read_size], state)``."""
        raise NotImplementedError

    def floats_kept(self, state: torch.Tensor) -> torch.Tensor:
        """``[N]``: the floats the memory holds about the past (its compression ratio's denominator)."""
        return state.new_zeros(state.shape[0])

    def probe_features(self, state: torch.Tensor) -> torch.Tensor:
        """``[N, S]``: the state as a linear probe reads it (in a fixed layout)."""
        return state


class WindowMemory(Memory):
    """Frame stacking: the read is the last ``frames - 1`` observations before the current one
    (normalized; zero before the episode's start). State: those raw observations and their count."""

    def __init__(self, obs_dim: int, frames: int):
        super().__init__()
        self.dim, self.past = obs_dim, frames - 1
        self.state_size = self.past * obs_dim + 1
        self.read_size = self.past * obs_dim

    @torch.no_grad()
    def write(self, obs, starts, state, norm):
        T, N, D = obs.shape
        k = self.past
        if k == 0:
            return obs.new_zeros(T, N, 0), state
        frames = state[:, : k * D].reshape(N, k, D).transpose(0, 1)  # [k, N, D], oldest first
        history = torch.cat([frames, obs])  # [k + T, N, D]
        t = torch.arange(T, device=obs.device)
        last_start = torch.where(starts > 0, t[:, None], -1).cummax(0).values  # [T, N]
        since = torch.where(last_start >= 0, t[:, None] - last_start, state[:, -1].long()[None] + t[:, None])
        back = torch.arange(1, k + 1, device=obs.device)  # 1: the previous step
        stacked = history[k + t[:, None] - back[None, :]]  # [T, k, N, D]
        valid = (since[:, None, :] >= back[None, :, None]).to(obs.dtype)  # [T, k, N]
        context = (norm(stacked) * valid[..., None]).permute(0, 2, 1, 3).reshape(T, N, k * D)
        count = (since[-1] + 1).clamp(max=k).to(state.dtype)
        new_state = torch.cat([history[-k:].transpose(0, 1).reshape(N, k * D), count[:, None]], -1)
        return context, new_state

    def floats_kept(self, state):
        return state[:, -1] * self.dim


class TraceMemory(Memory):
    """Exponential traces: per feature, the episode's exponentially weighted mean of the observations
    (the current one included) at ``traces`` half-lives. The read is each trace as a z-statistic:
    normalized, times the square root of its effective sample size ``(sum w)^2 / sum w^2``, so that a
    trace of i.i.d. noise has unit variance at any half-life and a drift shows as evidence that grows
    with the steps seen (a mean alone, shrinking with the half-life, would hide it). State: the traces
    and the episode's step count."""

    def __init__(self, obs_dim: int, half_life: float, traces: int):
        super().__init__()
        half_lives = half_life / 4.0 ** torch.arange(traces, dtype=torch.float64)
        self.register_buffer("decay", (0.5 ** (1.0 / half_lives)).float(), persistent=False)  # [H]
        self.dim, self.traces = obs_dim, traces
        self.state_size = traces * obs_dim + 1
        self.read_size = traces * obs_dim

    @torch.no_grad()
    def write(self, obs, starts, state, norm):
        T, N, D = obs.shape
        a = self.decay.to(obs.device)[None, :, None]  # [1, H, 1]
        traces = state[:, :-1].reshape(N, self.traces, D).clone()
        count = state[:, -1].clone()
        context = obs.new_empty(T, N, self.traces, D)
        clip = getattr(norm, "clip", math.inf)
        for t in range(T):  # a recurrence over steps, vectorized over envs, traces and features
            count = torch.where(starts[t] > 0, 0.0, count) + 1.0
            an = a ** count[:, None, None]
            # The newest step's weight, bias-corrected: 1 at an episode's first step, which forgets the last episode.
            weight = (1.0 - a) / (1.0 - an)
            traces = traces + weight * (obs[t, :, None, :] - traces)
            # The read: normalized, times sqrt of the effective sample size after n steps,
            # (1 - a^n)(1 + a) / ((1 - a)(1 + a^n)), clipped as the normalizer clips observations.
            effective = (1.0 - an) * (1.0 + a) / ((1.0 - a) * (1.0 + an))
            context[t] = (norm(traces) * effective.sqrt()).clamp(-clip, clip)
        return context.reshape(T, N, self.traces * D), torch.cat([traces.reshape(N, -1), count[:, None]], -1)

    def floats_kept(self, state):
        return torch.full((state.shape[0],), float(self.traces * self.dim), device=state.device)


class GRUMemory(Memory):
    """A GRU over the normalized observations; its hidden state is the read."""

    recurrent = True

    def __init__(self, obs_dim: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(obs_dim, hidden)
        for name, param in self.gru.named_parameters():
            (nn.init.orthogonal_ if "weight" in name else nn.init.zeros_)(param)
        self.state_size = self.read_size = hidden

    def recur(self, x, starts, state):
        h, outputs = state[None], []
        for t in range(x.shape[0]):  # reset the hidden state where an episode starts
            h = h * (1.0 - starts[t]).view(1, -1, 1)
            out, h = self.gru(x[t : t + 1], h)
            outputs.append(out)
        return torch.cat(outputs), h[0]

    def floats_kept(self, state):
        return torch.full((state.shape[0],), float(self.state_size), device=state.device)


class PAOMemory(Memory):
    """Observer, reflector and attention read over chunk records (see the module docstring).

    A record holds, for the ``F`` features its observer sees: their mean and mean square over the
    chunk's steps, the chunk's step count and its order (chunks written before it in the episode).
    State: ``capacity`` records, then the open chunk's sums, the last position seen, the episode's
    step and the chunks written so far.
    """

    def __init__(self, config: MemoryConfig, env: EnvConfig, chunker: str, fixed_k: int):
        super().__init__()
        self.features = [env.feature(name) for name in OBSERVERS[config.observer]]
        self.register_buffer("feature_columns", torch.tensor(self.features), persistent=False)
        self.position = env.feature("position")
        self.chunker, self.fixed_k, self.reflector = chunker, fixed_k, config.reflector
        self.capacity, self.heads, self.reads = config.capacity, config.heads, config.read
        F = len(self.features)
        self.record_floats = 2 * F + 2  # mean, mean square, count, order
        self.state_size = self.capacity * self.record_floats + 2 * F + 4
        self.read_size = config.record_size * (2 if config.read == "both" else 1)
        self.encoder = nn.Linear(2 * F + 2, config.record_size)  # a record's statistics -> its encoding
        self.query = nn.Linear(env.obs_dim, config.record_size) if config.read != "pooled" else None

    # ----------------------------------------------------------------- write (no gradient)
    def write(self, obs, starts, state, norm):
        seen, last = self._scan(obs, starts, state)
        context = torch.from_numpy(self._describe(seen, norm)).to(obs.device)
        return context, torch.from_numpy(last).to(state.device, state.dtype)

    def scan(self, obs, starts, state):
        """The observer and reflector over ``T`` steps: ``(records [T, N, (C + 1) * record_floats + 1], state)``:
        at each step (after its write) the ``C`` records, the open chunk's working record (its order is the
        count of chunks written) and the count of chunks written, raw."""
        seen, last = self._scan(obs, starts, state)
        return torch.from_numpy(seen).to(obs.device), torch.from_numpy(last).to(state.device, state.dtype)

    def _scan(self, obs, starts, state) -> tuple[np.ndarray, np.ndarray]:
        """``scan`` in numpy on the CPU: a write is a few dozen operations on small arrays per step, for
        which numpy's per-call cost is a fraction of torch's (the observations come from numpy anyway)."""
        T, N, _ = obs.shape
        C, F = self.capacity, len(self.features)
        observed = obs.detach().cpu().numpy()
        positions, features = observed[..., self.position], observed[..., self.features]
        begins = starts.detach().cpu().numpy() > 0
        full_state = state.detach().cpu().numpy().astype(np.float32)  # a copy; the views below write into it
        records = full_state[:, : C * self.record_floats].reshape(N, C, self.record_floats)
        rest = full_state[:, C * self.record_floats :]
        acc_sum, acc_sq = rest[:, :F], rest[:, F : 2 * F]
        acc_n, last_pos, step, written = (rest[:, 2 * F + k] for k in range(4))
        seen = np.empty((T, N, (C + 1) * self.record_floats + 1), dtype=np.float32)
        for t in range(T):
            start = begins[t]
            if start.any():  # a new episode: forget the last one
                records[start] = 0.0
                rest[start] = 0.0
            # Did the previous step end a chunk? The learner's chunk function, on what the observations show.
            position = positions[t]
            ended = chunk_boundaries(self.chunker, positions=position, prev_positions=last_pos,
                                     env_chunk_end=position != last_pos, step_in_episode=step - 1,
                                     fixed_k=self.fixed_k) & ~start & (acc_n > 0)
            rows = np.flatnonzero(ended)
            if rows.size:
                n = acc_n[rows, None]
                new = np.concatenate([acc_sum[rows] / n, acc_sq[rows] / n, n, written[rows, None]], 1)
                records[rows] = self._commit(records[rows], new)
                written[rows] += 1
                acc_sum[rows] = acc_sq[rows] = 0.0
                acc_n[rows] = 0.0
            acc_sum += features[t]
            acc_sq += features[t] ** 2
            acc_n += 1
            last_pos[:] = positions[t]
            step += 1
            seen[t, :, : C * self.record_floats] = records.reshape(N, -1)
            seen[t, :, C * self.record_floats :] = np.concatenate(
                [acc_sum / acc_n[:, None], acc_sq / acc_n[:, None], acc_n[:, None], written[:, None], written[:, None]], 1)
        return seen, full_state

    def _commit(self, records: np.ndarray, new: np.ndarray) -> np.ndarray:
        """``records [M, C, R]`` with record ``new [M, R]`` written: into the first empty slot, or into
        the one the reflector frees where the memory is full."""
        valid = records[..., -2] > 0
        slot = (~valid).argmax(1)
        full = np.flatnonzero(valid.all(1))
        if full.size:
            records[full], slot[full] = self._reflect(records[full])
        records[np.arange(len(records)), slot] = new
        return records

    def _reflect(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full memories ``[M, C, R]`` after the reflector's rule, and the slot it freed in each."""
        M, C, _ = records.shape
        order, rows = records[..., -1], np.arange(M)
        if self.reflector == "evict_oldest" or C == 1:
            return records, order.argmin(1)
        if self.reflector == "merge_oldest":
            i, j = np.argsort(order, axis=1, kind="stable")[:, :2].T
        else:  # merge_similar: the closest pair by the records' means and standard deviations
            F = len(self.features)
            mean, square = records[..., :F], records[..., F : 2 * F]
            summary = np.concatenate([mean, np.sqrt(np.maximum(square - mean * mean, 0.0))], -1)
            norms = (summary * summary).sum(-1)
            distance = norms[:, :, None] + norms[:, None, :] - 2.0 * summary @ summary.transpose(0, 2, 1)  # squared
            distance[:, np.arange(C), np.arange(C)] = np.inf
            i, j = np.divmod(distance.reshape(M, -1).argmin(1), C)
        records[rows, i] = merge_records(records[rows, i], records[rows, j])
        return records, j

    def _describe(self, seen: np.ndarray, norm: nn.Module) -> np.ndarray:
        """Each step's records and working record as the read's input ``[T, N, (C + 1) * (2F + 2)]``: per
        record its features' normalized mean and std, log(1 + count) (0: an empty slot) and log(1 + age),
        the age in chunks ended since (0 for the open chunk)."""
        T, N, _ = seen.shape
        F = len(self.features)
        records = seen[..., :-1].reshape(T, N, self.capacity + 1, self.record_floats)
        written = seen[..., -1:, None]
        mean, square, count, order = records[..., :F], records[..., F : 2 * F], records[..., -2:-1], records[..., -1:]
        center, scale = (x.cpu().numpy() for x in feature_scale(norm, self.feature_columns))
        std = np.sqrt(np.maximum(square - mean * mean, 0.0))
        age = np.maximum(written - order, 0.0)
        described = np.concatenate([(mean - center) / scale, std / scale, np.log1p(count), np.log1p(age)], -1)
        return described.reshape(T, N, -1).astype(np.float32, copy=False)

    # ----------------------------------------------------------------- read (learned)
    def read(self, x, context):
        """Attention over the records' linear encodings ``e_c = W d_c + b`` and/or their count-weighted
        mean, computed without forming the encodings: a read ``sum_c w_c e_c`` (weights summing to 1,
        or 0 for an empty memory) is ``W (sum_c w_c d_c) + b sum_c w_c``, and attention's scores
        ``q . e_c`` are ``(W^T q) . d_c`` (``q . b`` is the same for every record and cancels in the softmax)."""
        T, N, _ = x.shape
        H = self.heads
        stats = context.reshape(T, N, self.capacity + 1, -1)  # [T, N, C + 1, E]: the records, the open chunk
        log_count = stats[..., 2 * len(self.features)]
        valid = log_count > 0  # an empty slot has count 0
        weight, bias = self.encoder.weight, self.encoder.bias
        reads = []
        if self.reads != "pooled":
            heads = weight.reshape(H, -1, stats.shape[-1])  # [H, head width, E]
            keys = torch.einsum("tnhd,hde->tnhe", self.query(x).reshape(T, N, H, -1), heads)  # W^T q per head
            scores = torch.einsum("tnce,tnhe->tnch", stats, keys) / math.sqrt(heads.shape[1])
            weights = torch.softmax(scores.masked_fill(~valid[..., None], -1e9), dim=2) * valid[..., None]
            pooled = torch.einsum("tnch,tnce->tnhe", weights, stats)
            read = torch.einsum("tnhe,hde->tnhd", pooled, heads) + bias.reshape(H, -1) * weights.sum(2)[..., None]
            reads.append(read.reshape(T, N, -1))
        if self.reads != "attention":
            count = torch.expm1(log_count)
            weights = count / count.sum(2, keepdim=True).clamp(min=1.0)
            reads.append(torch.einsum("tnc,tnce->tne", weights, stats) @ weight.T + bias * weights.sum(2, keepdim=True))
        return torch.cat(reads, -1) if len(reads) > 1 else reads[0]

    def floats_kept(self, state):
        split = self.capacity * self.record_floats
        records = state[:, :split].reshape(-1, self.capacity, self.record_floats)
        open_chunk = state[:, split + 2 * len(self.features)] > 0  # its sums and count
        return ((records[..., -2] > 0).sum(1) + open_chunk).to(state.dtype) * self.record_floats

    def probe_features(self, state):
        """The records newest first (a slot's place depends on the reflector's history), then the rest."""
        split = self.capacity * self.record_floats
        records = state[:, :split].reshape(-1, self.capacity, self.record_floats)
        recency = torch.where(records[..., -2] > 0, records[..., -1], -1.0)  # empty slots last
        order = torch.argsort(recency, dim=1, descending=True, stable=True)
        newest_first = records.gather(1, order[..., None].expand_as(records))
        return torch.cat([newest_first.reshape(len(state), -1), state[:, split:]], 1)


def merge_records(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two records as one: count-weighted mean and mean square (exact: the union's statistics),
    counts summed, the newer order."""
    na, nb = a[..., -2:-1], b[..., -2:-1]
    n = na + nb
    stats = (a[..., :-2] * na + b[..., :-2] * nb) / np.maximum(n, 1.0)
    return np.concatenate([stats, n, np.maximum(a[..., -1:], b[..., -1:])], -1)


def feature_scale(norm: nn.Module, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy normalizer's mean and std of observation ``columns`` (0 and 1 without a normalizer), float32."""
    if not hasattr(norm, "var"):
        return torch.zeros(len(columns)), torch.ones(len(columns))
    return norm.mean.index_select(0, columns).float(), torch.sqrt(norm.var.index_select(0, columns) + 1e-8).float()


def build_memory(config: MemoryConfig, env: EnvConfig) -> Memory:
    """The design ``config.name`` for ``env``'s observations. A run sets PAOM's null ``chunker`` and
    ``fixed_k`` to its ``ipa.*`` (``RunConfig``); alone they default to the ``trade`` chunker. The
    market env's ``env`` chunker is its orders, which the observations show as ``trade`` does."""
    if config.name == "window":
        return WindowMemory(env.obs_dim, config.frames)
    if config.name == "trace":
        return TraceMemory(env.obs_dim, config.half_life, config.traces)
    if config.name == "gru":
        return GRUMemory(env.obs_dim, config.hidden)
    if config.name == "paom":
        chunker = config.chunker or "trade"
        return PAOMemory(config, env, "trade" if chunker == "env" else chunker, config.fixed_k or 8)
    return Memory()
