"""ALMA: the design-level outer loop (archive, selection, mutation) as a Hydra sweeper."""
