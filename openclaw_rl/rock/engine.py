"""The batched market engine: N markets, one array expression per step.

Timeline of a step: the agent has seen bar ``t`` up to its close and sends a target position;
the order fills at the open of bar ``t+1`` (slippage against the order, fee on the notional),
the book is marked at the close of ``t+1``, and short positions pay borrow on that close.
A position is only traded when the target changes, so every executed order is a chunk
boundary (``chunk_end``). Money is float64, observations float32.

Observation (float32, ``window + 5 + F``): the last ``window`` close-to-close log returns (%),
realized volatility over the window (%), the last bar's high/low range (log %), the current
position, unrealized PnL since the last order (%), the fraction of the episode left, and the
bar's ``F`` user features (``rock/features.py``; their warm-up bars are sampled before the path).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from openclaw_rl.rock import rng
from openclaw_rl.rock.config import N_SCALAR_FEATURES, EnvConfig
from openclaw_rl.rock.features import pipeline
from openclaw_rl.rock.historical import HistoricalReplay
from openclaw_rl.rock.markets import REGIME_NAMES, Bars
from openclaw_rl.rock.rolling import rolling_std

_WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_MIN_PER_WORKER = 512  # below this many markets a reset is not worth splitting


class MarketEngine:
    """State of ``n`` markets and the vectorized transition; no Gymnasium API here."""

    # Arrays that make up the full state, RNG included; ``snapshot`` copies exactly these.
    STATE = (
        "keys", "episodes", "t", "position", "units", "cash", "equity", "entry_equity",
        "dsr_a", "dsr_b", "open", "close", "regime",
        "ret_pct", "vol_pct", "range_pct", "obs",
    )
    PATHS = ("open", "close", "regime", "ret_pct", "vol_pct", "range_pct", "features")  # [n_bars, n, ...]; the rest [n, ...]
    # Spare columns of the observation buffer: the window slides right one column per step
    # and is moved back to column 0 once every _OBS_SLACK steps.
    _OBS_SLACK = 256

    def __init__(self, config: EnvConfig, n: int, market=None):
        self.config = config
        self.n = n
        self.market = market if market is not None else config.make_market()
        n_bars = config.bars_per_episode
        # Historical replay computes the features over its series; synthetic paths, each its own.
        self.pipeline = None if isinstance(self.market, HistoricalReplay) else pipeline(config.features)
        self.lead = self.pipeline.lead(config.window) if self.pipeline else 0
        if isinstance(self.market, HistoricalReplay):
            self.market.check_fits(n_bars)
        self.obs_dim = config.obs_dim
        self.fee = config.fee_bps / 1e4
        self.slippage = config.slippage_bps / 1e4
        self.borrow_rate = (1 + config.borrow_bps_per_year / 1e4) ** (1 / config.bars_per_year) - 1
        self.ruin_equity = config.ruin_fraction * config.initial_equity
        self.columns = np.arange(n, dtype=np.int64)
        self.keys = rng.entropy_keys(n)
        self.episodes = np.zeros(n, dtype=np.uint64)
        self.t = np.zeros(n, dtype=np.int64)
        for name in ("position", "units", "cash", "equity", "entry_equity", "dsr_a", "dsr_b"):
            setattr(self, name, np.zeros(n))
        # Bar paths are time-major [n_bars, n]: a step reads one nearly contiguous row.
        for name in ("open", "close"):
            setattr(self, name, np.zeros((n_bars, n)))
        self.regime = np.zeros((n_bars, n), dtype=np.int8)
        for name in ("ret_pct", "vol_pct", "range_pct"):
            setattr(self, name, np.zeros((n_bars, n), dtype=np.float32))
        self.n_features = len(config.feature_names)
        self.features = np.zeros((n_bars, n, self.n_features), dtype=np.float32)
        # Snapshots of runs without features (and of versions before them) hold no feature paths.
        self.state_names = self.STATE + (("features",) if self.n_features else ())
        self._obs_buf = np.zeros((n, self.obs_dim + self._OBS_SLACK), dtype=np.float32)
        self._head = 0

    def flat_index(self, bar_offset) -> np.ndarray:
        """Flat indices into the ``[n_bars, n]`` paths of bar ``window + t + bar_offset`` per market."""
        return (self.config.window + bar_offset + self.t) * self.n + self.columns

    @property
    def obs(self) -> np.ndarray:
        """The current observations ``[n, obs_dim]`` (a view; copy before handing out)."""
        return self._obs_buf[:, self._head : self._head + self.obs_dim]

    @obs.setter
    def obs(self, value: np.ndarray) -> None:
        self._head = 0
        self._obs_buf[:, : self.obs_dim] = value

    # ------------------------------------------------------------------ reset
    def reset(self, rows: np.ndarray, seeds: np.ndarray | None = None) -> None:
        """Start a new episode in ``rows`` (sorted int indices); ``seeds`` reseeds them first."""
        keys = rng.next_episode(self.keys, self.episodes, rows, seeds)
        if len(rows) == self.n:  # every market: contiguous column blocks, one per worker
            bounds = np.linspace(0, self.n, min(_WORKERS, max(1, self.n // _MIN_PER_WORKER)) + 1).astype(int)
            jobs = [(keys[a:b], slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]
        else:
            jobs = [(keys, rows)]
        if len(jobs) > 1:
            list(_pool().map(lambda job: self._new_paths(*job), jobs))
        else:
            self._new_paths(*jobs[0])
        self.t[rows] = 0
        self.position[rows] = 0.0
        self.units[rows] = 0.0
        for name in ("cash", "equity", "entry_equity"):
            getattr(self, name)[rows] = self.config.initial_equity
        self.dsr_a[rows] = 0.0
        self.dsr_b[rows] = 0.0
        w = self.config.window
        obs = np.empty((len(rows), self.obs_dim), dtype=np.float32)
        obs[:, :w] = self.ret_pct[1 : w + 1, rows].T
        obs[:, w] = self.vol_pct[w, rows]
        obs[:, w + 1] = self.range_pct[w, rows]
        obs[:, w + 2 : w + N_SCALAR_FEATURES] = (0.0, 0.0, 1.0)  # position, PnL, time left
        user = w + N_SCALAR_FEATURES + self.n_features
        obs[:, w + N_SCALAR_FEATURES : user] = self.features[w, rows]
        if self.config.observe_regime:
            obs[:, user:] = self._regime_onehot(self.regime[w, rows]).T
        self._obs_buf[rows, self._head : self._head + self.obs_dim] = obs

    def _new_paths(self, keys: np.ndarray, columns) -> None:
        """Sample the episode paths of ``keys`` into ``columns`` and derive the bar features."""
        bars = self.market.sample(keys, self.lead + self.config.bars_per_episode)
        if self.pipeline is not None:
            features = self.pipeline.compute(bars.log_open, bars.log_high, bars.log_low, bars.log_close)
            self.pipeline.check_finite(features, self.lead + self.config.window)
            self.features[:, columns] = features[self.lead :]
        elif bars.features is not None:
            self.features[:, columns] = bars.features
        if self.lead:
            bars = Bars(**{f.name: None if getattr(bars, f.name) is None else getattr(bars, f.name)[self.lead :]
                           for f in dataclasses.fields(Bars)})
        self.open[:, columns] = np.exp(bars.log_open)
        self.close[:, columns] = np.exp(bars.log_close)
        self.regime[:, columns] = bars.regime
        ret = np.zeros_like(bars.log_close)
        np.subtract(bars.log_close[1:], bars.log_close[:-1], out=ret[1:])
        ret *= 100
        self.ret_pct[:, columns] = ret
        vol = rolling_std(ret, self.config.window)
        vol[: self.config.window] = 0.0  # row 0 is no return: the first full window ends at row `window`
        self.vol_pct[:, columns] = vol
        self.range_pct[:, columns] = (bars.log_high - bars.log_low) * 100

    # ------------------------------------------------------------------- step
    def step(self, target: np.ndarray):
        """Advance every market one bar toward target positions ``[n]``.

        Returns ``(reward, terminated, truncated, chunk_end)``; ``self.obs`` holds the new
        observations. Rows that end must be reset by the caller before the next step.
        """
        cfg = self.config
        flat = self.flat_index(1)  # the bar being entered
        open_ = self.open.take(flat)
        close = self.close.take(flat)
        # Orders: trade only where the target differs from the position held.
        if cfg.continuous:
            trades = np.abs(target - self.position) > cfg.trade_threshold
        else:
            trades = target != self.position
        equity_at_open = self.cash + self.units * open_
        new_units = np.where(trades, target * equity_at_open / open_, self.units)
        delta = new_units - self.units
        notional = delta * open_ * (1.0 + np.sign(delta) * self.slippage)
        cash = self.cash - notional - np.abs(notional) * self.fee
        self.entry_equity = np.where(trades, cash + new_units * open_, self.entry_equity)
        self.position = np.where(trades, target, self.position)
        self.units = new_units
        # Borrow on shorts, charged on the close notional every bar held.
        cash -= self.borrow_rate * np.maximum(-new_units, 0.0) * close
        self.cash = cash
        equity = cash + new_units * close
        reward = self._reward(equity, close)
        self.equity = equity
        self.t += 1
        terminated = equity <= self.ruin_equity
        truncated = (self.t >= cfg.episode_bars) & ~terminated
        self._observe(flat, equity)
        return reward, terminated, truncated, trades

    def _reward(self, equity: np.ndarray, close: np.ndarray) -> np.ndarray:
        cfg = self.config
        floor = self.ruin_equity if self.ruin_equity > 0 else 1e-12 * cfg.initial_equity
        log_growth = np.log(np.maximum(equity, floor) / np.maximum(self.equity, floor))
        if cfg.reward == "log_return":
            return log_growth
        if cfg.reward == "dsr":  # Moody & Saffell's differential Sharpe ratio on simple returns
            ret = equity / self.equity - 1.0
            d_a, d_b = ret - self.dsr_a, ret * ret - self.dsr_b
            var = self.dsr_b - self.dsr_a**2
            safe = var > 1e-12
            dsr = np.where(safe, (self.dsr_b * d_a - 0.5 * self.dsr_a * d_b) / np.where(safe, var, 1.0) ** 1.5, 0.0)
            self.dsr_a = self.dsr_a + cfg.dsr_eta * d_a
            self.dsr_b = self.dsr_b + cfg.dsr_eta * d_b
            return dsr
        # terminal_excess: episode log return over buy-and-hold, paid on the last step only
        ends = (self.t + 1 >= cfg.episode_bars) | (equity <= self.ruin_equity)
        first_close = self.close[cfg.window]
        excess = np.log(np.maximum(equity, floor) / cfg.initial_equity) - np.log(close / first_close)
        return np.where(ends, excess, 0.0)

    def _observe(self, flat: np.ndarray, equity: np.ndarray) -> None:
        w, buf = self.config.window, self._obs_buf
        if self._head + 1 + self.obs_dim > buf.shape[1]:
            buf[:, : w - 1] = buf[:, self._head + 1 : self._head + w]
            self._head = 0
        else:
            self._head += 1
        new = np.empty((self.obs_dim - w + 1, self.n), dtype=np.float32)
        new[0] = self.ret_pct.take(flat)
        new[1] = self.vol_pct.take(flat)
        new[2] = self.range_pct.take(flat)
        new[3] = self.position
        new[4] = (equity / self.entry_equity - 1.0) * 100
        new[5] = 1.0 - self.t / self.config.episode_bars
        user = N_SCALAR_FEATURES + 1 + self.n_features
        if self.n_features:
            new[N_SCALAR_FEATURES + 1 : user] = self.features.reshape(-1, self.n_features)[flat].T
        if self.config.observe_regime:
            new[user:] = self._regime_onehot(self.regime.take(flat))
        buf[:, self._head + w - 1 : self._head + self.obs_dim] = new.T

    @staticmethod
    def _regime_onehot(codes: np.ndarray) -> np.ndarray:
        """``[len(REGIME_NAMES), n]``: the oracle's view of the regime (all zeros for a model without regimes)."""
        return (codes[None, :] == np.arange(len(REGIME_NAMES))[:, None]).astype(np.float32)

    # ---------------------------------------------------------- snapshot/restore
    def snapshot(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The full state (RNG included) as copies of plain arrays; ``rows`` picks markets, giving
        the state of an engine of ``len(rows)`` markets (see ``stack_snapshots``)."""
        if rows is None:
            return {name: getattr(self, name).copy() for name in self.state_names}
        return {name: getattr(self, name)[:, rows] if name in self.PATHS else getattr(self, name)[rows]
                for name in self.state_names}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        missing = [name for name in self.state_names if name not in state]
        if missing:
            raise ValueError(f"snapshot lacks {missing}; was it taken from a MarketEngine?")
        for name in self.state_names:
            current, value = getattr(self, name), np.asarray(state[name])
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(
                    f"snapshot field {name!r} has shape {value.shape} {value.dtype}, this env needs "
                    f"{current.shape} {current.dtype} (different n_envs, window or episode_bars?)"
                )
            setattr(self, name, value.copy())


def stack_snapshots(states: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One engine's state from several, markets in order: restores forks of saved states side by side."""
    return {name: np.concatenate([s[name] for s in states], axis=1 if name in MarketEngine.PATHS else 0)
            for name in states[0]}


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads for large resets: numpy releases the GIL inside its array loops."""
    return ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="openclaw-reset")
