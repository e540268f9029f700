"""Learning stats service: session stats in DynamoDB, exact course aggregates in Redis."""

__version__ = "1.0.0"
