"""The Python SDK: a typed client of the REST API."""

from suanli.sdk.client import ApiError, Client

__all__ = ["ApiError", "Client"]
