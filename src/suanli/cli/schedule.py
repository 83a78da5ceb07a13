"""One scheduling pass from files, without a server: ``suanli schedule``, ``suanli demo``,
``suanli policies``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from suanli.cli.exits import fail
from suanli.cli.report import pass_json, pass_text, pool_text
from suanli.errors import SuanliError
from suanli.model.alliance import Alliance
from suanli.model.federation import FederatedSpec
from suanli.sched.policy import get_policy, policy_names
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot
from suanli.spec.alliance_file import load_alliance
from suanli.spec.job_file import load_specs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"  # shipped as package data


def _snapshot(alliance: Alliance, jobs_path: Path) -> Snapshot:
    """The pool with the file's jobs submitted in order; a federated job as its parts (one
    per participant, submitted together)."""
    snap = Snapshot.from_alliance(alliance)
    for i, spec in enumerate(load_specs(jobs_path, alliance)):
        for part in spec.parts() if isinstance(spec, FederatedSpec) else (spec,):
            snap.submit(part, submitted_at=float(i), allowed_sites=alliance.sites_for(part))
    return snap


@click.command("policies")
def policies() -> None:
    """List the scheduling policies."""
    for name in policy_names():
        click.echo(name)


@click.command("schedule")
@click.argument("alliance_file", type=click.Path(path_type=Path))
@click.argument("jobs_file", type=click.Path(path_type=Path))
@click.option("--policy", default="alliance", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def schedule_cmd(alliance_file: Path, jobs_file: Path, policy: str, as_json: bool) -> None:
    """One scheduling pass over JOBS_FILE on an empty ALLIANCE_FILE pool: the decisions and
    why every pending job waits. Jobs are submitted in file order."""
    try:
        alliance = load_alliance(alliance_file)
        snap = _snapshot(alliance, jobs_file)
        result = schedule(snap, get_policy(policy))
    except SuanliError as exc:
        fail(exc)
    data = pass_json(snap, result, policy)
    click.echo(json.dumps(data, indent=2) if as_json else pass_text(data))


@click.command("demo")
@click.option(
    "--alliance",
    "alliance_file",
    type=click.Path(path_type=Path),
    default=EXAMPLES / "alliance.yaml",
    show_default=True,
)
@click.option(
    "--jobs",
    "jobs_file",
    type=click.Path(path_type=Path),
    default=EXAMPLES / "jobs.yaml",
    show_default=True,
)
@click.option("--policy", default="alliance", show_default=True)
def demo(alliance_file: Path, jobs_file: Path, policy: str) -> None:
    """One scheduling pass on the example alliance, printed (no server, nothing runs)."""
    try:
        alliance = load_alliance(alliance_file)
        click.echo(pool_text(alliance))
        click.echo("")
        snap = _snapshot(alliance, jobs_file)
        result = schedule(snap, get_policy(policy))
    except SuanliError as exc:
        fail(exc)
    click.echo(pass_text(pass_json(snap, result, policy)))
