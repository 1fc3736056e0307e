import numpy as np
import pytest
import torch

from openclaw_rl.rock.config import EnvConfig
from openclaw_rl.rock.markets import Bars


class ScriptedMarket:
    """A market whose every episode is the same hand-written bar path (for exact checks)."""

    def __init__(self, opens, closes, regime=0):
        self.opens = np.asarray(opens, dtype=np.float64)
        self.closes = np.asarray(closes, dtype=np.float64)
        self.regime = regime

    def sample(self, keys, n_bars):
        assert n_bars == len(self.closes), (n_bars, len(self.closes))
        def column(x):
            return np.repeat(np.log(x)[:, None], len(keys), axis=1)
        log_open, log_close = column(self.opens), column(self.closes)
        return Bars(
            log_open,
            np.maximum(log_open, log_close) + 0.01,
            np.minimum(log_open, log_close) - 0.01,
            log_close,
            np.full((n_bars, len(keys)), self.regime, dtype=np.int8),
        )


@pytest.fixture
def scripted():
    """Build a single-market engine over a scripted path: window=2, zero costs unless given."""
    from openclaw_rl.rock.engine import MarketEngine

    def build(opens, closes, n=1, **overrides):
        values = dict(window=2, episode_bars=len(closes) - 3, fee_bps=0.0, slippage_bps=0.0,
                      borrow_bps_per_year=0.0, initial_equity=100_000.0)
        values.update(overrides)
        engine = MarketEngine(EnvConfig.from_mapping(values), n, market=ScriptedMarket(opens, closes))
        engine.reset(np.arange(n), seeds=np.arange(n))
        return engine

    return build


@pytest.fixture(autouse=True)
def auto_means_one_thread(monkeypatch):
    """``trainer.threads=auto`` reads the machine's load (roll/cores.py); tests pin it to one thread, so a run's
    numbers do not depend on what else the machine does (tests/test_run_dir.py tests the reading itself)."""
    from openclaw_rl.roll import trainer

    monkeypatch.setattr(trainer, "free_threads", lambda others: 1)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: torch's intra-op threads only wait for each other (as in training, trainer.threads=auto)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray (2 CPUs) for every test that needs it, shut down at the end of the session."""
    from openclaw_rl.rock.sandbox import connect_ray

    ray = connect_ray(num_cpus=2)
    yield ray
    ray.shutdown()
