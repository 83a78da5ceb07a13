"""``suanli server``: the service, with its controller and API, on this machine."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import click

from suanli.cli.exits import fail
from suanli.errors import SuanliError
from suanli.sdk.client import ApiError, Client
from suanli.spec.alliance_file import load_alliance

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@click.command("server")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".suanli"),
    show_default=True,
    help="database, runs, checkpoints, admin token",
)
@click.option("--db", "db_url", help="SQLAlchemy URL (default: SQLite in the state dir)")
@click.option(
    "--alliance",
    "alliance_file",
    type=click.Path(path_type=Path),
    default=EXAMPLES / "alliance.yaml",
    show_default=True,
    help="loaded when the database is new",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8470, show_default=True, type=int)
@click.option("--policy", default="alliance", show_default=True)
@click.option("--interval", default=1.0, show_default=True, help="seconds between passes")
@click.option(
    "--submit",
    "submit_file",
    type=click.Path(path_type=Path),
    help="submit this job file once the server is up",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="child processes here, or Ray (each site's cluster, else an embedded one)",
)
@click.option(
    "--site-timeout",
    default=60.0,
    show_default=True,
    help="seconds a site may not answer before its jobs move elsewhere (Ray)",
)
@click.option(
    "--reports",
    "reports_dir",
    type=click.Path(path_type=Path),
    help="the simulator's HTML reports the dashboard lists (default: STATE_DIR/reports)",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per line (ts, level, logger, msg, fields) for a log pipeline",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--until-done",
    is_flag=True,
    help="with --submit: stop the server once those jobs have ended",
)
@click.option(
    "--sandbox",
    type=click.Choice(["bwrap", "none"]),
    default="bwrap",
    show_default=True,
    help="isolate each run (bubblewrap; as its member's OS user when run as root), or "
    "none: only where every member trusts every other",
)
@click.option(
    "--job-network",
    type=click.Choice(["private", "host"]),
    default="private",
    show_default=True,
    help="a sandboxed local run's network: its own loopback only, or this machine's",
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    help="where datasets lie: DATA_ROOT/OWNER/PATH (default: STATE_DIR/data)",
)
@click.option(
    "--lease",
    "lease_s",
    default=10.0,
    show_default=True,
    help="seconds the controller's lease lasts: with several servers on one PostgreSQL "
    "database, a dead controller's successor takes over within this",
)
@click.option(
    "--log-cap",
    "log_cap_mib",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="MiB of a local run's output its log keeps (then the cut is noted and its last "
    "64 KiB kept)",
)
@click.option(
    "--federation-host",
    default="127.0.0.1",
    show_default=True,
    help="the address federated runs' SuperLinks listen on, which their participants' "
    "SuperNodes dial (this machine's, as the nodes see it)",
)
@click.option(
    "--public-url",
    help="this server's URL as jobs reach it (their HF_ENDPOINT for the hub; default "
    "http://HOST:PORT)",
)
@click.option(
    "--hub-site-store",
    "hub_site_stores",
    multiple=True,
    metavar="SITE=PATH",
    help="where the hub keeps the files of datasets resident at SITE (a mount of that "
    "site's storage; default STATE_DIR/hub/sites/SITE); repeat for each site",
)
def server(
    state_dir: Path,
    db_url: str | None,
    alliance_file: Path,
    host: str,
    port: int,
    policy: str,
    interval: float,
    submit_file: Path | None,
    executor: str,
    site_timeout: float,
    reports_dir: Path | None,
    log_format: str,
    log_level: str,
    until_done: bool,
    sandbox: str,
    job_network: str,
    data_root: Path | None,
    lease_s: float,
    log_cap_mib: int,
    federation_host: str,
    public_url: str | None,
    hub_site_stores: tuple[str, ...],
) -> None:
    """Run the service: database, controller and REST API (Ctrl-C stops it)."""
    import threading

    from suanli.service.logs import configure

    configure(log_format, log_level)

    from suanli.server import ServerConfig, prepare, serve

    cfg = ServerConfig(
        state_dir,
        db_url,
        host,
        port,
        policy,
        interval,
        executor,
        site_timeout,
        reports_dir,
        sandbox,
        job_network,
        data_root,
        lease_s,
        log_cap_mib << 20,
        federation_host,
        public_url,
        hub_site_dirs=_site_stores(hub_site_stores),
    )
    try:
        alliance = load_alliance(alliance_file)
        db, token = prepare(cfg, alliance)
        db.close()
    except SuanliError as exc:
        fail(exc)
    url = f"http://{host}:{port}"
    token = _announce(url, state_dir, token)
    if submit_file is not None:
        text = submit_file.read_text()
        threading.Thread(
            target=_submit_when_up, args=(url, token, text, until_done), daemon=True
        ).start()
    serve(cfg, alliance)


def _site_stores(given: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in given:
        site, eq, path = item.partition("=")
        if not eq or not site or not path:
            raise click.BadParameter(f"{item!r} is not SITE=PATH", param_hint="--hub-site-store")
        out[site] = Path(path)
    return out


def _announce(url: str, state_dir: Path, token: str | None) -> str | None:
    """Say where the server is, and its admin token if it was just made (only then: later
    starts say where it is). Returns the admin token, if this machine has it."""
    token_file = state_dir / "admin-token"
    click.echo(f"suanli server on {url}  (state in {state_dir})")
    click.echo(f"  dashboard: {url}/ui/   metrics: {url}/metrics   API docs: {url}/docs")
    if token:
        click.echo(f"admin token (shown once; also in {token_file}, mode 0600): {token}")
        click.echo(f"  suanli login --url {url} --token {token}")
    elif token_file.exists():
        click.echo(f"admin token: in {token_file}")
        token = token_file.read_text().strip()
    return token


def _submit_when_up(url: str, token: str | None, text: str, until_done: bool) -> None:
    """``--submit``: submit the file once the server answers; with ``--until-done``, report
    the jobs until they end, then stop the server."""
    with Client(url, token) as c:
        while True:  # (an embedded Ray cluster takes minutes on a busy machine; if the
            try:  # server fails to start, its process ends with the reason, and this thread)
                c.health()
                break
            except OSError:
                time.sleep(0.2)
        try:
            jobs = c.submit(text)
            click.echo(f"submitted {len(jobs)} job(s): " + ", ".join(j["id"] for j in jobs))
            if until_done:
                # (a federated run ends before its parts have stopped: wait for them too)
                parts = [
                    p["part"]
                    for j in jobs
                    if j.get("kind") == "federated"
                    for p in j["spec"].get("participants", [])
                ]
                _wait_and_report(c, [j["id"] for j in jobs] + parts)
        except (ApiError, OSError) as exc:
            click.echo(f"submit failed: {exc}", err=True)
        if until_done:
            os.kill(os.getpid(), signal.SIGINT)


def _wait_and_report(c: Client, ids: list[str]) -> None:
    seen: dict[str, str] = {}
    while True:
        jobs = [c.job(i) for i in ids]
        for j in jobs:
            if seen.get(j["id"]) != j["phase"]:
                seen[j["id"]] = j["phase"]
                model = (j["placement"] or {}).get("model", "")
                click.echo(f"  {j['name']:<16} {j['phase']:<10} {model:<12} {j['reason'][:70]}")
        if all(j["phase"] in ("SUCCEEDED", "FAILED", "CANCELLED") for j in jobs):
            break
        time.sleep(0.5)
    click.echo("")
    for j in jobs:
        out, _, _ = c.logs(j["id"])
        lines = [
            ln
            for ln in out.decode(errors="replace").strip().splitlines()
            if not ln.startswith("Running entrypoint for job") and "job_manager.py" not in ln
        ]  # Ray's own lines are not the job's output
        last = lines[-1:] or [""]
        click.echo(f"{j['name']:<16} {j['id']:<22} {j['phase']:<10} {last[0][:70]}")
