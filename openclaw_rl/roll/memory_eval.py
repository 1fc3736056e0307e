"""Chunk-level evaluation of a policy's memory: compression, linear probes, chunk credit.

- **Compression ratio**: the raw history the policy has received since the episode began (steps x
  observation features) over the floats its memory keeps (``Memory.floats_kept``), at each chunk end.
- **Probes**: at the step after each chunk end (when PAOM has just written the chunk's record), a
  ridge probe fitted on half of the markets decodes, from the memory state, quantities the current
  observation window does not hold: the hidden regime, realized volatility over the last
  ``PROBE_BARS`` bars, the market's return since the last order (over the chunk just ended: from the
  order before it to the one that ended it). Scored on the other half of the
  markets, by chunk index (does the probe decay as memory fills?), beside the same probe on the
  observation alone: the memory's gain is the difference.
- **Chunk credit** (each update): the IPA chunk advantages summed per chunk beside the size of the
  memory's write for that chunk (how much the read's context changed when the chunk was committed).

Chunks are the learner's (``ipa.chunks``); a probe point's chunk index counts the chunks ended so far.
"""

from __future__ import annotations

import numpy as np
import torch

from openclaw_rl.ipa.chunks import chunk_boundaries
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.markets import NO_REGIME
from openclaw_rl.roll.policy import ActorCritic
from openclaw_rl.roll.rollout import Batch

PROBE_BARS = 60  # realized volatility over this many bars: far more than a short window shows
BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, 10**9))  # chunk indices, reported together
RIDGE = 1e-2


def bucket_name(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}+" if high >= 10**9 else f"{low}-{high}"


def collect_probe_points(policy: ActorCritic, env: EnvConfig, seed: int, device: torch.device) -> dict[str, np.ndarray]:
    """Play one greedy episode per market of ``env`` (seeded from ``seed``) and keep, at the step after
    each chunk end: the memory state, the observation, the targets, the chunk index, the market and
    the compression ratio."""
    envs = MarketVecEnv(config=env)
    obs, _ = envs.reset(seed=seed)
    engine, n, w = envs.engine, env.n_envs, env.window
    position, columns = env.feature("position"), np.arange(n)
    ret = engine.ret_pct  # [bars, n], percent; the agent at step t has seen bar w + t
    csum = np.concatenate([np.zeros((1, n)), np.cumsum(ret, 0)])
    csq = np.concatenate([np.zeros((1, n)), np.cumsum(ret * ret, 0)])
    state, starts = policy.initial_state(n, device), torch.ones(n, device=device)
    active, chunks, since_order = np.ones(n, dtype=bool), np.zeros(n, dtype=np.int64), np.zeros(n)
    last_position = obs[:, position].copy()
    points: dict[str, list] = {key: [] for key in ("state", "obs", "regime", "vol", "since_order", "chunk", "market", "ratio")}
    was_training = policy.training
    policy.eval()
    for t in range(env.episode_bars - 1):  # the last step's observation belongs to the next episode
        bar = w + t
        ended = chunk_boundaries("trade", positions=obs[:, position], prev_positions=last_position,
                                 env_chunk_end=None, step_in_episode=None) & (t > 0)
        chunk_return = since_order.copy()
        since_order = np.where(ended, 0.0, since_order + ret[bar] * (t > 0))
        chunks += ended
        obs_t = torch.as_tensor(obs, device=device)
        action, _, _, state = policy.act(obs_t, state, starts, deterministic=True)
        rows = np.flatnonzero(ended & active)
        if rows.size:
            memory = state[0, rows]
            low = max(bar - PROBE_BARS + 1, 1)
            count = bar + 1 - low
            mean = (csum[bar + 1, rows] - csum[low, rows]) / count
            var = (csq[bar + 1, rows] - csq[low, rows]) / count - mean**2
            points["state"].append(policy.memory.probe_features(memory).cpu().numpy())
            points["obs"].append(obs[rows])
            points["regime"].append(engine.regime[bar, rows])
            points["vol"].append(np.sqrt(np.maximum(var, 0.0)))
            points["since_order"].append(chunk_return[rows])
            points["chunk"].append(chunks[rows])
            points["market"].append(columns[rows])
            points["ratio"].append(compression_ratio(t + 1, env.obs_dim, policy.memory.floats_kept(memory).cpu().numpy()))
        last_position = obs[:, position].copy()
        obs, _, terminated, truncated, _ = envs.step(action.cpu().numpy())
        active &= ~(terminated | truncated)
        starts = torch.zeros(n, device=device)
    policy.train(was_training)
    envs.close()
    return {key: np.concatenate(values) if values else np.zeros(0) for key, values in points.items()}


def compression_ratio(steps, obs_dim: int, kept: np.ndarray) -> np.ndarray:
    """Observation floats received since the episode began (``steps`` of ``obs_dim``) over the floats
    the memory keeps; inf where it keeps none."""
    with np.errstate(divide="ignore"):
        return np.where(kept > 0, steps * obs_dim / np.where(kept > 0, kept, 1.0), np.inf)


def ridge_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression of ``y [n, k]`` on standardized ``x [n, d]`` with an intercept: (mean, scale, weights, bias)."""
    center, scale = x.mean(0), x.std(0) + 1e-8
    z = (x - center) / scale
    weights = np.linalg.solve(z.T @ z + RIDGE * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean(0)))
    return center, scale, weights, y.mean(0)


def ridge_predict(fit, x: np.ndarray) -> np.ndarray:
    center, scale, weights, bias = fit
    return ((x - center) / scale) @ weights + bias


def probe_scores(features: np.ndarray, points: dict[str, np.ndarray], fit_rows: np.ndarray,
                 test_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per held-out point: regime hit (1/0, NaN without regimes), and squared errors of the volatility and
    return-since-order probes with their variance-baseline errors (for R^2 per bucket)."""
    out = {}
    regime = points["regime"]
    if (regime != NO_REGIME).all() and len(np.unique(regime[fit_rows])) > 1:
        classes = np.unique(regime[fit_rows])
        onehot = (regime[:, None] == classes[None]).astype(float)
        predicted = classes[ridge_predict(ridge_fit(features[fit_rows], onehot[fit_rows]), features[test_rows]).argmax(1)]
        out["regime_hit"] = (predicted == regime[test_rows]).astype(float)
    for target in ("vol", "since_order"):
        y = points[target][:, None]
        predicted = ridge_predict(ridge_fit(features[fit_rows], y[fit_rows]), features[test_rows])[:, 0]
        out[f"{target}_error"] = (predicted - y[test_rows, 0]) ** 2
        out[f"{target}_spread"] = (y[test_rows, 0] - y[fit_rows, 0].mean()) ** 2
    return out


def memory_report(policy: ActorCritic, env: EnvConfig, seed: int, device: torch.device) -> dict:
    """Compression ratio and probe scores, overall and per chunk-index bucket, from ``env.n_envs``
    markets (probes fitted on the first half of them, scored on the second)."""
    points = collect_probe_points(policy, env, seed, device)
    n_points = len(points["chunk"])
    fit_rows = np.flatnonzero(points["market"] < env.n_envs // 2)
    test_rows = np.flatnonzero(points["market"] >= env.n_envs // 2)
    report = {"design": policy.config.memory.name, "n_markets": env.n_envs, "n_points": n_points, "buckets": {}}
    if len(fit_rows) < 8 or len(test_rows) < 8:
        report["note"] = "too few chunk ends to fit probes (the policy hardly trades)"
        return report
    scores = {"memory": probe_scores(points["state"], points, fit_rows, test_rows),
              "observation": probe_scores(points["obs"], points, fit_rows, test_rows)}
    if points["state"].shape[1] == 0:  # no memory: its probe is the intercept alone
        scores["memory"] = probe_scores(np.zeros((n_points, 1)), points, fit_rows, test_rows)
    chunk = points["chunk"][test_rows]

    def summary(mask: np.ndarray) -> dict:
        row = {"points": int(mask.sum()), "compression_ratio": _finite_mean(points["ratio"][test_rows][mask])}
        for source, s in scores.items():
            if "regime_hit" in s:
                row[f"{source}/regime_accuracy"] = float(s["regime_hit"][mask].mean())
            for target in ("vol", "since_order"):
                spread = s[f"{target}_spread"][mask].sum()
                row[f"{source}/{target}_r2"] = float(1 - s[f"{target}_error"][mask].sum() / spread) if spread > 0 else None
        return row

    report["overall"] = summary(np.ones(len(test_rows), dtype=bool))
    for low, high in BUCKETS:
        mask = (chunk >= low) & (chunk <= high)
        if mask.sum() >= 4:
            report["buckets"][bucket_name(low, high)] = summary(mask)
    return report


def _finite_mean(values: np.ndarray) -> float | None:
    """The mean where the memory keeps anything (None: it keeps nothing, the ratio is unbounded)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def credit_stats(policy: ActorCritic, batch: Batch, advantages: torch.Tensor, chunk_ids: torch.Tensor,
                 n_chunks: int) -> dict[str, float]:
    """TensorBoard's ``memory/*`` for one rollout: what the memory keeps, and the chunk credit beside
    the size of each chunk's write (observational memories: the change of the read's context at the
    step that commits the chunk, in the same episode)."""
    memory = policy.memory
    state = batch.last_state[0]
    kept = memory.floats_kept(state).cpu().numpy()
    stats = {"memory/floats_kept": float(kept.mean())}
    ratio = _finite_mean(compression_ratio(batch.step_in_episode[-1].cpu().numpy() + 1, batch.obs.shape[-1], kept))
    if ratio is not None:
        stats["memory/compression_ratio"] = ratio
    context = batch.memory
    if context is None or context.shape[-1] == 0 or batch.rewards.shape[0] < 2:
        return stats
    write = (context[1:] - context[:-1]).norm(dim=-1)  # [T-1, N]: at step t + 1
    next_chunk = (chunk_ids[1:] != chunk_ids[:-1]) & (batch.starts[1:] == 0)  # step t ended a chunk, the episode goes on
    credit = torch.zeros(n_chunks, dtype=advantages.dtype, device=advantages.device).index_add(
        0, chunk_ids.reshape(-1), advantages.reshape(-1))  # the advantages summed per chunk
    ids = chunk_ids[:-1][next_chunk]
    if ids.numel() < 4:
        return stats
    chunk_credit, chunk_write = credit[ids], write[next_chunk]
    high = chunk_write > chunk_write.median()
    stats["memory/write_size"] = chunk_write.mean().item()
    if high.any() and (~high).any():
        stats["memory/credit_big_writes"] = chunk_credit[high].mean().item()
        stats["memory/credit_small_writes"] = chunk_credit[~high].mean().item()
    if chunk_write.std() > 0 and chunk_credit.std() > 0:
        stats["memory/credit_write_corr"] = torch.corrcoef(torch.stack([chunk_write, chunk_credit]))[0, 1].item()
    return stats
