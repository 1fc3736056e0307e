"""The ever-growing archive of evaluated designs: one SQLite file in the sweep dir.

Only the sweeper process writes it (workers hand results back through files), so every change
is one short transaction and a killed sweep leaves a consistent file to resume from.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,               -- search | holdout
    status TEXT NOT NULL,             -- running | finished | failed | pruned | interrupted
    design TEXT NOT NULL,             -- JSON {key: value}
    overrides TEXT NOT NULL,          -- JSON [override strings of the design]
    score REAL,                       -- aggregate over tasks
    task_scores TEXT,                 -- JSON [score per task]
    parent INTEGER REFERENCES trials(id),
    parent2 INTEGER REFERENCES trials(id),
    mutation TEXT,                    -- initial | baseline | perturb | resample | crossover | retry | holdout
    retry_of INTEGER REFERENCES trials(id),
    times_expanded INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    run_dir TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS reports (
    trial INTEGER NOT NULL REFERENCES trials(id),
    task INTEGER NOT NULL,
    step INTEGER NOT NULL,
    score REAL NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (trial, task, step)
);
"""

COLUMNS = ("id", "kind", "status", "design", "overrides", "score", "task_scores", "parent", "parent2", "mutation",
           "retry_of", "times_expanded", "created", "started", "ended", "run_dir", "error")


@dataclass
class Trial:
    id: int
    kind: str
    status: str
    design: dict
    overrides: list
    score: float | None
    task_scores: list | None
    parent: int | None
    parent2: int | None
    mutation: str | None
    retry_of: int | None
    times_expanded: int
    created: float
    started: float | None
    ended: float | None
    run_dir: str | None
    error: str | None


class Archive:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions below
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -------------------------------------------------------------- trials
    def add(self, kind: str, design: dict, overrides: list[str], mutation: str, parent: int | None = None,
            parent2: int | None = None, retry_of: int | None = None) -> int:
        with self.db:
            self.db.execute("BEGIN")
            cursor = self.db.execute(
                "INSERT INTO trials (kind, status, design, overrides, mutation, parent, parent2, retry_of, created, started)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, json.dumps(design), json.dumps(overrides), mutation, parent, parent2, retry_of, time.time(), time.time()),
            )
            for expanded in ({parent, parent2} - {None}) if kind == "search" else ():  # holdout runs are not expansions
                self.db.execute("UPDATE trials SET times_expanded = times_expanded + 1 WHERE id = ?", (expanded,))
            return int(cursor.lastrowid)

    def set_run_dir(self, trial: int, run_dir: str) -> None:
        self.db.execute("UPDATE trials SET run_dir = ? WHERE id = ?", (run_dir, trial))

    def finish(self, trial: int, score: float, task_scores: list[float]) -> None:
        self.db.execute("UPDATE trials SET status = 'finished', score = ?, task_scores = ?, ended = ? WHERE id = ?",
                        (score, json.dumps(task_scores), time.time(), trial))

    def fail(self, trial: int, error: str, status: str = "failed") -> None:
        self.db.execute("UPDATE trials SET status = ?, error = ?, ended = ? WHERE id = ?",
                        (status, error, time.time(), trial))

    def report(self, trial: int, task: int, step: int, score: float) -> bool:
        """Record an intermediate score; False if that (trial, task, step) was already known."""
        cursor = self.db.execute("INSERT OR IGNORE INTO reports (trial, task, step, score, time) VALUES (?, ?, ?, ?, ?)",
                                 (trial, task, step, score, time.time()))
        return cursor.rowcount > 0

    def peers_at(self, task: int, step: int, excluding: int) -> list[float]:
        rows = self.db.execute("SELECT score FROM reports WHERE task = ? AND step = ? AND trial != ?",
                               (task, step, excluding)).fetchall()
        return [r[0] for r in rows]

    def trials(self, kind: str | None = None, status: str | None = None) -> list[Trial]:
        query, args = f"SELECT {', '.join(COLUMNS)} FROM trials WHERE 1 = 1", []
        if kind is not None:
            query, args = query + " AND kind = ?", args + [kind]
        if status is not None:
            query, args = query + " AND status = ?", args + [status]
        return [_trial(row) for row in self.db.execute(query + " ORDER BY id", args)]

    def get(self, trial: int) -> Trial:
        row = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM trials WHERE id = ?", (trial,)).fetchone()
        return _trial(row)


def _trial(row) -> Trial:
    values = dict(zip(COLUMNS, row))
    for key in ("design", "overrides", "task_scores"):
        if values[key] is not None:
            values[key] = json.loads(values[key])
    return Trial(**values)
