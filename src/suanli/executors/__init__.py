"""Executors run what the scheduler admitted: the interface, and its implementations."""
