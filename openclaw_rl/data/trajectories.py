"""Trajectory datasets: sharded Parquet on disk, composed by weights, streamed.

A dataset directory holds ``manifest.json`` (the format, the env config, the complete shards)
and per shard two Parquet files: ``NNNNN.steps.parquet`` (traj, t, action, logp, reward,
chunk) and ``NNNNN.trajectories.parquet`` (traj, source, regime, market_seed, length,
episodic_return, log_return, excess_log_return). Observations are not stored: a market is a
pure function of its seed (counter RNG), so ``replay`` regenerates them exactly by stepping the
recorded actions. Shards are written to temporary names and renamed, and the manifest is
replaced last, so a crash never leaves a shard that a reader would take as whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from openclaw_rl.atomic import atomic_write
from openclaw_rl.episodes import EpisodeRecord, run_episodes
from openclaw_rl.ipa.chunks import chunk_index
from openclaw_rl.metrics import episode_log_return
from openclaw_rl.progress import Progress
from openclaw_rl.rock import EnvConfig, MarketVecEnv
from openclaw_rl.rock.config import touched
from openclaw_rl.rock.historical import DataError
from openclaw_rl.rock.splits import unknown_record

FORMAT = "openclaw_rl.trajectories/1"
STEP_COLUMNS = ("traj", "t", "action", "logp", "reward", "chunk")
TRAJ_COLUMNS = ("traj", "source", "regime", "market_seed", "length", "episodic_return", "log_return", "excess_log_return")
log = logging.getLogger("openclaw_rl.data")


def _parquet():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("trajectory datasets need pyarrow: pip install 'openclaw_rl[data]'") from None
    return pa, pq


def _env_to_json(config: EnvConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _env_from_json(values: dict) -> EnvConfig:
    return EnvConfig.from_mapping({**values, "data": values["data"]})


def generate(make_actor: Callable, env_config: EnvConfig, n_trajectories: int, seed: int, root: Path, source: str,
             shard_size: int = 4096, append: bool = False, overwrite: bool = False,
             bar: bool | None = False, lineage: list[dict] | None = None) -> "TrajectoryDataset":
    """Play ``n_trajectories`` episodes (one per market, markets seeded ``seed, seed+1, ...``)
    with ``make_actor`` (see ``openclaw_rl.episodes``) into a new dataset at ``root``.

    A ``root`` that already holds a dataset is refused, unless ``append`` (add to it: same env
    config only; trajectory ids go on) or ``overwrite`` (delete it first). Progress: one report
    per shard, a bar on a terminal when ``bar`` is None. ``lineage``: that of the policy playing
    (``roll.lineage``), kept in the manifest so that a clone of the dataset inherits it."""
    pa, pq = _parquet()
    root = Path(root)
    manifest_path = root / "manifest.json"
    manifest = {"format": FORMAT, "env": _env_to_json(env_config), "shards": []}
    if append and overwrite:
        raise DataError("append=true adds to the dataset, overwrite=true replaces it: give one of them")
    if manifest_path.exists() and not (append or overwrite):
        raise DataError(f"{root}: already holds a dataset; add to it with append=true (same env config), "
                        "or replace it with overwrite=true")
    if manifest_path.exists() and append:
        manifest = TrajectoryDataset(root).manifest
        if manifest["env"] != _env_to_json(env_config):
            raise DataError(f"{root}: holds trajectories of another env config; write to a new directory "
                            "(or replace them with overwrite=true)")
        for shard in manifest["shards"]:  # the same markets twice would be duplicate trajectories
            first = shard.get("first_seed")
            if first is not None and first < seed + n_trajectories and seed < first + shard["n_trajectories"]:
                raise DataError(f"{root}: already holds the markets seeded {first}..{first + shard['n_trajectories'] - 1} "
                                f"({shard['trajectories_file']}); append markets from another seed, e.g. "
                                f"seed={max(s.get('first_seed', 0) + s['n_trajectories'] for s in manifest['shards'])}")
    for record in lineage or ():  # a strategy's dataset records an empty lineage: it is known to have none
        if record not in manifest.setdefault("lineage", []):
            manifest["lineage"].append(record)
    manifest.setdefault("lineage", [])
    if overwrite:
        removed = [path for pattern in ("manifest.json", "*.steps.parquet*", "*.trajectories.parquet*")
                   for path in root.glob(pattern)]
        for path in removed:
            path.unlink()
        if removed:
            log.warning("%s: deleted the dataset that was there (overwrite=true)", root)
    root.mkdir(parents=True, exist_ok=True)
    regime = env_config.regime or env_config.market["kind"]
    done = 0
    with Progress(math.ceil(n_trajectories / shard_size), "shard", log, bar=bar) as progress:
        while done < n_trajectories:
            n = min(shard_size, n_trajectories - done)
            config = dataclasses.replace(env_config, n_envs=n)
            record = run_episodes(MarketVecEnv(config=config), seed + done, make_actor)
            first_traj = sum(s["n_trajectories"] for s in manifest["shards"])
            steps, trajectories = _tables(record, first_traj, seed + done, source, regime, config)
            index = len(manifest["shards"])
            entry = {"steps_file": f"{index:05d}.steps.parquet", "trajectories_file": f"{index:05d}.trajectories.parquet",
                     "n_steps": int(len(steps["traj"])), "n_trajectories": n, "first_seed": seed + done}
            for kind, table in (("steps", steps), ("trajectories", trajectories)):
                tmp = root / (entry[f"{kind}_file"] + ".tmp")
                pq.write_table(pa.table(table), tmp)
                os.replace(tmp, root / entry[f"{kind}_file"])
            manifest["shards"].append(entry)
            atomic_write(manifest_path, json.dumps(manifest, indent=1))
            done += n
            progress.update(f"{done}/{n_trajectories} trajectories")
    return TrajectoryDataset(root)


def _tables(record: EpisodeRecord, first_traj: int, first_seed: int, source: str, regime: str, config: EnvConfig):
    """Column dicts of one shard from the curves of one batch of markets."""
    bars, n = record.positions.shape
    length = record.lengths  # a market ruined early stops at its end
    previous = np.concatenate([np.zeros((1, n)), record.positions[:-1]])
    chunk = chunk_index(record.positions != previous).astype(np.int32)  # an order ends its chunk (ipa.chunks)
    keep = np.arange(bars)[:, None] < length[None, :]
    traj_ids = first_traj + np.arange(n)
    column = lambda x: x.T[keep.T]  # noqa: E731  (market-major order: one trajectory after another)
    steps = {
        "traj": column(np.broadcast_to(traj_ids, (bars, n))).astype(np.int64),
        "t": column(np.broadcast_to(np.arange(bars)[:, None], (bars, n))).astype(np.int32),
        "action": column(record.positions).astype(np.float32),
        "logp": column(record.logp).astype(np.float32),  # behaviour log-prob (0 for deterministic teachers)
        "reward": column(record.rewards).astype(np.float32),
        "chunk": column(chunk),
    }
    log_return = episode_log_return(record.equity[-1], config.initial_equity, config.ruin_fraction)
    trajectories = {
        "traj": traj_ids.astype(np.int64),
        "source": [source] * n,
        "regime": [regime] * n,
        "market_seed": (first_seed + np.arange(n)).astype(np.int64),
        "length": length.astype(np.int32),
        "episodic_return": record.rewards.sum(axis=0),
        "log_return": log_return,
        "excess_log_return": log_return - record.buy_and_hold,
    }
    return steps, trajectories


class TrajectoryDataset:
    """A dataset directory, validated on open: every shard the manifest lists must be whole."""

    def __init__(self, root: Path):
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.is_file():
            raise DataError(f"{path}: no such file; not a trajectory dataset (or nothing was written yet)")
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: corrupt manifest ({err})") from None
        if self.manifest.get("format") != FORMAT:
            raise DataError(f"{path}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        _, pq = _parquet()
        for shard in self.manifest["shards"]:
            for kind, columns in (("steps", STEP_COLUMNS), ("trajectories", TRAJ_COLUMNS)):
                file = self.root / shard[f"{kind}_file"]
                try:
                    meta = pq.ParquetFile(file).metadata
                    names = pq.read_schema(file).names
                except Exception as err:  # missing, truncated, not Parquet
                    raise DataError(f"{file}: empty or corrupt shard ({type(err).__name__}: {err})") from None
                if meta.num_rows != shard[f"n_{kind}"] or list(names) != list(columns):
                    raise DataError(f"{file}: {meta.num_rows} rows with columns {names}; the manifest expects "
                                    f"{shard[f'n_{kind}']} rows with columns {list(columns)}")
        self.env_config = _env_from_json(self.manifest["env"])

    def __len__(self) -> int:
        return sum(s["n_trajectories"] for s in self.manifest["shards"])

    def touched(self) -> list[dict]:
        """What the dataset's episodes touched (one record per shard), and the lineage of the policy
        that played them (see ``roll.lineage``; empty for a strategy). A manifest without a lineage
        (deleted, or written before datasets recorded one) is ``unknown``: its player may have touched anything."""
        records = [{**touched(self.env_config, (s["first_seed"], s["first_seed"] + s["n_trajectories"])),
                    "use": "dataset", "by": str(self.root)} for s in self.manifest["shards"]]
        if "lineage" not in self.manifest:
            return records + [unknown_record("dataset", str(self.root),
                                             "its manifest records no lineage of the policy that played it")]
        return records + self.manifest["lineage"]

    def shard(self, index: int):
        """(trajectories, steps) of one shard as pyarrow tables."""
        _, pq = _parquet()
        shard = self.manifest["shards"][index]
        return pq.read_table(self.root / shard["trajectories_file"]), pq.read_table(self.root / shard["steps_file"])

    def trajectories(self):
        """All per-trajectory metadata (small: one row per trajectory)."""
        pa, pq = _parquet()
        return pa.concat_tables([pq.read_table(self.root / s["trajectories_file"]) for s in self.manifest["shards"]])


def compose(datasets: Mapping[str, float], seed: int) -> Iterator[tuple[str, dict, dict]]:
    """An endless stream of (dataset, trajectory row, step columns) that draws each dataset with
    probability proportional to its weight. One shard per dataset is in memory at a time;
    shards and trajectories come in a fresh random order on every pass."""
    if not datasets:
        raise DataError("compose: no dataset given")
    for name, weight in datasets.items():
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise DataError(f"compose: weight of {name} must be a finite number >= 0, got {weight!r}")
    total = sum(datasets.values())
    if total <= 0:
        raise DataError(f"compose: weights must sum to a positive number, got {dict(datasets)}")
    opened = {name: TrajectoryDataset(Path(name)) for name in datasets}
    envs = {json.dumps(d.manifest["env"], sort_keys=True) for d in opened.values()}
    if len(envs) > 1:
        raise DataError(f"compose: datasets {list(datasets)} were generated on different env configs; replay needs one")
    for name, dataset in opened.items():
        if len(dataset) == 0 and datasets[name] > 0:
            raise DataError(f"compose: {name} has no trajectories but weight {datasets[name]}")
    rng = np.random.default_rng(seed)
    names = list(datasets)
    probabilities = np.array([datasets[n] for n in names]) / total
    streams = {name: _trajectory_stream(opened[name], rng) for name in names}
    while True:
        name = names[rng.choice(len(names), p=probabilities)]
        yield (name, *next(streams[name]))


def _trajectory_stream(dataset: TrajectoryDataset, rng: np.random.Generator):
    while True:
        for index in rng.permutation(len(dataset.manifest["shards"])):
            trajectories, steps = dataset.shard(int(index))
            traj_rows = trajectories.to_pylist()
            steps_columns = {c: steps.column(c).to_numpy() for c in STEP_COLUMNS}
            starts = np.searchsorted(steps_columns["traj"], [r["traj"] for r in traj_rows])
            for i in rng.permutation(len(traj_rows)):
                row = traj_rows[i]
                sl = slice(starts[i], starts[i] + row["length"])
                yield row, {c: v[sl] for c, v in steps_columns.items()}


def replay(env_config: EnvConfig, market_seeds: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Observations ``[T, B, obs_dim]`` of markets ``market_seeds`` under the recorded target
    positions ``actions [T, B]`` (a continuous env takes them as they are)."""
    config = dataclasses.replace(env_config, n_envs=len(market_seeds), continuous=True,
                                 max_position=max(env_config.max_position, float(np.abs(actions).max(initial=1.0))))
    envs = MarketVecEnv(config=config)
    obs, _ = envs.reset(seed=[int(s) for s in market_seeds])
    out = [obs]
    for t in range(actions.shape[0] - 1):
        obs, *_ = envs.step(actions[t][:, None].astype(np.float32))
        out.append(obs)
    return np.stack(out)

