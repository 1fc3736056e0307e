"""``openclaw-bench run``'s settings: the one source of their defaults (``bench_schema`` in Hydra's ConfigStore)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BenchConfig:
    checkpoint: str | None = None  # a training run dir or checkpoint file to score
    strategy: str | None = None  # or a V7 strategy (buy_and_hold, trend, ...), or random
    agent: str | None = None  # or an agent from elsewhere: module:callable (observations -> actions), an SB3 .zip or an exported .onnx
    lineage: str | None = None  # agent: a YAML file declaring what it trained on ([{seeds: [lo, hi]}, {data: {path: ...}}])
    # test (the suite's score) | validation: the same tasks and scoring on their validation split, to choose between
    # variants without reading the test split (its results say split: validation; never report them as the score)
    split: str = "test"
    tier: str = "smoke"  # smoke (3 tasks, seconds) | full (every market task, 8 seeds) | private (seeds from your salt) | memory (the memory tasks)
    tasks: list[str] | None = None  # a subset of the suite's tasks (default: the tier's)
    user_tasks: list[str] = field(default_factory=list)  # YAML files, each a task {name, about, env}
    salt_file: str | None = None  # tier=private: a file holding the salt (else $OPENCLAW_BENCH_SALT)
    allow_contaminated: bool = False  # score a contaminated agent anyway; its rows are marked
    device: str = "cpu"
    progress: str = "auto"  # auto (a bar on a terminal, log lines otherwise) | bar | log
