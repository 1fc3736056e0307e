"""Memory designs: hand-computed PAOM records and reflector rules, frame stacks, the learner's chunks,
per-env resets, step-by-step == whole-sequence, config and checkpoint errors, exact resume."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from openclaw_rl.benchmark.tasks import TASKS, select
from openclaw_rl.configs import compose_config
from openclaw_rl.ipa.chunks import chunk_boundaries
from openclaw_rl.memory import MemoryConfig, build_memory
from openclaw_rl.memory.designs import merge_records
from openclaw_rl.rock import MarketVecEnv
from openclaw_rl.rock.config import ConfigError, EnvConfig
from openclaw_rl.rock.markets import REGIME_NAMES
from openclaw_rl.roll.checkpoint import CheckpointError, load_checkpoint
from openclaw_rl.roll.config import RunConfig
from openclaw_rl.roll.memory_eval import credit_stats, memory_report
from openclaw_rl.roll.policy import ActorCritic, PolicyConfig
from openclaw_rl.roll.trainer import build, run_training

ENV = EnvConfig(window=2, episode_bars=50)
R, V, P = ENV.feature("return"), ENV.feature("volatility"), ENV.feature("position")


def observations(returns, positions):
    """``[T, 1, obs_dim]``: one env whose newest return and position are given per step, volatility 1."""
    obs = torch.zeros(len(returns), 1, ENV.obs_dim)
    obs[:, 0, R] = torch.tensor(returns, dtype=torch.float32)
    obs[:, 0, V] = 1.0
    obs[:, 0, P] = torch.tensor(positions, dtype=torch.float32)
    return obs


def records(memory, scanned_row, open_chunk=False):
    """One step's records (or its open chunk's working record) as ``{order: (mean return, mean square
    return, count)}``."""
    rows = scanned_row[:-1].reshape(memory.capacity + 1, memory.record_floats)
    rows = rows[-1:] if open_chunk else rows[:-1]
    F = len(memory.features)
    return {int(r[-1]): (round(float(r[0]), 6), round(float(r[F]), 6), int(r[-2])) for r in rows if r[-2] > 0}


def paom(**config):
    return build_memory(MemoryConfig("paom", **config), ENV)


def test_paom_writes_one_record_per_chunk_with_the_chunks_statistics():
    memory = paom(capacity=4)
    # Positions the observations show: the order of step 1 (0 -> 1) and of step 3 (1 -> -1) end chunks.
    obs = observations([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0, 0, 1, 1, -1, -1])
    starts = torch.tensor([[1.0], [0], [0], [0], [0], [0]])
    context, _ = memory.scan(obs, starts, torch.zeros(1, memory.state_size))
    assert records(memory, context[1, 0]) == {}  # the first chunk is still open: a working record only
    assert records(memory, context[1, 0], open_chunk=True) == {0: (1.5, 2.5, 2)}
    assert records(memory, context[2, 0]) == {0: (1.5, 2.5, 2)}  # steps 0-1: mean (1+2)/2, mean square (1+4)/2
    assert records(memory, context[3, 0], open_chunk=True) == {1: (3.5, 12.5, 2)}  # steps 2-3, not yet ended
    assert records(memory, context[4, 0]) == {0: (1.5, 2.5, 2), 1: (3.5, 12.5, 2)}
    assert context[4, 0, -1] == 2  # chunks written


@pytest.mark.parametrize("reflector,expected", [
    # records of one-step chunks with returns 0, 10, 0.5; a fourth (7) arrives at a full memory of 3
    ("merge_similar", {2: (0.25, 0.125, 2), 1: (10.0, 100.0, 1), 3: (7.0, 49.0, 1)}),  # 0 and 0.5 are closest
    ("merge_oldest", {1: (5.0, 50.0, 2), 2: (0.5, 0.25, 1), 3: (7.0, 49.0, 1)}),  # the two oldest: 0 and 10
    ("evict_oldest", {1: (10.0, 100.0, 1), 2: (0.5, 0.25, 1), 3: (7.0, 49.0, 1)}),  # 0 is dropped
])
def test_the_reflector_makes_room_by_its_rule(reflector, expected):
    memory = paom(capacity=3, reflector=reflector)
    obs = observations([0.0, 10.0, 0.5, 7.0, 1.0], [0, 1, 0, 1, 0])  # every step's order ends a chunk
    starts = torch.tensor([[1.0], [0], [0], [0], [0]])
    context, _ = memory.scan(obs, starts, torch.zeros(1, memory.state_size))
    assert records(memory, context[3, 0]) == {0: (0.0, 0.0, 1), 1: (10.0, 100.0, 1), 2: (0.5, 0.25, 1)}
    assert records(memory, context[4, 0]) == expected


def test_merged_records_hold_the_statistics_of_both_chunks():
    a = np.array([2.0, 5.0, 3.0, 0.0])  # mean 2, mean square 5 over 3 steps, order 0
    b = np.array([4.0, 17.0, 1.0, 4.0])
    # union of 4 steps: mean (3*2 + 4) / 4, mean square (3*5 + 17) / 4; the newer order
    np.testing.assert_allclose(merge_records(a, b), [2.5, 8.0, 4.0, 4.0])


def test_paom_forgets_where_an_episode_starts_and_only_there():
    memory = paom(capacity=4)
    one = observations([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1])
    obs = torch.cat([one, one], 1)
    starts = torch.tensor([[1.0, 1.0], [0, 0], [0, 0], [1.0, 0]])  # env 0 starts again at step 3
    context, _ = memory.scan(obs, starts, torch.zeros(2, memory.state_size))
    assert records(memory, context[3, 0]) == {}
    assert records(memory, context[3, 1]) == {0: (1.0, 1.0, 1), 1: (2.0, 4.0, 1), 2: (3.0, 9.0, 1)}


@pytest.mark.parametrize("chunker,fixed_k", [("trade", 8), ("fixed", 3), ("step", 8)])
def test_paom_records_the_learners_chunks(chunker, fixed_k):
    config = RunConfig.from_mapping({"env": {"n_envs": 8, "window": 4, "episode_bars": 30},
                                     "policy": {"memory": {"name": "paom", "capacity": 8}},
                                     "ipa": {"chunker": chunker, "fixed_k": fixed_k},
                                     "trainer": {"rollout_steps": 80}, "algo": {"num_minibatches": 2}})
    assert config.policy.memory.chunker == chunker  # null follows ipa.chunker
    torch.manual_seed(0)
    _, policy, collector, _ = build(config, torch.device("cpu"))
    collector.collect(7, version=0)  # start mid-episode: the state carries over
    batch, _ = collector.collect(80, version=0)
    seen, _ = policy.memory.scan(batch.obs, batch.starts, batch.initial_state[0])
    written = seen[..., -1]
    ends = chunk_boundaries(chunker, positions=batch.positions, prev_positions=batch.prev_positions,
                            env_chunk_end=batch.env_chunk_end, step_in_episode=batch.step_in_episode, fixed_k=fixed_k)
    same_episode = batch.starts[1:] == 0
    assert ends.any()
    torch.testing.assert_close((written[1:] - written[:-1])[same_episode], ends[:-1][same_episode].float())


def test_window_stacks_the_previous_observations_of_the_episode_only():
    memory = build_memory(MemoryConfig("window", frames=3), ENV)
    obs = torch.arange(5.0)[:, None, None].expand(5, 1, ENV.obs_dim).clone() + 1  # step t shows t + 1 everywhere
    starts = torch.tensor([[1.0], [0], [0], [1.0], [0]])
    no_norm = torch.nn.Identity()
    context, _ = memory.write(obs, starts, torch.zeros(1, memory.state_size), no_norm)
    frames = context[:, 0].reshape(5, 2, -1)  # [step, frames back, features]
    assert (frames == frames[..., :1]).all()  # a frame is one whole observation
    assert frames[..., 0].tolist() == [[0, 0], [1, 0], [2, 1], [0, 0], [4, 0]]  # zeros before the episode's start
    # The same steps in two calls (the state carries the frames) give the same contexts.
    first, state = memory.write(obs[:2], starts[:2], torch.zeros(1, memory.state_size), no_norm)
    second, _ = memory.write(obs[2:], starts[2:], state, no_norm)
    torch.testing.assert_close(torch.cat([first, second]), context)


def test_trace_reads_each_episodes_weighted_mean_as_a_z_statistic():
    """Hand-computed, one feature at half-lives 2 and 1/2 (a = 2^(-1/2), 2^(-2)); an episode starts at
    step 0 and again at step 3. After n steps a trace is sum_s a^(t-s) x_s / sum_s a^(t-s), read times
    sqrt((sum w)^2 / sum w^2)."""
    memory = build_memory(MemoryConfig("trace", half_life=2.0, traces=2), ENV)
    values = [1.0, 4.0, -2.0, 3.0, 5.0]
    obs = torch.tensor(values)[:, None, None].expand(5, 1, ENV.obs_dim).clone()
    starts = torch.tensor([[1.0], [0], [0], [1.0], [0]])
    no_norm = torch.nn.Identity()
    context, state = memory.write(obs, starts, torch.zeros(1, memory.state_size), no_norm)
    read = context[:, 0].reshape(5, 2, -1)  # [step, trace, feature]
    assert (read == read[..., :1]).all()  # every feature traced alike

    def expected(a, episode):
        w = np.array([a ** (len(episode) - 1 - s) for s in range(len(episode))])
        return float(w @ episode / w.sum() * np.sqrt(w.sum() ** 2 / (w ** 2).sum()))

    for h, a in enumerate([2 ** -0.5, 2 ** -2.0]):
        episodes = [values[:1], values[:2], values[:3], values[3:4], values[3:5]]
        assert read[:, h, 0].tolist() == pytest.approx([expected(a, np.array(e)) for e in episodes], rel=1e-5)
    assert read[0, 0, 0] == read[3, 0, 0] / 3.0  # a new episode forgets: its first read is its first value
    assert state[0, -1] == 2  # the steps of the episode so far
    # The same steps in two calls (the state carries the traces) give the same reads.
    first, carried = memory.write(obs[:2], starts[:2], torch.zeros(1, memory.state_size), no_norm)
    second, _ = memory.write(obs[2:], starts[2:], carried, no_norm)
    torch.testing.assert_close(torch.cat([first, second]), context)


def test_a_trace_of_noise_reads_unit_variance_at_any_half_life():
    """The z-scaling: i.i.d. standard normal observations give reads of variance ~1 at every step and
    half-life (a read of the mean alone would shrink with the half-life and grow with the steps)."""
    memory = build_memory(MemoryConfig("trace", half_life=64.0, traces=3), ENV)
    T, N = 200, 4000
    obs = torch.randn(T, N, 1).expand(T, N, ENV.obs_dim)
    starts = torch.zeros(T, N)
    starts[0] = 1.0
    context, _ = memory.write(obs, starts, torch.zeros(N, memory.state_size), torch.nn.Identity())
    variance = context.reshape(T, N, 3, -1)[..., 0].var(1)  # [step, trace]
    assert variance[[0, 10, 199]].sub(1.0).abs().max() < 0.1


@pytest.mark.parametrize("memory", [MemoryConfig("none"), MemoryConfig("window", frames=4), MemoryConfig("gru", hidden=8),
                                    MemoryConfig("trace", half_life=8.0, traces=2),
                                    MemoryConfig("paom", capacity=3, record_size=8, heads=2)])
def test_acting_step_by_step_equals_the_learners_whole_sequence(memory):
    torch.manual_seed(0)
    env = EnvConfig(window=4, episode_bars=50)
    policy = ActorCritic.for_env(env, PolicyConfig(memory=memory))
    T, N = 40, 3
    obs = torch.randn(T, N, env.obs_dim)
    obs[..., env.feature("position")] = torch.randint(-1, 2, (T, N)).float()  # orders: chunks for PAOM
    starts = torch.zeros(T, N)
    starts[0] = 1.0
    starts[17, 1] = starts[30, 0] = 1.0
    state, heads, values = policy.initial_state(N), [], []
    for t in range(T):
        head, value, state = policy.forward_sequence(obs[t : t + 1], state, starts[t : t + 1])
        heads.append(head)
        values.append(value)
    whole_head, whole_value, whole_state = policy.forward_sequence(obs, policy.initial_state(N), starts)
    torch.testing.assert_close(torch.cat(heads), whole_head, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.cat(values), whole_value, rtol=0, atol=1e-5)
    torch.testing.assert_close(state, whole_state, rtol=0, atol=1e-5)
    if memory.name != "none":  # the memory is read: the past changes the present
        changed = obs.clone()
        changed[:10] += 1.0
        changed_head = policy.forward_sequence(changed, policy.initial_state(N), starts)[0]
        assert not torch.allclose(changed_head[10:17, 1], whole_head[10:17, 1])


def test_memory_designs_are_a_config_group():
    config = RunConfig.from_mapping(compose_config(["policy/memory=paom", "policy.memory.capacity=8", "ipa.chunker=fixed"]))
    assert (config.policy.memory.name, config.policy.memory.capacity, config.policy.memory.chunker) == ("paom", 8, "fixed")
    assert RunConfig.from_mapping(compose_config([])).policy.memory.name == "none"
    with pytest.raises(Exception, match="policy/memory"):
        compose_config(["policy/memory=nope"])


@pytest.mark.parametrize("memory,message", [
    ({"name": "lstm"}, "policy.memory.name: unknown memory design 'lstm'"),
    ({"name": "paom", "capacity": 0}, "policy.memory.capacity: must be >= 1"),
    ({"name": "paom", "record_size": 0}, "policy.memory.record_size: must be >= 1"),
    ({"name": "paom", "record_size": 16, "heads": 3}, "policy.memory.heads: must be >= 1 and divide"),
    ({"name": "paom", "observer": "prices"}, "policy.memory.observer: unknown observer"),
    ({"name": "paom", "reflector": "forget"}, "policy.memory.reflector: unknown reflector"),
    ({"name": "paom", "read": "sum"}, "policy.memory.read: unknown read"),
    ({"name": "window", "frames": 0}, "policy.memory.frames: must be >= 1"),
    ({"name": "trace", "half_life": 0}, "policy.memory.half_life: must be > 0"),
    ({"name": "trace", "half_life": 1e9}, "policy.memory.half_life: must be > 0 and at most 100000 steps"),
    ({"name": "trace", "traces": 0}, "policy.memory.traces: must be >= 1"),
    ({"name": "window", "frames": 100}, "policy.memory.frames: stacks more observations than an episode"),
    ({"name": "paom", "capacity": 100}, "policy.memory.capacity: holds more records than an episode"),
    ({"name": "gru", "size": 3}, "policy.memory.size: unknown key"),
])
def test_bad_memory_configs_are_refused_naming_the_key(memory, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        RunConfig.from_mapping({"env": {"episode_bars": 60}, "policy": {"memory": memory}})


SMALL = {"env": {"n_envs": 8, "window": 4, "episode_bars": 30}, "trainer": {"rollout_steps": 16, "total_steps": 512,
         "checkpoint_every": 1, "progress": "log"}, "algo": {"num_minibatches": 2, "anneal_lr": False},
         "eval": {"n_envs": 4}}  # no annealing: a shorter run followed by a resume is the same run


def small(memory, **trainer):
    values = {k: dict(v) for k, v in SMALL.items()}
    values["policy"] = {"memory": memory}
    values["trainer"].update(trainer)
    return RunConfig.from_mapping(values)


def test_a_paom_run_resumes_exactly(tmp_path):
    memory = {"name": "paom", "capacity": 4}
    run_training(small(memory), tmp_path / "straight")
    run_training(small(memory, total_steps=256), tmp_path / "resumed")
    run_training(small(memory, resume="auto"), tmp_path / "resumed")
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    for key, value in straight["policy"].items():
        assert torch.equal(value, resumed["policy"][key]), key
    assert torch.equal(straight["collector"]["recurrent"], resumed["collector"]["recurrent"])
    assert straight["collector"]["recurrent"].abs().sum() > 0  # the memory held something


def test_starting_from_a_checkpoint_of_another_memory_design_names_it(tmp_path):
    run_training(small({"name": "none"}, total_steps=128), tmp_path / "mlp")
    config = small({"name": "paom"}, total_steps=128, init_from=str(tmp_path / "mlp"))
    with pytest.raises(CheckpointError, match="policy.memory.name: 'none' != 'paom'"):
        run_training(config, tmp_path / "paom")


def test_starting_from_a_checkpoint_that_differs_only_in_keys_the_design_does_not_read(tmp_path):
    """``none`` does not read ``chunker`` (null follows ``ipa.chunker``): a child with another chunker starts
    from its weights; a ``paom`` child, which reads it, is refused."""
    run_training(small({"name": "none"}, total_steps=128), tmp_path / "trade")
    values = {**{k: dict(v) for k, v in SMALL.items()}, "ipa": {"chunker": "episode"}}
    values["trainer"].update(total_steps=128, init_from=str(tmp_path / "trade"))
    run_training(RunConfig.from_mapping(values), tmp_path / "episode")
    run_training(small({"name": "paom", "chunker": "trade"}, total_steps=128), tmp_path / "paom")
    config = small({"name": "paom", "chunker": "episode"}, total_steps=128, init_from=str(tmp_path / "paom"))
    with pytest.raises(CheckpointError, match="policy.memory.chunker: 'trade' != 'episode'"):
        run_training(config, tmp_path / "paom_episode")


def test_designs_from_before_memory_designs_still_load():
    design = RunConfig().design()
    design["policy"].pop("memory")
    old = {**design, "policy": {**design["policy"], "recurrent": False, "gru_hidden": 64}}
    assert RunConfig.from_design(old, "old.pt").policy.memory.name == "none"
    with pytest.raises(ConfigError, match="policy/memory=gru"):
        RunConfig.from_design({**old, "policy": {**old["policy"], "recurrent": True}}, "old.pt")


def test_the_oracle_sees_the_bars_regime_and_the_rest_of_the_observation_is_unchanged():
    oracle = EnvConfig(window=4, episode_bars=30, n_envs=6, observe_regime=True)
    plain = dataclasses.replace(oracle, observe_regime=False)
    a, b = MarketVecEnv(config=oracle), MarketVecEnv(config=plain)
    seen, _ = a.reset(seed=list(range(6)))
    obs, _ = b.reset(seed=list(range(6)))
    actions = np.random.default_rng(0).integers(0, 3, size=(20, 6))
    for t in range(20):
        np.testing.assert_array_equal(seen[:, : plain.obs_dim], obs)
        regime = a.engine.regime[oracle.window + a.engine.t, np.arange(6)]  # the bar the agent has just seen
        np.testing.assert_array_equal(seen[:, plain.obs_dim :].argmax(1), regime)
        assert (seen[:, plain.obs_dim :].sum(1) == 1).all() and oracle.feature("time_left") == plain.obs_dim - 1
        seen, *_ = a.step(actions[t])
        obs, *_ = b.step(actions[t])
    assert len(set(a.engine.regime[:, 0].tolist())) > 1  # the chain switched: the one-hot was tested on both


def test_the_memory_tier_scores_the_memory_tasks_only():
    assert [task.name for task in select("memory", None, [])] == ["memory_trend", "memory_event"]
    assert not any(task.family == "memory" for task in select("full", None, []))
    env = TASKS["memory_trend"].env_config("test", 2)
    assert env.window == 4 and env.market["switching"] == ["bull", "bear"]


def test_memory_event_announces_the_first_regime_in_the_first_observation_only():
    env = MarketVecEnv(config=TASKS["memory_event"].env_config("test", 64))
    obs, _ = env.reset(seed=list(range(64)))
    bull = env.engine.regime[1] == REGIME_NAMES.index("bull")  # the regime bar 1, the first return, enters
    assert 10 < bull.sum() < 54
    assert (np.sign(obs[:, 0]) == np.where(bull, 1, -1)).all()  # bar 1's return (%): a +-5% jump against 1% noise
    assert (np.abs(obs[:, :4]).max(axis=1) > 3.0).mean() > 0.95
    for _ in range(4):
        obs, *_ = env.step(np.ones(64, dtype=np.int64))
    assert (np.abs(obs[:, :4]).max(axis=1) > 3.0).mean() < 0.2  # 4 steps on, the window no longer holds it


# ------------------------------------------------------------------ chunk-level evaluation
def test_chunk_credit_pairs_each_chunks_summed_advantage_with_the_write_that_commits_it():
    env = EnvConfig(window=2, episode_bars=50, n_envs=2)
    policy = ActorCritic.for_env(env, PolicyConfig(memory=MemoryConfig("window", frames=2)))
    ids = torch.tensor([[0, 4], [0, 4], [1, 5], [1, 5], [2, 6], [2, 6], [3, 7], [3, 7]])
    advantages = ids.float() % 4 + 4 * (ids >= 4)  # chunk c: every step c, so its sum is 2c
    context = torch.tensor([[0.0, 0], [0, 0], [1, 4], [1, 4], [3, 9], [3, 9], [6, 15], [6, 15]])[..., None]
    batch = SimpleNamespace(memory=context, starts=torch.zeros(8, 2), step_in_episode=torch.arange(8)[:, None].expand(8, 2),
                            obs=torch.zeros(8, 2, env.obs_dim), rewards=torch.zeros(8, 2),
                            last_state=torch.zeros(1, 2, policy.memory.state_size))
    stats = credit_stats(policy, batch, advantages, ids, 8)
    # (write, credit) of the chunks committed inside the rollout: (1, 0), (2, 2), (3, 4), (4, 8), (5, 10), (6, 12)
    assert stats["memory/write_size"] == pytest.approx(3.5)
    assert stats["memory/credit_big_writes"] == pytest.approx(10.0) and stats["memory/credit_small_writes"] == pytest.approx(2.0)
    expected = np.corrcoef([1, 2, 3, 4, 5, 6], [0, 2, 4, 8, 10, 12])[0, 1]
    assert stats["memory/credit_write_corr"] == pytest.approx(expected, abs=1e-6)
    batch.starts[2, 0] = 1.0  # a new episode: step 2's change is a reset, not chunk 0's write
    assert credit_stats(policy, batch, advantages, ids, 8)["memory/write_size"] == pytest.approx(4.0)


def test_the_memory_report_probes_targets_aligned_with_what_the_agent_saw():
    torch.manual_seed(0)
    oracle = EnvConfig(window=4, episode_bars=60, n_envs=32, observe_regime=True)
    policy = ActorCritic.for_env(oracle, PolicyConfig(memory=MemoryConfig("paom", capacity=4)))
    report = memory_report(policy, oracle, seed=2**40, device=torch.device("cpu"))
    # The oracle's observation holds the regime of the bar it has seen: a linear probe reads it exactly.
    assert report["overall"]["observation/regime_accuracy"] == 1.0
    assert report["n_points"] > 100 and report["overall"]["compression_ratio"] > 1
    assert {"memory/vol_r2", "observation/since_order_r2"} <= set(report["overall"])
    assert list(report["buckets"])[0] == "1"
    none = ActorCritic.for_env(oracle, PolicyConfig())
    assert memory_report(none, oracle, seed=2**40, device=torch.device("cpu"))["overall"]["compression_ratio"] is None


def test_a_run_with_memory_logs_memory_curves_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = small({"name": "paom", "capacity": 4}, total_steps=256)
    config.eval.n_envs = 32  # the probes fit on half of the validation markets and score on the other half
    run_training(config, tmp_path)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"memory/floats_kept", "memory/compression_ratio", "memory/credit_write_corr",
            "memory/probe/memory/regime_accuracy", "memory/probe/compression_ratio"} <= tags, tags
    by_chunk = [event.step for event in events.Scalars("memory/by_chunk/memory/vol_r2")]
    assert by_chunk[:2] == [1, 2]  # plotted against the chunk index


@pytest.mark.parametrize("read", ["attention", "pooled", "both"])
def test_the_paom_read_equals_attention_over_explicit_record_encodings(read):
    torch.manual_seed(0)
    env = EnvConfig(window=4)
    memory = build_memory(MemoryConfig("paom", capacity=4, record_size=8, heads=2, read=read), env)
    obs = torch.randn(30, 3, env.obs_dim)
    obs[..., env.feature("position")] = torch.randint(-1, 2, (30, 3)).float()
    starts = torch.zeros(30, 3)
    starts[0] = starts[20, 1] = 1.0
    context, _ = memory.write(obs, starts, torch.zeros(3, memory.state_size), torch.nn.Identity())
    x = torch.randn(30, 3, env.obs_dim)
    stats = context.reshape(30, 3, 5, -1)  # 4 records and the open chunk
    valid = stats[..., 6] > 0  # log(1 + count); observer bars: F = 3 features
    assert valid[5, :, :4].any() and not valid[0, :, :4].any() and valid[..., 4].all()
    encoded = memory.encoder(stats).reshape(30, 3, 5, 2, 4)  # [T, N, C + 1, heads, head width]
    expected = []
    if read != "pooled":
        query = memory.query(x).reshape(30, 3, 1, 2, 4)
        scores = (encoded * query).sum(-1) / 2.0
        weights = torch.softmax(scores.masked_fill(~valid[..., None], -1e9), 2) * valid[..., None]
        expected.append((weights[..., None] * encoded).sum(2).reshape(30, 3, 8))
    if read != "attention":
        count = torch.tensor(np.expm1(stats[..., 6].numpy()))
        weights = count / count.sum(2, keepdim=True).clamp(min=1)
        expected.append((weights[..., None] * encoded.reshape(30, 3, 5, 8)).sum(2))
    torch.testing.assert_close(memory.read(x, context), torch.cat(expected, -1), rtol=0, atol=1e-5)
    empty = stats.clone()
    empty[..., 6] = 0.0  # no record and no open chunk
    assert (memory.read(x, empty.reshape(30, 3, -1)) == 0).all()  # an empty memory reads zeros
