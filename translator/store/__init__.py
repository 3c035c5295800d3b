"""Execution state: the Redis and in-memory stores, and execution records."""
