"""The design space, written in Hydra's override grammar.

``algo.lr=tag(log, interval(1e-5, 1e-2))``, ``ipa.chunker=choice(trade, fixed, step)``,
``algo.update_epochs=range(1, 9)``: each sweep override becomes one dimension; plain
overrides (``env.n_envs=64``) are fixed and passed to every trial. A design is a dict
``{key: value}``; ``overrides`` turns it back into override strings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep


class SpaceError(ValueError):
    """A search space that cannot be searched; the message names the override."""


@dataclass(frozen=True)
class Choice:
    key: str
    options: tuple

    def from_unit(self, u: float):
        return self.options[min(int(u * len(self.options)), len(self.options) - 1)]

    def canonical(self, value):
        """The option equal to ``value`` (``1.0`` is the option ``1``; a bool matches only a bool)."""
        return next((o for o in self.options if o == value and isinstance(o, bool) == isinstance(value, bool)), value)

    def perturb(self, value, rng: np.random.Generator, scale: float):
        others = [o for o in self.options if o != value]
        return others[rng.integers(len(others))] if others else value


@dataclass(frozen=True)
class Numeric:
    """A real interval or an integer range (``step``), uniform or log-uniform."""

    key: str
    low: float
    high: float
    log: bool = False
    step: int | None = None  # integers: values low, low + step, ... <= high

    def _to_unit(self, value: float) -> float:
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        x = math.log(value) if self.log else value
        return 0.0 if hi == lo else (x - lo) / (hi - lo)

    def from_unit(self, u: float):
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        x = lo + min(max(u, 0.0), 1.0) * (hi - lo)
        value = math.exp(x) if self.log else x
        if self.step is None:
            return float(min(max(value, self.low), self.high))
        n = round((value - self.low) / self.step)
        return int(min(max(self.low + n * self.step, self.low), self.high))

    def canonical(self, value):
        """``value`` in the dimension's type: a float on an interval, an int on a range (``100.0`` is ``100``)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        if self.step is None:
            return float(value)
        return int(value) if float(value).is_integer() else value

    def perturb(self, value, rng: np.random.Generator, scale: float):
        """A Gaussian step of ``scale`` times the width, in the dimension's own (log) scale,
        reflected at the bounds; integers always move by at least one step."""
        u = self._to_unit(value) + rng.normal(0.0, scale)
        u = abs(u) % 2.0
        child = self.from_unit(2.0 - u if u > 1.0 else u)
        if self.step is not None and child == value:
            up = value + self.step <= self.high and (rng.random() < 0.5 or value - self.step < self.low)
            child = value + self.step if up else value - self.step
            child = int(min(max(child, self.low), self.high))
        return child


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format(v) for v in value) + "]"
    if isinstance(value, str):
        return value if re.fullmatch(r"[A-Za-z0-9_./:+-]+", value) else "'" + value.replace("'", "\\'") + "'"
    return repr(value)


class SearchSpace:
    """Dimensions parsed from sweep overrides, and the fixed overrides that come with them."""

    def __init__(self, arguments: list[str]):
        try:
            parsed = OverridesParser.create().parse_overrides(list(arguments))
        except Exception as err:  # Hydra's grammar error names the position
            raise SpaceError(f"search space: cannot parse overrides {list(arguments)}: {err}") from None
        self.dims: list[Choice | Numeric] = []
        self.fixed: list[str] = []
        for override in parsed:
            key = override.get_key_element()
            if not override.is_sweep_override():
                self.fixed.append(override.input_line)
                continue
            self.dims.append(_dimension(key, override.value(), override.input_line))
        keys = [d.key for d in self.dims]
        if len(set(keys)) != len(keys):
            raise SpaceError(f"search space: a key is swept twice in {keys}")
        if not self.dims:
            raise SpaceError("search space: no sweep override (e.g. 'algo.lr=tag(log, interval(1e-5, 1e-2))')")

    @property
    def signature(self) -> str:
        """Identifies the space, to refuse resuming a sweep dir with a different one."""
        return repr([(type(d).__name__, *vars(d).values()) for d in self.dims]) + repr(sorted(self.fixed))

    def latin_hypercube(self, n: int, rng: np.random.Generator) -> list[dict]:
        """``n`` designs spread over the space: every dimension's range is cut into n strata,
        each used once, in an independent random order per dimension."""
        columns = [(rng.permutation(n) + rng.random(n)) / n for _ in self.dims]
        return [{d.key: d.from_unit(float(col[i])) for d, col in zip(self.dims, columns)} for i in range(n)]

    def canonical(self, design: dict) -> dict:
        """``design`` with every searched value in its dimension's type: ``100`` and ``100.0`` are one design."""
        dims = {d.key: d for d in self.dims}
        return {key: dims[key].canonical(value) if key in dims else value for key, value in design.items()}

    def center(self) -> dict:
        return {d.key: d.from_unit(0.5) for d in self.dims}

    def overrides(self, design: dict) -> list[str]:
        return [f"{key}={_format(value)}" for key, value in design.items()] + list(self.fixed)

    def contains(self, design: dict) -> bool:
        for d in self.dims:
            value = design.get(d.key)
            if isinstance(d, Choice):
                if value not in d.options:
                    return False
            elif value is None or not (d.low <= value <= d.high):
                return False
        return True


def _dimension(key: str, sweep, line: str) -> Choice | Numeric:
    tags = set(getattr(sweep, "tags", set()) or set())
    unknown_tags = tags - {"log"}
    if unknown_tags:
        raise SpaceError(f"{line}: unknown tag(s) {sorted(unknown_tags)}; allowed: log")
    log = "log" in tags
    if isinstance(sweep, ChoiceSweep):
        options = tuple(sweep.list)
        if len(options) < 1:
            raise SpaceError(f"{line}: choice needs at least one option")
        if log:
            raise SpaceError(f"{line}: tag(log) applies to interval or range, not choice")
        return Choice(key, options)
    if isinstance(sweep, IntervalSweep):
        low, high = float(sweep.start), float(sweep.end)
        if not low < high:
            raise SpaceError(f"{line}: interval needs low < high, got ({low}, {high})")
        if log and low <= 0:
            raise SpaceError(f"{line}: tag(log) needs a positive interval, got ({low}, {high})")
        return Numeric(key, low, high, log)
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        if not all(isinstance(v, int) for v in (start, stop, step)):
            raise SpaceError(f"{line}: range must be integers here; use interval(...) for reals")
        if step <= 0 or stop <= start:
            raise SpaceError(f"{line}: range needs start < stop and step > 0, got range({start}, {stop}, {step})")
        last = start + (stop - start - 1) // step * step  # range's stop is exclusive
        if log and start <= 0:
            raise SpaceError(f"{line}: tag(log) needs a positive range")
        return Numeric(key, start, last, log, step)
    raise SpaceError(f"{line}: unsupported sweep {type(sweep).__name__}; use choice, range or interval")
