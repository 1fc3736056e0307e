"""ALMA's proposal rule (arXiv 2602.07755) over Hydra designs.

Parent selection: ``normalized = sigmoid((score - baseline_score) / score_scale)``,
``final = normalized - 0.5 * log1p(times_expanded)``, parents sampled by
``softmax(final / tau)``. Children come from mutation operators, and the operators themselves
are credited by how often their children beat their parents and chosen in proportion
(Laplace-smoothed success rates). When children inherit their parents' weights (two levels),
``continue`` is one more operator: the parent's design unchanged, trained further from its
weights (population-based training's exploit step; a departure from the ALMA paper, whose
designs carry no weights). With ``promotion``, successive halving (ASHA's rule, Li et al. 2020)
promotes a trial whose score ranks in the top 1/eta of its rung (the trials whose weights trained as
many trial-lengths, ``rungs``): it continues exactly from its checkpoint, its design unchanged, as
ASHA's promoted configurations do; ALMA's rule proposes the new designs between promotions.
"""

from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np

from openclaw_rl.alma.archive import Trial
from openclaw_rl.alma.space import Choice, SearchSpace

OPERATORS = ("perturb", "resample", "crossover")
CONTINUE = "continue"  # two levels only: the same design, from the parent's weights
PROMOTE = "promote"  # successive halving: the same design, continuing the run of a trial ASHA promotes


def selection_probabilities(scores: np.ndarray, times_expanded: np.ndarray, baseline_score: float,
                            score_scale: float, tau: float) -> np.ndarray:
    normalized = 1.0 / (1.0 + np.exp(-(scores - baseline_score) / score_scale))
    final = normalized - 0.5 * np.log1p(times_expanded)
    logits = final / tau
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def score_scale(scores: np.ndarray, configured: float | None) -> float:
    """The configured scale, or the spread of the archive's scores (1.0 until there is one)."""
    if configured is not None:
        return configured
    spread = float(np.std(scores)) if len(scores) > 1 else 0.0
    return spread if spread > 1e-12 else 1.0


def operator_credit(parents: list[Trial], children: list[Trial]) -> dict[str, float]:
    """Laplace-smoothed success rate of each operator: (children better than parent + 1) / (children + 2)."""
    by_id = {p.id: p for p in parents}
    wins = {op: 0 for op in (*OPERATORS, CONTINUE)}
    tries = dict(wins)
    for child in children:
        parent = by_id.get(child.parent)
        if child.mutation not in wins or parent is None or parent.score is None:
            continue
        tries[child.mutation] += 1
        wins[child.mutation] += int(child.score is not None and child.score > parent.score)
    return {op: (wins[op] + 1) / (tries[op] + 2) for op in wins}


class Proposer:
    """Turns the archive into the next design to evaluate."""

    def __init__(self, space: SearchSpace, tau: float = 0.5, mutation_scale: float = 0.2,
                 configured_scale: float | None = None, continuing: bool = False,
                 unread: Callable[[dict], set[str]] = lambda design: set()):
        """``unread``: the keys a design's run does not read (a ``gru`` design does not read
        ``policy.memory.frames``). Designs that differ only there are the same run, so a child that
        repeats a known run is no new design, and mutations move only the keys the parent reads."""
        self.space, self.tau, self.mutation_scale, self.configured_scale = space, tau, mutation_scale, configured_scale
        self.operators = (*OPERATORS, CONTINUE) if continuing else OPERATORS
        self.unread = unread

    def run_key(self, design: dict) -> str:
        """What a design runs: the design without the keys it does not read."""
        unread = self.unread(design)
        design = self.space.canonical(design)
        return json.dumps({k: v for k, v in design.items() if k not in unread}, sort_keys=True, default=str)

    def read_dims(self, design: dict) -> list:
        """The space's dimensions that ``design``'s run reads (all of them where it reads none: no
        child is a new run then, and ``propose`` ends as it does when every child is known)."""
        unread = self.unread(design)
        return [dim for dim in self.space.dims if dim.key not in unread] or list(self.space.dims)

    def select(self, evaluated: list[Trial], baseline_score: float, rng: np.random.Generator) -> Trial:
        scores = np.array([t.score for t in evaluated])
        expanded = np.array([t.times_expanded for t in evaluated], dtype=float)
        p = selection_probabilities(scores, expanded, baseline_score, score_scale(scores, self.configured_scale), self.tau)
        return evaluated[rng.choice(len(evaluated), p=p)]

    def propose(self, evaluated: list[Trial], baseline_score: float, credit: dict[str, float], known: list[dict],
                rng: np.random.Generator) -> tuple[dict, str, Trial, Trial | None] | None:
        """A new design: (design, operator, parent, second parent for crossover). Only ``continue``
        repeats a design (with the parent's weights: a new trial all the same). None when 50 tries
        find no new run: the space (a finite one) is exhausted."""
        names = [n for n in self.operators if n != "crossover" or len(evaluated) > 1]
        weights = np.array([credit[n] for n in names])
        taken = {self.run_key(design) for design in known}
        for _ in range(50):  # retry until the child is new
            operator = names[rng.choice(len(names), p=weights / weights.sum())]
            parent = self.select(evaluated, baseline_score, rng)
            other = None
            if operator == CONTINUE:
                return dict(parent.design), operator, parent, None
            if operator == "crossover":
                others = [t for t in evaluated if t.id != parent.id]
                other = self.select(others, baseline_score, rng)
                child = {k: (parent.design if rng.random() < 0.5 else other.design)[k] for k in parent.design}
            elif operator == "resample":
                child = dict(parent.design)
                dims = self.read_dims(parent.design)
                dim = dims[rng.integers(len(dims))]
                child[dim.key] = dim.from_unit(float(rng.random()))
                child = self.draw_newly_read(child, parent.design, rng)
            else:
                child = self.perturb(parent.design, rng)
            if self.run_key(child) not in taken:
                return child, operator, parent, other
        return None

    def perturb(self, design: dict, rng: np.random.Generator) -> dict:
        """Each of the d dimensions the design reads moves with probability 1/d (at least one does):
        numbers by a Gaussian step in their own scale, categories to another option."""
        dims = self.read_dims(design)
        moving = rng.random(len(dims)) < 1.0 / len(dims)
        if not moving.any():
            moving[rng.integers(len(dims))] = True
        child = dict(design)
        for dim, move in zip(dims, moving):
            if move:
                scale = 1.0 if isinstance(dim, Choice) else self.mutation_scale
                child[dim.key] = dim.perturb(design[dim.key], rng, scale)
        return self.draw_newly_read(child, design, rng)

    def draw_newly_read(self, child: dict, parent: dict, rng: np.random.Generator) -> dict:
        """The keys ``child`` reads and ``parent`` did not (a ``gru`` parent's child that became a
        ``window``: its frames) drawn uniformly: the parent's value there was never tried."""
        unread_by_parent = self.unread(parent)
        return {**child, **{dim.key: dim.from_unit(float(rng.random())) for dim in self.read_dims(child)
                            if dim.key in unread_by_parent}}


def rungs(trials: list[Trial], inherit_weights: bool) -> dict[int, int]:
    """Trial-lengths of training behind each trial's weights: a promoted trial's parent's + 1, a child's
    too when children start from their parents' weights (two levels), else 1."""
    depth: dict[int, int] = {}
    for trial in sorted(trials, key=lambda t: t.id):  # a parent is older than its children
        continues = trial.parent is not None and (trial.mutation == PROMOTE or inherit_weights)
        depth[trial.id] = 1 + depth[trial.parent] if continues else 1
    return depth


def expandable(evaluated: list[Trial], inherit_weights: bool) -> list[Trial]:
    """The trials ALMA's rule may choose as parents. Without inherited weights each child trains one
    trial-length from scratch, so a design is judged at that length: a promoted trial (its design trained
    longer, successive halving's) is left out, and a child's credit compares it with a parent of equal
    length. With inherited weights a child continues its parent's run, which may be a promoted one."""
    return evaluated if inherit_weights else [t for t in evaluated if t.mutation != PROMOTE]


def promotable(trials: list[Trial], eta: float, inherit_weights: bool) -> Trial | None:
    """ASHA's promotion: from the highest rung down, the best finished trial of the top
    ``floor(n / eta)`` of its rung's ``n`` finished trials that was not continued yet (None: no trial
    qualifies, so a new design is due)."""
    depth = rungs(trials, inherit_weights)
    continued = {t.parent for t in trials if t.mutation in (PROMOTE, CONTINUE)}
    finished = [t for t in trials if t.status == "finished" and is_finite(t.score)]
    for rung in sorted({depth[t.id] for t in finished}, reverse=True):
        ranked = sorted((t for t in finished if depth[t.id] == rung), key=lambda t: t.score, reverse=True)
        top = ranked[: int(len(ranked) // eta)]
        candidates = [t for t in top if t.id not in continued]
        if candidates:
            return candidates[0]
    return None


def aggregate(task_scores: list[float], how: str) -> float:
    values = np.asarray(task_scores, dtype=float)
    if how == "min":
        return float(values.min())
    return float(values.mean())


def is_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
