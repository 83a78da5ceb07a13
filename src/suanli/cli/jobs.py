"""Jobs on a server: ``login``, ``submit``, ``jobs``, ``job``, ``cancel``, ``logs``, ``queue``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from suanli.cli.client import (
    DEFAULT_URL,
    ago,
    api,
    as_json_option,
    clip,
    config_path,
    connection,
    out,
    wide_option,
)
from suanli.sdk.client import Client
from suanli.sdk.code import with_code
from suanli.text import table


@click.command("login")
@click.option("--url", default=DEFAULT_URL, show_default=True)
@click.option("--token", required=True)
def login(url: str, token: str) -> None:
    """Check the token against the server and remember both."""
    me = api(lambda c: c.whoami(), url, token)
    p = config_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f)
    who = me["name"] + (f" of {me['member']}" if me.get("member") else "")
    click.echo(f"logged in to {url} as {who} ({me['role']})")


@click.command("submit")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@connection
@as_json_option
def submit(file: Path, url: str | None, token: str | None, as_json: bool) -> None:
    """Submit a job file (one job or jobs: [...]). A job whose working_dir is a git
    working tree is sent with its code revision (``code``, its lineage) unless it states one."""
    text = with_code(file.read_text(), Path.cwd())
    jobs = api(lambda c: c.submit(text), url, token)
    out(
        jobs,
        as_json,
        ["ID", "MEMBER", "PHASE"],
        [[j["id"], j["member"], j["phase"]] for j in jobs],
    )


PHASES = ["PENDING", "ADMITTED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"]


@click.command("jobs")
@click.option("--member", multiple=True, help="only this member's (repeatable)")
@click.option(
    "--phase",
    multiple=True,
    type=click.Choice(PHASES, case_sensitive=False),
    help="only jobs in this phase (repeatable)",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@connection
@as_json_option
@wide_option
def jobs_cmd(
    member: tuple[str, ...],
    phase: tuple[str, ...],
    limit: int,
    url: str | None,
    token: str | None,
    as_json: bool,
    wide: bool,
) -> None:
    """List jobs, oldest first."""
    page = api(
        lambda c: c.jobs(list(member) or None, [p.upper() for p in phase] or None, limit),
        url,
        token,
    )
    rows = [
        [
            j["id"],
            clip(j["name"] if j["name"] != j["id"] else "", 24, wide),
            j["member"],
            j["phase"],
            j["attempt"],
            (j["placement"] or {}).get("model", ""),
            ago(j["submitted_at"]),
            clip(j["reason"], 60, wide),
        ]
        for j in page["items"]
    ]
    headers = ["ID", "NAME", "MEMBER", "PHASE", "ATTEMPT", "MODEL", "AGE", "REASON"]
    out(page, as_json, headers, rows)


@click.command("job")
@click.argument("job_id")
@connection
@as_json_option
def job_cmd(job_id: str, url: str | None, token: str | None, as_json: bool) -> None:
    """One job: its spec, phase, placement and why."""
    j = api(lambda c: c.job(job_id), url, token)
    if as_json:
        click.echo(json.dumps(j, indent=2))
        return
    if j.get("kind") == "federated":
        _federated(
            j, api(lambda c: [c.job(p["part"]) for p in j["spec"]["participants"]], url, token)
        )
        return
    p = j["placement"]
    where = ", ".join(f"{n}[{','.join(map(str, d))}]" for n, d in p["assignments"]) if p else "-"
    for k, v in [
        ("id", j["id"]),
        *([("part of", j["run"])] if j.get("run") else []),
        ("member", j["member"]),
        ("phase", j["phase"]),
        ("reason", j["reason"]),
        ("attempt", j["attempt"]),
        ("preemptions", j["preemptions"]),
        ("exit code", "-" if j["exit_code"] is None else j["exit_code"]),
        ("placement", f"{p['model']} on {where}" if p else "-"),
        ("accelerators", f"{j['spec']['count']} of {', '.join(j['spec']['models'])}"),
        ("entrypoint", j["spec"]["entrypoint"]),
    ]:
        click.echo(f"{k + ':':14}{v}")


def _federated(j: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    """A federated run: its fields, its participants' parts, its rounds, its model."""
    spec = j["spec"]
    progress = j.get("progress") or {}
    rounds = progress.get("rounds") or []
    model = progress.get("model")
    for k, v in [
        ("id", j["id"]),
        ("kind", "federated"),
        ("member", j["member"]),
        ("phase", j["phase"]),
        ("reason", j["reason"]),
        ("app", spec["app"]),
        ("rounds", f"{len(rounds)} of {spec['rounds']} done"),
        ("participants", f"{len(parts)}, at least {spec['min_participants']} in every round"),
        ("model", f"{model['file']} sha256 {model['sha256']}" if model else "-"),
    ]:
        click.echo(f"{k + ':':14}{v}")
    click.echo()
    rows: list[list[Any]] = []
    for part, entry in zip(parts, spec["participants"], strict=True):
        where = part["placement"]["assignments"][0][0] if part["placement"] else "-"
        rows.append(
            [part["id"], entry["member"], entry["dataset"], part["phase"], where, part["attempt"]]
        )
    click.echo(table(["PART", "MEMBER", "DATASET", "PHASE", "NODE", "ATTEMPT"], rows))
    if rounds:
        click.echo()
        click.echo(
            table(
                ["ROUND", "PARTICIPANTS", "TRAIN LOSS", "EVAL LOSS"],
                [
                    [
                        r["round"],
                        _metric(r, "train", "participants", "{:.0f}"),
                        _metric(r, "train", "train_loss", "{:.4f}"),
                        _metric(r, "evaluate", "eval_loss", "{:.4f}"),
                    ]
                    for r in rounds
                ],
            )
        )


def _metric(entry: dict[str, Any], part: str, key: str, fmt: str) -> str:
    value = (entry.get(part) or {}).get(key)
    return "-" if value is None else fmt.format(value)


@click.command("cancel")
@click.argument("job_id")
@connection
def cancel(job_id: str, url: str | None, token: str | None) -> None:
    """Cancel a job (a running one is stopped with its grace period)."""
    j = api(lambda c: c.cancel(job_id), url, token)
    click.echo(f"{j['id']}: {j['phase']} ({j['reason']})")


@click.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing until the job ends")
@click.option("--attempt", type=int, help="which run (default: the latest)")
@click.option("--tail", type=click.IntRange(min=0), help="only the last BYTES of it")
@connection
def logs(
    job_id: str,
    follow: bool,
    attempt: int | None,
    tail: int | None,
    url: str | None,
    token: str | None,
) -> None:
    """A job's output."""

    def run(c: Client) -> None:
        chunks = c.follow_logs(job_id, tail=tail) if follow else c.read_logs(job_id, attempt, tail)
        printed = False
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            printed = True
        if not printed and not follow:
            j = c.job(job_id)
            why = f": {j['reason']}" if j["reason"] else ""
            click.echo(f"{job_id} has no output yet ({j['phase']}{why})", err=True)

    api(run, url, token)


@click.command("queue")
@connection
@as_json_option
@wide_option
def queue(url: str | None, token: str | None, as_json: bool, wide: bool) -> None:
    """Pending jobs with their position in their member's queue and why they wait."""
    q = api(lambda c: c.queue(), url, token)
    rows = [
        [e["id"], e["member"], e["position"], e["count"], clip(e["reason"], 80, wide)] for e in q
    ]
    out(q, as_json, ["ID", "MEMBER", "POS", "DEVICES", "REASON"], rows)
