"""The policy interface and the registry that finds policies by name.

A policy is a class with a ``name`` and one method, ``run(ctx)``, that acts through the
:class:`~suanli.sched.context.PassContext`. Every module in ``suanli.sched.policies`` is
imported on first lookup and registers its class with :func:`register`: a new policy is a new
file, never a new branch in a switch.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar, Protocol, TypeVar

from suanli.errors import NotFoundError
from suanli.sched.context import PassContext

#: the grace period of a policy that states none (seconds)
DEFAULT_GRACE_S = 300.0


class Policy(Protocol):
    name: ClassVar[str]
    #: seconds a stopped job gets to checkpoint before it is killed (preemptions, drains)
    grace_s: float
    #: also run a pass every this many seconds while jobs wait (Gavel's rounds); None: a pass
    #: only when something changed
    round_s: ClassVar[float | None]

    def run(self, ctx: PassContext) -> None:
        """Decide admissions and preemptions for one pass."""


P = TypeVar("P", bound=type[Any])
_REGISTRY: dict[str, type[Any]] = {}


def register(cls: P) -> P:
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    from suanli.sched import policies

    for info in pkgutil.iter_modules(policies.__path__):
        importlib.import_module(f"{policies.__name__}.{info.name}")


def policy_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_policy(name: str, **params: Any) -> Policy:
    _discover()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise NotFoundError(f"unknown policy {name!r}; known: {sorted(_REGISTRY)}") from None
    policy: Policy = cls(**params)
    return policy
