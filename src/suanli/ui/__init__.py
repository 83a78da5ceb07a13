"""The web dashboard: server-rendered pages over the service's data, behind its tokens."""
