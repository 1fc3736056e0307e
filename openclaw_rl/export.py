"""``openclaw-export checkpoint=RUN_DIR format=torchscript|onnx [out=PATH]``: a trained policy as one
step function that plain TorchScript (``torch.jit.load``) or ONNX Runtime runs, without openclaw_rl.

The step takes ``obs [N, obs_dim]``, ``state [1, N, state_size]`` and ``episode_start [N]`` (1 where an
episode begins: the memory forgets the last one), all float32, and returns ``action`` (greedy: the
argmax index for discrete actions, the Gaussian mean ``[N, 1]`` for continuous ones, as
``policy.predict(..., deterministic=True)`` gives them), ``logits_or_mean``, ``value`` and
``next_state``, the state to pass with the next observation. The observation normalizer and the memory's
step are inside the graph; a JSON file beside the export (``OUT.json``) gives the shapes, the action
levels and the design, and the same JSON travels inside the file (TorchScript extra file
``openclaw_rl.json``, ONNX metadata ``openclaw_rl``).

Each design's memory is written here as one step in plain tensor operations where its training code
cannot be traced (PAOM's observer runs in numpy; the window's scan uses ``cummax``, which ONNX lacks).
Every export is checked against the eager policy on a short random sequence before it is reported.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from openclaw_rl.atomic import atomic_write
from openclaw_rl.backtest.run import load_policy
from openclaw_rl.errors import CheckpointError, ConfigError
from openclaw_rl.ipa.chunks import chunk_boundaries
from openclaw_rl.memory.designs import Memory, PAOMemory, TraceMemory, WindowMemory, feature_scale, read_settings
from openclaw_rl.rock.config import FEATURES, EnvConfig
from openclaw_rl.rock.markets import REGIME_NAMES
from openclaw_rl.roll.checkpoint import find_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.policy import ActorCritic

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
INPUTS = ("obs", "state", "episode_start")
OUTPUTS = ("action", "logits_or_mean", "value", "next_state")
KEYS = ("checkpoint", "format", "out")
USAGE = "usage: openclaw-export checkpoint=RUN_DIR|CHECKPOINT.pt [format=torchscript|onnx] [out=PATH]"
HELP = f"""{USAGE}

Exports a trained policy's greedy step, (obs [N, obs_dim], state [1, N, state_size], episode_start [N]) ->
(action, logits_or_mean, value, next_state), as TorchScript or ONNX; OUT.json beside it gives the shapes,
the action levels and the memory design.

  checkpoint  a run dir (its checkpoints/last.pt) or a checkpoint file
  format      torchscript (default; torch.jit.load runs it) or onnx (ONNX Runtime; pip install 'openclaw_rl[onnx]')
  out         the file to write (default: RUN_DIR/export/policy.pt or policy.onnx)"""
ONNX_OPSET = 17
INSTALL_ONNX = "pip install 'openclaw_rl[onnx]'"
VERIFY_TOLERANCE = 1e-4  # the export's check against the eager policy: |difference| <= tol * (1 + |eager|)


# --------------------------------------------------------------------------- the step function
class PolicyStep(nn.Module):
    """``(obs [N, D], state [1, N, S], episode_start [N]) -> (action, logits_or_mean, value, next_state)``:
    one greedy step of ``policy`` in tensor operations only (what ``torch.jit.trace`` and
    ``torch.onnx.export`` record)."""

    def __init__(self, policy: ActorCritic):
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor, state: torch.Tensor, episode_start: torch.Tensor):
        policy = self.policy
        if policy.memory.recurrent:
            head, value, next_state = policy.forward_sequence(obs[None], state, episode_start[None])
        else:
            context, last = memory_step(policy.memory, obs, episode_start, state[0], policy.norm)
            head, value, _ = policy.forward_sequence(obs[None], state, episode_start[None], context[None])
            next_state = last[None]
        head = head[0]
        action = head if policy.continuous else head.argmax(-1)
        return action, head, value[0], next_state


def memory_step(memory: Memory, obs: torch.Tensor, start: torch.Tensor, state: torch.Tensor, norm: nn.Module):
    """An observational memory's write for one step: ``obs [N, D]``, ``start [N]``, ``state [N, S]`` ->
    ``(context [N, K], state [N, S])``, as ``memory.write`` gives them for ``T = 1``."""
    if isinstance(memory, WindowMemory):
        return window_step(memory, obs, start, state, norm)
    if isinstance(memory, PAOMemory):
        return paom_step(memory, obs, start, state, norm)
    if type(memory) is Memory:  # none: no context; the (empty) state passes, reset where an episode starts
        return obs[:, :0], torch.where(start[:, None] > 0, torch.zeros_like(state), state)
    if isinstance(memory, TraceMemory):  # its training code is plain tensor operations
        context, last = memory.write(obs[None], start[None], state, norm)
        return context[0], last
    raise ConfigError(f"policy.memory: no export step for the {type(memory).__name__} design")


def window_step(memory: WindowMemory, obs, start, state, norm):
    """``WindowMemory.write`` for one step: the ``k`` previous observations, newest first, zero before
    the episode's start; the state keeps the last ``k`` raw observations and their count."""
    N, D = obs.shape
    k = memory.past
    if k == 0:
        return obs[:, :0], state
    frames = state[:, : k * D].reshape(N, k, D)  # oldest first
    since = torch.where(start > 0, torch.zeros_like(state[:, -1]), state[:, -1]).long()  # steps since the start
    newest_first = frames.index_select(1, torch.arange(k - 1, -1, -1, device=obs.device))
    back = torch.arange(1, k + 1, device=obs.device)
    valid = (since[:, None] >= back[None, :]).to(obs.dtype)
    context = (norm(newest_first) * valid[..., None]).flatten(1)
    count = (since + 1).clamp(max=k).to(state.dtype)
    kept = torch.cat([frames[:, 1:], obs[:, None]], 1).flatten(1)
    return context, torch.cat([kept, count[:, None]], -1)


def paom_step(memory: PAOMemory, obs, start, state, norm):
    """``PAOMemory.write`` for one step (``_scan``, ``_commit``, ``_reflect`` and ``_describe`` in torch,
    every branch computed for every env and selected with ``where``)."""
    N = obs.shape[0]
    C, R, F = memory.capacity, memory.record_floats, len(memory.features)
    begin = start > 0
    state = torch.where(begin[:, None], torch.zeros_like(state), state)  # a new episode forgets the last one
    records = state[:, : C * R].reshape(N, C, R)
    rest = state[:, C * R :]
    acc_sum, acc_sq = rest[:, :F], rest[:, F : 2 * F]
    acc_n, last_pos, step, written = (rest[:, 2 * F + k] for k in range(4))
    position = obs[:, memory.position]
    features = obs.index_select(1, memory.feature_columns)
    ended = chunk_boundaries(memory.chunker, positions=position, prev_positions=last_pos,
                             env_chunk_end=position != last_pos, step_in_episode=step - 1,
                             fixed_k=memory.fixed_k) & ~begin & (acc_n > 0)
    n = acc_n.clamp(min=1.0)[:, None]  # >= 1 wherever a chunk ended
    new = torch.cat([acc_sum / n, acc_sq / n, acc_n[:, None], written[:, None]], 1)
    records = torch.where(ended[:, None, None], _commit(memory, records, new), records)
    written = written + ended.to(state.dtype)
    zero = torch.zeros_like(acc_n)
    acc_sum = torch.where(ended[:, None], zero[:, None], acc_sum) + features
    acc_sq = torch.where(ended[:, None], zero[:, None], acc_sq) + features * features
    acc_n = torch.where(ended, zero, acc_n) + 1.0
    step = step + 1.0
    working = torch.cat([acc_sum / acc_n[:, None], acc_sq / acc_n[:, None], acc_n[:, None], written[:, None]], 1)
    next_state = torch.cat([records.reshape(N, C * R), acc_sum, acc_sq, acc_n[:, None], position[:, None],
                            step[:, None], written[:, None]], 1)
    # _describe: per record (and the working one) its normalized mean and std, log(1 + count), log(1 + age).
    seen = torch.cat([records, working[:, None]], 1)  # [N, C + 1, R]
    mean, square, count, order = seen[..., :F], seen[..., F : 2 * F], seen[..., -2:-1], seen[..., -1:]
    center, scale = feature_scale(norm, memory.feature_columns)
    std = torch.sqrt(torch.clamp(square - mean * mean, min=0.0))
    age = torch.clamp(written[:, None, None] - order, min=0.0)
    described = torch.cat([(mean - center) / scale, std / scale, torch.log1p(count), torch.log1p(age)], -1)
    return described.reshape(N, -1), next_state


def _commit(memory: PAOMemory, records, new):
    """``PAOMemory._commit``: ``new [N, R]`` into the first empty slot, or the one the reflector frees."""
    C = records.shape[1]
    valid = records[..., -2] > 0
    slot = (~valid).to(torch.int64).argmax(1)  # the first empty slot
    full = valid.all(1)
    reflected, freed = _reflect(memory, records)
    records = torch.where(full[:, None, None], reflected, records)
    slot = torch.where(full, freed, slot)
    at = torch.arange(C, device=records.device)[None, :] == slot[:, None]
    return torch.where(at[..., None], new[:, None, :], records)


def _reflect(memory: PAOMemory, records):
    """``PAOMemory._reflect`` for every env: the records after the reflector's rule and the slot it freed."""
    N, C, R = records.shape
    order = records[..., -1]
    if memory.reflector == "evict_oldest" or C == 1:
        return records, order.argmin(1)
    slots = torch.arange(C, device=records.device)
    if memory.reflector == "merge_oldest":  # the two oldest (a stable sort's first two)
        i = order.argmin(1)
        j = torch.where(slots[None, :] == i[:, None], torch.full_like(order, math.inf), order).argmin(1)
    else:  # merge_similar: the closest pair by the records' means and standard deviations
        F = len(memory.features)
        mean, square = records[..., :F], records[..., F : 2 * F]
        summary = torch.cat([mean, torch.sqrt(torch.clamp(square - mean * mean, min=0.0))], -1)
        norms = (summary * summary).sum(-1)
        distance = norms[:, :, None] + norms[:, None, :] - (2.0 * summary) @ summary.transpose(1, 2)
        distance = torch.where((slots[:, None] == slots[None, :])[None], torch.full_like(distance, math.inf), distance)
        pair = distance.reshape(N, C * C).argmin(1)
        i, j = torch.div(pair, C, rounding_mode="floor"), torch.remainder(pair, C)
    a = records.gather(1, i[:, None, None].expand(N, 1, R))[:, 0]
    b = records.gather(1, j[:, None, None].expand(N, 1, R))[:, 0]
    na, nb = a[:, -2:-1], b[:, -2:-1]
    total = na + nb
    stats = (a[:, :-2] * na + b[:, :-2] * nb) / torch.clamp(total, min=1.0)
    merged = torch.cat([stats, total, torch.maximum(a[:, -1:], b[:, -1:])], -1)
    return torch.where((slots[None, :] == i[:, None])[..., None], merged[:, None, :], records), j


# --------------------------------------------------------------------------- what the export says about itself
def observation_names(env: EnvConfig) -> list[str]:
    """The observation's columns: the return window (oldest first), the scalar features, the user's features,
    the regime one-hot."""
    if env.gym_id is not None:
        return [f"obs[{i}]" for i in range(env.obs_dim)]
    returns = [f"return[t-{env.window - 1 - i}]" if i < env.window - 1 else "return[t]" for i in range(env.window)]
    regimes = [f"regime={name}" for name in REGIME_NAMES] if env.observe_regime else []
    return [*returns, *FEATURES[1:], *env.feature_names, *regimes]


def describe(policy: ActorCritic, config: RunConfig, fmt: str, out: Path, checkpoint: Path) -> dict:
    """The JSON written beside (and inside) an export: shapes, actions, the design and how to call it."""
    env, S = config.env, policy.memory.state_size
    spec = {
        "format": fmt,
        "file": out.name,
        "checkpoint": str(checkpoint),
        "memory": config.policy.memory.name,
        "design": {"policy": {**{k: v for k, v in dataclasses.asdict(config.policy).items() if k != "memory"},
                              "memory": read_settings(dataclasses.asdict(config.policy.memory))},
                   "algo": config.algo.name},
        "obs_dim": env.obs_dim,
        "observation": observation_names(env),
        "state_size": S,
        "continuous": env.continuous,
        "inputs": {
            "obs": {"shape": ["N", env.obs_dim], "dtype": "float32", "note": "raw observations, as the env gives them"},
            "state": {"shape": [1, "N", S], "dtype": "float32",
                      "note": "zeros for fresh episodes, then the previous call's next_state"},
            "episode_start": {"shape": ["N"], "dtype": "float32", "note": "1.0 where an episode begins, else 0.0"},
        },
    }
    if env.continuous:
        spec["actions"] = {"kind": "continuous", "meaning": "target position (fraction of equity)",
                           "max_position": env.max_position,
                           "note": "the Gaussian mean, unclipped as predict gives it; the env clips it to "
                                   "[-max_position, max_position]"}
        action = {"shape": ["N", 1], "dtype": "float32"}
        head = {"shape": ["N", 1], "dtype": "float32", "note": "the Gaussian mean"}
    else:
        spec["actions"] = {"kind": "discrete", "levels": list(env.actions),
                           "meaning": "action i targets position levels[i] (fraction of equity)"}
        action = {"shape": ["N"], "dtype": "int64", "note": "argmax of the logits: an index into actions.levels"}
        head = {"shape": ["N", env.action_dim], "dtype": "float32", "note": "the logits"}
    spec["outputs"] = {"action": action, "logits_or_mean": head, "value": {"shape": ["N"], "dtype": "float32"},
                       "next_state": {"shape": [1, "N", S], "dtype": "float32"}}
    spec["input_names"], spec["output_names"] = list(INPUTS), list(OUTPUTS)
    return spec


# --------------------------------------------------------------------------- export and check
def export_policy(checkpoint: str | Path, format: str = "torchscript", out: str | Path | None = None) -> Path:
    """Export the policy of ``checkpoint`` (a run dir or a checkpoint file) as one greedy step function;
    returns the file written (``OUT.json`` beside it describes it). ``out`` defaults to
    ``RUN_DIR/export/policy.pt`` (TorchScript) or ``policy.onnx``."""
    if format not in FORMATS:
        raise ConfigError(f"format: unknown format {format!r}; allowed: {', '.join(FORMATS)}")
    if format == "onnx":
        _need_onnx()
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointError(f"checkpoint={checkpoint}: no such run dir or checkpoint file; give a run dir "
                              "(with checkpoints/last.pt) or a checkpoint .pt file")
    policy, config = load_policy(path, torch.device("cpu"))
    policy.eval().requires_grad_(False)
    source = find_checkpoint(path)
    out = Path(out) if out is not None else default_out(path, format)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = describe(policy, config, format, out, source)
    step = PolicyStep(policy).eval()
    example = example_inputs(policy, config.env, n=3, steps=1)[0]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation, the tracer's notes on shape checks
        if format == "torchscript":
            traced = torch.jit.trace(step, example, check_trace=False)
            torch.jit.save(traced, str(out), _extra_files={"openclaw_rl.json": json.dumps(spec)})
        else:
            _export_onnx(step, example, out, spec)
    try:
        spec["verified_max_abs_diff"] = verify(out, format, policy, config.env)
    except RuntimeError:
        out.unlink()  # not an export to run
        raise
    atomic_write(spec_path(out), json.dumps(spec, indent=2) + "\n")
    return out


def default_out(checkpoint: Path, format: str) -> Path:
    """``RUN_DIR/export/policy.pt`` or ``.onnx``: the run dir given, or the one a checkpoint file sits in."""
    if checkpoint.is_dir():
        run_dir = checkpoint
    else:
        run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run_dir / "export" / f"policy{FORMATS[format]}"


def spec_path(out: Path) -> Path:
    """The JSON beside an export: ``policy.onnx`` -> ``policy.onnx.json``."""
    return out.with_name(out.name + ".json")


def _need_onnx() -> None:
    missing = []
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"format=onnx: {' and '.join(missing)} not installed; {INSTALL_ONNX}")


def _export_onnx(step: PolicyStep, example, out: Path, spec: dict) -> None:
    import onnx

    axes = {"obs": {0: "N"}, "state": {1: "N"}, "episode_start": {0: "N"}, "action": {0: "N"},
            "logits_or_mean": {0: "N"}, "value": {0: "N"}, "next_state": {1: "N"}}
    try:
        with _no_stdout():  # on a failure the exporter prints its whole graph there (torch 2.13 always logs)
            torch.onnx.export(step, example, str(out), input_names=list(INPUTS), output_names=list(OUTPUTS),
                              dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
    except Exception as err:  # an operator ONNX lacks, or the exporter's own limits
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"format=onnx: the {spec['memory']} memory cannot be exported to ONNX ({reason}); "
                          "export it with format=torchscript") from None
    model = onnx.load(str(out))
    model.metadata_props.add(key="openclaw_rl", value=json.dumps(spec))
    onnx.save(model, str(out))


@contextmanager
def _no_stdout():
    """File descriptor 1 to a scratch file (what C++ writes to ``std::cout`` included)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            try:
                yield
            finally:
                os.dup2(saved, 1)
    finally:
        os.close(saved)


def example_inputs(policy: ActorCritic, env: EnvConfig, n: int, steps: int, seed: int = 0) -> list[tuple]:
    """``steps`` random inputs ``(obs, state, episode_start)`` for ``n`` envs (episodes start at step 0 and
    now and then after; the position column takes the action levels, so that chunks end)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(steps, n, env.obs_dim)).astype(np.float32)
    if env.gym_id is None:
        levels = np.asarray([-1.0, 0.0, 1.0] if env.continuous else env.actions, dtype=np.float32)
        obs[..., env.feature("position")] = rng.choice(levels, size=(steps, n))
    starts = (rng.random((steps, n)) < 0.15).astype(np.float32)
    starts[0] = 1.0
    state = policy.initial_state(n)
    return [(torch.from_numpy(obs[t]), state, torch.from_numpy(starts[t])) for t in range(steps)]


def verify(out: Path, format: str, policy: ActorCritic, env: EnvConfig, steps: int = 12, n: int = 5) -> float:
    """Run the export and the eager policy side by side (each carrying its own state) on random inputs;
    the largest difference of logits/means, values and states, or an error past ``VERIFY_TOLERANCE``
    (relative to each value's size, as float32 rounding is)."""
    run = load_step(out, format)
    inputs = example_inputs(policy, env, n, steps, seed=1)
    state = exported_state = inputs[0][1]
    worst, within = 0.0, True
    for obs, _, start in inputs:
        with torch.no_grad():
            head, value, next_state = policy.forward_sequence(obs[None], state, start[None])
        got = run(obs, exported_state, start)
        for want, have in zip((head[0], value[0], next_state), got[1:]):
            if want.numel():
                error = (want - torch.as_tensor(have)).abs()
                worst = max(worst, float(error.max()))
                within &= bool((error <= VERIFY_TOLERANCE * (1.0 + want.abs())).all())
        state, exported_state = next_state, torch.as_tensor(got[3])
    if not within:
        raise RuntimeError(f"{out}: the exported policy differs from the eager one by up to {worst:.3g} (more than "
                           f"{VERIFY_TOLERANCE:g} relative); please report this with the run's config")
    return worst


def load_step(path: Path, format: str):
    """A callable ``(obs, state, episode_start) -> (action, logits_or_mean, value, next_state)`` (torch
    tensors in, tensors or arrays out) that runs an export as a plain user would."""
    if format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's; TorchScript still loads
            module = torch.jit.load(str(path))
        return lambda obs, state, start: module(obs, state, start)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda obs, state, start: session.run(None, {"obs": obs.numpy(), "state": state.numpy(),
                                                        "episode_start": start.numpy()})


# --------------------------------------------------------------------------- command line
def parse(argv: list[str]) -> dict[str, str]:
    """``key=value`` arguments (``checkpoint``, ``format``, ``out``)."""
    args: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not value:
            raise ConfigError(f"{arg}: expected key=value; {USAGE}")
        if key not in KEYS:
            raise ConfigError(f"{key}: unknown key; allowed: {', '.join(KEYS)}; {USAGE}")
        args[key] = value
    if "checkpoint" not in args:
        raise ConfigError(f"checkpoint: missing; {USAGE}")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help", "help") for arg in argv):
        print(HELP)
        return
    try:
        args = parse(argv)
        out = export_policy(args["checkpoint"], args.get("format", "torchscript"), args.get("out"))
    except (ConfigError, CheckpointError) as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    spec = json.loads(spec_path(out).read_text())
    print(f"wrote {out} ({spec['format']}, memory={spec['memory']}, obs [N, {spec['obs_dim']}], "
          f"state [1, N, {spec['state_size']}]) and {spec_path(out)}")


if __name__ == "__main__":
    main()
