"""The pool on a server: ``pool`` (and ``pool drain``), ``members``, ``shares``."""

from __future__ import annotations

import json

import click

from suanli.cli.client import api, as_json_option, connection, out
from suanli.sdk.client import Client


@click.group("pool", invoke_without_command=True)
@connection
@as_json_option
@click.pass_context
def pool_cmd(ctx: click.Context, url: str | None, token: str | None, as_json: bool) -> None:
    """Nodes with their model, owner, use and state (and pool-wide actions)."""
    if ctx.invoked_subcommand is not None:
        return
    nodes = api(lambda c: c.nodes(), url, token)
    rows = [
        [n["id"], n["member"], n["model"], f"{n['used']}/{n['devices']}", n["state"]] for n in nodes
    ]
    out(nodes, as_json, ["NODE", "MEMBER", "MODEL", "USED", "STATE"], rows)


@pool_cmd.command("drain")
@click.option("--vendor", help="every node of this vendor (NVIDIA, Huawei, ...)")
@click.option("--model", help="every node of this model or family")
@connection
@as_json_option
def pool_drain(
    vendor: str | None, model: str | None, url: str | None, token: str | None, as_json: bool
) -> None:
    """Supply-chain drill: drain the nodes and move their jobs onto other chips from their
    checkpoints; report what could not move and why."""
    r = api(lambda c: c.drain_pool(vendor, model), url, token)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"drained {len(r['nodes'])} node(s)")
    for m in r["moving"]:
        click.echo(f"  moving   {m['job']} -> {', '.join(m['to'])}")
    for m in r["staying"]:
        click.echo(f"  staying  {m['job']}: {m['reason']}")


@pool_cmd.command("undrain")
@click.argument("nodes", nargs=-1)
@click.option("--all", "every", is_flag=True, help="every draining node")
@connection
def pool_undrain(nodes: tuple[str, ...], every: bool, url: str | None, token: str | None) -> None:
    """Take nodes back into the pool after a drain (NODE..., or --all draining ones)."""
    if bool(nodes) == every:
        raise click.UsageError("name the nodes, or give --all")

    def run(c: Client) -> list[str]:
        names = list(nodes) or [n["id"] for n in c.nodes() if n["state"] == "draining"]
        return [c.drain(n, on=False)["id"] for n in names]

    done = api(run, url, token)
    click.echo(f"undrained {len(done)} node(s)" + (f": {', '.join(done)}" if done else ""))


@click.command("members")
@connection
@as_json_option
def members(url: str | None, token: str | None, as_json: bool) -> None:
    """Members with their entitlement and use in NU."""
    ms = api(lambda c: c.members(), url, token)
    rows = [
        [
            m["id"],
            m["kind"],
            m["tier"],
            f"{m['entitled_nu']:.3f}",
            f"{m['used_nu']:.3f}",
            m["pending"],
        ]
        for m in ms
    ]
    out(ms, as_json, ["MEMBER", "KIND", "TIER", "ENTITLED NU", "USED NU", "PENDING"], rows)


@click.command("shares")
@connection
@as_json_option
def shares(url: str | None, token: str | None, as_json: bool) -> None:
    """Each member's share per model (devices): nominal, limits and use."""
    sh = api(lambda c: c.shares(), url, token)
    rows = [
        [
            x["member"],
            x["model"],
            x["nominal"],
            x["used"],
            "-" if x["borrowing_limit"] is None else x["borrowing_limit"],
            "-" if x["lending_limit"] is None else x["lending_limit"],
        ]
        for x in sh
    ]
    out(sh, as_json, ["MEMBER", "MODEL", "NOMINAL", "USED", "BORROW LIMIT", "LEND LIMIT"], rows)
