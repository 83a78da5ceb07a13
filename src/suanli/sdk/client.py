"""A small client of the suanli REST API. The CLI and the web page use it too.

It speaks HTTP through :mod:`suanli.sdk.connection` (the standard library: a command-line
call does not pay for importing httpx) or through any httpx client (``Client.over``, or an
httpx ``transport``: an in-process test server, a custom TLS or proxy setup).

Errors come back as :class:`ApiError` with the HTTP status, the domain error's name, its
message and, for invalid input, every problem with its field; an unreachable server as a
:class:`ConnectionError`.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import quote

from suanli.sdk.connection import Connection

if TYPE_CHECKING:
    import httpx


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, message: str, problems: list[dict[str, str]]
    ) -> None:
        self.status = status
        self.error = error
        self.message = message
        self.problems = problems
        lines = [message] + [f"  {p['field']}: {p['message']}" for p in problems]
        super().__init__("\n".join(lines))


class Answer(Protocol):
    """What the client reads of an HTTP answer (httpx's and the connection's both have it)."""

    status_code: int

    @property
    def headers(self) -> Any: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


class Http(Protocol):
    """The part of httpx's client interface the SDK calls."""

    @property
    def headers(self) -> Any: ...
    def get(self, url: str, /, *, params: Any = ...) -> Any: ...
    def post(
        self, url: str, /, *, content: Any = ..., json: Any = ..., headers: Any = ...
    ) -> Any: ...
    def put(self, url: str, /, *, json: Any = ...) -> Any: ...
    def delete(self, url: str, /) -> Any: ...
    def close(self) -> None: ...


def _httpx(url: str, headers: dict[str, str], timeout: float, transport: Any) -> Http:
    """An httpx client over ``transport``, unreachable servers reported as ConnectionError."""
    import httpx

    class _Http(httpx.Client):
        def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            try:
                return super().send(request, **kwargs)
            except httpx.TransportError as exc:
                raise ConnectionError(f"{request.url}: {exc}") from exc

    return _Http(base_url=url, headers=headers, timeout=timeout, transport=transport)


class Client:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = url.rstrip("/")
        self.http: Http = (
            Connection(url, headers, timeout)
            if transport is None
            else _httpx(url, headers, timeout, transport)
        )

    @classmethod
    def over(cls, http: Http, token: str | None = None) -> Client:
        """A client over an existing httpx client (an in-process test client, say)."""
        c = cls.__new__(cls)
        c.http = http
        if token:
            c.http.headers["Authorization"] = f"Bearer {token}"
        return c

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def _check(self, r: Answer) -> Answer:
        if r.status_code >= 400:
            try:
                body = r.json()
                raise ApiError(
                    r.status_code,
                    body.get("error", "Error"),
                    body.get("message", r.text),
                    body.get("problems", []),
                )
            except ValueError:
                raise ApiError(r.status_code, "Error", r.text, []) from None
        return r

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._check(self.http.get(path, params=clean)).json()

    # -- service ---------------------------------------------------------------------------
    def health(self) -> dict[str, str]:
        return self._get("/healthz")  # type: ignore[no-any-return]

    def whoami(self) -> dict[str, Any]:
        return self._get("/api/v1/whoami")  # type: ignore[no-any-return]

    def create_user(
        self,
        name: str,
        role: str,
        member: str | None = None,
        expires_in_days: float | None = None,
    ) -> dict[str, Any]:
        """A new user; the answer holds its token (shown this once)."""
        body = {"name": name, "role": role, "member": member, "expires_in_days": expires_in_days}
        r = self.http.post("/api/v1/users", json=body)
        return self._check(r).json()  # type: ignore[no-any-return]

    def users(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/users")  # type: ignore[no-any-return]

    def revoke_user(self, name: str) -> dict[str, Any]:
        """Every token of the user stops working, and its dashboard sessions end."""
        r = self.http.post(f"/api/v1/users/{quote(name, safe='')}/revoke")
        return self._check(r).json()  # type: ignore[no-any-return]

    def rotate_token(self, name: str, expires_in_days: float | None = None) -> dict[str, Any]:
        """A new token for the user (in the answer); its other tokens stop working."""
        r = self.http.post(
            f"/api/v1/users/{quote(name, safe='')}/rotate",
            json={"expires_in_days": expires_in_days},
        )
        return self._check(r).json()  # type: ignore[no-any-return]

    def audit(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self._get("/api/v1/audit", after=after, limit=limit)  # type: ignore[no-any-return]

    # -- pool ------------------------------------------------------------------------------
    def members(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/members")  # type: ignore[no-any-return]

    def sites(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/sites")  # type: ignore[no-any-return]

    def nodes(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/nodes")  # type: ignore[no-any-return]

    def register_node(self, node: dict[str, Any]) -> dict[str, Any]:
        return self._check(self.http.post("/api/v1/nodes", json=node)).json()  # type: ignore[no-any-return]

    def drain(self, node: str, on: bool = True) -> dict[str, Any]:
        verb = "drain" if on else "undrain"
        return self._check(self.http.post(f"/api/v1/nodes/{node}/{verb}")).json()  # type: ignore[no-any-return]

    def drain_pool(self, vendor: str | None = None, model: str | None = None) -> dict[str, Any]:
        """Drain every node of a vendor or model; move the jobs that can move."""
        body = {"vendor": vendor, "model": model}
        return self._check(self.http.post("/api/v1/pool/drain", json=body)).json()  # type: ignore[no-any-return]

    def remove_node(self, node: str) -> None:
        self._check(self.http.delete(f"/api/v1/nodes/{node}"))

    def datasets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/datasets")  # type: ignore[no-any-return]

    def create_dataset(self, dataset: dict[str, Any]) -> dict[str, Any]:
        return self._check(self.http.post("/api/v1/datasets", json=dataset)).json()  # type: ignore[no-any-return]

    def shares(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/shares")  # type: ignore[no-any-return]

    def set_share_limits(
        self, member: str, model: str, borrowing: int | None, lending: int | None
    ) -> dict[str, Any]:
        body = {"borrowing_limit": borrowing, "lending_limit": lending}
        return self._check(self.http.put(f"/api/v1/shares/{member}/{model}", json=body)).json()  # type: ignore[no-any-return]

    # -- jobs ------------------------------------------------------------------------------
    def submit(self, document: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Submit one job or ``{jobs: [...]}``, as a mapping or as YAML text."""
        if isinstance(document, str):
            r = self.http.post(
                "/api/v1/jobs",
                content=document.encode(),
                headers={"Content-Type": "application/yaml"},
            )
        else:
            r = self.http.post("/api/v1/jobs", json=document)
        return self._check(r).json()  # type: ignore[no-any-return]

    def jobs(
        self,
        member: list[str] | None = None,
        phase: list[str] | None = None,
        limit: int = 100,
        after: int = 0,
    ) -> dict[str, Any]:
        return self._get(  # type: ignore[no-any-return]
            "/api/v1/jobs", member=member, phase=phase, limit=limit, after=after
        )

    def iter_jobs(self, **filters: Any) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            page = self.jobs(after=after, limit=1000, **filters)
            yield from page["items"]
            if page["next_after"] is None:
                return
            after = page["next_after"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._get(f"/api/v1/jobs/{job_id}")  # type: ignore[no-any-return]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._check(self.http.post(f"/api/v1/jobs/{job_id}/cancel")).json()  # type: ignore[no-any-return]

    def logs(
        self,
        job_id: str,
        offset: int = 0,
        attempt: int | None = None,
        limit: int | None = None,
        tail: int | None = None,
    ) -> tuple[bytes, int, bool]:
        """A bounded chunk of output from ``offset`` (or the last ``tail`` bytes); the next
        offset; whether nothing more will come (the job has ended and this is the end)."""
        params: dict[str, Any] = {"offset": offset}
        for key, value in (("attempt", attempt), ("limit", limit), ("tail", tail)):
            if value is not None:
                params[key] = value
        r = self._check(self.http.get(f"/api/v1/jobs/{job_id}/logs", params=params))
        return r.content, int(r.headers["X-Next-Offset"]), r.headers["X-Job-Done"] == "true"

    def read_logs(
        self, job_id: str, attempt: int | None = None, tail: int | None = None
    ) -> Iterator[bytes]:
        """The output there is now, chunk by chunk (from ``tail`` bytes before its end)."""
        data, offset, _ = self.logs(job_id, 0, attempt, tail=tail)
        while data:
            yield data
            data, offset, _ = self.logs(job_id, offset, attempt)

    def follow_logs(
        self, job_id: str, poll_s: float = 0.5, tail: int | None = None
    ) -> Iterator[bytes]:
        """Output as it comes, until the job ends (the current attempt's, from ``tail`` bytes
        before its end if given)."""
        offset, attempt = 0, None
        while True:
            data, offset_next, done = self.logs(job_id, offset, attempt, tail=tail)
            tail = None
            if data:
                yield data
            offset = offset_next
            if done and not data:
                return
            if not data:
                time.sleep(poll_s)

    def queue(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/queue")  # type: ignore[no-any-return]

    # -- ledger ----------------------------------------------------------------------------
    def statement(self, member: str, period: str, book: str = "real") -> dict[str, Any]:
        """A member's ledger statement for a month (``2026-11``), in NU-hours."""
        return self._get(  # type: ignore[no-any-return]
            "/api/v1/ledger/statement", member=member, period=period, book=book
        )

    def statement_csv(self, member: str, period: str, book: str = "real") -> str:
        params = {"member": member, "period": period, "book": book, "format": "csv"}
        return self._check(self.http.get("/api/v1/ledger/statement", params=params)).text

    def verify_ledger(self, book: str = "real") -> dict[str, Any]:
        return self._get("/api/v1/ledger/verify", book=book)  # type: ignore[no-any-return]

    # -- hub (the Hugging Face protocol's routes: any HF client works too) -----------------
    def hub_repos(self, kind: str = "model", member: str | None = None) -> list[dict[str, Any]]:
        """The repos of a kind (of one member) that the caller may read."""
        return self._get(f"/api/{kind}s", author=member)  # type: ignore[no-any-return]

    def hub_repo(self, repo: str, kind: str = "model", revision: str = "main") -> dict[str, Any]:
        """A repo at a revision: its commit (``sha``), files, visibility and licence."""
        rev = quote(revision, safe="")
        return self._get(f"/api/{kind}s/{repo}/revision/{rev}")  # type: ignore[no-any-return]

    def hub_refs(self, repo: str, kind: str = "model") -> dict[str, Any]:
        return self._get(f"/api/{kind}s/{repo}/refs")  # type: ignore[no-any-return]

    def hub_commits(
        self, repo: str, kind: str = "model", revision: str = "main"
    ) -> list[dict[str, Any]]:
        rev = quote(revision, safe="")
        return self._get(f"/api/{kind}s/{repo}/commits/{rev}")  # type: ignore[no-any-return]

    def hub_lineage(self, repo: str, kind: str = "model", revision: str = "main") -> dict[str, Any]:
        """What made a revision: its commits and the jobs that committed them."""
        return self._get(  # type: ignore[no-any-return]
            f"/api/v1/hub/{kind}s/{repo}/lineage", revision=revision
        )

    def hub_create(
        self, repo: str, kind: str = "model", visibility: str = "private"
    ) -> dict[str, Any]:
        org, _, name = repo.partition("/")
        doc = {"name": name, "organization": org, "type": kind, "visibility": visibility}
        return self._check(self.http.post("/api/repos/create", json=doc)).json()  # type: ignore[no-any-return]

    def hub_visibility(
        self, repo: str, visibility: str, shared_with: list[str] | None = None, kind: str = "model"
    ) -> dict[str, Any]:
        doc = {"visibility": visibility, "sharedWith": shared_with or []}
        return self._check(self.http.put(f"/api/{kind}s/{repo}/settings", json=doc)).json()  # type: ignore[no-any-return]

    def hub_residency(self, repo: str, sites: list[str]) -> dict[str, Any]:
        """Keep a dataset's files at ``sites`` (its member's; [] lifts the rule)."""
        r = self.http.put(f"/api/datasets/{repo}/settings", json={"residentSites": sites})
        return self._check(r).json()  # type: ignore[no-any-return]

    def hub_upload(
        self,
        repo: str,
        files: dict[str, Path],
        kind: str = "model",
        message: str = "upload",
        revision: str = "main",
    ) -> str:
        """One commit adding ``files`` (path in the repo -> local file); its id. The body is
        built on disk, never whole in memory."""
        rev = quote(revision, safe="")
        with tempfile.TemporaryFile() as body:
            body.write(json.dumps({"key": "header", "value": {"summary": message}}).encode())
            for path, local in files.items():
                body.write(b'\n{"key": "file", "value": {"content": "')
                with local.open("rb") as f:
                    while chunk := f.read(3 << 18):
                        body.write(base64.b64encode(chunk))
                body.write(b'", "encoding": "base64", "path": ' + json.dumps(path).encode() + b"}}")
            body.write(b"\n")
            size = body.tell()
            body.seek(0)
            headers = {"Content-Type": "application/x-ndjson", "Content-Length": str(size)}
            url = f"/api/{kind}s/{repo}/commit/{rev}"
            r = self.http.post(url, content=body if size > 0 else b"", headers=headers)
        return str(self._check(r).json()["commitOid"])

    def hub_download(
        self, repo: str, path: str, dest: BinaryIO, kind: str = "model", revision: str = "main"
    ) -> None:
        """A file of a revision, written to ``dest`` as it comes."""
        where = repo if kind == "model" else f"{kind}s/{repo}"
        url = f"/{where}/resolve/{quote(revision, safe='')}/{quote(path)}"
        if isinstance(self.http, Connection):
            self._check(self.http.request("GET", url, sink=dest))
            return
        dest.write(self._check(self.http.get(url)).content)
