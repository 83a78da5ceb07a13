"""Trace loaders, one per format. Bad lines are reported with file and line, never dropped."""
