"""Hostile input against a real ``suanli server`` process, over every route of the API and the
dashboard: more than 200 requests an attacker (or a broken client) would send. None may answer
a 5xx, each refusal must leave the alliance's state as it was, and the server's memory must stay
bounded (its peak is printed)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from suanli.sdk.client import Client

from ..live import free_port, spawn_server, stop, wait_up

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

#: the server's resident memory may never pass this (it starts near 150 MiB)
MAX_RSS_MIB = 700


@dataclass
class Attack:
    name: str
    method: str
    path: str
    #: who sends it: admin, user (a member-user of huaxia-cloud) or anon
    who: str = "user"
    json: Any = None
    content: bytes | str | None = None
    ctype: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    form: dict[str, str] | None = None
    #: the answers it may get (any 4xx by default)
    ok: tuple[int, ...] = ()


def _yaml_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return (
        "id: huaxia-cloud-bomb\nmember: huaxia-cloud\naccelerators: H800:1\n"
        "runtime_env:\n  env_vars: {}\n  pip:\n"
        + "\n".join("    " + line for line in lines)
        + f"\n  last: *a{levels - 1}\n"
    )


def _nested_json(depth: int) -> str:
    return '{"member": "huaxia-cloud", "accelerators": "H800:1", "runtime_env": ' + (
        '{"a": ' * depth + "1" + "}" * depth + "}"
    )


def _nested_yaml(depth: int) -> str:
    return "member: huaxia-cloud\naccelerators: H800:1\nruntime_env: " + "[" * depth + "]" * depth


def _job(**over: Any) -> dict[str, Any]:
    return {"member": "huaxia-cloud", "accelerators": "H800:1", "entrypoint": "true", **over}


def job_attacks() -> list[Attack]:
    post = "/api/v1/jobs"
    yaml = "application/yaml"
    out = [
        Attack("yaml alias bomb", "POST", post, content=_yaml_bomb(), ctype=yaml),
        Attack(
            "aliased jobs",
            "POST",
            post,
            ctype=yaml,
            content="j: &j {member: huaxia-cloud, "
            "accelerators: 'H800:1'}\njobs: [" + ", ".join(["*j"] * 20000) + "]",
        ),
        Attack("1001 jobs", "POST", post, json={"jobs": [_job() for _ in range(1001)]}),
        Attack("spec over 64 KiB", "POST", post, json=_job(entrypoint="x" * 70_000)),
        Attack(
            "json NaN",
            "POST",
            post,
            content='{"member": "huaxia-cloud", "accelerators": "H800:1", "max_runtime": NaN}',
            ctype="application/json",
        ),
        Attack(
            "yaml .nan",
            "POST",
            post,
            ctype=yaml,
            content="member: huaxia-cloud\naccelerators: H800:1\nmax_runtime: .nan\n",
        ),
        Attack(
            "yaml .inf",
            "POST",
            post,
            ctype=yaml,
            content="member: huaxia-cloud\naccelerators: H800:1\nmax_runtime: .inf\n",
        ),
        Attack(
            "yaml timestamp",
            "POST",
            post,
            ctype=yaml,
            content="member: huaxia-cloud\n"
            "accelerators: H800:1\nruntime_env: {env_vars: {WHEN: 2026-11-29}}\n",
        ),
        Attack(
            "yaml set",
            "POST",
            post,
            ctype=yaml,
            content="member: huaxia-cloud\naccelerators: H800:1\nruntime_env: !!set {a, b}\n",
        ),
        Attack(
            "yaml binary",
            "POST",
            post,
            ctype=yaml,
            content="member: huaxia-cloud\n"
            "accelerators: H800:1\nruntime_env: {env_vars: {B: !!binary aGVsbG8=}}\n",
        ),
        Attack(
            "yaml python tag",
            "POST",
            post,
            ctype=yaml,
            content="member: huaxia-cloud\n"
            "accelerators: H800:1\nentrypoint: !!python/object/apply:os.system [id]\n",
        ),
        Attack("yaml duplicate anchors", "POST", post, ctype=yaml, content="- &a [*a]\n"),
        Attack("yaml tabs", "POST", post, ctype=yaml, content="member:\thuaxia-cloud\n\t- x"),
        Attack("not utf-8", "POST", post, content=b"\xff\xfe{\x00", ctype="application/json"),
        Attack("empty body", "POST", post, content=b"", ctype="application/json"),
        Attack("null body", "POST", post, content="null", ctype="application/json"),
        Attack("a number", "POST", post, content="1e999", ctype="application/json"),
        Attack("a string", "POST", post, json="jobs"),
        Attack("a list", "POST", post, json=[_job()]),
        Attack("xml", "POST", post, content="<job/>", ctype="application/xml"),
        Attack(
            "truncated json", "POST", post, content='{"member": "huax', ctype="application/json"
        ),
        Attack(
            "bom", "POST", post, content="\ufeff" + json.dumps(_job(id=0)), ctype="application/json"
        ),
        Attack("another member", "POST", post, json=_job(member="pengcheng-lab")),
        Attack("another member's id", "POST", post, json=_job(id="pengcheng-lab-x")),
        Attack("id without member", "POST", post, json=_job(id="x")),
        Attack(
            "duplicate ids",
            "POST",
            post,
            json={"jobs": [_job(id="huaxia-cloud-d"), _job(id="huaxia-cloud-d")]},
        ),
        Attack("jobs not a list", "POST", post, json={"jobs": {"a": 1}}),
        Attack("jobs empty", "POST", post, json={"jobs": []}),
        Attack("unknown field", "POST", post, json=_job(colour="red")),
        Attack("member sql", "POST", post, json=_job(member="huaxia-cloud'; DROP TABLE jobs;--")),
        Attack("member missing", "POST", post, json={"accelerators": "H800:1"}),
        Attack("accelerators huge", "POST", post, json=_job(accelerators="H800:100000000000")),
        Attack("accelerators zero", "POST", post, json=_job(accelerators="H800:0")),
        Attack("accelerators negative", "POST", post, json=_job(accelerators="H800:-1")),
        Attack("accelerators float", "POST", post, json=_job(accelerators={"count": 1.5})),
        Attack("accelerators bool", "POST", post, json=_job(accelerators=True)),
        Attack("accelerators unknown", "POST", post, json=_job(accelerators="NoSuchChip:1")),
        Attack("accelerators 2**80", "POST", post, json=_job(accelerators={"count": 2**80})),
        Attack("entrypoint NUL", "POST", post, json=_job(entrypoint="echo a\x00b")),
        Attack("entrypoint list", "POST", post, json=_job(entrypoint=["a"])),
        Attack("id NUL", "POST", post, json=_job(id="huaxia-cloud-\x00")),
        Attack("id slash", "POST", post, json=_job(id="huaxia-cloud-../../etc")),
        Attack("id long", "POST", post, json=_job(id="huaxia-cloud-" + "a" * 300)),
        Attack("id unicode", "POST", post, json=_job(id="huaxia-cloud-\u202ejob")),
        Attack("env NUL value", "POST", post, json=_job(runtime_env={"env_vars": {"A": "\x00"}})),
        Attack("env NUL name", "POST", post, json=_job(runtime_env={"env_vars": {"A\x00": "1"}})),
        Attack("env = name", "POST", post, json=_job(runtime_env={"env_vars": {"A=B": "1"}})),
        Attack("env not str", "POST", post, json=_job(runtime_env={"env_vars": {"A": {"b": 1}}})),
        Attack(
            "env LD_PRELOAD",
            "POST",
            post,
            json=_job(runtime_env={"env_vars": {"LD_PRELOAD": "/tmp/x.so"}}),
            ok=(201,),  # (what a job preloads into its own processes, in its sandbox, is its own)
        ),
        Attack("secret NUL", "POST", post, json=_job(secrets={"K": "a\x00"})),
        Attack("secret not str", "POST", post, json=_job(secrets={"K": 1})),
        Attack("working dir state", "POST", post, json=_job(working_dir="/")),
        Attack("working dir NUL", "POST", post, json=_job(working_dir="/tmp/\x00")),
        Attack("priority huge", "POST", post, json=_job(priority=10**30)),
        Attack("priority NaN string", "POST", post, json=_job(priority="NaN")),
        Attack("max_runtime negative", "POST", post, json=_job(max_runtime="-5m")),
        Attack("max_runtime 1e400s", "POST", post, json=_job(max_runtime="1e400s")),
        Attack("max_runtime words", "POST", post, json=_job(max_runtime="forever")),
        Attack("max_runtime inf", "POST", post, json=_job(max_runtime="infh")),
        Attack("max_runtime nan", "POST", post, json=_job(max_runtime="nans")),
        Attack("gang absurd", "POST", post, json=_job(accelerators="H800:8", nodes=10**9)),
        Attack("dataset unknown", "POST", post, json=_job(datasets=["no-such"])),
        Attack("dataset not readable", "POST", post, json=_job(datasets=["clinical-notes"])),
        Attack("dataset NUL", "POST", post, json=_job(datasets=["\x00"])),
    ]
    for depth in (33, 100, 900, 5000, 100_000):
        out.append(
            Attack(
                f"json nested {depth}",
                "POST",
                post,
                content=_nested_json(depth),
                ctype="application/json",
            )
        )
        out.append(
            Attack(f"yaml nested {depth}", "POST", post, content=_nested_yaml(depth), ctype=yaml)
        )
    for ctype in ("text/yaml", "application/x-yaml", "text/plain", "multipart/form-data"):
        out.append(Attack(f"ctype {ctype}", "POST", post, content="[[[", ctype=ctype))
    return out


def query_attacks() -> list[Attack]:
    out: list[Attack] = []
    huge = "9" * 20
    for path, params in [
        ("/api/v1/jobs", ["limit", "after"]),
        ("/api/v1/audit", ["limit", "after"]),
        ("/api/v1/jobs/huaxia-cloud-none/logs", ["offset", "attempt", "limit", "tail"]),
    ]:
        for p in params:
            for value in (huge, "-1", "1e9", "NaN", "\x00", "0x10", "", "1" * 5000):
                out.append(
                    Attack(
                        f"{path} {p}={value[:8]!r}",
                        "GET",
                        path,
                        params={p: value},
                        ok=(404,) if "logs" in path else (),
                    )
                )
    for phase in ("RUN\x00NING", "x" * 10_000, "'; --"):
        out.append(
            Attack(f"jobs phase {phase[:6]!r}", "GET", "/api/v1/jobs", params={"phase": phase})
        )
    for member in ("\x00", "pengcheng-lab", "../x", "x" * 5000):
        out.append(
            Attack(
                f"jobs member {member[:6]!r}",
                "GET",
                "/api/v1/jobs",
                params={"member": member},
                ok=(200,),  # a filter that matches nothing
            )
        )
    for period in (
        "0000-01",
        "9999-12",
        "2026-13",
        "2026-00",
        "-1-01",
        "2026-1",
        "\x00",
        "9" * 30,
        "2026-01-01",
        "0001-01",
    ):
        for who in ("admin", "user"):
            out.append(
                Attack(
                    f"statement period {period[:8]!r} as {who}",
                    "GET",
                    "/api/v1/ledger/statement",
                    who=who,
                    params={"member": "huaxia-cloud", "period": period},
                    ok=(200,) if period in ("9999-12", "0001-01") else (),
                )
            )
    for book in ("../../etc/passwd", "/etc/passwd", "sim/\x00", "sim/../../suanli.db", "x" * 5000):
        out.append(
            Attack(
                f"verify book {book[:8]!r}",
                "GET",
                "/api/v1/ledger/verify",
                who="admin",
                params={"book": book},
            )
        )
        out.append(
            Attack(
                f"statement book {book[:8]!r}",
                "GET",
                "/api/v1/ledger/statement",
                who="admin",
                params={"book": book, "member": "huaxia-cloud"},
            )
        )
    out.append(
        Attack(
            "statement format",
            "GET",
            "/api/v1/ledger/statement",
            who="admin",
            params={"member": "huaxia-cloud", "format": "xlsx"},
        )
    )
    out.append(
        Attack(
            "statement other member",
            "GET",
            "/api/v1/ledger/statement",
            params={"member": "pengcheng-lab"},
        )
    )
    for job in (
        "%00",
        "..%2F..%2Fsuanli.db",
        "a" * 5000,
        "%C0%AE%C0%AE",
        "pengcheng-lab-x",
        "huaxia-cloud-%00",
    ):
        for suffix, method in (("", "GET"), ("/logs", "GET"), ("/cancel", "POST")):
            out.append(Attack(f"job {job[:10]!r}{suffix}", method, f"/api/v1/jobs/{job}{suffix}"))
    return out


def body_attacks() -> list[Attack]:
    out: list[Attack] = []
    users = "/api/v1/users"
    for body in (
        {"name": "x\x00", "role": "member-user", "member": "huaxia-cloud"},
        {"name": "a" * 100, "role": "member-user", "member": "huaxia-cloud"},
        {"name": "eve", "role": "god", "member": "huaxia-cloud"},
        {"name": "eve", "role": "member-user"},
        {"name": "eve", "role": "member-user", "member": "no-such"},
        {"name": "eve", "role": "member-user", "member": "huaxia-cloud", "expires_in_days": 0},
        {"name": "eve", "role": "member-user", "member": "huaxia-cloud", "expires_in_days": 1e9},
        {"name": "eve", "role": "member-user", "member": "huaxia-cloud", "expires_in_days": -1},
        {"name": "eve", "role": "member-user", "member": "huaxia-cloud", "token": "mine"},
        {"name": ["eve"], "role": "member-user"},
    ):
        out.append(Attack(f"user {str(body)[:40]}", "POST", users, who="admin", json=body))
    out.append(
        Attack(
            "user by a member-user", "POST", users, json={"name": "eve", "role": "alliance-admin"}
        )
    )
    for nan in ("NaN", "Infinity", "-Infinity", "1e400"):
        for what, method, path, body in (
            ("user expiry", "POST", users, '{"name": "eve", "role": "viewer", "expires_in_days": '),
            ("rotate expiry", "POST", "/api/v1/users/admin/rotate", '{"expires_in_days": '),
            ("share", "PUT", "/api/v1/shares/huaxia-cloud/H800-80GB", '{"lending_limit": '),
        ):
            out.append(
                Attack(
                    f"{what} {nan}",
                    method,
                    path,
                    who="admin",
                    ctype="application/json",
                    content=body + nan + "}",
                )
            )
    for name in ("nobody", "x%00", "a" * 3000):
        out.append(
            Attack(f"revoke {name[:6]!r}", "POST", f"/api/v1/users/{name}/revoke", who="admin")
        )
        out.append(
            Attack(
                f"rotate {name[:6]!r}", "POST", f"/api/v1/users/{name}/rotate", who="admin", json={}
            )
        )
    out.append(Attack("revoke by a member-user", "POST", "/api/v1/users/admin/revoke"))
    nodes = "/api/v1/nodes"
    node = {
        "id": "hx-new",
        "site": "hx-beijing",
        "model": "H800-80GB",
        "devices": 8,
        "cpu": 64,
        "memory_gb": 512,
    }
    for over in (
        {"devices": 10**12},
        {"devices": -1},
        {"devices": 0},
        {"devices": "eight"},
        {"devices": 1.5},
        {"model": "NoSuchChip"},
        {"site": ""},
        {"site": "no-site"},
        {"id": "a\x00"},
        {"id": "x" * 300},
        {"id": "hx-h800-01"},
        {"cpu": 2**70},
        {"memory_gb": -5},
        {"topology": [[0, 0]]},
        {"topology": [[99]]},
        {"calibrated_tflops": -1},
        {"colour": "red"},
        {"count": 10**6},
    ):
        out.append(
            Attack(f"node {str(over)[:30]}", "POST", nodes, who="admin", json={**node, **over})
        )
    out.append(
        Attack(
            "node by a member-user of another site",
            "POST",
            nodes,
            json={**node, "id": "pc-new", "site": "pc-shenzhen"},
        )
    )
    out.append(
        Attack(
            "node json NaN",
            "POST",
            nodes,
            who="admin",
            ctype="application/json",
            content=json.dumps(node)[:-1] + ', "calibrated_tflops": NaN}',
        )
    )
    for nid in ("no-such", "pc-910b-0", "%00", "a" * 3000):
        for action in ("/drain", "/undrain"):
            out.append(Attack(f"node {nid[:6]!r}{action}", "POST", f"{nodes}/{nid}{action}"))
        out.append(Attack(f"delete node {nid[:6]!r}", "DELETE", f"{nodes}/{nid}"))
    for body in ({"vendor": "x" * 200}, {"model": 1}, {"colour": 1}, [1]):
        out.append(
            Attack(
                f"pool drain {str(body)[:20]}", "POST", "/api/v1/pool/drain", who="admin", json=body
            )
        )
    out.append(Attack("pool drain by a member-user", "POST", "/api/v1/pool/drain", json={}))
    datasets = "/api/v1/datasets"
    for ds in (
        {"id": "d1", "owner": "no-such-member", "residency": {"sites": ["hx-beijing"]}},
        {"id": "d1", "owner": "pengcheng-lab"},
        {"id": "d1", "owner": "huaxia-cloud", "residency": {"sites": ["no-site"]}},
        {"id": "d1", "owner": "huaxia-cloud", "readers": ["no-such"]},
        {"id": "d\x00", "owner": "huaxia-cloud"},
        {"id": "clinical-notes", "owner": "huaxia-cloud"},
        {"id": "d1", "owner": "huaxia-cloud", "location": "../../../etc"},
        {"id": "d1", "owner": "huaxia-cloud", "location": "/etc"},
        {"id": "d1", "owner": "huaxia-cloud", "residency": [1]},
        {"owner": "huaxia-cloud"},
    ):
        out.append(Attack(f"dataset {str(ds)[:40]}", "POST", datasets, json=ds))
    out.append(
        Attack(
            "dataset unknown owner as admin",
            "POST",
            datasets,
            who="admin",
            json={"id": "d2", "owner": "no-such-member"},
        )
    )
    for member, model in (("no-such", "H800-80GB"), ("huaxia-cloud", "NoSuch"), ("%00", "x")):
        out.append(
            Attack(
                f"share {member}/{model}",
                "PUT",
                f"/api/v1/shares/{member}/{model}",
                who="admin",
                json={"lending_limit": 1},
            )
        )
    out.append(
        Attack(
            "share by a member-user",
            "PUT",
            "/api/v1/shares/huaxia-cloud/H800-80GB",
            json={"lending_limit": 0},
        )
    )
    for limit in (-1, 10**7, 1.5, "x"):
        out.append(
            Attack(
                f"share limit {limit!r}",
                "PUT",
                "/api/v1/shares/huaxia-cloud/H800-80GB",
                who="admin",
                json={"borrowing_limit": limit},
            )
        )
    return out


def anon_and_ui_attacks() -> list[Attack]:
    out: list[Attack] = []
    for path in ("/api/v1/jobs", "/api/v1/users", "/api/v1/whoami", "/metrics", "/api/v1/audit"):
        out.append(Attack(f"anon {path}", "GET", path, who="anon"))
    for token in ("x" * 10_000, "\x00", "Bearer", "' OR 1=1 --"):
        out.append(Attack(f"bad token {token[:6]!r}", "GET", "/api/v1/jobs", who=f"token:{token}"))
    out.append(Attack("anon submit", "POST", "/api/v1/jobs", who="anon", json=_job()))
    for form in (
        {"token": "x" * 100_000},
        {"token": "\x00"},
        {"token": ""},
        {},
        {"token": "wrong", "next": "https://evil.example"},
    ):
        out.append(
            Attack(f"login {str(form)[:20]}", "POST", "/ui/login", who="anon", form=form, ok=(303,))
        )
    out.append(Attack("logout without csrf", "POST", "/ui/logout", who="anon", ok=(303,)))
    for path, params in (
        ("/ui/jobs", {"after": "9" * 20}),
        ("/ui/jobs", {"after": "-5"}),
        ("/ui/jobs", {"member": "\x00"}),
        ("/ui/jobs", {"phase": "x" * 5000}),
        ("/ui/ledger", {"period": "0000-01"}),
        ("/ui/ledger", {"period": "9999-12"}),
        ("/ui/ledger", {"period": "\x00"}),
        ("/ui/ledger", {"member": "../x"}),
        ("/ui/reports/%00", {}),
        ("/ui/reports/..%2F..%2Fsuanli.db", {}),
        ("/ui/reports/" + "a" * 5000, {}),
        ("/ui/jobs/%00", {}),
        ("/ui/jobs/" + "a" * 5000, {}),
        ("/ui/queue", {"x": "\x00"}),
        ("/ui/members", {"page": "9" * 20}),
    ):
        out.append(
            Attack(
                f"ui {path[:20]} {str(params)[:20]}",
                "GET",
                path,
                who="ui",
                params=params,
                ok=(200,),
            )
        )
    return out


def attacks() -> list[Attack]:
    return job_attacks() + query_attacks() + body_attacks() + anon_and_ui_attacks()


def _state(c: Client) -> str:
    """What a refused request must not change (seen by an alliance admin)."""
    jobs = c.jobs(limit=1000)
    return json.dumps(
        [
            sorted(j["id"] for j in jobs["items"]),
            sorted((n["id"], n["state"]) for n in c.nodes()),
            sorted(d["id"] for d in c.datasets()),
            sorted((u["name"], u.get("revoked_at")) for u in c.http.get("/api/v1/users").json()),
            sorted(
                (x["member"], x["model"], x.get("borrowing_limit"), x.get("lending_limit"))
                for x in c.http.get("/api/v1/shares").json()
            ),
        ],
        sort_keys=True,
    )


def _rss_mib(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak, in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_url: str | None,
) -> Iterator[tuple[str, int, dict[str, str]]]:
    """A real server on SQLite, and on the PostgreSQL CI installs."""
    db_url = None
    if request.param == "postgresql":
        if pg_url is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PostgreSQL is not installed (CI installs it: see .ci/run)")
            pytest.skip("PostgreSQL is not installed here")
        db_url = pg_url
    state = tmp_path_factory.mktemp("hostile") / "state"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = state.parent / "server.log"
    proc = spawn_server(state, port, 0.5, db_url, log=log)
    try:
        wait_up(url, proc)
        admin = (state / "admin-token").read_text().strip()
        with Client(url, admin) as c:
            user = c.create_user("mallory", "member-user", "huaxia-cloud")["token"]
        yield url, proc.pid, {"admin": admin, "user": user}
    finally:
        stop(proc)
        errors = [line for line in log.read_text().splitlines() if "Error" in line]
        print("\n".join(errors[-40:]))
        if db_url is not None:  # a clean schema for the next test
            from suanli.store.database import Database

            from ..conftest import _drop_schema

            database = Database.open(db_url, upgrade=False)
            _drop_schema(database)
            database.close()


def _sign_in(url: str, token: str) -> dict[str, str]:
    """The dashboard's session cookie, signed in as a browser would."""
    with httpx.Client(base_url=url) as browser:
        form = browser.get("/ui/login")
        csrf = re.search(r"name=csrf value='([^']+)'", form.text)
        assert csrf is not None
        signed = browser.post(
            "/ui/login", data={"token": token, "csrf": csrf[1]}, headers={"Origin": url}
        )
        assert signed.status_code == 303, signed.text
        return {"suanli_session": signed.cookies["suanli_session"]}


def _send(http: httpx.Client, ui: httpx.Client, a: Attack, tokens: dict[str, str]) -> int:
    headers: dict[str, str] = {}
    if a.who in tokens:
        headers["Authorization"] = f"Bearer {tokens[a.who]}"
    elif a.who.startswith("token:"):
        headers["Authorization"] = "Bearer " + a.who.removeprefix("token:")
    if a.ctype:
        headers["Content-Type"] = a.ctype
    client = ui if a.who == "ui" else http
    try:
        r = client.request(
            a.method,
            a.path,
            params=a.params,
            json=a.json,
            content=a.content,
            data=a.form,
            headers=headers,
        )
    except httpx.LocalProtocolError:  # a header httpx itself will not send: nothing sent
        return 400
    return r.status_code


def test_hostile_input_never_answers_5xx_nor_changes_anything(
    server: tuple[str, int, dict[str, str]],
) -> None:
    url, pid, tokens = server
    table = attacks()
    assert len(table) >= 200, len(table)
    bad: list[str] = []
    with Client(url, tokens["admin"]) as admin, httpx.Client(base_url=url, timeout=120) as http:
        ui = httpx.Client(base_url=url, timeout=120, cookies=_sign_in(url, tokens["user"]))
        before = _state(admin)
        for a in table:
            try:
                status = _send(http, ui, a, tokens)
            except httpx.TransportError as exc:
                bad.append(f"{a.name} ({a.method} {a.path[:60]}): {exc!r}")
                continue
            if status >= 500 or not (400 <= status < 500 or status in a.ok):
                bad.append(f"{a.name} ({a.method} {a.path[:60]}): {status}")
                before = _state(admin)
                continue
            if status < 400:  # accepted (as it may be): what it did is the new state
                before = _state(admin)
                continue
            after = _state(admin)
            if after != before:
                bad.append(f"{a.name}: {status} but the state changed:\n{before}\n{after}")
                before = after
        ui.close()
    now, peak = _rss_mib(pid)
    print(f"\nhostile inputs: {len(table)} sent, server RSS now {now:.0f} MiB, peak {peak:.0f} MiB")
    assert not bad, "\n".join(bad)
    assert peak < MAX_RSS_MIB


def test_a_huge_body_is_refused_before_it_is_read(server: tuple[str, int, dict[str, str]]) -> None:
    """400 MB to the sign-in form, with and without a declared length: 413 as soon as the
    limit is passed, and the server's memory does not grow by the body."""
    url, pid, _ = server
    _, peak_before = _rss_mib(pid)

    def chunks() -> Iterator[bytes]:
        block = b"t" * (1 << 20)
        for _ in range(400):
            yield block

    with httpx.Client(base_url=url, timeout=120) as http:
        declared = http.post(
            "/ui/login",
            content=b"x" * (2 << 20),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert declared.status_code == 413
        try:
            streamed = http.post(
                "/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
            )
            assert streamed.status_code == 413
        except (httpx.WriteError, httpx.RemoteProtocolError):
            pass  # the server answered 413 and closed while the client still sent
    _, peak_after = _rss_mib(pid)
    assert peak_after - peak_before < 100, (peak_before, peak_after)
    assert os.path.exists(f"/proc/{pid}")  # and the server is still up
