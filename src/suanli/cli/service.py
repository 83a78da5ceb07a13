"""``suanli server`` and the kubectl-like commands over the SDK: ``login``, ``submit``, ``jobs``,
``job``, ``cancel``, ``logs``, ``queue``, ``pool``, ``members``, ``shares``. Tables for people,
``--json`` for scripts. The server URL and token come from ``--url``/``--token``, then
``SUANLI_URL``/``SUANLI_TOKEN``, then the file ``suanli login`` wrote."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from suanli.cli.table import table
from suanli.errors import SuanliError
from suanli.sdk.client import ApiError, Client
from suanli.spec.alliance_file import load_alliance

F = TypeVar("F", bound=Callable[..., Any])
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_URL = "http://127.0.0.1:8470"
EXIT_CODES = {401: 4, 403: 4, 404: 3, 409: 5, 413: 2, 422: 2}


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(os.environ.get("SUANLI_CONFIG", Path(base) / "suanli" / "config.json"))


def _client(url: str | None, token: str | None) -> Client:
    saved: dict[str, str] = {}
    p = config_path()
    if p.exists():
        saved = json.loads(p.read_text())
    url = url or os.environ.get("SUANLI_URL") or saved.get("url") or DEFAULT_URL
    token = token or os.environ.get("SUANLI_TOKEN") or saved.get("token")
    return Client(url, token)


def _api(fn: Callable[[Client], Any], url: str | None, token: str | None) -> Any:
    try:
        with _client(url, token) as c:
            return fn(c)
    except ApiError as exc:
        click.echo(f"error ({exc.status} {exc.error}): {exc}", err=True)
        sys.exit(EXIT_CODES.get(exc.status, 1))
    except OSError as exc:
        click.echo(f"error: cannot reach the suanli server: {exc}", err=True)
        sys.exit(1)


def connection(f: F) -> F:
    f = click.option("--token", envvar=None, help="bearer token (default: from login)")(f)
    return click.option("--url", help=f"server URL (default: from login, else {DEFAULT_URL})")(f)


def as_json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="JSON for scripts")(f)


def _out(data: Any, as_json: bool, headers: list[str], rows: list[list[Any]]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else table(headers, rows))


def _ago(t: float | None) -> str:
    if t is None:
        return ""
    s = max(0, int(time.time() - t))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def register(cli: click.Group) -> None:
    @cli.command("server")
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
    ) -> None:
        """Run the service: database, controller and REST API (Ctrl-C stops it)."""
        import threading

        from suanli.service.logs import configure

        configure(log_format, log_level)

        from suanli.service.server import ServerConfig, prepare, serve

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
        )
        try:
            alliance = load_alliance(alliance_file)
            db, token = prepare(cfg, alliance)
            db.close()
        except SuanliError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        url = f"http://{host}:{port}"
        token_file = state_dir / "admin-token"
        click.echo(f"suanli server on {url}  (state in {state_dir})")
        click.echo(f"  dashboard: {url}/ui/   metrics: {url}/metrics   API docs: {url}/docs")
        if token:  # printed once, when it is made; later starts say where it is
            click.echo(f"admin token (shown once; also in {token_file}, mode 0600): {token}")
            click.echo(f"  suanli login --url {url} --token {token}")
        elif token_file.exists():
            click.echo(f"admin token: in {token_file}")
            token = token_file.read_text().strip()
        if submit_file is not None:
            text = submit_file.read_text()

            def submit_when_up() -> None:
                with Client(url, token) as c:
                    for _ in range(900):  # an embedded Ray cluster takes a while
                        try:
                            c.health()
                            break
                        except OSError:
                            time.sleep(0.1)
                    try:
                        jobs = c.submit(text)
                        click.echo(
                            f"submitted {len(jobs)} job(s): " + ", ".join(j["id"] for j in jobs)
                        )
                        if until_done:
                            _wait_and_report(c, [j["id"] for j in jobs])
                    except ApiError as exc:
                        click.echo(f"submit failed: {exc}", err=True)
                    if until_done:
                        os.kill(os.getpid(), signal.SIGINT)

            threading.Thread(target=submit_when_up, daemon=True).start()
        serve(cfg, alliance)

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

    @cli.command("login")
    @click.option("--url", default=DEFAULT_URL, show_default=True)
    @click.option("--token", required=True)
    def login(url: str, token: str) -> None:
        """Check the token against the server and remember both."""
        me = _api(lambda c: c.whoami(), url, token)
        p = config_path()
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": url, "token": token}, f)
        who = me["name"] + (f" of {me['member']}" if me.get("member") else "")
        click.echo(f"logged in to {url} as {who} ({me['role']})")

    @cli.command("submit")
    @click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
    @connection
    @as_json_option
    def submit(file: Path, url: str | None, token: str | None, as_json: bool) -> None:
        """Submit a job file (one job or jobs: [...])."""
        jobs = _api(lambda c: c.submit(file.read_text()), url, token)
        _out(
            jobs,
            as_json,
            ["ID", "MEMBER", "PHASE"],
            [[j["id"], j["member"], j["phase"]] for j in jobs],
        )

    @cli.command("jobs")
    @click.option("--member", multiple=True)
    @click.option("--phase", multiple=True)
    @click.option("--limit", default=100, show_default=True)
    @connection
    @as_json_option
    def jobs_cmd(
        member: tuple[str, ...],
        phase: tuple[str, ...],
        limit: int,
        url: str | None,
        token: str | None,
        as_json: bool,
    ) -> None:
        """List jobs, oldest first."""
        page = _api(
            lambda c: c.jobs(list(member) or None, [p.upper() for p in phase] or None, limit),
            url,
            token,
        )
        rows = [
            [
                j["id"],
                j["member"],
                j["phase"],
                j["attempt"],
                (j["placement"] or {}).get("model", ""),
                _ago(j["submitted_at"]),
                j["reason"][:60],
            ]
            for j in page["items"]
        ]
        _out(page, as_json, ["ID", "MEMBER", "PHASE", "ATTEMPT", "MODEL", "AGE", "REASON"], rows)

    @cli.command("job")
    @click.argument("job_id")
    @connection
    @as_json_option
    def job_cmd(job_id: str, url: str | None, token: str | None, as_json: bool) -> None:
        """One job: its spec, phase, placement and why."""
        j = _api(lambda c: c.job(job_id), url, token)
        if as_json:
            click.echo(json.dumps(j, indent=2))
            return
        p = j["placement"]
        where = (
            ", ".join(f"{n}[{','.join(map(str, d))}]" for n, d in p["assignments"]) if p else "-"
        )
        for k, v in [
            ("id", j["id"]),
            ("member", j["member"]),
            ("phase", j["phase"]),
            ("reason", j["reason"]),
            ("attempt", j["attempt"]),
            ("preemptions", j["preemptions"]),
            ("exit code", j["exit_code"]),
            ("placement", f"{p['model']} on {where}" if p else "-"),
            ("accelerators", f"{j['spec']['count']} of {', '.join(j['spec']['models'])}"),
            ("entrypoint", j["spec"]["entrypoint"]),
        ]:
            click.echo(f"{k + ':':14}{v}")

    @cli.command("cancel")
    @click.argument("job_id")
    @connection
    def cancel(job_id: str, url: str | None, token: str | None) -> None:
        """Cancel a job (a running one is stopped with its grace period)."""
        j = _api(lambda c: c.cancel(job_id), url, token)
        click.echo(f"{j['id']}: {j['phase']} ({j['reason']})")

    @cli.command("logs")
    @click.argument("job_id")
    @click.option("-f", "--follow", is_flag=True, help="keep printing until the job ends")
    @click.option("--attempt", type=int, help="which run (default: the latest)")
    @connection
    def logs(
        job_id: str, follow: bool, attempt: int | None, url: str | None, token: str | None
    ) -> None:
        """A job's output."""

        def run(c: Client) -> None:
            if follow:
                for chunk in c.follow_logs(job_id):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            else:
                data, _, _ = c.logs(job_id, 0, attempt)
                sys.stdout.buffer.write(data)

        _api(run, url, token)

    @cli.command("queue")
    @connection
    @as_json_option
    def queue(url: str | None, token: str | None, as_json: bool) -> None:
        """Pending jobs with their position in their member's queue and why they wait."""
        q = _api(lambda c: c.queue(), url, token)
        rows = [[e["id"], e["member"], e["position"], e["count"], e["reason"][:80]] for e in q]
        _out(q, as_json, ["ID", "MEMBER", "POS", "DEVICES", "REASON"], rows)

    @cli.group("pool", invoke_without_command=True)
    @connection
    @as_json_option
    @click.pass_context
    def pool_cmd(ctx: click.Context, url: str | None, token: str | None, as_json: bool) -> None:
        """Nodes with their model, owner, use and state (and pool-wide actions)."""
        if ctx.invoked_subcommand is not None:
            return
        nodes = _api(lambda c: c.nodes(), url, token)
        rows = [
            [n["id"], n["member"], n["model"], f"{n['used']}/{n['devices']}", n["state"]]
            for n in nodes
        ]
        _out(nodes, as_json, ["NODE", "MEMBER", "MODEL", "USED", "STATE"], rows)

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
        r = _api(lambda c: c.drain_pool(vendor, model), url, token)
        if as_json:
            click.echo(json.dumps(r, indent=2))
            return
        click.echo(f"drained {len(r['nodes'])} node(s)")
        for m in r["moving"]:
            click.echo(f"  moving   {m['job']} -> {', '.join(m['to'])}")
        for m in r["staying"]:
            click.echo(f"  staying  {m['job']}: {m['reason']}")

    @cli.command("members")
    @connection
    @as_json_option
    def members(url: str | None, token: str | None, as_json: bool) -> None:
        """Members with their entitlement and use in NU."""
        ms = _api(lambda c: c.members(), url, token)
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
        _out(ms, as_json, ["MEMBER", "KIND", "TIER", "ENTITLED NU", "USED NU", "PENDING"], rows)

    @cli.command("shares")
    @connection
    @as_json_option
    def shares(url: str | None, token: str | None, as_json: bool) -> None:
        """Each member's share per model (devices): nominal, limits and use."""
        sh = _api(lambda c: c.shares(), url, token)
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
        _out(
            sh, as_json, ["MEMBER", "MODEL", "NOMINAL", "USED", "BORROW LIMIT", "LEND LIMIT"], rows
        )

    @cli.group("ledger")
    def ledger_cmd() -> None:
        """The books: statements per member and month, and the hash chain's check."""

    @ledger_cmd.command("statement")
    @click.option("--member", required=True)
    @click.option("--period", required=True, help="a month, such as 2026-11 (UTC)")
    @click.option("--book", default="real", show_default=True)
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
    )
    @connection
    def ledger_statement(
        member: str, period: str, book: str, fmt: str, url: str | None, token: str | None
    ) -> None:
        """What MEMBER contributed, consumed, lent and borrowed in PERIOD, and its balance."""
        if fmt == "csv":
            click.echo(_api(lambda c: c.statement_csv(member, period, book), url, token), nl=False)
            return
        st = _api(lambda c: c.statement(member, period, book), url, token)
        if fmt == "json":
            click.echo(json.dumps(st, indent=2))
            return
        lines = ["contributed", "consumed", "own_use", "lent", "borrowed", "balance"]
        rows: list[list[Any]] = [[k, "", f"{st[k]:.3f}"] for k in lines]
        rows.append(["utilization", "", f"{st['utilization']:.1%}"])
        for section in ("contributed_by_model", "consumed_by_model", "lent_to", "borrowed_from"):
            rows += [[section, k, f"{v:.3f}"] for k, v in st[section].items()]
        click.echo(f"{member} {period} ({book} book, NU-hours, {st['records']} records)")
        click.echo(table(["LINE", "DETAIL", "NU-H"], rows))

    @ledger_cmd.command("verify")
    @click.option("--book", default="real", show_default=True)
    @connection
    def ledger_verify(book: str, url: str | None, token: str | None) -> None:
        """Check the book's hash chain: exit 0 if whole, 6 if a record was changed or lost."""
        r = _api(lambda c: c.verify_ledger(book), url, token)
        if r["ok"]:
            click.echo(f"{book}: {r['records']} records, chain intact, head {r['head']}")
            return
        where = f" at record {r['first_bad']}" if r["first_bad"] is not None else ""
        click.echo(f"{book}: TAMPERED{where}: {r['reason']}", err=True)
        sys.exit(6)
