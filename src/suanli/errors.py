"""The one exception hierarchy of suanli's domain.

Every error a user can cause is a :class:`SuanliError`. Adapters (CLI, later the REST API) map
these classes to exit codes or HTTP status codes in one place each; the core never formats
transport-level answers itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a dotted field path) and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class SuanliError(Exception):
    """Base class of every domain error."""


class NotFoundError(SuanliError):
    """A named thing (model, member, site, node, dataset, job, policy) does not exist."""


class ValidationError(SuanliError):
    """An input is invalid. Carries every problem found, each naming its field.

    Nothing is half-accepted: a caller that gets this error has had nothing applied.
    """

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head}{len(self.problems)} problem(s)\n{lines}")


class CalibrationRequiredError(ValidationError):
    """A node's accelerator model has no trustworthy peak figure and none was declared."""


class ConflictError(SuanliError):
    """The request contradicts the current state (a duplicate id, removing a busy node)."""


class PermissionDeniedError(SuanliError):
    """The caller is known but may not do this."""


class UnauthenticatedError(SuanliError):
    """No valid credentials were presented."""


class CannotRunError(SuanliError):
    """A job can never run as asked, whatever the scheduler does: its executor refuses it (no
    executor for its site, a working directory it cannot read, secrets this server cannot
    decrypt). The controller fails the job with the reason instead of retrying."""


class PayloadTooLargeError(SuanliError):
    """A request's body is larger than the route accepts."""


class DatabaseError(SuanliError):
    """The database is unreachable, or its schema is newer than this version of suanli."""


class StateDirError(SuanliError):
    """The state directory is not private to the service (another user could read or write
    it), or it is not the one the database was made with."""


class LeaseLostError(SuanliError):
    """This server no longer holds the lease it acted under (another runs the controller)."""


class SandboxError(SuanliError):
    """Runs cannot be isolated on this machine (bubblewrap missing or not working, a member's
    OS account not made)."""


class VaultError(SuanliError):
    """A job's secret cannot be read back (another key, or a damaged value)."""
