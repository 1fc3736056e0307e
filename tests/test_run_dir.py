"""Run dirs: a finished run is never silently replaced, overwrite starts clean, a resume keeps every
TensorBoard step once, one HParams session per run, rounding of total_steps, CPU threads."""

import dataclasses
import json
import logging
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from openclaw_rl.rock import ConfigError
from openclaw_rl.roll import cores, trainer
from openclaw_rl.roll.checkpoint import checkpoint_path, load_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.learner import Learner
from openclaw_rl.roll.pipeline import run
from openclaw_rl.roll.run_dir import hparams

B = 8 * 16  # env steps per update


def config(**sections):
    values = {"env": {"window": 8, "episode_bars": 30, "n_envs": 8, "regime": "bull"}, "eval": {"n_envs": 4},
              "trainer": {"progress": "log", "rollout_steps": 16, "total_steps": 4 * B}, "algo": {"num_minibatches": 2}}
    for key, value in sections.items():
        values[key] = {**values.get(key, {}), **value}
    return RunConfig.from_mapping(values)


def with_trainer(c, **values):
    return dataclasses.replace(c, trainer=dataclasses.replace(c.trainer, **values))


def events(run_dir):
    accumulator = EventAccumulator(str(run_dir / "tb"))
    accumulator.Reload()
    return accumulator


def steps(run_dir) -> dict[str, list[int]]:
    found = events(run_dir)
    return {tag: [e.step for e in found.Scalars(tag)] for tag in found.Tags()["scalars"]}


def test_a_finished_run_is_refused_then_overwrite_starts_clean(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="openclaw_rl")
    run(config(), tmp_path)
    assert f"run dir: {tmp_path}" in caplog.text
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"hydra\.run\.dir=.*: already holds a run .*trainer\.resume=auto.*trainer\.overwrite=true"):
        run(config(), tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == written  # untouched
    with pytest.raises(ConfigError, match="give one of them"):
        run(with_trainer(config(), overwrite=True, resume="auto"), tmp_path)
    run(with_trainer(config(), overwrite=True, total_steps=2 * B), tmp_path)
    assert load_checkpoint(checkpoint_path(tmp_path))["update"] == 2  # a new run, not a continuation
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1  # the old events are gone
    assert steps(tmp_path)["losses/policy_loss"] == [B, 2 * B]


def test_outputs_of_a_run_that_never_checkpointed_are_refused_and_resume_auto_starts_over(tmp_path):
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "events.out.tfevents.1.host.1.1").write_bytes(b"")
    with pytest.raises(ConfigError, match="a run that never checkpointed"):
        run(config(), tmp_path)
    run(with_trainer(config(), resume="auto"), tmp_path)
    assert not (tmp_path / "tb" / "events.out.tfevents.1.host.1.1").exists()


def test_after_a_resume_every_logged_step_appears_once(tmp_path, monkeypatch):
    """Interrupted during update 6 (checkpoint at 4, update 5 logged after it), resumed, then resumed
    again when finished: the same steps per tag as an uninterrupted run, each once."""
    c = config(trainer={"total_steps": 8 * B, "checkpoint_every": 2}, eval={"every": 4})
    run(c, tmp_path / "straight")
    straight = steps(tmp_path / "straight")
    assert straight["losses/policy_loss"] == [B * u for u in range(1, 9)] and straight["eval/log_return"] == [4 * B, 8 * B]
    real_update = Learner.update

    def interrupted(self, batch, update, num_updates):
        if update == 5:
            raise KeyboardInterrupt
        return real_update(self, batch, update, num_updates)

    monkeypatch.setattr(Learner, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(c, tmp_path / "resumed")
    assert load_checkpoint(checkpoint_path(tmp_path / "resumed"))["update"] == 4
    assert steps(tmp_path / "resumed")["losses/policy_loss"] == [B * u for u in range(1, 6)]  # 5: past the checkpoint
    monkeypatch.setattr(Learner, "update", real_update)
    run(with_trainer(c, resume="auto"), tmp_path / "resumed")
    assert steps(tmp_path / "resumed") == straight
    run(with_trainer(c, resume="auto"), tmp_path / "resumed")  # finished already: evaluates, logs nothing twice
    assert steps(tmp_path / "resumed") == straight
    reports = [json.loads(line)["update"] for line in (tmp_path / "resumed" / "reports.jsonl").read_text().splitlines()]
    assert reports == [4, 8]


def test_one_hparams_session_per_run_with_every_key_and_no_fake_nulls(tmp_path):
    c = config(env={"market": {"kind": "gbm"}, "regime": None}, algo={"target_kl": None})
    result = run(c, tmp_path)
    assert [p for p in (tmp_path / "tb").iterdir() if p.is_dir()] == []  # no second run dir
    found = events(tmp_path)
    content = found.PluginTagToContent(metadata.PLUGIN_NAME)
    assert set(content) == {metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG}  # no experiment: see write_hparams
    values = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG]).hparams
    assert values["policy.hidden"].string_value == "[64, 64]"
    assert values["env.market.kind"].string_value == "gbm" and values["env.market.sigma"].number_value > 0
    assert values["env.data.sampling"].string_value == "random"  # env.data.* flattened
    assert values["env.continuous"].WhichOneof("kind") == "bool_value" and values["env.n_envs"].number_value == 8
    assert not {"algo.target_kl", "resample.teacher", "env.data.path", "env.regime"} & set(values)  # nulls left out
    assert not any(v.string_value in ("None", "null") for v in values.values())
    assert set(hparams(dataclasses.asdict(c))) == set(values)
    assert found.Scalars("hparam/objective")[0].value == pytest.approx(result.objective)


def test_total_steps_round_up_to_whole_rollouts_and_the_log_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="openclaw_rl")
    result = run(config(trainer={"total_steps": 2 * B + 1}), tmp_path)
    assert f"trainer.total_steps={2 * B + 1} is not a multiple of one rollout ({B} steps): training {3 * B}" in caplog.text
    assert len(result.history) == 3 and load_checkpoint(checkpoint_path(tmp_path))["global_step"] == 3 * B


def threads_of_updates(monkeypatch) -> list[int]:
    """The torch thread count each ``Learner.update`` ran on, appended as the run goes."""
    seen, real_update = [], Learner.update

    def update(self, batch, update, num_updates):
        seen.append(torch.get_num_threads())
        return real_update(self, batch, update, num_updates)

    monkeypatch.setattr(Learner, "update", update)
    return seen


def test_threads_auto_follows_the_cores_other_processes_leave_free(tmp_path, monkeypatch):
    """auto: as many threads as free cores, read before the first update and after each; a fixed number stays."""
    monkeypatch.setattr(trainer, "free_threads", cores.free_threads)
    monkeypatch.setattr(cores, "TORCH_THREADS", 4)
    monkeypatch.setattr(cores, "CORES", 4)
    assert [cores.free_threads(o) for o in (None, 0.0, 0.3, 1.0, 2.9, 3.5, 8.0)] == [1, 4, 3, 3, 1, 1, 1]
    readings = iter([0.0, 2.0, 2.0, 0.1])  # an idle machine, busy during the second and third updates, idle again
    monkeypatch.setattr(cores.OtherLoad, "read", lambda self: next(readings))
    monkeypatch.setattr(cores.OtherLoad, "age", lambda self: 1.0)  # the build took long enough to read from
    seen = threads_of_updates(monkeypatch)
    before = torch.get_num_threads()
    run(config(trainer={"threads": "auto", "total_steps": 3 * B}), tmp_path / "auto")
    assert seen == [4, 2, 2] and torch.get_num_threads() == before
    assert trainer.resolve_threads("auto", torch.device("cuda")) == (1, None)
    assert trainer.resolve_threads("3", torch.device("cpu")) == (3, None)
    monkeypatch.setattr(cores.OtherLoad, "age", lambda self: 0.01)  # too short a build to read from
    assert trainer.resolve_threads("auto", torch.device("cpu"))[0] == 1


def test_threads_auto_keeps_the_count_the_compiling_update_ran_on(tmp_path, monkeypatch):
    """With trainer.compile the first update compiles, its compiler's worker processes busy: auto does not read
    them as another process's load (torch would compile again for a new count); later updates follow the load."""
    monkeypatch.setattr(trainer, "free_threads", cores.free_threads)
    monkeypatch.setattr(cores, "TORCH_THREADS", 4)
    monkeypatch.setattr(cores, "CORES", 4)
    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn)  # what is compiled does not matter here
    readings = iter([0.0, 3.0, 0.0, 2.0, 0.0])  # the build; the compiling update; an idle one; a busy one; the last
    monkeypatch.setattr(cores.OtherLoad, "read", lambda self: next(readings))
    monkeypatch.setattr(cores.OtherLoad, "age", lambda self: 1.0)
    seen = threads_of_updates(monkeypatch)
    run(config(trainer={"threads": "auto", "total_steps": 4 * B, "compile": True}), tmp_path / "compiled")
    assert seen == [4, 4, 4, 2]


def test_the_machine_reading_sees_a_busy_process():
    """One process spinning on a core reads as about one busy core (this process's own work is not counted)."""
    load = cores.OtherLoad()
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        load.read()
        sum(i * i for i in range(2_000_000))  # this process busy too
        assert load.read() > 0.6
    finally:
        busy.kill()


def test_threads_fixed_and_the_run_restores_the_setting(tmp_path, monkeypatch):
    for bad in ("0", "-1", "many", "1.5"):
        with pytest.raises(ConfigError, match="trainer.threads: must be auto or a positive integer"):
            run(config(trainer={"threads": bad}), tmp_path)
    seen = threads_of_updates(monkeypatch)
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    run(config(trainer={"threads": str(other), "total_steps": 2 * B}), tmp_path)
    assert seen == [other, other] and torch.get_num_threads() == before


def test_tensorboard_shows_one_session_per_run_and_types_each_column_over_all_runs(tmp_path):
    """What the HParams dashboard reads: a key null in one run and set in another stays numeric."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context

    run(config(), tmp_path / "a")
    run(config(algo={"target_kl": 0.02}), tmp_path / "b")
    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(tmp_path))
    runs.Reload()
    board = backend_context.Context(base_plugin.TBContext(
        logdir=str(tmp_path), multiplexer=runs, data_provider=data_provider.MultiplexerDataProvider(runs, str(tmp_path))))
    request = context.RequestContext()
    sessions = board.hparams_metadata(request, "")
    assert sorted(sessions) == ["a/tb", "b/tb"]
    experiment = board.experiment_from_metadata(request, "", True, sessions, board.hparams_from_data_provider(request, "", None))
    types = {info.name: api_pb2.DataType.Name(info.type) for info in experiment.hparam_infos}
    assert types["algo.target_kl"] == "DATA_TYPE_FLOAT64" and types["env.continuous"] == "DATA_TYPE_BOOL"
    assert "hparam/objective" in {metric.name.tag for metric in experiment.metric_infos}
