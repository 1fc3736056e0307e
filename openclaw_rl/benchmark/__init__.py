"""The benchmark suite: versioned tasks with train / validation / test splits, a contamination
guard, statistics with intervals, and a regression gate (``openclaw-bench list | run | compare``)."""
