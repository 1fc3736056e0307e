"""Trajectory datasets: generation, sharded storage, composition, replay."""
