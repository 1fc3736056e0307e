"""ALMA's parts: the search space, parent selection, mutation, operator credit, the archive."""

import math

import numpy as np
import pytest

from openclaw_rl.alma.archive import Archive
from openclaw_rl.alma.search import OPERATORS, Proposer, operator_credit, selection_probabilities
from openclaw_rl.alma.space import Choice, Numeric, SearchSpace, SpaceError

SPACE = ["algo.lr=tag(log, interval(1e-5, 1e-2))", "ipa.chunker=choice(trade, fixed, step)",
         "algo.update_epochs=range(1, 9)", "policy.hidden=choice([32,32],[64,64])", "env.n_envs=16"]


def test_space_parses_the_override_grammar():
    space = SearchSpace(SPACE)
    lr, chunker, epochs, hidden = space.dims
    assert lr == Numeric("algo.lr", 1e-5, 1e-2, log=True)
    assert chunker == Choice("ipa.chunker", ("trade", "fixed", "step"))
    assert epochs == Numeric("algo.update_epochs", 1, 8, step=1)
    assert hidden.options == ([32, 32], [64, 64])
    assert space.fixed == ["env.n_envs=16"]


@pytest.mark.parametrize("bad,message", [
    ("algo.lr=tag(log, interval(0, 1))", "tag\\(log\\) needs a positive interval"),
    ("algo.lr=interval(0.5, 0.1)", "interval needs low < high"),
    ("algo.lr=tag(log, choice(1, 2))", "tag\\(log\\) applies to interval or range"),
    ("algo.lr=range(0.1, 1.0, 0.1)", "range must be integers"),
    ("algo.lr=tag(sqrt, interval(1, 2))", "unknown tag\\(s\\) \\['sqrt'\\]"),
    ("algo.lr=interval(1,", "cannot parse overrides"),
])
def test_malformed_spaces_are_named(bad, message):
    with pytest.raises(SpaceError, match=message):
        SearchSpace([bad])


def test_no_sweep_dimension_is_an_error():
    with pytest.raises(SpaceError, match="no sweep override"):
        SearchSpace(["env.n_envs=16"])


def test_overrides_round_trip_through_hydra_grammar():
    space = SearchSpace(SPACE)
    design = {"algo.lr": 3.2e-4, "ipa.chunker": "fixed", "algo.update_epochs": 4, "policy.hidden": [64, 64]}
    parsed = SearchSpace([o.replace("=", "=choice(", 1) + ")" for o in space.overrides(design)[:4]])
    assert {d.key: d.options[0] for d in parsed.dims} == design


def test_latin_hypercube_uses_every_stratum_once():
    space = SearchSpace(["x=interval(0, 1)", "y=tag(log, interval(1, 10000))"])
    designs = space.latin_hypercube(10, np.random.default_rng(0))
    assert sorted(int(d["x"] * 10) for d in designs) == list(range(10))
    assert sorted(int(math.log10(d["y"]) / 4 * 10) for d in designs) == list(range(10))


def test_perturbation_moves_in_log_scale_and_stays_in_bounds():
    dim = Numeric("lr", 1e-5, 1e-1, log=True)
    rng = np.random.default_rng(0)
    children = np.array([dim.perturb(1e-3, rng, 0.1) for _ in range(4000)])
    assert children.min() >= 1e-5 and children.max() <= 1e-1
    # a 0.1-of-range step in log10 space is 0.4 decades: the log-spread, not the linear one
    assert np.std(np.log10(children)) == pytest.approx(0.4, rel=0.1)
    steps = Numeric("epochs", 1, 8, step=1)
    assert all(steps.perturb(8, rng, 0.001) == 7 for _ in range(20))  # integers always move


def test_selection_follows_almas_rule():
    scores = np.array([0.0, 1.0, 1.0])
    expanded = np.array([0.0, 0.0, 3.0])
    p = selection_probabilities(scores, expanded, baseline_score=0.0, score_scale=1.0, tau=0.5)
    final = np.array([0.5, 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-1)) - 0.5 * math.log(4)])
    expected = np.exp(final / 0.5) / np.exp(final / 0.5).sum()
    np.testing.assert_allclose(p, expected)
    assert p[1] > p[0] > p[2]  # better score wins; heavy expansion is penalized


class T:
    """A minimal trial record for the search functions."""

    def __init__(self, id, score, design=None, parent=None, mutation=None, times_expanded=0):
        self.id, self.score, self.design, self.parent = id, score, design or {}, parent
        self.mutation, self.times_expanded = mutation, times_expanded


def test_operator_credit_is_the_smoothed_success_rate_of_children():
    parents = [T(1, 0.5), T(2, 0.2)]
    children = [T(3, 0.6, parent=1, mutation="perturb"), T(4, 0.1, parent=1, mutation="perturb"),
                T(5, 0.3, parent=2, mutation="crossover")]
    credit = operator_credit(parents + children, children)
    assert credit == {"perturb": (1 + 1) / (2 + 2), "resample": 0.5, "crossover": (1 + 1) / (1 + 2)}


def test_proposals_are_new_designs_inside_the_space():
    space = SearchSpace(SPACE[:3])
    rng = np.random.default_rng(1)
    evaluated = [T(i, float(i), d) for i, d in enumerate(space.latin_hypercube(4, rng))]
    known = [t.design for t in evaluated]
    proposer = Proposer(space)
    seen_ops = set()
    for _ in range(60):
        child, op, parent, other = proposer.propose(evaluated, 0.0, dict.fromkeys(OPERATORS, 0.5), known, rng)
        assert space.contains(child) and child not in known
        seen_ops.add(op)
        if op == "crossover":
            assert all(child[k] in (parent.design[k], other.design[k]) for k in child)
        known.append(child)
    assert seen_ops == set(OPERATORS)


def test_archive_persists_trials_reports_and_expansions(tmp_path):
    archive = Archive(tmp_path / "a.sqlite")
    a = archive.add("search", {"x": 1}, ["x=1"], "baseline")
    b = archive.add("search", {"x": 2}, ["x=2"], "perturb", parent=a)
    archive.finish(a, 0.5, [0.5])
    archive.fail(b, "Boom")
    assert archive.report(a, 0, 100, 0.1) and not archive.report(a, 0, 100, 0.2)
    archive.close()
    archive = Archive(tmp_path / "a.sqlite")
    first, second = archive.trials()
    assert (first.status, first.score, first.times_expanded) == ("finished", 0.5, 1)
    assert (second.status, second.error, second.parent) == ("failed", "Boom", a)
    assert archive.peers_at(0, 100, excluding=b) == [0.1]
    archive.add("holdout", {"x": 1}, ["x=1"], "holdout", parent=a)  # a transfer run does not expand its source
    assert archive.get(a).times_expanded == 1


def test_archive_marks_trials_in_flight_as_interrupted(tmp_path):
    archive = Archive(tmp_path / "a.sqlite")
    done = archive.add("search", {"x": 1}, ["x=1"], "baseline")
    archive.finish(done, 1.0, [1.0])
    flying = archive.add("search", {"x": 2}, ["x=2"], "initial")
    assert [t.id for t in archive.mark_interrupted()] == [flying]
    assert [t.status for t in archive.trials()] == ["finished", "interrupted"]
