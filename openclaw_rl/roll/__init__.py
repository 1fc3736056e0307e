"""ROLL: torch policies, rollout collection, the learner, checkpoints, training runs."""
