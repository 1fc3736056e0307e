"""V7 rule-based strategies: baselines and teachers."""
