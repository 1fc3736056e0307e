"""The portfolio env ``openclaw_rl/Portfolio-v0``: N portfolios of K assets, one array expression per step.

Timeline of a step (``rock/engine.py``'s, per asset): the agent has seen bar ``t`` up to its close
and sends target weights ``w`` (fractions of equity, one per asset); orders fill at the open of bar
``t+1``, the book is marked at the close of ``t+1``. Money is float64, observations float32.

Accounting of a step, per portfolio (``held``: the weights at the last close; per-bar rates are
``(1 + bps / 1e4) ** (1 / bars_per_year) - 1``):

- ``equity_open = cash + sum_k units_k open_k``
- asset ``k`` trades when it is tradable on bar ``t+1`` and ``|w_k - held_k| > trade_threshold``:
  ``units_k = w_k equity_open / open_k``; other assets keep their units (a weight drifts with prices)
- ``notional_k = (units_k - units_before_k) open_k (1 + slippage_k)`` for a buy, ``(1 - slippage_k)``
  for a sale; ``cash -= sum_k notional_k + sum_k fee_k |notional_k|``
- ``cash *= 1 + cash_rate`` (either sign: a negative cash balance pays the same rate), then shorts pay
  ``cash -= borrow_rate sum_k max(-units_k, 0) close_k``
- ``equity = cash + sum_k units_k close_k``; reward ``log(equity / equity_before)``

Target weights are projected before any order: ``long_only`` clips negative weights to 0, then a
gross exposure ``sum_k |w_k|`` above ``max_gross`` is scaled down to it (the rest is cash).
``softmax`` reads the action as K scores in ``[-10, 10]`` and holds ``max_gross * softmax(scores)``: always
invested, long-only, and a policy whose scores start near 0 starts near equal weight. An episode
terminates when equity falls to ``ruin_fraction`` of ``initial_equity`` and truncates after
``episode_bars`` steps. ``chunk_end``: some asset traded this step. Missing bars of historical data:
``rock/portfolio_data.py``.

Observation (float32, ``window * K + K + 1``): the last ``window`` close-to-close log returns (%) of
every asset, oldest bar first, asset-minor (``obs[:window * K].reshape(window, K)[j, k]`` is asset
``k``'s return ``window - 1 - j`` bars ago), then the weights held at the close (K), then the
fraction of the episode left. ``unpack`` splits it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from openclaw_rl.errors import ConfigError
from openclaw_rl.rock import rng
from openclaw_rl.rock.config import finite_number
from openclaw_rl.rock.env import check_render_mode
from openclaw_rl.rock.vector import vector_seeds
from openclaw_rl.rock.portfolio_data import FactorModel, PanelReplay, make_market, per_asset

MODES = ("long_only", "long_short", "softmax")
SCORE_BOUND = 10.0  # softmax mode: the action space's bound on a score
INFO_KEYS = ("chunk_end", "equity")
_RESET_BLOCK = 256  # portfolios whose synthetic paths are drawn at once (bounds a reset's memory)


@dataclass(frozen=True)
class PortfolioSettings:
    """Everything that defines a portfolio env; money in units of ``initial_equity``. ``fee_bps`` and
    ``slippage_bps`` are one number or one per asset. (Not ``*Config``: tests/test_docs.py wants every
    ``*Config`` in the trainer's configuration reference, and the trainer does not read this one.)"""

    market: FactorModel | PanelReplay = field(default_factory=FactorModel)  # synthetic, a file's bars, or a mapping
    window: int = 16  # bars of log returns per asset in the observation
    episode_bars: int = 252  # steps per episode (truncation)
    mode: str = "long_only"  # or long_short, or softmax (the action is K scores)
    max_gross: float = 1.0  # cap on sum |w|: target weights above it are scaled down
    trade_threshold: float = 1e-4  # |target - held weight| above which an asset is traded
    fee_bps: float | tuple[float, ...] = 1.0  # of traded notional
    slippage_bps: float | tuple[float, ...] = 1.0  # the fill moves against the order by this much
    borrow_bps_per_year: float = 50.0  # on short notional at the close, every bar held
    cash_rate_bps_per_year: float = 0.0  # paid on the cash balance every bar
    bars_per_year: float = 252.0
    initial_equity: float = 100_000.0
    ruin_fraction: float = 0.05  # terminate when equity <= this fraction of initial_equity

    def __post_init__(self):
        if isinstance(self.market, Mapping):  # plain data, e.g. from YAML
            object.__setattr__(self, "market", make_market(self.market))
        if not isinstance(self.market, (FactorModel, PanelReplay)):
            raise ConfigError(f"market: needs a FactorModel, a PanelReplay (load_panel) or a mapping (make_market), "
                              f"got {type(self.market).__name__}")
        for key in ("window", "episode_bars"):
            value = getattr(self, key)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"{key}: must be a positive integer, got {value!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode: unknown mode {self.mode!r}; allowed: {', '.join(MODES)}")
        for key, positive in (("max_gross", True), ("bars_per_year", True), ("initial_equity", True),
                              ("trade_threshold", False), ("borrow_bps_per_year", False),
                              ("cash_rate_bps_per_year", False), ("ruin_fraction", False)):
            value = getattr(self, key)
            if not (finite_number(value) and (value > 0 if positive else value >= 0)):
                raise ConfigError(f"{key}: must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
        if self.ruin_fraction >= 1:
            raise ConfigError(f"ruin_fraction: must be < 1, got {self.ruin_fraction!r}")
        for key in ("fee_bps", "slippage_bps"):
            if (per_asset(getattr(self, key), self.n_assets, key) < 0).any():
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)!r}")

    @property
    def n_assets(self) -> int:
        return self.market.n_assets

    @property
    def obs_dim(self) -> int:
        return (self.window + 1) * self.n_assets + 1

    @property
    def bars_per_episode(self) -> int:
        """Bars an episode reads: the observation window, the steps, and the first fill bar."""
        return self.window + self.episode_bars + 1

    def per_bar(self, bps_per_year: float) -> float:
        """The per-bar rate of an annual rate in basis points."""
        return (1 + bps_per_year / 1e4) ** (1 / self.bars_per_year) - 1


def resolve_settings(settings: PortfolioSettings | None, kwargs: dict) -> PortfolioSettings:
    """``settings`` (default: the defaults) with keyword overrides; an unknown key names the allowed ones."""
    allowed = [f.name for f in dataclasses.fields(PortfolioSettings)]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; allowed: {', '.join(allowed)}")
    return dataclasses.replace(settings or PortfolioSettings(), **kwargs)


def target_weights(action: np.ndarray, settings: PortfolioSettings) -> np.ndarray:
    """The weights ``[n, K]`` an action asks for in ``settings.mode`` (see the module docstring)."""
    if settings.mode != "softmax":
        return project_weights(action, settings.mode == "long_only", settings.max_gross)
    scores = np.clip(action, -SCORE_BOUND, SCORE_BOUND)
    w = np.exp(scores - scores.max(axis=1, keepdims=True))
    w *= settings.max_gross / w.sum(axis=1, keepdims=True)
    return w


def project_weights(target: np.ndarray, long_only: bool, max_gross: float) -> np.ndarray:
    """Weights ``[n, K]`` the book may hold: negatives clipped to 0 if ``long_only``, then a gross
    exposure ``sum |w|`` above ``max_gross`` scaled down to ``max_gross`` (float64, a new array)."""
    w = np.array(target, dtype=np.float64)
    if long_only:
        np.maximum(w, 0.0, out=w)
    gross = w.sum(axis=1) if long_only else np.abs(w).sum(axis=1)
    w *= (max_gross / np.maximum(gross, max_gross))[:, None]  # exactly 1 where gross <= max_gross
    return w


class PortfolioObs(NamedTuple):
    """An observation's parts (``unpack``)."""

    returns_pct: np.ndarray  # [..., window, K], oldest bar first
    weights: np.ndarray  # [..., K] held at the last close
    time_left: np.ndarray  # [...]


def unpack(obs: np.ndarray, n_assets: int) -> PortfolioObs:
    """The parts of observations ``[..., obs_dim]`` (see the module docstring)."""
    obs = np.asarray(obs)
    window = (obs.shape[-1] - 1) // n_assets - 1
    returns = obs[..., : window * n_assets].reshape(*obs.shape[:-1], window, n_assets)
    return PortfolioObs(returns, obs[..., window * n_assets : -1], obs[..., -1])


class PortfolioEngine:
    """State of ``n`` portfolios and the vectorized transition; no Gymnasium API here.

    Bars are read from 2-D ``[rows, K]`` arrays at row ``base + bar * stride``: synthetic paths are
    time-major (``[bars_per_episode * n, K]``: ``base`` is the portfolio, ``stride`` is n), a replay
    shares its panel (``base`` is the episode's first bar, ``stride`` 1).
    """

    # Spare steps of the observation buffer: the return window slides right K columns per step
    # and is moved back to column 0 once every _OBS_SLACK steps.
    _OBS_SLACK = 64

    def __init__(self, settings: PortfolioSettings, n: int):
        s = self.settings = settings
        self.n, k = n, settings.n_assets
        self.n_assets, self.obs_dim, self.window = k, settings.obs_dim, settings.window
        self.fee = per_asset(s.fee_bps, k, "fee_bps") / 1e4
        self.slippage = per_asset(s.slippage_bps, k, "slippage_bps") / 1e4
        self.borrow_rate, self.cash_rate = s.per_bar(s.borrow_bps_per_year), s.per_bar(s.cash_rate_bps_per_year)
        self.ruin_equity = s.ruin_fraction * s.initial_equity
        self.floor = self.ruin_equity if self.ruin_equity > 0 else 1e-12 * s.initial_equity
        n_bars = s.bars_per_episode
        if isinstance(s.market, PanelReplay):
            s.market.check_fits(n_bars)
            p = s.market.panel
            self.open, self.close, self.ret_pct, self.tradable = p.open, p.close, p.ret_pct, p.tradable
            self.paths, self.stride = (), 1
        else:
            self.open, self.close = np.ones((n * n_bars, k)), np.ones((n * n_bars, k))
            self.ret_pct, self.tradable = np.zeros((n * n_bars, k), dtype=np.float32), None
            self.paths, self.stride = ("open", "close", "ret_pct"), n
        self.keys = rng.entropy_keys(n)
        self.episodes = np.zeros(n, dtype=np.uint64)
        self.t = np.zeros(n, dtype=np.int64)
        self.base = np.arange(n, dtype=np.int64)
        self.units, self.weights = np.zeros((n, k)), np.zeros((n, k))
        self.cash, self.equity = np.zeros(n), np.zeros(n)
        self.obs_buf = np.zeros((n, self.obs_dim + self._OBS_SLACK * k), dtype=np.float32)
        self.head = 0

    @property
    def obs(self) -> np.ndarray:
        """The current observations ``[n, obs_dim]`` (a view; copy before handing out)."""
        return self.obs_buf[:, self.head : self.head + self.obs_dim]

    # ------------------------------------------------------------------ reset
    def reset(self, rows: np.ndarray, seeds: np.ndarray | None = None) -> None:
        """Start a new episode in ``rows`` (sorted int indices); ``seeds`` reseeds them first."""
        s, k, w = self.settings, self.n_assets, self.window
        keys = rng.next_episode(self.keys, self.episodes, rows, seeds)
        if self.paths:
            self._new_paths(rows, keys)
        else:
            self.base[rows] = s.market.starts(keys, s.bars_per_episode)
        self.t[rows] = 0
        self.units[rows] = 0.0
        self.weights[rows] = 0.0
        self.cash[rows] = s.initial_equity
        self.equity[rows] = s.initial_equity
        first = self.ret_pct[(self.base[rows, None] + np.arange(1, w + 1) * self.stride).ravel()]
        obs = np.zeros((len(rows), self.obs_dim), dtype=np.float32)
        obs[:, : w * k] = first.reshape(len(rows), w * k)
        obs[:, -1] = 1.0
        self.obs_buf[rows, self.head : self.head + self.obs_dim] = obs

    def _new_paths(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Draw the synthetic paths of ``rows`` into their columns of the time-major path arrays."""
        n_bars, k = self.settings.bars_per_episode, self.n_assets
        views = {name: getattr(self, name).reshape(n_bars, self.n, k) for name in self.paths}
        for a in range(0, len(rows), _RESET_BLOCK):
            block = rows[a : a + _RESET_BLOCK]
            log_open, log_close = self.settings.market.paths(keys[a : a + _RESET_BLOCK], n_bars)
            ret = np.zeros(log_close.shape, dtype=np.float32)  # bar 0 has no previous close
            np.multiply(np.subtract(log_close[1:], log_close[:-1]), 100, out=ret[1:], casting="same_kind")
            views["open"][:, block] = np.exp(log_open)
            views["close"][:, block] = np.exp(log_close)
            views["ret_pct"][:, block] = ret

    # ------------------------------------------------------------------- step
    def step(self, target: np.ndarray):
        """Advance every portfolio one bar toward target weights ``[n, K]`` (projected first, see the
        module docstring). Returns ``(reward, terminated, truncated, chunk_end)``; ``self.obs`` holds
        the new observations. Rows that end must be reset by the caller before the next step."""
        s = self.settings
        w = target_weights(target, s)
        rows = self.base + (self.t + self.window + 1) * self.stride  # the bar being entered
        open_ = self.open.take(rows, axis=0)
        close = self.close.take(rows, axis=0)
        trades = np.abs(w - self.weights) > s.trade_threshold
        if self.tradable is not None:
            trades &= self.tradable.take(rows, axis=0)
        equity_open = self.cash + (self.units * open_).sum(axis=1)
        units = np.where(trades, w * (equity_open[:, None] / open_), self.units)
        delta = units - self.units
        notional = delta * open_ * (1.0 + np.copysign(self.slippage, delta))
        cash = self.cash - notional.sum(axis=1) - (np.abs(notional) * self.fee).sum(axis=1)
        cash += cash * self.cash_rate
        cash -= self.borrow_rate * (np.maximum(-units, 0.0) * close).sum(axis=1)
        value = units * close
        equity = cash + value.sum(axis=1)
        reward = np.log(np.maximum(equity, self.floor) / np.maximum(self.equity, self.floor))
        self.units, self.cash, self.equity = units, cash, equity
        self.weights = value / np.maximum(equity, self.floor)[:, None]
        self.t += 1
        terminated = equity <= self.ruin_equity
        truncated = (self.t >= s.episode_bars) & ~terminated
        self._observe(rows)
        return reward, terminated, truncated, trades.any(axis=1)

    def _observe(self, rows: np.ndarray) -> None:
        """Slide the return window by one bar and write the newest returns, the weights and the time left."""
        k, kept, buf = self.n_assets, (self.window - 1) * self.n_assets, self.obs_buf
        if self.head + k + self.obs_dim > buf.shape[1]:
            buf[:, :kept] = buf[:, self.head + k : self.head + k + kept]
            self.head = 0
        else:
            self.head += k
        at = self.head + kept
        buf[:, at : at + k] = self.ret_pct.take(rows, axis=0)
        buf[:, at + k : at + 2 * k] = self.weights
        buf[:, at + 2 * k] = 1.0 - self.t / self.settings.episode_bars

    # ---------------------------------------------------------- snapshot/restore
    def state_names(self) -> tuple[str, ...]:
        """The arrays that make up the full state, RNG included (a replay's panel is settings, not state)."""
        return ("keys", "episodes", "t", "base", "units", "weights", "cash", "equity", "obs_buf", *self.paths)

    def snapshot(self) -> dict[str, np.ndarray]:
        """The full state as copies of plain arrays."""
        state = {name: getattr(self, name).copy() for name in self.state_names()}
        state["head"] = np.array(self.head)
        return state

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Set the full state (a ``snapshot`` of an engine of the same settings and ``n``)."""
        for name in self.state_names():
            current, value = getattr(self, name), np.asarray(state.get(name))
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(f"snapshot field {name!r} has shape {value.shape} {value.dtype}, this env needs "
                                 f"{current.shape} {current.dtype} (another n, window, episode_bars or market?)")
        for name in self.state_names():
            setattr(self, name, np.array(state[name]))
        self.head = int(state["head"])


def make_spaces(settings: PortfolioSettings) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """Observation and action space of one portfolio: the action is K target weights (softmax: K scores)."""
    low, high = {"long_only": (0.0, settings.max_gross), "long_short": (-settings.max_gross, settings.max_gross),
                 "softmax": (-SCORE_BOUND, SCORE_BOUND)}[settings.mode]
    return (gym.spaces.Box(-np.inf, np.inf, shape=(settings.obs_dim,), dtype=np.float32),
            gym.spaces.Box(low, high, shape=(settings.n_assets,), dtype=np.float32))


def checked_targets(actions, n: int, k: int, owner: str) -> np.ndarray:
    """Actions as float64 target weights ``[n, K]``; a wrong shape or a NaN / infinite weight is a ``ValueError``."""
    target = np.asarray(actions, dtype=np.float64)
    if target.size != n * k:
        raise ValueError(f"{owner}: needs {k} target weights per portfolio ({n} portfolios), got shape {target.shape}")
    target = target.reshape(n, k)
    finite = np.isfinite(target)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        raise ValueError(f"{owner}: target weights must be finite; portfolio {i}, asset {j} got {target[i, j]}")
    return target


class PortfolioEnv(gym.Env):
    """One portfolio as a ``gymnasium.Env`` (the engine with n = 1); see the module docstring.

    ``info``: ``chunk_end`` (some asset traded this step) and ``equity``. ``step`` raises
    ``gymnasium.error.ResetNeeded`` before the first ``reset`` and after the episode ended, and a
    ``ValueError`` for an action that is not K finite numbers.
    """

    metadata = {"render_modes": []}

    def __init__(self, settings: PortfolioSettings | None = None, render_mode: str | None = None, **kwargs):
        check_render_mode(render_mode, "PortfolioEnv")
        self.render_mode = render_mode
        self.settings = resolve_settings(settings, kwargs)
        self.engine = PortfolioEngine(self.settings, 1)
        self.observation_space, self.action_space = make_spaces(self.settings)
        self._row = np.zeros(1, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.engine.reset(self._row, None if seed is None else np.array([seed]))
        return self.engine.obs[0].copy(), self._info(False)

    def step(self, action):
        e = self.engine
        if e.t[0] >= self.settings.episode_bars or e.equity[0] <= e.ruin_equity:
            when = "after the episode ended (terminated or truncated)" if e.t[0] else "before reset()"
            raise gym.error.ResetNeeded(f"PortfolioEnv.step() called {when}; call env.reset(seed=...) first")
        target = checked_targets(action, 1, e.n_assets, "PortfolioEnv.step")
        reward, terminated, truncated, chunk_end = e.step(target)
        return e.obs[0].copy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(bool(chunk_end[0]))

    def _info(self, chunk_end: bool) -> dict:
        return {"chunk_end": chunk_end, "equity": float(self.engine.equity[0])}

    def snapshot(self) -> dict[str, np.ndarray]:
        """Full state, RNG included: ``restore`` then the same actions replay the same trajectory."""
        return self.engine.snapshot()

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Set the full state (a ``snapshot``): a running episode steps on; an ended one needs ``reset``."""
        self.engine.restore(state)


class PortfolioVecEnv(VectorEnv):
    """N portfolios stepped by one array expression. Autoreset mode SAME_STEP, as ``MarketVecEnv``:
    an ended portfolio's returned observation is its next episode's first; the ended one's last
    observation and info are in ``info["final_obs"]`` (dense ``[N, obs_dim]``, valid where
    ``info["_final_obs"]``) and ``info["final_info"]``. Portfolio ``i`` seeded ``seed + i`` gives
    exactly the numbers of a ``PortfolioEnv`` seeded ``seed + i``. ``info``: ``chunk_end`` and ``equity``,
    one per portfolio. ``step`` before the first ``reset`` (or ``restore``) raises ``ResetNeeded``."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 64, settings: PortfolioSettings | None = None, render_mode: str | None = None,
                 **kwargs):
        check_render_mode(render_mode, "PortfolioVecEnv")
        self.render_mode = render_mode
        self.settings = resolve_settings(settings, kwargs)
        self.num_envs = num_envs
        self.engine = PortfolioEngine(self.settings, num_envs)
        self.single_observation_space, self.single_action_space = make_spaces(self.settings)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._all_rows = np.arange(num_envs)
        self._all_true = np.ones(num_envs, dtype=bool)
        self._all_true.flags.writeable = False
        self._started = False

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Reset every portfolio; an int ``seed`` seeds portfolio ``i`` with ``seed + i``."""
        self.engine.reset(self._all_rows, vector_seeds(seed, self.num_envs))
        self._started = True
        return self.engine.obs.copy(), self._info(np.zeros(self.num_envs, dtype=bool))

    def step(self, actions):
        if not self._started:
            raise gym.error.ResetNeeded("PortfolioVecEnv.step() called before reset(); call envs.reset(seed=...) first")
        e = self.engine
        target = checked_targets(actions, self.num_envs, e.n_assets, "PortfolioVecEnv.step")
        reward, terminated, truncated, chunk_end = e.step(target)
        info = self._info(chunk_end)
        done = terminated | truncated
        if done.any():
            info["final_obs"], info["_final_obs"] = e.obs.copy(), done
            final_info = {key: info[key].copy() for key in INFO_KEYS}
            final_info.update({f"_{key}": done for key in INFO_KEYS})
            info["final_info"], info["_final_info"] = final_info, done
            rows = np.flatnonzero(done)
            e.reset(rows)
            info["chunk_end"][rows] = False  # the info of a reset portfolio describes its new episode
            info["equity"][rows] = e.equity[rows]
        return e.obs.copy(), reward, terminated, truncated, info

    def _info(self, chunk_end: np.ndarray) -> dict:
        info = {"chunk_end": chunk_end, "equity": self.engine.equity.copy()}
        info.update({f"_{key}": self._all_true for key in INFO_KEYS})
        return info

    def snapshot(self) -> dict[str, np.ndarray]:
        """Full state of all portfolios, RNG included."""
        return self.engine.snapshot()

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Set the full state of all portfolios (a ``snapshot``); the env can step from it, reset or not."""
        self.engine.restore(state)
        self._started = True
