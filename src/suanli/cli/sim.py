"""``suanli sim``: replay traces through the scheduler and compare policies."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from suanli.cli.exits import fail
from suanli.errors import ConflictError, Problem, SuanliError, ValidationError
from suanli.sched.policy import get_policy
from suanli.sim.metrics import summarize
from suanli.sim.report import member_table, summary_table, write_html, write_json
from suanli.sim.scenario import Scenario, load_scenario
from suanli.sim.simulator import SimResult, Simulation


def _progress(label: str) -> Any:
    if not sys.stderr.isatty():
        return None
    last = [-1]

    def show(frac: float) -> None:
        pct = int(frac * 100)
        if pct != last[0]:
            last[0] = pct
            bar = "#" * (pct // 4)
            click.echo(f"\r{label:10} [{bar:25}] {pct:3d}%", err=True, nl=pct == 100)

    return show


def _meta(sc: Scenario) -> dict[str, Any]:
    named = {m.id: m.name for m in sc.alliance.members.values() if m.name and m.name != m.id}
    return {
        "name": sc.name,
        "jobs": len(sc.jobs),
        "nodes": len(sc.alliance.nodes),
        "devices": sum(n.devices for n in sc.alliance.nodes.values()),
        **sc.notes,
        "names": named | sc.notes.get("names", {}),
    }


def _run(sc: Scenario, policy: str, alone: bool) -> tuple[SimResult, dict[str, Any]]:
    options = sc.policies.get(policy, {})
    sim = Simulation(sc.alliance, sc.jobs, get_policy(policy, **options), sc.params, sc.faults)
    res = sim.run(_progress(policy))
    return res, summarize(res, sc.params, alone=alone, options=options)


@click.group()
def sim() -> None:
    """Trace-driven simulation on the same scheduler as the service."""


scenario_opt = click.option(
    "--scenario", required=True, help="a bundled scenario name (alliance-philly) or a YAML file"
)
trace_opt = click.option("--trace", type=click.Path(), help="replace the scenario's trace")
seed_opt = click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="trace seed, for scenarios whose paths use {seed}",
)
json_opt = click.option("--json", "json_path", type=click.Path(path_type=Path))
report_opt = click.option("--report", "report_dir", type=click.Path(path_type=Path))
alone_opt = click.option(
    "--no-alone",
    is_flag=True,
    help="skip the per-member alone baselines (no sharing-incentive ratio)",
)


@sim.command("run")
@scenario_opt
@trace_opt
@seed_opt
@click.option("--policy", default="alliance", show_default=True)
@json_opt
@report_opt
@alone_opt
@click.option(
    "--ledger",
    "ledger_url",
    help="write the runs to this database's ledger, in the book sim/SCENARIO/POLICY/seedN",
)
@click.option(
    "--ledger-start",
    default=None,
    help="the date (YYYY-MM-DD, UTC) simulated time 0 is put at in the book "
    "(default: the first of this month)",
)
def sim_run(
    scenario: str,
    trace: str | None,
    seed: int,
    policy: str,
    json_path: Path | None,
    report_dir: Path | None,
    no_alone: bool,
    ledger_url: str | None,
    ledger_start: str | None,
) -> None:
    """Simulate one policy on a scenario."""
    try:
        sc = load_scenario(scenario, trace, seed)
        res, summary = _run(sc, policy, not no_alone)
    except SuanliError as exc:
        fail(exc)
    click.echo(summary_table([summary]))
    click.echo("")
    click.echo(member_table(summary, _meta(sc)["names"]))
    if json_path:
        write_json(json_path, [summary], _meta(sc))
        click.echo(f"\nJSON: {json_path}")
    if report_dir:
        click.echo(f"HTML report: {write_html(report_dir, [res], [summary], _meta(sc))}")
    if ledger_url:
        _write_book(ledger_url, ledger_start, sc.name, policy, seed, res)


def _write_book(
    url: str, start: str | None, scenario: str, policy: str, seed: int, res: SimResult
) -> None:
    import datetime as dt

    from suanli.sim.book import book_name, book_records
    from suanli.store.database import Database
    from suanli.store.ledger_rows import append
    from suanli.store.tables import LedgerHeadRow

    try:
        day = (
            dt.datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            if start
            else dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        )
    except ValueError:
        fail(ValidationError([Problem("ledger-start", f"expected YYYY-MM-DD, got {start!r}")]))
    book = book_name(scenario, policy, seed)
    db = Database.open(url)
    try:
        with db.session() as s:
            if s.get(LedgerHeadRow, book) is not None:
                fail(ConflictError(f"the ledger already has a book {book!r}"))
            records = book_records(res, book, day.timestamp())
            append(s, records)
    finally:
        db.close()
    click.echo(f"ledger: {len(records):,} records in book {book} (from {day:%Y-%m-%d})")


@sim.command("compare")
@scenario_opt
@trace_opt
@seed_opt
@click.option("--policies", default="fifo,fair,gavel,alliance", show_default=True)
@json_opt
@report_opt
@alone_opt
def sim_compare(
    scenario: str,
    trace: str | None,
    seed: int,
    policies: str,
    json_path: Path | None,
    report_dir: Path | None,
    no_alone: bool,
) -> None:
    """Simulate several policies on one scenario and compare them."""
    try:
        sc = load_scenario(scenario, trace, seed)
        names = [p.strip() for p in policies.split(",") if p.strip()]
        for name in names:
            get_policy(name)
        runs = [_run(sc, name, not no_alone) for name in names]
    except SuanliError as exc:
        fail(exc)
    summaries = [s for _, s in runs]
    click.echo(summary_table(summaries))
    if json_path:
        write_json(json_path, summaries, _meta(sc))
        click.echo(f"\nJSON: {json_path}")
    if report_dir:
        path = write_html(report_dir, [r for r, _ in runs], summaries, _meta(sc))
        click.echo(f"\nHTML report: {path.resolve()}")
