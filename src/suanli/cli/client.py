"""What the commands that talk to a server share: the server and token (``--url``/``--token``,
then ``SUANLI_URL``/``SUANLI_TOKEN``, then the file ``suanli login`` wrote), calling the SDK
with errors turned into exit codes, and tables for people or ``--json`` for scripts."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from suanli.cli.exits import FOR_STATUS, OTHER
from suanli.sdk.client import ApiError, Client
from suanli.text import table

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URL = "http://127.0.0.1:8470"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(os.environ.get("SUANLI_CONFIG", Path(base) / "suanli" / "config.json"))


def client(url: str | None, token: str | None) -> Client:
    saved: dict[str, str] = {}
    p = config_path()
    if p.exists():
        saved = json.loads(p.read_text())
    url = url or os.environ.get("SUANLI_URL") or saved.get("url") or DEFAULT_URL
    token = token or os.environ.get("SUANLI_TOKEN") or saved.get("token")
    return Client(url, token)


def api(fn: Callable[[Client], Any], url: str | None, token: str | None) -> Any:
    """Call ``fn`` with a client; an API error or an unreachable server ends the command."""
    try:
        with client(url, token) as c:
            return fn(c)
    except ApiError as exc:
        click.echo(f"error ({exc.status} {exc.error}): {exc}", err=True)
        sys.exit(FOR_STATUS.get(exc.status, OTHER))
    except OSError as exc:
        click.echo(f"error: cannot reach the suanli server: {exc}", err=True)
        sys.exit(OTHER)


def connection(f: F) -> F:
    f = click.option("--token", envvar=None, help="bearer token (default: from login)")(f)
    return click.option("--url", help=f"server URL (default: from login, else {DEFAULT_URL})")(f)


def as_json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="JSON for scripts")(f)


def wide_option(f: F) -> F:
    return click.option("--wide", is_flag=True, help="full text (no column is cut short)")(f)


def clip(text: str, width: int, wide: bool = False) -> str:
    """``text`` cut to ``width`` with an ellipsis that says so (whole when ``wide``)."""
    return text if wide or len(text) <= width else text[: width - 1] + "…"


def out(data: Any, as_json: bool, headers: list[str], rows: list[list[Any]]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else table(headers, rows))


def ago(t: float | None) -> str:
    if t is None:
        return ""
    s = max(0, int(time.time() - t))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"
