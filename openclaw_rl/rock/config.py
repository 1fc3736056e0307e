"""The market env's configuration: one dataclass, validated before anything runs.

``EnvConfig.from_mapping`` turns the ``env`` node of the Hydra config (or plain keyword
arguments) into a checked ``EnvConfig``; every error names the key and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from openclaw_rl.rock.features import feature_label, pipeline
from openclaw_rl.rock.historical import BUILTIN_DATASETS, DataConfig, HistoricalReplay, load_series
from openclaw_rl.rock.markets import DEFAULT_REGIMES, REGIME_NAMES, SYNTHETIC_MODELS, Regime, RegimeSwitching
from openclaw_rl.rock.user_env import user_spaces
from openclaw_rl.rock.splits import SPLITS, check_fractions, seeds_record, time_splits
from openclaw_rl.errors import ConfigError, DataError

REWARDS = ("log_return", "dsr", "terminal_excess")
# The observation's features from the newest return (the window's last column) on, in order (the
# engine's layout); ``env.observe_regime`` appends the regime one-hot after them.
FEATURES = ("return", "volatility", "range", "position", "pnl", "time_left")
N_SCALAR_FEATURES = len(FEATURES) - 1  # observation features after the return window
MARKETS = (*SYNTHETIC_MODELS, "historical")
SAMPLINGS = ("random", "first")
ENV_OWNED = ("bars_per_year", "regime")  # model fields set from env.*, not from env.market.*


def typed(cls, values: Mapping[str, Any], prefix: str):
    """``cls`` (a config dataclass) from plain ``values`` over its defaults, through its OmegaConf schema
    (the same one Hydra composes with): an unknown key or a value of the wrong type is a ``ConfigError``
    that names the key."""
    try:
        schema = copy.deepcopy(_schema(cls))  # _assign_market sets the copy's market
        return OmegaConf.to_object(OmegaConf.merge(schema, _assign_market(schema, _plain(values))))
    except ConfigKeyError as err:
        key, parent = ".".join(filter(None, (prefix, err.full_key))), err.object_type
        allowed = f"; allowed: {', '.join(sorted(f.name for f in dataclasses.fields(parent)))}" if dataclasses.is_dataclass(parent) else ""
        raise ConfigError(f"{key}: unknown key{allowed}") from None
    except ValidationError as err:
        key = ".".join(filter(None, (prefix, err.full_key)))
        expected = re.search(r"converted to (\w+)", err.msg)  # e.g. "... could not be converted to Integer"
        if expected is None:
            raise ConfigError(f"{key}: {err.msg.splitlines()[0]}") from None
        article = "an" if expected[1][0] in "AEIOU" else "a"
        raise ConfigError(f"{key}: must be {article} {expected[1].lower()}, got {err.value!r}") from None


@functools.cache
def _schema(cls):
    """``cls``'s OmegaConf schema, built once (it takes longer than copying it)."""
    return OmegaConf.structured(cls)


def _plain(value):
    """Numpy scalars and arrays as Python numbers and lists (OmegaConf takes only primitives)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    return value.item() if isinstance(value, np.generic) else value


def _assign_market(schema, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` less the env's market, which is assigned to ``schema`` instead: merged into the default
    model's parameters, another model's would mix with them."""
    values = dict(values)
    if "env" in schema and isinstance(values.get("env"), Mapping):
        values["env"] = _assign_market(schema.env, values["env"])
    elif "market" in schema and isinstance(values.get("market"), Mapping):
        schema.market = dict(values.pop("market"))
    return values


def market_defaults(kind: str) -> dict[str, Any]:
    """A synthetic market model's parameters with their defaults, as plain data (``env.market``).

    The model's dataclass in ``rock/markets.py`` is their one source: the Hydra group ``env/market``
    and ``EnvConfig`` both take them from here.
    """
    model = SYNTHETIC_MODELS[kind]()
    values: dict[str, Any] = {"kind": kind}
    for f in dataclasses.fields(model):
        if f.name in ENV_OWNED:
            continue
        value = getattr(model, f.name)
        if f.name == "regimes":
            value = {name: dataclasses.asdict(regime) for name, regime in value.items()}
        values[f.name] = list(value) if isinstance(value, tuple) else value
    return values


def _with_market_defaults(market: Mapping[str, Any]) -> dict[str, Any]:
    """``market`` completed with its model's defaults (regimes merged field by field)."""
    market = dict(market)
    if market.get("kind") not in SYNTHETIC_MODELS:
        return market  # historical takes no parameters; an unknown kind is reported by validate
    values = market_defaults(market["kind"])
    unknown = [key for key in market if key not in values]
    if unknown:  # e.g. a typo, or env.market.kind=gbm over regime switching's parameters (use env/market=gbm)
        raise ConfigError(f"env.market.{unknown[0]}: unknown parameter of {market['kind']}; "
                          f"allowed: {', '.join(k for k in values if k != 'kind')}")
    given_regimes = market.pop("regimes", None)
    if isinstance(given_regimes, Mapping):
        regimes = values["regimes"]
        for name, spec in given_regimes.items():
            regimes[name] = {**regimes.get(name, {}), **dict(spec)} if isinstance(spec, Mapping) else spec
    elif given_regimes is not None:
        values["regimes"] = given_regimes
    values.update(market)
    if isinstance(values.get("switching"), (list, tuple)):
        values["switching"] = list(values["switching"])
    return values


@dataclass
class EnvConfig:
    """Everything that defines a market env. Money is in units of ``initial_equity``."""

    n_envs: int = 64
    window: int = 32  # bars of log returns in the observation
    episode_bars: int = 252  # steps per episode (truncation)
    actions: tuple[float, ...] = (-1.0, 0.0, 1.0)  # discrete target positions, fraction of equity
    continuous: bool = False  # Box action: target position in [-max_position, max_position]
    max_position: float = 1.0
    trade_threshold: float = 0.0  # continuous: |target - position| above which an order is sent
    reward: str = "log_return"
    dsr_eta: float = 0.01  # EMA rate of the differential Sharpe ratio
    fee_bps: float = 1.0  # of traded notional
    slippage_bps: float = 1.0  # fill price moves against the order by this much
    borrow_bps_per_year: float = 50.0  # on short notional, charged every bar
    bars_per_year: float = 252.0
    initial_equity: float = 100_000.0
    ruin_fraction: float = 0.05  # terminate when equity <= this fraction of the initial equity
    regime: str | None = None  # regime_switching: fix this regime instead of switching
    observe_regime: bool = False  # the oracle: append the bar's true regime (one-hot over REGIME_NAMES) to the observation
    market: dict[str, Any] = field(default_factory=lambda: {"kind": "regime_switching"})  # model parameters: market_defaults
    data: DataConfig = field(default_factory=DataConfig)
    # Computed observation features (rock/features.py): {name: a ta function, its parameters} or
    # {fn: module:function, its parameters}; the file's own columns are env.data.features.
    features: list[dict[str, Any]] = field(default_factory=list)
    # A user's Gymnasium env instead of the market simulator (rock/user_env.py): a registered id, or
    # module:Env-v0 to import the module that registers it. The market keys above are then unused.
    gym_id: str | None = None
    gym_kwargs: dict[str, Any] = field(default_factory=dict)  # keyword arguments of gym.make(env.gym_id)

    def __post_init__(self):
        if isinstance(self.actions, (list, tuple)):
            self.actions = tuple(self.actions)
        if isinstance(self.market, Mapping):
            self.market = _with_market_defaults(self.market)

    @property
    def obs_dim(self) -> int:
        if self.gym_id is not None:
            return user_spaces(self.gym_id, self.gym_kwargs).obs_dim
        return self.window + N_SCALAR_FEATURES + len(self.feature_names) + (len(REGIME_NAMES) if self.observe_regime else 0)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The observed features beyond ``FEATURES``, in order: ``env.data.features``, then ``env.features``."""
        return (*self.data.features, *(feature_label(spec) for spec in self.features))

    def feature(self, name: str) -> int:
        """The observation column of feature ``name`` (``FEATURES``; "return" is the newest return)."""
        return self.window - 1 + FEATURES.index(name)

    @property
    def action_dim(self) -> int:
        """Logits of the discrete actions, or the one continuous target position."""
        if self.gym_id is not None:
            return user_spaces(self.gym_id, self.gym_kwargs).action_dim
        return 1 if self.continuous else len(self.actions)

    def nearest_action(self, positions: np.ndarray) -> np.ndarray:
        """Indices of the discrete actions whose target positions are nearest to ``positions``."""
        return np.abs(np.asarray(positions)[..., None] - np.asarray(self.actions, dtype=np.float64)).argmin(-1)

    @property
    def bars_per_episode(self) -> int:
        """Bars an episode needs: the observation window, the steps, and the first fill bar."""
        return self.window + self.episode_bars + 1

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None, prefix: str = "env", **overrides) -> "EnvConfig":
        config = typed(cls, {**dict(values or {}), **overrides}, prefix)
        config.validate(prefix)
        return config

    def validate(self, prefix: str = "env") -> None:
        def fail(key: str, message: str):
            raise ConfigError(f"{prefix}.{key}: {message}")

        for key in ("n_envs", "window", "episode_bars"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(key, f"must be a positive integer, got {value!r}")
        for key in ("fee_bps", "slippage_bps", "borrow_bps_per_year", "trade_threshold", "ruin_fraction",
                    "bars_per_year", "initial_equity", "max_position", "dsr_eta"):
            if not finite_number(getattr(self, key)):
                fail(key, f"must be a finite number, got {getattr(self, key)!r}")
        for i, level in enumerate(self.actions):
            if not finite_number(level):
                fail(f"actions[{i}]", f"must be a finite number, got {level!r}")
        for key in ("fee_bps", "slippage_bps", "borrow_bps_per_year", "trade_threshold", "ruin_fraction"):
            if not getattr(self, key) >= 0:
                fail(key, f"must be >= 0, got {getattr(self, key)!r}")
        for key in ("bars_per_year", "initial_equity", "max_position"):
            if not getattr(self, key) > 0:
                fail(key, f"must be > 0, got {getattr(self, key)!r}")
        if not 0 < self.dsr_eta < 1:
            fail("dsr_eta", f"must be in (0, 1), got {self.dsr_eta!r}")
        if self.ruin_fraction >= 1:
            fail("ruin_fraction", f"must be < 1, got {self.ruin_fraction!r}")
        if self.gym_kwargs and self.gym_id is None:
            fail("gym_kwargs", "keyword arguments of a user's env need env.gym_id")
        if (self.features or self.data.features) and self.gym_id is not None:
            fail("features", "observation features belong to the market env; a user's env (env.gym_id) makes its own")
        if self.data.features and self.market.get("kind") != "historical":
            fail("data.features", "columns of a file need env.market.kind=historical (env/market=historical)")
        names = self.feature_names
        if len(set(names)) < len(names):
            fail("features", f"each feature once: {[name for name in names if names.count(name) > 1][0]} appears twice")
        if self.gym_id is None:  # probes every computed feature for look-ahead, before any work
            pipeline(self.features, tuple(self.data.features), volume=self.market.get("kind") == "historical", prefix=prefix)
        if self.gym_id is not None:
            found = user_spaces(self.gym_id, self.gym_kwargs)  # makes the env once: a bad id or space fails here, before any work
            if found.continuous != self.continuous:
                kind = "a Box (continuous)" if found.continuous else "a Discrete"
                fail("continuous", f"env.gym_id={self.gym_id} has {kind} action space: set env.continuous="
                                   f"{str(found.continuous).lower()}")
        if self.reward not in REWARDS:
            fail("reward", f"unknown reward {self.reward!r}; allowed: {', '.join(REWARDS)}")
        if not self.continuous and len(self.actions) < 2:
            fail("actions", f"needs at least 2 target positions, got {list(self.actions)}")
        if self.regime is not None and self.regime not in REGIME_NAMES:
            fail("regime", f"unknown regime {self.regime!r}; allowed: {', '.join(REGIME_NAMES)} (or null to switch)")
        kind = self.market.get("kind")
        if kind not in MARKETS:
            fail("market.kind", f"unknown market model {kind!r}; allowed: {', '.join(MARKETS)}")
        if self.regime is not None and kind != "regime_switching":
            fail("regime", f"a fixed regime needs env.market.kind=regime_switching, not {kind}")
        if kind == "historical":
            if (self.data.path is None) == (self.data.builtin is None):
                fail("data", "historical replay needs exactly one of env.data.path=FILE or env.data.builtin=NAME")
            if self.data.builtin is not None and self.data.builtin not in BUILTIN_DATASETS:
                fail("data.builtin", f"unknown dataset {self.data.builtin!r}; allowed: {', '.join(BUILTIN_DATASETS)}")
            if self.data.sampling not in SAMPLINGS:
                fail("data.sampling", f"unknown sampling {self.data.sampling!r}; allowed: {', '.join(SAMPLINGS)}")
            if not isinstance(self.data.drop_missing, bool):
                fail("data.drop_missing", f"must be true or false, got {self.data.drop_missing!r}")
            if self.data.split not in (*SPLITS, "all"):
                fail("data.split", f"unknown split {self.data.split!r}; allowed: {', '.join(SPLITS)}, all")
            try:
                check_fractions(self.data.split_fractions, f"{prefix}.data.split_fractions")
            except DataError as err:
                raise ConfigError(str(err)) from None
            if not (isinstance(self.data.embargo, int) and self.data.embargo >= 0):
                fail("data.embargo", f"must be a non-negative integer (bars), got {self.data.embargo!r}")
        else:
            self.make_market(prefix)  # checks the model's parameters

    def checked_market(self):
        """The market, made now: a historical one loads and validates its data, and its split must hold an
        episode (a short file fails here, with its sizes and the fix, before anything runs)."""
        market = self.make_market()
        if isinstance(market, HistoricalReplay):
            market.check_fits(self.bars_per_episode)
        return market

    def make_market(self, prefix: str = "env"):
        """The market source: a synthetic model or a historical replay (loads and validates data)."""
        params = {k: v for k, v in self.market.items() if k != "kind"}
        kind = self.market["kind"]
        if kind == "historical":
            if params:
                raise ConfigError(f"{prefix}.market: historical takes no parameters (got {sorted(params)}); use env.data")
            series = load_series(self.data)
            split = self.data.split
            bars = None if split == "all" else time_splits(len(series), self.data.split_fractions, self.data.embargo)[split]
            features = pipeline(self.features, tuple(self.data.features), series.volume is not None, prefix)
            return HistoricalReplay(series, self.data.sampling, bars, split, features, self.window)
        model_cls = SYNTHETIC_MODELS[kind]  # __post_init__ refused parameters the model does not have
        fields = [f.name for f in dataclasses.fields(model_cls)]
        if model_cls is RegimeSwitching:
            params = _regime_params(params, self.regime, prefix)
        elif "bars_per_year" in fields:
            params["bars_per_year"] = self.bars_per_year
        try:
            model = model_cls(**params)
        except TypeError as err:
            raise ConfigError(f"{prefix}.market: {err}") from None
        _check_model(model, prefix)
        return model


def with_split(env: EnvConfig, split: str) -> EnvConfig:
    """``env`` drawing its historical episodes from ``split`` (synthetic markets split by seed instead)."""
    return dataclasses.replace(env, data=dataclasses.replace(env.data, split=split))


def touched(env: EnvConfig, seeds: tuple[int, int]) -> dict:
    """What playing ``env`` with market seeds ``[low, high)`` touches: the seeds of a synthetic
    market, the split's bars of a historical one (every episode lies in them, whatever its seed)."""
    if env.market.get("kind") != "historical":
        return seeds_record(*seeds)
    return env.make_market().touched()


def _regime_params(params: dict, regime: str | None, prefix: str) -> dict:
    regimes = dict(DEFAULT_REGIMES)
    for name, spec in dict(params.pop("regimes", None) or {}).items():
        if name not in REGIME_NAMES:
            raise ConfigError(f"{prefix}.market.regimes.{name}: unknown regime; allowed: {', '.join(REGIME_NAMES)}")
        try:
            regimes[name] = Regime(**{**dataclasses.asdict(regimes[name]), **dict(spec)})
        except (TypeError, ValueError):
            allowed = ", ".join(f.name for f in dataclasses.fields(Regime))
            raise ConfigError(f"{prefix}.market.regimes.{name}: needs a mapping of {allowed}, got {spec!r}") from None
    switching = tuple(params.pop("switching", RegimeSwitching.switching))
    for name in switching:
        if name not in REGIME_NAMES:
            raise ConfigError(f"{prefix}.market.switching: unknown regime {name!r}; allowed: {', '.join(REGIME_NAMES)}")
    if not switching:
        raise ConfigError(f"{prefix}.market.switching: needs at least one regime")
    return {**params, "regimes": regimes, "switching": switching, "regime": regime}


def finite_number(value) -> bool:
    """A real number that is neither NaN nor infinite (a bool or a string is not one)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)))


def _check_model(model, prefix: str) -> None:
    """Parameter ranges that would make a model produce NaN or nonsense."""
    def need(ok: bool, key: str, rule: str):
        if not ok:
            raise ConfigError(f"{prefix}.market.{key}: must be {rule}, got {getattr(model, key, None)!r}")

    for f in dataclasses.fields(model):
        if f.name not in ("regimes", "switching", "regime"):
            need(finite_number(getattr(model, f.name)), f.name, "a finite number")
    need(model.start_price > 0, "start_price", "> 0")
    need(0 < model.overnight_frac < 1, "overnight_frac", "in (0, 1)")
    for key in ("sigma", "jump_intensity", "jump_std", "kappa", "theta", "xi", "v0", "omega", "alpha", "beta"):
        if hasattr(model, key):
            need(getattr(model, key) >= 0, key, ">= 0")
    if hasattr(model, "rho"):
        need(-1 <= model.rho <= 1, "rho", "in [-1, 1]")
    if hasattr(model, "jump_lead_bars"):
        need(model.jump_lead_bars >= 0 and float(model.jump_lead_bars).is_integer(), "jump_lead_bars", "a whole number >= 0")
    if hasattr(model, "nu"):
        need(model.nu > 2, "nu", "> 2 (finite variance)")
        need(model.alpha + model.beta < 1, "alpha", "such that alpha + beta < 1 (stationary)")
    if hasattr(model, "regimes"):
        for name, spec in model.regimes.items():
            for f in dataclasses.fields(spec):
                if not finite_number(getattr(spec, f.name)):
                    raise ConfigError(f"{prefix}.market.regimes.{name}.{f.name}: must be a finite number, "
                                      f"got {getattr(spec, f.name)!r}")
            if not (spec.vol_pct >= 0 and spec.duration_bars >= 1):
                raise ConfigError(f"{prefix}.market.regimes.{name}: vol_pct must be >= 0 and duration_bars >= 1, got {spec}")
