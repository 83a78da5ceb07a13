"""``suanli catalog``: the accelerator catalog."""

from __future__ import annotations

import json

import click

from suanli.catalog.accelerator import load_catalog
from suanli.text import table


@click.group()
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
