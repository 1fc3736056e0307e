"""Bad configuration fails before anything runs, naming the key and what is allowed."""

import pytest

from openclaw_rl.rock import ConfigError, MarketEnv
from openclaw_rl.rock.config import EnvConfig


@pytest.mark.parametrize("values,message", [
    ({"regime": "moon"}, r"env\.regime: unknown regime 'moon'; allowed: bull, sideways, bear, crash, volatile"),
    ({"fee_bps": -1.0}, r"env\.fee_bps: must be >= 0, got -1\.0"),
    ({"slippage_bps": -0.5}, r"env\.slippage_bps: must be >= 0"),
    ({"n_envs": 0}, r"env\.n_envs: must be a positive integer, got 0"),
    ({"reward": "sharpe"}, r"env\.reward: unknown reward 'sharpe'; allowed: log_return, dsr, terminal_excess"),
    ({"colour": 1}, r"env\.colour: unknown key; allowed: "),
    ({"market": {"kind": "levy"}}, r"env\.market\.kind: unknown market model 'levy'; allowed: regime_switching, gbm"),
    ({"market": {"kind": "gbm", "vol": 0.2}}, r"env\.market\.vol: unknown parameter of gbm; allowed: "),
    ({"market": {"kind": "gbm", "sigma": -0.2}}, r"env\.market\.sigma: must be >= 0"),
    ({"market": {"kind": "garch", "alpha": 0.5, "beta": 0.6}}, r"env\.market\.alpha: must be such that alpha \+ beta < 1"),
    ({"market": {"kind": "regime_switching", "switching": ["bull", "moon"]}}, r"env\.market\.switching: unknown regime 'moon'"),
    ({"market": {"kind": "gbm"}, "regime": "bull"}, r"env\.regime: a fixed regime needs env\.market\.kind=regime_switching"),
    ({"market": {"kind": "historical"}}, r"env\.data: historical replay needs exactly one of"),
])
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        EnvConfig.from_mapping(values)


def test_env_constructor_validates_too():
    with pytest.raises(ConfigError, match="env.regime"):
        MarketEnv(regime="moon")


def test_regime_parameters_can_be_overridden():
    config = EnvConfig.from_mapping(market={"kind": "regime_switching", "regimes": {"bull": {"vol_pct": 0.4}},
                                            "switching": ["bull", "bear"]})
    model = config.make_market()
    assert model.regimes["bull"].vol_pct == 0.4 and model.regimes["bull"].mean_pct == 0.091
    assert model.switching == ("bull", "bear")


@pytest.mark.parametrize("spec", [{"foo": 1}, 5])
def test_malformed_regimes_name_the_regime(spec):
    with pytest.raises(ConfigError, match=r"env\.market\.regimes\.bull: needs a mapping of mean_pct, vol_pct, duration_bars"):
        EnvConfig.from_mapping(market={"kind": "regime_switching", "regimes": {"bull": spec}})


def test_switching_the_model_by_key_names_the_leftover_parameter():
    """env.market.kind=gbm keeps regime switching's parameters: refused, pointing at env/market=gbm's keys."""
    with pytest.raises(ConfigError, match=r"env\.market\.regimes: unknown parameter of gbm; allowed: start_price"):
        EnvConfig.from_mapping(market={**EnvConfig().market, "kind": "gbm"})


def test_numpy_values_are_plain_numbers():
    import numpy as np

    config = EnvConfig.from_mapping(fee_bps=np.float64(2.5), window=np.int64(8), actions=np.array([-1.0, 1.0]))
    assert (config.fee_bps, config.window, config.actions) == (2.5, 8, (-1.0, 1.0))
    assert MarketEnv(fee_bps=np.float32(2.0)).config.fee_bps == 2.0
