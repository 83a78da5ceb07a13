"""``suanli users``: list users, create one, revoke or rotate its tokens (through the SDK).

Alliance admins manage every user, member admins their member's, and everyone their own
token. A new or rotated token is printed once; only its hash is kept.
"""

from __future__ import annotations

import time
from typing import Any

import click

from suanli.cli.client import api, as_json_option, connection, out
from suanli.sdk.client import Client

ROLES = ["alliance-admin", "member-admin", "member-user", "viewer"]


@click.group("users")
def users() -> None:
    """Users and their tokens: list, create, revoke, rotate."""


def _when(t: float | None) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


@users.command("list")
@connection
@as_json_option
def users_list(url: str | None, token: str | None, as_json: bool) -> None:
    """The users you may manage (alliance admins: all; member admins: their member's)."""
    rows: list[dict[str, Any]] = api(lambda c: c.users(), url, token)
    out(
        rows,
        as_json,
        ["NAME", "ROLE", "MEMBER", "TOKENS", "EXPIRES (UTC)"],
        [
            [u["name"], u["role"], u["member"] or "", u["tokens"], _when(u["expires_at"])]
            for u in rows
        ],
    )


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--member", help="the member of a member-admin or member-user")
@click.option(
    "--expires-in-days", type=float, help="the token stops working after (default: never)"
)
@connection
@as_json_option
def users_create(
    name: str,
    role: str,
    member: str | None,
    expires_in_days: float | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Create a user; prints its token, once."""

    def create(c: Client) -> dict[str, Any]:
        return c.create_user(name, role, member, expires_in_days)

    made: dict[str, Any] = api(create, url, token)
    if as_json:
        out(made, True, [], [])
    else:
        click.echo(f"user {made['name']} ({made['role']}) token, shown once: {made['token']}")


@users.command("revoke")
@click.argument("name")
@connection
@as_json_option
def users_revoke(name: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Every token of NAME stops working now, and its dashboard sessions end."""
    done: dict[str, Any] = api(lambda c: c.revoke_user(name), url, token)
    if as_json:
        out(done, True, [], [])
    else:
        click.echo(f"revoked {done['revoked']} token(s) of {name}")


@users.command("rotate")
@click.argument("name")
@click.option("--expires-in-days", type=float, help="the new token stops working after")
@connection
@as_json_option
def users_rotate(
    name: str, expires_in_days: float | None, url: str | None, token: str | None, as_json: bool
) -> None:
    """A new token for NAME (printed once); its other tokens stop working."""
    done: dict[str, Any] = api(lambda c: c.rotate_token(name, expires_in_days), url, token)
    if as_json:
        out(done, True, [], [])
    else:
        click.echo(f"new token of {name}, shown once: {done['token']}")
