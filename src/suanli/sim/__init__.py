"""Trace-driven simulation: replays a workload through the same ``schedule()`` as the service,
with a virtual clock and a simulated executor."""
