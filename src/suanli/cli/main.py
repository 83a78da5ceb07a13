"""``suanli``: the command line. One module per noun holds its commands; the exit codes are in
:mod:`suanli.cli.exits`."""

from __future__ import annotations

import click

from suanli.cli import catalog, jobs, ledger, pool, schedule, server, sim, spec, users


@click.group()
@click.version_option(package_name="suanli")
def cli() -> None:
    """suanli: the control plane of an accelerator alliance."""


for _command in (
    catalog.catalog,
    spec.spec,
    schedule.policies,
    schedule.schedule_cmd,
    schedule.demo,
    server.server,
    jobs.login,
    jobs.submit,
    jobs.jobs_cmd,
    jobs.job_cmd,
    jobs.cancel,
    jobs.logs,
    jobs.queue,
    pool.pool_cmd,
    pool.members,
    pool.shares,
    ledger.ledger_cmd,
    users.users,
    sim.sim,
):
    cli.add_command(_command)


def main() -> None:
    cli()
