"""Scheduling policies, one per file. Each module registers its class on import."""
