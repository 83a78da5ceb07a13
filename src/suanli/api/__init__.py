"""The REST API: thin FastAPI routes over the service functions."""
