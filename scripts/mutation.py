"""Mutation testing of the core math: each mutant is a small semantic change that a test must catch.

    python scripts/mutation.py            # every mutant; writes bench/results/mutation.md
    python scripts/mutation.py --only per_step_ratio --only reinforce_sign
    python scripts/mutation.py --list

Each mutant replaces one exact snippet of one file (IPA, the learner's targets and losses, the
collector, the engine's accounting and observation) in a temporary copy of the repository and runs
its tests there (``pytest -x -q``); the working tree is never modified, so other processes (and
other people's test runs) never see a mutant. A mutant is *killed* when a test fails. The script
refuses to start when a snippet is not found exactly once (the file changed: update the mutant), when
a mutated file does not compile, or when the tests fail without any mutant. Exit status 1 when any
mutant survives.

Two kinds of mutants: the semantic mistakes an implementation of IPA can make (the first group),
and the behaviours this code had before it followed the paper (``old:``), so that the tests written
for those fixes keep failing on them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "mutation.md"
COPIED = ("openclaw_rl", "hydra_plugins", "tests", "examples", "pyproject.toml")

IPA = "openclaw_rl/ipa/loss.py"
ALGOS = "openclaw_rl/roll/algorithms.py"
ROLLOUT = "openclaw_rl/roll/rollout.py"
ENGINE = "openclaw_rl/rock/engine.py"
STORE = "openclaw_rl/data/trajectories.py"
LEARNING = ("tests/test_ipa.py", "tests/test_learner.py")
COLLECTING = ("tests/test_rollout.py", "tests/test_learner.py")
ACCOUNTING = ("tests/test_accounting.py",)
MEMORY = "openclaw_rl/memory/designs.py"
EVAL = "openclaw_rl/roll/memory_eval.py"
REMEMBERING = ("tests/test_memory.py",)
WORKERS = "openclaw_rl/roll/workers.py"
POOLING = ("tests/test_workers.py",)
SEARCH = "openclaw_rl/alma/search.py"
COMPOSE = "openclaw_rl/alma/compose.py"
COMPOSING = ("tests/test_alma_compose.py",)
ALLOCATOR = "openclaw_rl/roll/allocator.py"
ALLOCATING = ("tests/test_allocator.py",)
COMPILING = ("tests/test_compile.py",)
SEARCHING = ("tests/test_alma.py",)
MARKETS = "openclaw_rl/rock/markets.py"
MODELLING = ("tests/test_markets.py",)
LEARNER = "openclaw_rl/roll/learner.py"
STATS = "openclaw_rl/benchmark/stats.py"
GATING = ("tests/test_bench_stats.py",)
SPLITS = "openclaw_rl/rock/splits.py"
GUARDING = ("tests/test_contamination.py",)
SUITE = "openclaw_rl/benchmark/suite.py"
SCORING = ("tests/test_benchmark.py",)
CHUNKS = "openclaw_rl/ipa/chunks.py"
FEATURES = "openclaw_rl/rock/features.py"
HISTORICAL = "openclaw_rl/rock/historical.py"
FEATURING = ("tests/test_features.py",)
MUTANTS_TESTS = ("tests/test_learner_mutants.py",)
LEARNER_MUTANTS = LEARNING + MUTANTS_TESTS
ROLLOUT_MUTANTS = ("tests/test_rollout.py",) + MUTANTS_TESTS


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    file: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTANTS = [
    # --- the semantic mistakes of an IPA implementation
    Mutant("ratio_on_positive", "the truncated ratio also weights the positive branch", IPA,
           "weight = torch.where(positive, torch.ones_like(rho), rho.detach().clamp(0.0, 1.0))",
           "weight = rho.detach().clamp(0.0, 1.0)", LEARNING),
    Mutant("per_step_ratio", "per-step ratio instead of the chunk's geometric mean", IPA,
           "rho = torch.exp(chunk_mean(logp_new - logp_old, ids, n_chunks))",
           "rho = torch.exp(logp_new - logp_old)", LEARNING),
    Mutant("per_step_mismatch_mask", "mismatch mask per step instead of per chunk", IPA,
           "    mismatch = chunk_mismatch(logp_old, logp_behaviour, ids, n_chunks)\n"
           "    return ((mismatch >= low) & (mismatch <= high)).to(logp_old.dtype)[ids]",
           "    mismatch = torch.exp(logp_old - logp_behaviour)\n"
           "    return ((mismatch >= low) & (mismatch <= high)).to(logp_old.dtype)", LEARNING),
    Mutant("arithmetic_mean_ratio", "arithmetic instead of geometric mean of the chunk's ratios", IPA,
           "rho = torch.exp(chunk_mean(logp_new - logp_old, ids, n_chunks))",
           "rho = chunk_mean(torch.exp(logp_new - logp_old), ids, n_chunks)", LEARNING),
    Mutant("arithmetic_mean_mismatch", "arithmetic instead of geometric mean of the chunk's pi_old / mu", IPA,
           "return torch.exp(chunk_means(logp_old - logp_behaviour, ids, n_chunks))",
           "return chunk_means(torch.exp(logp_old - logp_behaviour), ids, n_chunks)", LEARNING),
    Mutant("one_sided_filter", "mismatch_low ignored (ROLL's two-sided filter)", IPA,
           "((mismatch >= low) & (mismatch <= high))", "(mismatch <= high)", LEARNING),
    Mutant("advantage_split_before_whitening", "topr_split=advantage takes the sign of the raw, not the whitened, advantage",
           ALGOS, "        positive = advantages > 0  # the sign of the advantage the loss weights with (whitened or not)",
           "        pass", LEARNING),
    Mutant("chunk_return_not_shared", "each step keeps its own return-to-go instead of its chunk's G_k", ALGOS,
           "chunk_return = chunk_first(g, ids, n_chunks)", "chunk_return = g", LEARNING),
    Mutant("per_step_gamma_ipa", "ipa.discount=chunk discounts every step instead of every chunk", ALGOS,
           'discounted = torch.ones_like(boundary) if ipa.discount == "time" else boundary',
           "discounted = torch.ones_like(boundary)", LEARNING),
    Mutant("per_chunk_gamma_in_time", "ipa.discount=time discounts a chunk by gamma, not gamma^tau", ALGOS,
           'discounted = torch.ones_like(boundary) if ipa.discount == "time" else boundary',
           "discounted = boundary", LEARNING),
    Mutant("chunk_critic_read_mid_chunk", "the chunk critic's trace decays at every step, not between chunks", ALGOS,
           "step_lam = torch.where(boundary, algo.gae_lambda, 1.0)",
           "step_lam = torch.full_like(values, algo.gae_lambda)", LEARNING),
    Mutant("chunk_critic_not_shared", "the chunk critic's advantage is per step, not the chunk's", ALGOS,
           "advantages = chunk_first(step_advantages, ids, n_chunks)", "advantages = step_advantages", LEARNING),
    Mutant("separate_clip_is_global", "grad_clip=separate clips all weights together", LEARNER,
           "if algo.grad_clip == \"global\":", "if True:", LEARNING),
    Mutant("grpo_no_group_norm", "GRPO without group normalization (raw returns)", ALGOS,
           "return finish((mc - mean) / (std + 1e-8), g)", "return finish(mc, g)", LEARNING),
    Mutant("grpo_no_group_std", "GRPO centred on the group mean but not scaled by its std", ALGOS,
           "return finish((mc - mean) / (std + 1e-8), g)", "return finish(mc - mean, g)", LEARNING),
    Mutant("reinforce_sign", "REINFORCE loss sign flipped", ALGOS,
           "return -(advantages * logp_new * learn).sum() / count, {}",
           "return (advantages * logp_new * learn).sum() / count, {}", LEARNING),
    Mutant("rl_on_teacher_steps", "the RL loss also trains on replayed teacher steps", ALGOS,
           "learn = real * (~mb.teacher).to(logp.dtype)", "learn = real", LEARNING),
    Mutant("padding_in_loss", "padding (an env waiting for its group) enters the losses", ALGOS,
           "real = (~mb.padding).to(logp.dtype)", "real = torch.ones_like(logp)", LEARNING),
    # --- the env's accounting and observation
    Mutant("borrow_on_longs", "borrow charged on long positions too", ENGINE,
           "cash -= self.borrow_rate * np.maximum(-new_units, 0.0) * close",
           "cash -= self.borrow_rate * np.abs(new_units) * close", ACCOUNTING),
    Mutant("pnl_vs_initial_equity", "unrealized-PnL feature against the initial equity, not the equity at the last order",
           ENGINE, "new[4] = (equity / self.entry_equity - 1.0) * 100",
           "new[4] = (equity / self.config.initial_equity - 1.0) * 100", ACCOUNTING),
    # --- what the code did before it followed the paper
    Mutant("old_discount_at_episode_end", "old: a gamma where an episode ends mid-chunk (boundary | done)", ALGOS,
           'discounted = torch.ones_like(boundary) if ipa.discount == "time" else boundary',
           'discounted = torch.ones_like(boundary) if ipa.discount == "time" else boundary | done',
           LEARNING),
    Mutant("old_topr_split_by_advantage", "old: TOPR's branches split by each step's advantage sign", ALGOS,
           "positive = outcome > 0", "positive = advantages > 0", LEARNING),
    Mutant("old_horizon_bootstraps", "old: the horizon is a truncation that bootstraps from the critic", ROLLOUT,
           "return truncated & (time_left <= 0.0)", "return truncated & False", COLLECTING),
    Mutant("old_normalizer_moves_in_rollout", "old: normalizer statistics updated at every rollout step", ROLLOUT,
           "            obs_t = torch.as_tensor(self.obs, device=dev)\n",
           "            obs_t = torch.as_tensor(self.obs, device=dev)\n"
           "            if policy.config.normalize_obs:\n"
           "                policy.norm.update(obs_t)\n", COLLECTING),
    Mutant("old_chunk_end_lost_on_done", "old: an order on an episode's last step is lost (final_info unread)", ROLLOUT,
           'chunk_end = np.where(done, info["final_info"]["chunk_end"], chunk_end)', "chunk_end = chunk_end",
           COLLECTING),
    Mutant("old_trade_chunks_on_requested_targets", "old: trade chunks end where the requested target changes", ROLLOUT,
           'chunk_end, position = info["chunk_end"], info["position"]',
           'chunk_end, position = info["chunk_end"], action_np.reshape(n, -1)[:, 0].astype(np.float64)', COLLECTING),
    Mutant("old_groups_split_after_ruin", "old: a ruined group member restarts alone (groups drift apart)", ROLLOUT,
           "begins = group_done[self.group_np]", "begins = ended", COLLECTING),
    Mutant("old_store_chunk_convention", "old: the trajectory store starts a chunk at an order", STORE,
           "chunk_index(record.positions != previous)", "np.cumsum(record.positions != previous, axis=0)",
           ("tests/test_rollout.py",)),
    # --- splits, the contamination guard and the regression gate
    Mutant("split_ignores_its_start", "historical episodes start anywhere in the series, not inside their split",
           "openclaw_rl/rock/historical.py",
           "starts = self.start + np.minimum((u * n_starts).astype(np.int64), n_starts - 1)",
           "starts = np.minimum((u * n_starts).astype(np.int64), n_starts - 1)", ("tests/test_splits.py",)),
    Mutant("no_embargo", "splits abut: the embargo is not left out", "openclaw_rl/rock/splits.py",
           "usable = n_bars - 2 * embargo", "usable, embargo = n_bars, 0", ("tests/test_splits.py",)),
    Mutant("evaluate_on_train", "the objective is evaluated on the train split", "openclaw_rl/roll/evaluate.py",
           'split = "validation" if env_config.data.split == "train" else env_config.data.split',
           "split = env_config.data.split", ("tests/test_splits.py",)),
    Mutant("seed_overlap_off_by_one", "seed ranges that share their last seed do not overlap",
           "openclaw_rl/rock/splits.py", 'return a["low"] < b["high"] and b["low"] < a["high"]',
           'return a["low"] < b["high"] - 1 and b["low"] < a["high"] - 1', ("tests/test_splits.py",)),
    Mutant("unknown_lineage_is_clean", "a checkpoint without a lineage passes the guard", "openclaw_rl/benchmark/guard.py",
           'if record["kind"] == "unknown":', 'if False:', ("tests/test_benchmark.py",)),
    Mutant("gate_without_bonferroni", "the regression gate tests every task at the uncorrected level",
           "openclaw_rl/benchmark/stats.py", "corrected = 1.0 - (1.0 - level) / len(a)", "corrected = level",
           ("tests/test_bench_stats.py",)),
    Mutant("gate_sign", "a task regresses when B is significantly better", "openclaw_rl/benchmark/stats.py",
           '"regressed": diff["high"] < 0', '"regressed": diff["low"] > 0', ("tests/test_bench_stats.py",)),
    # --- memory designs
    Mutant("merge_unweighted", "merged records average their statistics without their counts", MEMORY,
           "stats = (a[..., :-2] * na + b[..., :-2] * nb) / np.maximum(n, 1.0)",
           "stats = (a[..., :-2] + b[..., :-2]) / 2.0", REMEMBERING),
    Mutant("paom_chunk_late", "PAOM's fixed chunks end one step late (the step counter, not the step index)", MEMORY,
           "env_chunk_end=position != last_pos, step_in_episode=step - 1,",
           "env_chunk_end=position != last_pos, step_in_episode=step,", REMEMBERING),
    Mutant("reflect_farthest", "merge_similar merges the two most different records", MEMORY,
           "distance[:, np.arange(C), np.arange(C)] = np.inf\n            i, j = np.divmod(distance.reshape(M, -1).argmin(1), C)",
           "distance[:, np.arange(C), np.arange(C)] = -np.inf\n            i, j = np.divmod(distance.reshape(M, -1).argmax(1), C)",
           REMEMBERING),
    Mutant("paom_keeps_old_episode", "PAOM keeps the last episode's records at an episode start", MEMORY,
           "                records[start] = 0.0\n", "", REMEMBERING),
    Mutant("window_sees_previous_episode", "the frame stack shows frames from before the episode's start", MEMORY,
           "valid = (since[:, None, :] >= back[None, :, None]).to(obs.dtype)",
           "valid = (since[:, None, :] >= 0 * back[None, :, None]).to(obs.dtype)", REMEMBERING),
    Mutant("trace_keeps_old_episode", "a trace carries the last episode's mean into a new episode", MEMORY,
           "count = torch.where(starts[t] > 0, 0.0, count) + 1.0", "count = count + 1.0", REMEMBERING),
    Mutant("trace_not_bias_corrected", "a trace's first steps lean on its zero start", MEMORY,
           "weight = (1.0 - a) / (1.0 - an)", "weight = (1.0 - a) + 0.0 * an",
           REMEMBERING),
    Mutant("trace_mean_not_z", "a trace reads as its normalized mean, without its effective sample size", MEMORY,
           "context[t] = (norm(traces) * effective.sqrt()).clamp(-clip, clip)", "context[t] = norm(traces).clamp(-clip, clip)",
           REMEMBERING),
    Mutant("trace_effective_of_n", "a trace's effective sample size taken as its step count", MEMORY,
           "effective = (1.0 - an) * (1.0 + a) / ((1.0 - a) * (1.0 + an))",
           "effective = count[:, None, None] + 0.0 * an", REMEMBERING),
    Mutant("attention_ignores_empty", "attention spreads weight over empty slots", MEMORY,
           "weights = torch.softmax(scores.masked_fill(~valid[..., None], -1e9), dim=2) * valid[..., None]",
           "weights = torch.softmax(scores, dim=2)", REMEMBERING),
    Mutant("credit_wrong_chunk", "chunk credit pairs a write with the chunk after the one it commits", EVAL,
           "ids = chunk_ids[:-1][next_chunk]", "ids = chunk_ids[1:][next_chunk]", REMEMBERING),
    # The rollout workers: what a batch holds after failures, where its columns come from, which policy acted.
    Mutant("failed_rollout_kept_state", "a failed rollout is retried from where it failed, not from the state before it",
           WORKERS, "            self._rebuild(index)\n        self._restore(index)\n",
           "            self._rebuild(index)\n", POOLING),
    Mutant("groups_not_offset", "workers' group ids collide in the joined batch", ROLLOUT,
           "groups.append(b.group + offset)", "groups.append(b.group)", POOLING),
    Mutant("worker_rng_reused", "every rollout of a worker draws the same random numbers", WORKERS,
           "            self.rng = torch.get_rng_state()\n", "", POOLING),
    Mutant("stale_rollout_kept", "async keeps rollouts staler than trainer.max_policy_lag", WORKERS,
           "if max_lag is not None and version - self.requests[index][1] > max_lag:",
           "if False and max_lag is not None and version - self.requests[index][1] > max_lag:", POOLING),
    # ALMA's successive halving: which trial continues.
    Mutant("mutation_moves_unread_keys", "a mutation moves keys the parent's design does not read", SEARCH,
           "dims = self.read_dims(design)\n        moving", "dims = self.space.dims\n        moving", SEARCHING),
    Mutant("newly_read_keys_inherited", "a child that starts reading a key keeps its parent's untried value", SEARCH,
           "if dim.key in unread_by_parent}}", "if dim.key in unread_by_parent and False}}", SEARCHING),
    Mutant("promotion_lowest_rung_first", "promotion looks at the lowest rung first (ASHA: the highest)", SEARCH,
           "for rung in sorted({depth[t.id] for t in finished}, reverse=True):",
           "for rung in sorted({depth[t.id] for t in finished}):", SEARCHING),
    Mutant("promotion_top_rounded_up", "the top ceil(n / eta) of a rung qualify, not floor", SEARCH,
           "top = ranked[: int(len(ranked) // eta)]", "top = ranked[: math.ceil(len(ranked) / eta)]", SEARCHING),
    Mutant("promotion_repeats", "a trial already continued is promoted again", SEARCH,
           "candidates = [t for t in top if t.id not in continued]", "candidates = list(top)", SEARCHING),
    Mutant("rung_ignores_inheritance", "a child that inherits its parent's weights counts as trained from scratch",
           SEARCH, "(trial.mutation == PROMOTE or inherit_weights)", "(trial.mutation == PROMOTE)", SEARCHING),
    Mutant("promoted_trials_expanded", "ALMA's rule picks a promoted trial (its design trained longer) as a parent",
           SEARCH, "return evaluated if inherit_weights else [t for t in evaluated if t.mutation != PROMOTE]",
           "return evaluated", SEARCHING),
    Mutant("trial_config_values_dropped", "a trial's value overrides are not applied to the cached composition",
           COMPOSE, "ConfigLoaderImpl._apply_overrides_to_config(values, config)", "pass", COMPOSING),
    Mutant("trial_config_stale_task_list", "a trial's config records the cached composition's overrides, not its own",
           COMPOSE, "config.hydra.overrides.task = [o.input_line for o in task]", "pass", COMPOSING),
    Mutant("trial_config_groups_as_values", "a group choice is applied as a value to the cached composition",
           COMPOSE, "and not self.loader.repository.group_exists(override.key_or_group))", ")", COMPOSING),
    Mutant("allocator_trim_only", "only the trim threshold is raised (glibc then maps every large block afresh)",
           ALLOCATOR, "return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and ", "return ", ALLOCATING),
    Mutant("compiling_update_read_as_load", "auto reads the compiling update's compiler workers as other load",
           "openclaw_rl/roll/trainer.py", "    if compiled_now:\n        return\n", "", ("tests/test_run_dir.py",)),
    Mutant("compile_ignored", "trainer.compile=true runs the eager pass", LEARNER,
           "torch.compile(self.score_actions, dynamic=False) if compiled else self.score_actions",
           "self.score_actions", COMPILING),
    Mutant("entry_jump_a_bar_late", "a regime's entry jump falls on the bar after the chain enters it", MARKETS,
           "np.not_equal(ahead[2:], ahead[1:-1], out=entered[2:])",
           "np.not_equal(ahead[1:-1], ahead[:-2], out=entered[2:])", MODELLING),
    Mutant("entry_jump_unseen", "the first regime's jump falls on bar 0, which shows no return", MARKETS,
           "entered[1] = True", "entered[0] = True", MODELLING),
    Mutant("entry_jump_of_the_regime_left", "the jump is the regime's the chain leaves", MARKETS,
           "log_returns += np.where(entered, jump[ahead], 0.0)",
           "log_returns[1:] += np.where(entered[1:], jump[ahead[:-1]], 0.0)", MODELLING),
    Mutant("entry_jump_no_lead", "the announcement falls on the bar the regime begins, not its lead before", MARKETS,
           "ahead, states = states[lead:], states[:n_bars]", "states = states[:n_bars]\n        ahead = states", MODELLING),
    # --- the yardstick: the seed-level gate, the guard's content match, historical intervals
    Mutant("pi_old_rescored", "pi_old is always rescored, never the logged mu of the weights being updated", LEARNER,
           "if current.all():\n                logp_old, values_old = batch.logp, batch.values\n            else:\n"
           "                logp_old, _, values_old = self.score_actions(batch)\n"
           "                logp_old = torch.where(current, batch.logp, logp_old)",
           "if False:\n                pass\n            else:\n"
           "                logp_old, _, values_old = self.score_actions(batch)\n                pass", LEARNING),
    Mutant("welch_pooled_df", "Welch's degrees of freedom taken as n_a + n_b - 2 (pooled)", STATS,
           "df = (var_a + var_b) ** 2 / (var_a**2 / (a.size - 1) + var_b**2 / (b.size - 1))",
           "df = a.size + b.size - 2", GATING),
    Mutant("welch_sign", "the gate's difference taken as a - b", STATS,
           "mean = float(b.mean() - a.mean())", "mean = float(a.mean() - b.mean())", GATING),
    Mutant("detectable_normal", "the detectable regression from the normal, not the noncentral t", STATS,
           "shortfall = lambda nc: float(scipy.stats.nct.sf(q, df, nc)) - power",
           "shortfall = lambda nc: float(scipy.stats.norm.sf(q - nc)) - power", GATING),
    Mutant("same_time_only", "a touched bar is found only at its own time stamp", SPLITS,
           "for shift in range(-NEAR_BARS, NEAR_BARS + 1):", "for shift in range(0, 1):", GUARDING),
    Mutant("any_chance_match", "a single equal close makes two series one (no instrument test)", SPLITS,
           "return int(found.sum()) if found.mean() >= SAME_INSTRUMENT else 0", "return int(found.sum())", GUARDING),
    Mutant("chunks_per_touched_episode", "chunks per episode: the rollout's chunks over the episodes it touched", ALGOS,
           'stats["ipa/chunks_per_episode"] = float(lengths.mean()) / stats["ipa/mean_chunk_length"]',
           'stats["ipa/chunks_per_episode"] = real_chunks / (int(ended.sum()) + batch.rewards.shape[1])', COLLECTING),
    Mutant("historical_windows_independent", "a historical task's interval counts every window as independent", SUITE,
           "n = (replay.end - replay.start - env.window) / env.episode_bars", "n = float(len(excess))", SCORING),
    # --- a broken learner (tests/test_learner_mutants.py): losses, targets, the update loop, the collector's units
    Mutant("value_loss_unclipped", "algo.clip_vloss=true does not clip the value loss", ALGOS,
           "if algo.clip_vloss:", "if False:", LEARNER_MUTANTS),
    Mutant("value_loss_clip_min", "the clipped value loss takes the min of the two errors, not the max", ALGOS,
           "error = torch.max(error, loss(values_old", "error = torch.min(error, loss(values_old", LEARNER_MUTANTS),
    Mutant("huber_is_mse", "algo.value_loss=huber trains on the squared error", ALGOS,
           'if algo.value_loss == "huber":', "if False:", LEARNER_MUTANTS),
    Mutant("huber_delta_ignored", "the Huber loss ignores algo.huber_delta (torch's default 1)", ALGOS,
           'reduction="none", delta=algo.huber_delta)', 'reduction="none")', LEARNER_MUTANTS),
    Mutant("ppo_surrogate_min", "PPO's clipped surrogate takes the optimistic (min) loss", ALGOS,
           "surrogate = torch.max(-advantages * ratio,", "surrogate = torch.min(-advantages * ratio,", LEARNER_MUTANTS),
    Mutant("entropy_sign", "the entropy term lowers the entropy (sign flipped)", ALGOS,
           '"entropy": -algo.ent_coef * mean_entropy', '"entropy": algo.ent_coef * mean_entropy', LEARNER_MUTANTS),
    Mutant("topr_weight_not_detached", "the gradient flows through TOPR's truncated chunk ratio", IPA,
           "rho.detach().clamp(0.0, 1.0)", "rho.clamp(0.0, 1.0)", LEARNER_MUTANTS),
    Mutant("mismatch_mask_from_pi_new", "the mismatch mask compares pi_new, not pi_old, with mu", IPA,
           "keep = mismatch_keep(logp_old, logp_behaviour,", "keep = mismatch_keep(logp_new, logp_behaviour,",
           LEARNER_MUTANTS),
    Mutant("whitening_over_padding_and_teacher", "advantage whitening counts padding and teacher steps", ALGOS,
           "        mean = (advantages * learn).sum() / count\n"
           "        std = (((advantages - mean) ** 2 * learn).sum() / (count - 1).clamp(min=1.0)).sqrt()\n",
           "        mean = advantages.mean()\n        std = advantages.std()\n", LEARNER_MUTANTS),
    Mutant("group_baseline_over_time", "ipa.baseline=group: the mean over the env's steps, not over its group", ALGOS,
           "advantages = chunk_return - group_mean_std(chunk_return, batch.group, n_groups, real)[0]",
           "advantages = chunk_return - chunk_return.mean(0, keepdim=True)", LEARNER_MUTANTS),
    Mutant("group_baseline_ignores_groups", "ipa.baseline=group: the mean over all envs, not over the env's group", ALGOS,
           "advantages = chunk_return - group_mean_std(chunk_return, batch.group, n_groups, real)[0]",
           "advantages = chunk_return - group_mean_std(chunk_return, torch.zeros_like(batch.group), 1, real)[0]",
           LEARNER_MUTANTS),
    Mutant("value_baseline_per_step", "ipa.baseline=value: the critic at each step, not at the chunk's start", ALGOS,
           "advantages = chunk_return - chunk_first(values, ids, n_chunks)", "advantages = chunk_return - values",
           LEARNER_MUTANTS),
    Mutant("gae_no_last_value", "GAE ignores the rollout-end bootstrap last_value", ALGOS,
           "next_value = last_value", "next_value = torch.zeros_like(last_value)", LEARNER_MUTANTS),
    Mutant("returns_no_last_value", "returns-to-go ignore the rollout-end bootstrap last_value", CHUNKS,
           "future = last_value", "future = torch.zeros_like(last_value)", LEARNER_MUTANTS),
    Mutant("truncation_bootstraps_from_reset_obs", "a truncation bootstraps from the reset, not the final, observation",
           ROLLOUT, 'final = torch.as_tensor(info["final_obs"], device=dev)', "final = torch.as_tensor(self.obs, device=dev)",
           ROLLOUT_MUTANTS),
    Mutant("reward_scale_ignored", "algo.reward_scale does not scale the batch's rewards", ROLLOUT,
           'buf["rewards"][t] = np.where(padding, 0.0, reward * self.reward_scale)',
           'buf["rewards"][t] = np.where(padding, 0.0, reward)', ROLLOUT_MUTANTS),
    Mutant("return_before_unscaled", "return_before in the env's units, not the learner's (reward_scale)", ROLLOUT,
           "return_before = self.episode_return * self.reward_scale", "return_before = self.episode_return",
           ROLLOUT_MUTANTS),
    Mutant("prefix_end_not_a_boundary", "a teacher prefix's end is no chunk boundary", ALGOS,
           "boundary = boundary | batch.prefix_end", "boundary = boundary", LEARNER_MUTANTS),
    Mutant("approx_kl_k1", "approx_kl is the k1 estimator (mean -log ratio), not k3", LEARNER,
           "approx_kl = (((log_ratio.exp() - 1) - log_ratio) * sampled)", "approx_kl = ((-log_ratio) * sampled)",
           LEARNER_MUTANTS),
    Mutant("target_kl_never_stops", "algo.target_kl never stops the epochs", LEARNER,
           "if algo.target_kl is not None and np.mean(", "if False and algo.target_kl is not None and np.mean(",
           LEARNER_MUTANTS),
    Mutant("vf_coef_ignored", "the value term is not weighted by algo.vf_coef", ALGOS,
           '"value": algo.vf_coef * v_loss', '"value": v_loss', LEARNER_MUTANTS),
    Mutant("clip_coef_asymmetric", "PPO's ratio clipped to [1 - eps, 1 + 2 eps]", ALGOS,
           "ratio.clamp(1 - algo.clip_coef, 1 + algo.clip_coef)", "ratio.clamp(1 - algo.clip_coef, 1 + 2 * algo.clip_coef)",
           LEARNER_MUTANTS),
    Mutant("entropy_mean_counts_padding", "the entropy is averaged over padding steps too", ALGOS,
           "mean_entropy = (entropy * real).sum() / real.sum().clamp(min=1.0)",
           "mean_entropy = (entropy * real).sum() / real.numel()", LEARNER_MUTANTS),
    Mutant("lr_anneal_off_by_one", "the first update already runs at an annealed learning rate", LEARNER,
           "(1.0 - update / num_updates)", "(1.0 - (update + 1) / num_updates)", LEARNER_MUTANTS),
    Mutant("minibatch_old_not_shuffled", "the minibatch's fixed targets are not shuffled with its columns", LEARNER,
           "old = {name: x[:, order] for name, x in fixed.items()}", "old = dict(fixed)", LEARNER_MUTANTS),
    Mutant("value_loss_skips_teacher_steps", "the critic is not trained on replayed teacher steps", ALGOS,
           'v_loss = value_loss(algo, values, old["values"], old["ret"], real)',
           'v_loss = value_loss(algo, values, old["values"], old["ret"], learn)', LEARNER_MUTANTS),
    Mutant("tanh_backward_identity", "the tanh activation's backward passes the gradient through unscaled",
           "openclaw_rl/roll/policy.py", "return torch.ops.aten.tanh_backward(grad, y)", "return grad", LEARNING),
    Mutant("tanh_forward_unscaled", "the tanh activation is 2 sigmoid(x) - 1", "openclaw_rl/roll/policy.py",
           "return (2 * x).sigmoid_().mul_(2).sub_(1)", "return x.sigmoid().mul_(2).sub_(1)", LEARNING),
    Mutant("stale_values_taken_as_logged", "steps of older weights keep their logged values", LEARNER,
           "values_old = torch.where(current, batch.values, values_old)", "values_old = batch.values", LEARNING),
    Mutant("step_value_target_ignored", "ipa.value_target=step still trains the critic on the chunk's lambda-return",
           ALGOS, 'if ipa.value_target == "step":', 'if ipa.value_target == "never":', LEARNING),
    Mutant("ewm_min_periods_off_by_one", "the batched EWM is NaN one bar longer than pandas'",
           "openclaw_rl/rock/indicators.py", "np.cumsum(~missing, axis=0) >= min_periods",
           "np.cumsum(~missing, axis=0) > min_periods", FEATURING),
    Mutant("ewm_fast_region_forgets_faster", "the batched EWM's recursion keeps (1 - alpha)^2 of the mean",
           "openclaw_rl/rock/indicators.py", "        mean *= keep\n", "        mean *= keep * keep\n", FEATURING),
    Mutant("feature_of_the_next_bar", "a step observes the features of the bar after the one it entered", ENGINE,
           "self.features.reshape(-1, self.n_features)[flat].T",
           "self.features.reshape(-1, self.n_features)[np.minimum(flat + self.n, self.features.shape[0] * self.n - 1)].T",
           FEATURING),
    Mutant("reset_features_of_the_previous_bar", "the first observation shows the features of the bar before it", ENGINE,
           "obs[:, w + N_SCALAR_FEATURES : user] = self.features[w, rows]",
           "obs[:, w + N_SCALAR_FEATURES : user] = self.features[w - 1, rows]", FEATURING),
    Mutant("look_ahead_probe_blind", "the look-ahead probe compares a feature with itself", FEATURES,
           "before, after = base[: cut + 1], feature.compute(changed)[: cut + 1]",
           "before = after = base[: cut + 1]", FEATURING),
    Mutant("warmup_ignores_windows", "a feature's warm-up is only its NaN bars (ATR's zeros are observed)", FEATURES,
           "return max(warmup, feature.min_warmup)", "return warmup", FEATURING),
    Mutant("synthetic_paths_without_warmup", "synthetic paths draw no warm-up bars before the window", ENGINE,
           "self.lead = self.pipeline.lead(config.window) if self.pipeline else 0", "self.lead = 0", FEATURING),
    Mutant("replay_plays_before_features_exist", "historical episodes start before every feature has a value", HISTORICAL,
           "self.start = max(self.start, first - window)", "self.start = max(self.start, first - window - 1)", FEATURING),
]


def run_tests(copy: Path, tests: tuple[str, ...], env: dict) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                         cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    lines = (out.stdout + out.stderr).strip().splitlines()
    return out.returncode, lines[-1] if lines else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="run this mutant only (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/mutation.md")
    args = parser.parse_args()
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:40s} {m.file:36s} {m.what}")
        return 0
    names = {m.name for m in MUTANTS}
    unknown = set(args.only or ()) - names
    if unknown:
        parser.error(f"unknown mutant(s) {sorted(unknown)}; see --list")
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    with tempfile.TemporaryDirectory(prefix="openclaw-mutation-") as tmp:
        copy = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
        for name in COPIED:
            source = ROOT / name
            (shutil.copytree(source, copy / name, ignore=ignore) if source.is_dir() else shutil.copy2(source, copy / name))
        env = {**os.environ, "PYTHONPATH": str(copy)}
        where = subprocess.run([sys.executable, "-c", "import openclaw_rl; print(openclaw_rl.__file__)"], cwd=copy,
                               env=env, capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(copy)):
            print(f"refusing: the tests would import openclaw_rl from {where!r}, not from the copy", file=sys.stderr)
            return 2
        originals = {}
        for m in chosen:  # every snippet must be where the mutant expects it, before anything runs
            text = originals.setdefault(m.file, (copy / m.file).read_text())
            count = text.count(m.original)
            if count != 1:
                print(f"refusing: mutant {m.name}: its snippet occurs {count} times in {m.file} (expected once); "
                      f"the file changed, update the mutant:\n{m.original}", file=sys.stderr)
                return 2
            try:
                compile(text.replace(m.original, m.mutated), m.file, "exec")
            except SyntaxError as err:
                print(f"refusing: mutant {m.name} does not compile: {err}", file=sys.stderr)
                return 2
        suites = sorted({t for m in chosen for t in m.tests})
        code, last = run_tests(copy, tuple(suites), env)
        if code != 0:
            print(f"refusing: the tests fail without any mutant ({' '.join(suites)}): {last}", file=sys.stderr)
            return 2
        rows, survived = [], []
        for m in chosen:
            path = copy / m.file
            start = time.perf_counter()
            try:
                path.write_text(originals[m.file].replace(m.original, m.mutated))
                code, last = run_tests(copy, m.tests, env)
            finally:
                path.write_text(originals[m.file])
            if code not in (0, 1):  # 1: tests failed; anything else (no tests, usage, crash) says nothing
                print(f"error: mutant {m.name}: pytest exited {code}: {last}", file=sys.stderr)
                return 2
            killed = code == 1
            if not killed:
                survived.append(m.name)
            verdict = "killed" if killed else "SURVIVED"
            print(f"{verdict:8s} {m.name:40s} {time.perf_counter() - start:5.1f}s  {last}", flush=True)
            rows.append((m, verdict, last))
    total, killed = len(rows), len(rows) - len(survived)
    summary = f"{killed}/{total} mutants killed"
    print(summary + (f"; survived: {', '.join(survived)}" if survived else ""))
    if not args.no_write and not args.only:
        lines = ["# Mutation testing", "",
                 f"`make mutation` (scripts/mutation.py), {datetime.date.today()}: **{summary}**. Each mutant changes one "
                 "snippet in a temporary copy of the repository and runs the listed tests (`pytest -x -q`); killed = "
                 "a test failed.", "",
                 "| mutant | what it breaks | file | tests | result |", "|---|---|---|---|---|"]
        for m, verdict, last in rows:
            lines.append(f"| `{m.name}` | {m.what} | `{m.file}` | {', '.join(t.removeprefix('tests/') for t in m.tests)} "
                         f"| {verdict} |")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        from openclaw_rl.atomic import atomic_write

        atomic_write(RESULTS, "\n".join(lines) + "\n")
        print(f"wrote {RESULTS}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
