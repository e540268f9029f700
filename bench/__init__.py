"""Load-testing and benchmark tooling: ``scripts/bench`` and ``scripts/loadtest``."""
