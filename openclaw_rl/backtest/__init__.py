"""Backtests: run strategies or policies on any market env and report the metrics quants expect."""
