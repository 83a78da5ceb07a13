"""The command line's exit codes, in one table, and how an error ends a command."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from suanli.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SuanliError,
    UnauthenticatedError,
    ValidationError,
)

OK = 0
#: anything else (the server unreachable, a domain error without a code of its own)
OTHER = 1
#: invalid input: every problem is printed, each naming its field
INVALID = 2
NOT_FOUND = 3
#: no valid token, or not allowed
DENIED = 4
CONFLICT = 5
#: ``suanli ledger verify``: the chain does not check
TAMPERED = 6

#: a domain error's exit code (the first class that matches)
FOR_ERROR: dict[type[SuanliError], int] = {
    ValidationError: INVALID,
    NotFoundError: NOT_FOUND,
    PermissionDeniedError: DENIED,
    UnauthenticatedError: DENIED,
    ConflictError: CONFLICT,
}
#: an API answer's exit code
FOR_STATUS: dict[int, int] = {
    401: DENIED,
    403: DENIED,
    404: NOT_FOUND,
    409: CONFLICT,
    413: INVALID,
    422: INVALID,
}


def fail(exc: SuanliError) -> NoReturn:
    """Print a domain error (every problem of a validation error, one per line) and exit with
    its code."""
    if isinstance(exc, ValidationError):
        for p in exc.problems:
            click.echo(f"{exc.source}: {p}" if exc.source else str(p), err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(next((code for cls, code in FOR_ERROR.items() if isinstance(exc, cls)), OTHER))
