"""``suanli``: the command line. Domain errors map to exit codes here, in one place:
validation 2, not found 3, any other domain error 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from suanli.catalog.accelerator import load_catalog
from suanli.errors import NotFoundError, SuanliError, ValidationError
from suanli.model.alliance import Alliance
from suanli.sched.policy import get_policy, policy_names
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot
from suanli.spec.alliance_file import load_alliance
from suanli.spec.common import read_yaml
from suanli.spec.job_file import load_jobs, parse_jobs
from suanli.spec.schema import alliance_schema, job_schema

from .report import pass_json, pass_text, pool_text
from .table import table

F = TypeVar("F", bound=Callable[..., Any])
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"  # shipped as package data
EXIT_VALIDATION, EXIT_NOT_FOUND, EXIT_OTHER = 2, 3, 1


def _fail(exc: SuanliError) -> None:
    if isinstance(exc, ValidationError):
        for p in exc.problems:
            click.echo(f"{exc.source}: {p}" if exc.source else str(p), err=True)
        sys.exit(EXIT_VALIDATION)
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_NOT_FOUND if isinstance(exc, NotFoundError) else EXIT_OTHER)


def _snapshot(alliance: Alliance, jobs_path: Path) -> Snapshot:
    specs = load_jobs(jobs_path, alliance)
    snap = Snapshot.from_alliance(alliance)
    for i, spec in enumerate(specs):
        snap.submit(
            spec, submitted_at=float(i), allowed_sites=alliance.allowed_sites(spec.datasets)
        )
    return snap


@click.group()
@click.version_option(package_name="suanli")
def cli() -> None:
    """suanli: the control plane of an accelerator alliance."""


@cli.group()
def catalog() -> None:
    """The accelerator catalog."""


@catalog.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON list, one object per model")
def catalog_list(as_json: bool) -> None:
    """List accelerator models with their figures and sources."""
    cat = load_catalog()
    if as_json:
        click.echo(json.dumps([m.to_json() for m in cat], indent=2, ensure_ascii=False))
        return
    click.echo(
        table(
            ["id", "vendor", "model", "mem GB", "peak TFLOPS", "basis", "stack", "unit"],
            [
                [
                    m.id,
                    m.vendor,
                    m.name,
                    m.memory_gb or "",
                    m.peak_tflops or "(calibrate)",
                    m.peak_basis,
                    m.stack,
                    m.alloc_unit,
                ]
                for m in cat
            ],
        )
    )


@cli.group()
def spec() -> None:
    """Job specs and alliance files: validation and JSON Schemas."""


@spec.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--alliance",
    "alliance_path",
    type=click.Path(path_type=Path),
    help="check a job spec against this alliance (members, datasets, nodes)",
)
def spec_validate(file: Path, alliance_path: Path | None) -> None:
    """Check FILE (a job spec or an alliance file). Exit 0 if valid; otherwise print one line
    per problem, each naming its field, and exit 2."""
    try:
        data = read_yaml(file)
        if isinstance(data, dict) and "members" in data:
            a = load_alliance(file)
            click.echo(
                f"{file}: valid alliance file ({len(a.members)} members, {len(a.nodes)} nodes)"
            )
            return
        alliance = load_alliance(alliance_path) if alliance_path else None
        specs = parse_jobs(data, str(file), alliance)
        click.echo(f"{file}: valid job spec ({len(specs)} job(s))")
    except SuanliError as exc:
        _fail(exc)


@spec.command("schema")
@click.argument("kind", type=click.Choice(["alliance", "job", "openapi"]))
def spec_schema(kind: str) -> None:
    """Print the JSON Schema of an alliance file or a job spec, or the API's OpenAPI document."""
    if kind == "openapi":
        from suanli.api.app import openapi_document

        click.echo(json.dumps(openapi_document(), indent=2))
        return
    click.echo(json.dumps(alliance_schema() if kind == "alliance" else job_schema(), indent=2))


@cli.command("policies")
def policies() -> None:
    """List the scheduling policies."""
    for name in policy_names():
        click.echo(name)


@cli.command("schedule")
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
        _fail(exc)
    data = pass_json(snap, result, policy)
    click.echo(json.dumps(data, indent=2) if as_json else pass_text(data))


@cli.command("demo")
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
    """The main job: load the example alliance, print its pool, run one scheduling pass."""
    try:
        alliance = load_alliance(alliance_file)
        click.echo(pool_text(alliance))
        click.echo("")
        snap = _snapshot(alliance, jobs_file)
        result = schedule(snap, get_policy(policy))
    except SuanliError as exc:
        _fail(exc)
    click.echo(pass_text(pass_json(snap, result, policy)))


def main() -> None:
    cli()


def _register() -> None:
    from suanli.cli.service import register
    from suanli.cli.sim import sim
    from suanli.cli.users import users

    cli.add_command(sim)
    cli.add_command(users)
    register(cli)


_register()
