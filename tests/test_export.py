"""Deploying a trained policy: ``openclaw_rl.load_policy``, and ``openclaw-export``'s TorchScript and ONNX step
functions, which reproduce ``policy.predict(..., deterministic=True)`` step by step on a real rollout, memory
state and episode starts included, for every memory design."""

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import openclaw_rl
from openclaw_rl import export as exporting
from openclaw_rl.errors import CheckpointError
from openclaw_rl.export import PolicyStep, export_policy, load_step, main
from openclaw_rl.memory import MemoryConfig
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig

try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    HAVE_ONNX = True
except ImportError:
    HAVE_ONNX = False

TINY = ["env.n_envs=8", "env.window=8", "env.episode_bars=30", "trainer.rollout_steps=16", "trainer.total_steps=128",
        "algo.num_minibatches=2", "eval.n_envs=4", "trainer.progress=log"]
RUNS = {
    "none": [],
    "window": ["policy/memory=window"],
    "trace": ["policy/memory=trace"],
    "gru": ["policy/memory=gru", "policy.memory.hidden=16"],
    "paom": ["policy/memory=paom", "policy.memory.capacity=4"],
    "continuous": ["env.continuous=true", "policy/memory=paom", "policy.memory.capacity=3",
                   "policy.memory.reflector=merge_oldest"],
}
STEPS, ENVS = 50, 20  # 1,000 observations
ATOL = 1e-5
FORMATS = ["torchscript", pytest.param("onnx", marks=pytest.mark.skipif(not HAVE_ONNX, reason="pip install 'openclaw_rl[onnx]'"))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained run per memory design (and a continuous-action one): name -> run dir."""
    root = tmp_path_factory.mktemp("runs")
    return {name: openclaw_rl.learn([*TINY, *overrides], run_dir=root / name, verbose=False).run_dir
            for name, overrides in RUNS.items()}


def rollout(env: EnvConfig, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``STEPS`` observations of ``ENVS`` markets under random actions (so positions change and chunks end):
    ``obs [T, N, D]`` and ``starts [T, N]``, 1 at the rollout's first step, where an episode ended (30-bar
    episodes) and, now and then, where a user restarts an agent mid-episode."""
    envs = MarketVecEnv(config=dataclasses.replace(env, n_envs=ENVS))
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    observations, starts, start = [], [], np.ones(ENVS, dtype=np.float32)
    for _ in range(STEPS):
        observations.append(obs)
        starts.append(np.maximum(start, rng.random(ENVS) < 0.03).astype(np.float32))
        if env.continuous:
            actions = rng.uniform(-1.0, 1.0, size=(ENVS, 1)).astype(np.float32)
        else:
            actions = rng.integers(0, env.action_dim, size=ENVS)
        obs, _, terminated, truncated, _ = envs.step(actions)
        start = (terminated | truncated).astype(np.float32)
    return np.array(observations, dtype=np.float32), np.array(starts)


def eager(policy: ActorCritic, obs: np.ndarray, starts: np.ndarray) -> dict[str, list]:
    """``policy.predict`` step by step (its own state carried), with the logits/means and values of
    ``forward_sequence`` at the same state, and the state after each step."""
    out = {"action": [], "head": [], "value": [], "state": []}
    state = policy.initial_state(obs.shape[1])
    carried = None
    for t in range(len(obs)):
        with torch.no_grad():
            head, value, state = policy.forward_sequence(torch.from_numpy(obs[t])[None], state,
                                                         torch.from_numpy(starts[t])[None])
        action, carried = policy.predict(obs[t], carried, episode_start=starts[t], deterministic=True)
        out["action"].append(action)
        out["head"].append(head[0].numpy())
        out["value"].append(value[0].numpy())
        out["state"].append(state.numpy())
        if policy.memory.state_size:
            np.testing.assert_array_equal(carried.numpy(), state.numpy())  # predict carries the state itself
        else:
            assert carried is None
    return out


def exported(run, n: int, state_size: int, obs: np.ndarray, starts: np.ndarray) -> dict[str, list]:
    """The export's step function over the same sequence, carrying its own ``next_state``."""
    out = {"action": [], "head": [], "value": [], "state": []}
    state = torch.zeros(1, n, state_size)
    for t in range(len(obs)):
        with torch.no_grad():
            returned = run(torch.from_numpy(obs[t]), state, torch.from_numpy(starts[t]))
        action, head, value, state = (torch.as_tensor(x) for x in returned)
        for key, value_ in zip(("action", "head", "value", "state"), (action, head, value, state)):
            out[key].append(value_.numpy())
    return out


def differences(policy: ActorCritic, want: dict, got: dict) -> dict[str, float]:
    """Asserts the export acts as ``predict`` does; returns the largest differences seen."""
    head, head_got = np.array(want["head"]), np.array(got["head"])
    action, action_got = np.array(want["action"]), np.array(got["action"])
    diff = {"head": float(np.abs(head - head_got).max()), "value": float(np.abs(np.array(want["value"]) - np.array(got["value"])).max()),
            "state": float(np.abs(np.array(want["state"]) - np.array(got["state"])).max()) if policy.memory.state_size else 0.0}
    assert diff["head"] <= ATOL and diff["value"] <= ATOL and diff["state"] <= ATOL, diff
    if policy.continuous:
        assert action_got.shape == action.shape == (STEPS, ENVS, 1) and action_got.dtype == np.float32
        diff["action"] = float(np.abs(action - action_got).max())
        assert diff["action"] <= ATOL
    else:
        assert action_got.shape == action.shape == (STEPS, ENVS) and action_got.dtype == np.int64
        top2 = np.sort(head, -1)[..., -2:]
        clear = top2[..., 1] - top2[..., 0] > 1e-4  # a tie within rounding may go either way
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(action_got[clear], action[clear])
        diff["action_mismatches"] = int((action_got != action).sum())
    return diff


def test_load_policy_is_public_and_predict_carries_every_designs_memory(runs):
    for name, run_dir in runs.items():
        policy = openclaw_rl.load_policy(run_dir)
        assert isinstance(policy, ActorCritic) and not policy.training
        assert next(policy.parameters()).device == torch.device("cpu")
        trained = openclaw_rl.load_policy(run_dir / "checkpoints" / "last.pt")  # a checkpoint file loads too
        assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), trained.state_dict().values()))
        obs, starts = rollout(dataclasses.replace(openclaw_rl.make_config([*TINY, *RUNS[name]]).env))
        steps = eager(policy, obs, starts)  # predict's own state equals forward_sequence's, step by step
        # ... and one pass over the whole sequence (training's path) gives the same logits/means: the state carried
        # by predict is the memory's, and episode_start resets it.
        with torch.no_grad():
            head, _, _ = policy.forward_sequence(torch.from_numpy(obs), policy.initial_state(ENVS), torch.from_numpy(starts))
        np.testing.assert_allclose(np.array(steps["head"]), head.numpy(), atol=ATOL, err_msg=name)
        if policy.memory.state_size:  # episode_start forgets: from a used state, the steps of a fresh one
            fresh, used = None, torch.as_tensor(steps["state"][-1])
            for t in range(5):
                start = np.full(ENVS, float(t == 0), dtype=np.float32)
                action, fresh = policy.predict(obs[t], fresh, start, deterministic=True)
                again, used = policy.predict(obs[t], used, start, deterministic=True)
                np.testing.assert_array_equal(action, again, err_msg=name)
            with torch.no_grad():
                starts = torch.zeros(5, ENVS)
                starts[0] = 1.0
                fresh = policy.forward_sequence(torch.from_numpy(obs[:5]), policy.initial_state(ENVS), starts)[0]
                used = policy.forward_sequence(torch.from_numpy(obs[:5]), torch.as_tensor(steps["state"][-1]), starts)[0]
            np.testing.assert_allclose(fresh.numpy(), used.numpy(), atol=ATOL, err_msg=name)


def test_load_policy_names_a_missing_run():
    with pytest.raises(CheckpointError, match=r"^nowhere: no such run dir or checkpoint file; give a run dir"):
        openclaw_rl.load_policy("nowhere")
    from openclaw_rl.backtest.run import load_policy  # the backtest, benchmark and memory CLIs' loader stays

    assert callable(load_policy)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(RUNS))
def test_the_export_acts_as_predict_step_by_step(runs, name, fmt, tmp_path):
    policy = openclaw_rl.load_policy(runs[name])
    out = export_policy(runs[name], fmt, tmp_path / f"policy.{fmt}")
    spec = json.loads((tmp_path / f"policy.{fmt}.json").read_text())
    config = openclaw_rl.make_config([*TINY, *RUNS[name]])
    assert spec["state_size"] == policy.memory.state_size and spec["memory"] == config.policy.memory.name
    assert spec["input_names"] == ["obs", "state", "episode_start"]
    assert spec["output_names"] == ["action", "logits_or_mean", "value", "next_state"]
    assert spec["continuous"] == policy.continuous and spec["verified_max_abs_diff"] <= 1e-4
    assert spec["obs_dim"] == config.env.obs_dim == len(spec["observation"])
    assert spec["actions"].get("levels") == (None if policy.continuous else list(config.env.actions))
    obs, starts = rollout(config.env)
    run = load_step(out, fmt)
    diff = differences(policy, eager(policy, obs, starts), exported(run, ENVS, policy.memory.state_size, obs, starts))
    one = exported(run, 1, policy.memory.state_size, obs[:3, :1], starts[:3, :1])  # N is free: one env too
    np.testing.assert_allclose(np.array(one["head"]), eager(policy, obs[:3, :1], starts[:3, :1])["head"], atol=ATOL)
    print(f"\n{name} {fmt}: {diff}")


@pytest.mark.parametrize("memory", [
    MemoryConfig("paom", capacity=3, reflector="evict_oldest", read="both", observer="all"),
    MemoryConfig("paom", capacity=2, reflector="merge_similar", read="pooled", chunker="fixed", fixed_k=3),
    MemoryConfig("paom", capacity=1, chunker="step", heads=2),
    MemoryConfig("paom", capacity=4, chunker="episode"),
    MemoryConfig("window", frames=1),
    MemoryConfig("trace", traces=1, half_life=4.0),
], ids=["paom-evict-both-all", "paom-similar-pooled-fixed", "paom-1-step-2heads", "paom-episode", "window-1", "trace-1"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_every_variant_of_a_design_traces_to_the_same_step(memory):
    """Reflectors, reads, observers and chunkers: the traced step (untrained weights) acts as predict."""
    env = EnvConfig(window=8, episode_bars=30)
    torch.manual_seed(0)
    policy = ActorCritic.for_env(env, PolicyConfig(memory=memory)).eval()
    obs, starts = rollout(env, seed=4)
    policy.norm.update(torch.from_numpy(obs))  # statistics of their own, as a trained policy's
    state = policy.initial_state(3)
    with torch.no_grad():
        traced = torch.jit.trace(PolicyStep(policy), (torch.from_numpy(obs[0, :3]), state, torch.ones(3)), check_trace=False)
    differences(policy, eager(policy, obs, starts), exported(traced, ENVS, policy.memory.state_size, obs, starts))


def test_the_command_line_writes_an_export_that_runs_without_openclaw_rl(runs, tmp_path):
    script = Path(sys.executable).parent / "openclaw-export"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "openclaw_rl.export"]  # not reinstalled yet
    out = subprocess.run([*command, f"checkpoint={runs['gru']}", f"out={tmp_path / 'gru.pt'}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"wrote {tmp_path / 'gru.pt'} (torchscript, memory=gru, obs [N, 13], state [1, N, 16])")
    spec = json.loads((tmp_path / "gru.pt.json").read_text())
    plain = ("import sys, torch; m = torch.jit.load(sys.argv[1]); "
             "a, h, v, s = m(torch.zeros(4, 13), torch.zeros(1, 4, 16), torch.ones(4)); "
             "assert a.shape == (4,) and h.shape == (4, 3) and v.shape == (4,) and s.shape == (1, 4, 16); "
             "assert not any(k.startswith('openclaw_rl') for k in sys.modules); print('ok')")
    ran = subprocess.run([sys.executable, "-c", plain, str(tmp_path / "gru.pt")], capture_output=True, text=True, timeout=120)
    assert ran.stdout.strip() == "ok", ran.stderr
    assert spec["format"] == "torchscript" and spec["actions"]["levels"] == [-1.0, 0.0, 1.0]
    extra = {"openclaw_rl.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's, from PyTorch 2.9 on; TorchScript still loads
        torch.jit.load(str(tmp_path / "gru.pt"), _extra_files=extra)
    assert json.loads(extra["openclaw_rl.json"])["state_size"] == 16  # the spec travels inside the file
    default = subprocess.run([*command, f"checkpoint={runs['none']}/checkpoints/last.pt"], capture_output=True, text=True, timeout=120)
    assert default.returncode == 0 and (runs["none"] / "export" / "policy.pt").is_file(), default.stderr
    if HAVE_ONNX:
        out = subprocess.run([*command, f"checkpoint={runs['paom']}", "format=onnx"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        plain = ("import sys, numpy as np, onnxruntime as ort; s = ort.InferenceSession(sys.argv[1]); "
                 "a, h, v, n = s.run(None, {'obs': np.zeros((5, 13), np.float32), 'state': np.zeros((1, 5, 42), np.float32), "
                 "'episode_start': np.ones(5, np.float32)}); assert a.shape == (5,) and n.shape == (1, 5, 42); "
                 "assert 'openclaw_rl' in s.get_modelmeta().custom_metadata_map; print('ok')")
        ran = subprocess.run([sys.executable, "-c", plain, str(runs["paom"] / "export" / "policy.onnx")],
                             capture_output=True, text=True, timeout=120)
        assert ran.stdout.strip() == "ok", ran.stderr


def one_line_error(argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = str(exit_.value.code)
    assert "\n" not in message
    return message


def test_errors_are_one_line_that_names_the_fix(runs, tmp_path, monkeypatch, capsys):
    assert one_line_error([f"checkpoint={tmp_path / 'nowhere'}"]) == (
        f"CheckpointError: checkpoint={tmp_path / 'nowhere'}: no such run dir or checkpoint file; give a run dir "
        "(with checkpoints/last.pt) or a checkpoint .pt file")
    assert one_line_error([]).startswith("ConfigError: checkpoint: missing; usage: openclaw-export checkpoint=")
    assert one_line_error([f"checkpoint={runs['none']}", "format=tflite"]) == (
        "ConfigError: format: unknown format 'tflite'; allowed: torchscript, onnx")
    assert one_line_error(["checkpoint"]).startswith("ConfigError: checkpoint: expected key=value; usage:")
    assert one_line_error([f"checkpoint={runs['none']}", "fromat=onnx"]).startswith(
        "ConfigError: fromat: unknown key; allowed: checkpoint, format, out;")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_line_error([f"checkpoint={empty}"]) == f"CheckpointError: {empty}/checkpoints/last.pt: no such checkpoint"
    main(["--help"])
    assert capsys.readouterr().out.startswith("usage: openclaw-export checkpoint=RUN_DIR")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    assert one_line_error([f"checkpoint={runs['none']}", "format=onnx"]).endswith(
        "onnxruntime not installed; pip install 'openclaw_rl[onnx]'")


@pytest.mark.skipif(not HAVE_ONNX, reason="pip install 'openclaw_rl[onnx]'")
def test_a_design_onnx_cannot_express_says_so(runs, tmp_path, monkeypatch, capfd):
    """The window's training code scans with cummax, which ONNX lacks (the export writes its step without it)."""
    def training_write(memory, obs, start, state, norm):
        context, last = memory.write(obs[None], start[None], state, norm)
        return context[0], last

    monkeypatch.setattr(exporting, "window_step", training_write)
    message = one_line_error([f"checkpoint={runs['window']}", "format=onnx", f"out={tmp_path / 'w.onnx'}"])
    assert message.startswith("ConfigError: format=onnx: the window memory cannot be exported to ONNX (Exporting the "
                              "operator 'aten::cummax' to ONNX opset version 17 is not supported")
    assert message.endswith("; export it with format=torchscript")
    assert capfd.readouterr().out == ""  # not the exporter's graph dump either
