"""The books on a server: ``ledger statement`` and ``ledger verify``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from suanli.cli.client import api, connection
from suanli.text import table


@click.group("ledger")
def ledger_cmd() -> None:
    """The books: statements per member and month, and the hash chain's check."""


@ledger_cmd.command("statement")
@click.option("--member", required=True)
@click.option("--period", required=True, help="a month, such as 2026-11 (UTC)")
@click.option("--book", default="real", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@connection
def ledger_statement(
    member: str, period: str, book: str, fmt: str, url: str | None, token: str | None
) -> None:
    """What MEMBER contributed, consumed, lent and borrowed in PERIOD, and its balance."""
    if fmt == "csv":
        click.echo(api(lambda c: c.statement_csv(member, period, book), url, token), nl=False)
        return
    st = api(lambda c: c.statement(member, period, book), url, token)
    if fmt == "json":
        click.echo(json.dumps(st, indent=2))
        return
    lines = ["contributed", "consumed", "own_use", "lent", "borrowed", "balance"]
    rows: list[list[Any]] = [[k, "", f"{st[k]:.3f}"] for k in lines]
    rows.append(["utilization", "", f"{st['utilization']:.1%}"])
    sections = ("contributed_by_model", "consumed_by_model", "lent_to", "borrowed_from")
    for section in (*sections, "federated_runs"):
        rows += [[section, k, f"{v:.3f}"] for k, v in st.get(section, {}).items()]
    click.echo(f"{member} {period} ({book} book, NU-hours, {st['records']} records)")
    click.echo(table(["LINE", "DETAIL", "NU-H"], rows))


@ledger_cmd.command("verify")
@click.option("--book", default="real", show_default=True)
@connection
def ledger_verify(book: str, url: str | None, token: str | None) -> None:
    """Check the book's hash chain: exit 0 if whole, 6 if a record was changed or lost."""
    r = api(lambda c: c.verify_ledger(book), url, token)
    if r["ok"]:
        click.echo(f"{book}: {r['records']} records, chain intact, head {r['head']}")
        return
    where = f" at record {r['first_bad']}" if r["first_bad"] is not None else ""
    click.echo(f"{book}: TAMPERED{where}: {r['reason']}", err=True)
    sys.exit(6)
