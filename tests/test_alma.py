"""ALMA's parts: the search space, parent selection, mutation, operator credit, the archive."""

import math
import subprocess
import sys

import numpy as np
import pytest

from openclaw_rl.alma.archive import Archive
from openclaw_rl.alma.search import OPERATORS, Proposer, operator_credit, promotable, rungs, selection_probabilities
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

    def __init__(self, id, score, design=None, parent=None, mutation=None, times_expanded=0, status="finished"):
        self.id, self.score, self.design, self.parent = id, score, design or {}, parent
        self.mutation, self.times_expanded, self.status = mutation, times_expanded, status


def test_operator_credit_is_the_smoothed_success_rate_of_children():
    parents = [T(1, 0.5), T(2, 0.2)]
    children = [T(3, 0.6, parent=1, mutation="perturb"), T(4, 0.1, parent=1, mutation="perturb"),
                T(5, 0.3, parent=2, mutation="crossover")]
    credit = operator_credit(parents + children, children)
    assert credit == {"perturb": (1 + 1) / (2 + 2), "resample": 0.5, "crossover": (1 + 1) / (1 + 2), "continue": 0.5}


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


def test_two_level_proposals_may_continue_a_parents_design():
    """With inherited weights, ``continue`` repeats the parent's design (trained further); otherwise
    no operator repeats a known design."""
    space = SearchSpace(SPACE[:3])
    rng = np.random.default_rng(2)
    evaluated = [T(i, float(i), d) for i, d in enumerate(space.latin_hypercube(4, rng))]
    credit = {**dict.fromkeys(OPERATORS, 1e-9), "continue": 1.0}  # credit all but forces the operator
    child, op, parent, other = Proposer(space, continuing=True).propose(evaluated, 0.0, credit, [t.design for t in evaluated], rng)
    assert (op, child, other) == ("continue", parent.design, None)
    child, op, _, _ = Proposer(space).propose(evaluated, 0.0, credit, [t.design for t in evaluated], rng)
    assert op != "continue" and child not in [t.design for t in evaluated]


def test_rungs_count_the_trial_lengths_behind_a_trials_weights():
    trials = [T(1, 0.1), T(2, 0.2, parent=1, mutation="promote"), T(3, 0.3, parent=2, mutation="perturb"),
              T(4, 0.4), T(5, 0.5, parent=4, mutation="crossover"), T(6, None, parent=3, mutation="promote", status="running")]
    assert rungs(trials, inherit_weights=True) == {1: 1, 2: 2, 3: 3, 4: 1, 5: 2, 6: 4}
    assert rungs(trials, inherit_weights=False) == {1: 1, 2: 2, 3: 1, 4: 1, 5: 1, 6: 2}  # children start afresh


def test_promotion_follows_ashas_rule():
    """The top floor(n / eta) of a rung's finished trials, the highest rung first, each continued once."""
    rung1 = [T(1, 0.1), T(2, 0.5), T(3, 0.3), T(4, 0.2), T(5, None, status="failed")]
    assert promotable(rung1, 2, False).id == 2  # the best of the top 2 of 4 finished (the failed trial ranks nowhere)
    assert promotable(rung1, 3, False).id == 2  # top 1
    assert promotable(rung1[:1], 2, False) is None  # one trial: floor(1/2) = 0 qualify
    running = rung1 + [T(6, None, parent=2, mutation="promote", status="running")]
    assert promotable(running, 2, False).id == 3  # 2 is being continued: the next of the top 2
    assert promotable(running, 3, False) is None  # the top 1 is taken: a new design is due
    both = running + [T(7, 0.05, parent=3, mutation="promote")]
    assert promotable(both, 2, False) is None  # rung 2 holds one finished trial; rung 1's top 2 are taken
    child = both + [T(8, 0.4, parent=4, mutation="perturb")]  # with inherited weights, a child of 4 is on rung 2
    assert promotable(child, 2, True).id == 8  # rung 2's top 1 of {7: 0.05, 8: 0.4}, before any rung-1 trial
    assert promotable(child, 2, False).id == 8  # without, 8 is on rung 1: the best of its top 2 {8, 2 (taken)}
    assert promotable(child + [T(9, 0.9, parent=8, mutation="continue")], 2, True) is None  # continued counts too
    two_rungs = rung1 + [T(6, 0.6, parent=2, mutation="promote"), T(7, 0.4, parent=4, mutation="perturb")]
    assert promotable(two_rungs, 2, True).id == 6  # rung 2 offers 6 and rung 1 offers 3: the higher rung goes first


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


def test_sweep_progress_reports_trials_done_best_so_far_and_eta(tmp_path, caplog, monkeypatch):
    import logging

    from openclaw_rl import progress
    from openclaw_rl.alma.sweeper import ALMASweeperImpl

    clock = iter([100.0, 130.0, 150.0])  # Progress starts at 100 s; trials end at 130 s and 150 s
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    archive = Archive(tmp_path / "a.sqlite")
    earlier = archive.add("search", {"x": 0}, ["x=0"], "baseline")  # done before a resume: not in the pace
    archive.finish(earlier, 0.9, [0.9])
    sweeper = ALMASweeperImpl(budget=5)
    sweeper.objective = "sharpe"
    sweeper.progress = progress.Progress(5, "trials", logging.getLogger("openclaw_rl.alma"), initial=1, bar=False)
    a = archive.add("search", {"x": 1}, ["x=1"], "initial")
    archive.finish(a, 1.5, [1.5])
    b = archive.add("search", {"x": 2}, ["x=2"], "perturb", parent=a)
    archive.fail(b, "Boom")
    with caplog.at_level(logging.INFO, logger="openclaw_rl.alma"):
        sweeper._report_progress(archive, a)
        sweeper._report_progress(archive, b)
    first, second = [r.getMessage() for r in caplog.records]
    # 1 trial in 30 s, 3 to go: 90 s; then 2 trials in 50 s, 2 to go: 50 s.
    assert first == f"trials 2/5 done: trial {a} 1.5, best sharpe 1.5 (trial {a}), elapsed 30s, ETA 1m30s"
    assert second == f"trials 3/5 done: trial {b} failed, best sharpe 1.5 (trial {a}), elapsed 50s, ETA 50s"


def test_progress_draws_a_bar_on_a_terminal_instead_of_log_lines(caplog, capsys, monkeypatch):
    import logging

    from openclaw_rl.progress import Progress, duration, eta_seconds

    assert eta_seconds(10.0, 2, 3) == 15.0 and math.isnan(eta_seconds(5.0, 0, 3))
    assert [duration(s) for s in (42, 185, 7620, float("nan"))] == ["42s", "3m05s", "2h07m", "?"]
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    with caplog.at_level(logging.INFO), Progress(3, "trials", logging.getLogger("x")) as bar:
        assert bar.bar is not None
        bar.update("best 1.0")
    assert not caplog.records and "1/3" in capsys.readouterr().err
    with caplog.at_level(logging.INFO), Progress(1, "backtests", logging.getLogger("x"), bar=False) as single:
        single.update("only one")
    assert not caplog.records  # a single item gets no progress line


def test_a_child_that_differs_only_where_the_run_does_not_read_is_no_new_design():
    space = SearchSpace(["policy/memory=choice(none, gru, window)", "policy.memory.frames=range(2, 9)",
                         "policy.memory.capacity=range(4, 40)"])
    rng = np.random.default_rng(3)

    def unread(design):  # only window reads frames; no design here reads the capacity
        return {"policy.memory.capacity"} | ({"policy.memory.frames"} if design["policy/memory"] != "window" else set())

    evaluated = [T(0, 0.0, {"policy/memory": "none", "policy.memory.frames": 3, "policy.memory.capacity": 10}),
                 T(1, 1.0, {"policy/memory": "gru", "policy.memory.frames": 5, "policy.memory.capacity": 20})]
    known = [t.design for t in evaluated]
    proposer = Proposer(space, unread=unread)
    for _ in range(3):  # none and gru are known runs whatever their frames and capacity: new runs are windows
        child, _, _, _ = proposer.propose(evaluated, 0.0, dict.fromkeys(OPERATORS, 0.5), known, rng)
        assert proposer.run_key(child) not in {proposer.run_key(d) for d in known} and child["policy/memory"] == "window"
        known.append(child)


def test_a_space_of_keys_the_design_does_not_read_is_exhausted_after_one_run():
    """A gru design swept over a window key only: no child is a new run, so no proposal comes (the sweep ends)."""
    space = SearchSpace(["policy.memory.frames=range(2, 9)"])
    proposer = Proposer(space, unread=lambda design: {"policy.memory.frames"})
    evaluated = [T(0, 0.0, {"policy.memory.frames": 3})]
    assert proposer.propose(evaluated, 0.0, dict.fromkeys(OPERATORS, 0.5), [evaluated[0].design],
                            np.random.default_rng(5)) is None


def test_a_number_is_one_design_whatever_its_python_type():
    space = SearchSpace(["trainer.total_steps=interval(10, 1000)", "algo.update_epochs=range(1, 9)",
                         "algo.num_minibatches=choice(2, 4)", "algo.norm_adv=choice(true, false)"])
    proposer = Proposer(space)
    one = {"trainer.total_steps": 100, "algo.update_epochs": 4.0, "algo.num_minibatches": 4.0, "algo.norm_adv": True}
    other = {"trainer.total_steps": 100.0, "algo.update_epochs": 4, "algo.num_minibatches": 4, "algo.norm_adv": True}
    assert proposer.run_key(one) == proposer.run_key(other)
    assert space.canonical(one) == other and type(space.canonical(one)["algo.update_epochs"]) is int
    assert space.canonical({"algo.norm_adv": 1})["algo.norm_adv"] == 1  # 1 is not the option true
    assert proposer.run_key({**other, "trainer.total_steps": 100.5}) != proposer.run_key(other)


def test_mutations_move_only_the_keys_the_parent_reads():
    """A window parent in a space of one design choice, its frames and five keys only paom reads: a
    perturbation moves the design and the frames each with probability 1/2, + 1/8 when the
    at-least-one rule picks it (0.625; 0.19 if all seven dims could move), a resample draws one of those two, and
    the keys a child reads that its parent did not are drawn anew."""
    paom_keys = ["policy.memory.capacity=range(4, 48)", "policy.memory.record_size=choice(8, 16, 32)",
                 "policy.memory.observer=choice(bars, all)", "policy.memory.reflector=choice(merge_similar, evict_oldest)",
                 "policy.memory.read=choice(attention, pooled)"]
    space = SearchSpace(["policy/memory=choice(window, gru, paom)", "policy.memory.frames=range(2, 64)", *paom_keys])
    paom_only = {line.split("=")[0] for line in paom_keys}

    def unread(design):
        return ({"policy.memory.frames"} if design["policy/memory"] != "window" else set()) | \
            (paom_only if design["policy/memory"] != "paom" else set())

    proposer = Proposer(space, unread=unread)
    parent = {"policy/memory": "window", "policy.memory.frames": 16, "policy.memory.capacity": 10,
              "policy.memory.record_size": 8, "policy.memory.observer": "bars", "policy.memory.reflector": "evict_oldest",
              "policy.memory.read": "pooled"}
    rng = np.random.default_rng(4)
    children = [proposer.perturb(parent, rng) for _ in range(2000)]
    assert all(child[key] == parent[key] for child in children if child["policy/memory"] != "paom" for key in paom_only)
    redesigned = np.mean([child["policy/memory"] != "window" for child in children])
    reframed = np.mean([child["policy.memory.frames"] != 16 for child in children])
    assert 0.58 < redesigned < 0.67 and 0.58 < reframed < 0.67
    evaluated = [T(0, 1.0, parent)]
    for _ in range(20):
        child, op, _, _ = proposer.propose(evaluated, 0.0, {"perturb": 1e-9, "resample": 1.0, "crossover": 1e-9}, [parent], rng)
        assert op == "resample" and (child["policy/memory"] == parent["policy/memory"] or
                                     child["policy.memory.frames"] == parent["policy.memory.frames"])
    paoms = [child for child in children if child["policy/memory"] == "paom"]  # the paom keys: drawn anew
    assert len(paoms) > 500
    assert len({child["policy.memory.capacity"] for child in paoms}) > 20
    assert {child["policy.memory.read"] for child in paoms} == {"attention", "pooled"}


def test_the_local_backend_imports_what_every_trial_imports_before_it_forks():
    """A forked trial starts with the sweeper's modules: torch's compiler stack (pulled in by the first
    optimizer) and the training stack are imported once, not by every trial."""
    code = ("import sys; from openclaw_rl.alma.backends import LocalBackend; "
            "before = 'torch._dynamo' in sys.modules or 'openclaw_rl.roll.pipeline' in sys.modules; "
            "LocalBackend(print, (), 1); "
            "print(before, 'torch._dynamo' in sys.modules, 'sympy' in sys.modules, 'openclaw_rl.roll.pipeline' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True", "True"]


def test_alma_expands_designs_at_the_length_their_children_train(tmp_path):
    """Under successive halving a promoted trial is its design trained longer: ALMA's rule never picks it as a
    parent (its children train one length from scratch, and their credit compares them with a parent of that
    length); with inherited weights a child continues its parent's run, so a promoted one may be its parent."""
    from openclaw_rl.alma.search import expandable
    from openclaw_rl.alma.sweeper import ALMASweeperImpl

    trials = [T(1, 0.1, mutation="baseline"), T(2, 0.2, mutation="initial"), T(3, 0.9, parent=2, mutation="promote"),
              T(4, 0.3, parent=1, mutation="perturb")]
    assert [t.id for t in expandable(trials, inherit_weights=False)] == [1, 2, 4]
    assert expandable(trials, inherit_weights=True) == trials
    space = SearchSpace(SPACE[:3])
    archive = Archive(tmp_path / "archive.sqlite")
    designs = space.latin_hypercube(3, np.random.default_rng(0))
    base = archive.add("search", designs[0], space.overrides(designs[0]), "baseline")
    other = archive.add("search", designs[1], space.overrides(designs[1]), "initial")
    promoted = archive.add("search", designs[1], space.overrides(designs[1]), "promote", other)
    for trial, score in ((base, 0.1), (other, 0.2), (promoted, 5.0)):  # the promoted run scores far above the rest
        archive.finish(trial, score, [score])
    sweeper = ALMASweeperImpl(seed=0, promotion={"enabled": True, "eta": 1000.0}, n_initial=2, proposer="alma")
    chosen = {sweeper._next_trial(archive, space, Proposer(space), [], 3 + k).parent for k in range(12)}
    assert promoted not in chosen and chosen <= {base, other}
    archive.close()


def test_inherited_weights_need_alma_s_rule_and_random_is_the_default():
    from openclaw_rl.alma.sweeper import ALMASweeperImpl

    assert ALMASweeperImpl().conf.proposer == "random"
    with pytest.raises(SpaceError, match=r"hydra.sweeper.inherit_weights: children inherit their parents' weights "
                                         r"under ALMA's rule only .*set hydra.sweeper.proposer=alma"):
        ALMASweeperImpl(inherit_weights=True)
    assert ALMASweeperImpl(inherit_weights=True, proposer="alma").conf.inherit_weights
