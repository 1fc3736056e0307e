"""The ALMA sweeper's settings (``hydra/sweeper=alma``): the schema is the one source of their defaults.

A light module (no torch): Hydra imports the plugin, and with it this, at every start of every app,
and a Ray worker unpickles it with Hydra's config store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

AGGREGATES = ("mean", "min")
LAUNCHERS = ("local", "hydra")
BACKENDS = ("local", "ray")  # where the steady-state trials run: alma.backends
PROPOSERS = ("alma", "random")


@dataclass
class PruningConf:
    enabled: bool = False
    min_peers: int = 4  # reports from at least this many other trials at the same task and step
    min_reports: int = 2  # a trial is never pruned at its first reports (early scores rank designs poorly)
    quantile: float = 0.25  # stop a trial whose report is below this quantile of its peers'
    report_file: str = "reports.jsonl"  # written by the task in its job dir: {"step": int, "objective": float}


@dataclass
class PromotionConf:
    """Successive halving (ASHA's rule): a trial whose weights trained r trial-lengths continues exactly
    from its checkpoint for one more (its design unchanged, ``key`` set to r + 1 lengths) when it ranks in
    the top 1/eta of the finished trials at r, highest r first; otherwise ALMA's rule proposes a design."""
    enabled: bool = False
    eta: float = 2.0
    key: str = "trainer.total_steps"  # a trial's length; a promoted trial resumes (resume_key=auto) with it raised


@dataclass
class ALMASweeperConf:
    _target_: str = "hydra_plugins.alma_sweeper.alma_sweeper.ALMASweeper"
    budget: int = 32  # search trials
    n_workers: int = 2  # trials running at once (local processes or Ray tasks)
    seed: int = 0
    n_initial: int = 8  # the baseline design plus space-filling designs before the proposer takes over
    # random: uniform designs | alma: ALMA's archive rule (parents, mutation operators, their credit). Random is the
    # default: ALMA's rule has not beaten it (bench/results/design_search{,_round2}.md)
    proposer: str = "random"
    tau: float = 0.5  # softmax temperature of parent selection
    score_scale: Optional[float] = None  # sigmoid scale of score - baseline; null: the archive's spread
    mutation_scale: float = 0.2  # numeric perturbation, as a fraction of the range (in log scale for tag(log))
    tasks: list[str] = field(default_factory=list)  # each: space-separated overrides, e.g. "env.regime=bull"
    aggregate: str = "mean"  # over tasks: mean | min
    holdout_tasks: list[str] = field(default_factory=list)  # transfer of the best designs, after the search
    holdout_top_k: int = 3
    inherit_weights: bool = False  # a child starts from its parent's final weights (the ROLL level)
    inherit_key: str = "trainer.init_from"
    resume_key: str = "trainer.resume"  # set to auto when an interrupted trial continues from its checkpoint
    max_retries: int = 1  # a worker killed (a signal, OOM, a lost Ray worker or node) continues this often before failing
    max_failure_rate: float = 0.5  # stop once more than this share of at least min_trials_for_failure trials failed
    min_trials_for_failure: int = 4
    poll_seconds: float = 0.2
    launcher: str = "local"  # local: steady-state workers, on the backend | hydra: the configured Hydra launcher, in rounds
    # Where steady-state trials run: local (a forked process each) | ray (a Ray task each; pip install
    # 'openclaw_rl[ray]'). With ray on several nodes, the sweep dir must be on a filesystem every node
    # mounts at the same path (trials write their job dirs and results there).
    backend: str = "local"
    ray_address: Optional[str] = None  # backend=ray: null starts a local Ray; else a cluster (host:port, ray://host:port, auto)
    cpus_per_trial: float = 1.0  # backend=ray: the CPUs Ray reserves for each trial (a local Ray gets n_workers x this)
    gpus_per_trial: float = 0.0  # backend=ray: the GPUs Ray reserves for each trial (fractions share a GPU)
    pruning: PruningConf = field(default_factory=PruningConf)
    promotion: PromotionConf = field(default_factory=PromotionConf)
