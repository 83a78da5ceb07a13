"""``suanli spec``: validate job specs and alliance files; print their JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import click

from suanli.cli.exits import fail
from suanli.errors import SuanliError
from suanli.model.federation import FederatedSpec
from suanli.spec.alliance_file import load_alliance
from suanli.spec.common import read_yaml
from suanli.spec.job_file import parse_specs
from suanli.spec.schema import alliance_schema, job_schema


@click.group()
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
        specs = parse_specs(data, str(file), alliance)
        federated = [s for s in specs if isinstance(s, FederatedSpec)]
        runs = f", {len(federated)} federated" if federated else ""
        click.echo(f"{file}: valid job spec ({len(specs)} job(s){runs})")
    except SuanliError as exc:
        fail(exc)


@spec.command("schema")
@click.argument("kind", type=click.Choice(["alliance", "job", "card", "openapi"]))
def spec_schema(kind: str) -> None:
    """Print the JSON Schema of an alliance file or a job spec, or the API's OpenAPI document."""
    if kind == "openapi":
        from suanli.api.app import openapi_document

        click.echo(json.dumps(openapi_document(), indent=2))
        return
    if kind == "card":
        from suanli.spec.card import card_schema

        click.echo(json.dumps(card_schema(), indent=2))
        return
    click.echo(json.dumps(alliance_schema() if kind == "alliance" else job_schema(), indent=2))
