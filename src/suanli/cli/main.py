"""``suanli``: the command line. One module per noun holds its commands; the exit codes are in
:mod:`suanli.cli.exits`.

A command's module is imported only when that command runs: ``suanli --help`` or ``suanli
jobs`` must not pay for the simulator and matplotlib (seconds on a busy machine). The table
below names each command's module and its one-line help (a test keeps it equal to the
command's own)."""

from __future__ import annotations

import importlib

import click

#: name -> (module under suanli.cli, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "catalog": ("catalog", "catalog", "The accelerator catalog."),
    "spec": ("spec", "spec", "Job specs and alliance files: validation and JSON Schemas."),
    "policies": ("schedule", "policies", "List the scheduling policies."),
    "schedule": (
        "schedule",
        "schedule_cmd",
        "One scheduling pass over JOBS_FILE on an empty ALLIANCE_FILE pool: the...",
    ),
    "demo": (
        "schedule",
        "demo",
        "One scheduling pass on the example alliance, printed (no server, nothing runs).",
    ),
    "server": (
        "server",
        "server",
        "Run the service: database, controller and REST API (Ctrl-C stops it).",
    ),
    "login": ("jobs", "login", "Check the token against the server and remember both."),
    "submit": ("jobs", "submit", "Submit a job file (one job or jobs: [...])."),
    "jobs": ("jobs", "jobs_cmd", "List jobs, oldest first."),
    "job": ("jobs", "job_cmd", "One job: its spec, phase, placement and why."),
    "cancel": ("jobs", "cancel", "Cancel a job (a running one is stopped with its grace period)."),
    "logs": ("jobs", "logs", "A job's output."),
    "queue": (
        "jobs",
        "queue",
        "Pending jobs with their position in their member's queue and why they wait.",
    ),
    "pool": (
        "pool",
        "pool_cmd",
        "Nodes with their model, owner, use and state (and pool-wide actions).",
    ),
    "members": ("pool", "members", "Members with their entitlement and use in NU."),
    "shares": (
        "pool",
        "shares",
        "Each member's share per model (devices): nominal, limits and use.",
    ),
    "ledger": (
        "ledger",
        "ledger_cmd",
        "The books: statements per member and month, and the hash chain's check.",
    ),
    "users": ("users", "users", "Users and their tokens: list, create, revoke, rotate."),
    "hub": (
        "hub",
        "hub_cmd",
        "The alliance's hub: models and datasets, their revisions and who may read them.",
    ),
    "sim": ("sim", "sim", "Trace-driven simulation on the same scheduler as the service."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when they run (help lists them from the table)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"suanli.cli.{entry[0]}")
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in COMMANDS.items()])


@click.group(cls=LazyGroup)
@click.version_option(package_name="suanli")
def cli() -> None:
    """suanli: the control plane of an accelerator alliance."""


def main() -> None:
    cli()
