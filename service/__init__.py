"""Learning stats service: session stats in DynamoDB, exact course aggregates in Redis.

``__version__`` is the one version string; ``pyproject.toml`` reads it from here.
"""

__version__ = "1.0.0"
