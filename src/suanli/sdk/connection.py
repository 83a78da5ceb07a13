"""HTTP for the SDK on the standard library alone: one kept-alive connection to the server,
TLS with the system's trust store (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` apply), the proxy
environment variables honoured (``https_proxy``, ``http_proxy``, ``all_proxy``, ``no_proxy``).

The CLI starts a new process for every command, and importing httpx costs more CPU than the
rest of a command (0.15-0.3 s on a 2-core machine), so the SDK's default connection is this
small one; it speaks the subset of httpx's client interface that :class:`suanli.sdk.Client`
calls (``get``/``post``/``put``/``delete`` with ``params``, ``json``, ``content``,
``headers``; answers with ``status_code``, ``headers``, ``content``, ``text``, ``json()``),
so an httpx client can stand in for it (``Client.over``).

Unreachable servers, refused connections, timeouts and broken connections are raised as
:class:`ConnectionError` (an ``OSError``) naming the URL. A request is sent once: a kept-alive
connection that the server has closed while idle is noticed before the request is written
(the socket reads as ready) and replaced, never by resending a request that may have run.
"""

from __future__ import annotations

import base64
import http.client
import json as jsonlib
import os
import select
import ssl
from collections.abc import Mapping
from typing import Any, BinaryIO
from urllib.parse import unquote, urlencode, urlsplit


class Response:
    """A whole answer: status, headers (case-insensitive) and body."""

    def __init__(self, status_code: int, headers: http.client.HTTPMessage, content: bytes):
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        charset = self.headers.get_content_charset() or "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def _proxy_for(scheme: str, host: str, port: int) -> str | None:
    """The proxy URL the environment names for ``scheme://host:port`` (``https_proxy``,
    ``http_proxy``, ``all_proxy``; lower case first, as curl reads them), or None, also when
    ``no_proxy`` covers the host."""

    def env(name: str) -> str:
        return os.environ.get(name) or os.environ.get(name.upper()) or ""

    proxy = env(f"{scheme}_proxy") or env("all_proxy")
    if not proxy or _bypassed(host, port, env("no_proxy")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (comma-separated hosts, ``.domain`` suffixes, ``host:port``, or
    ``*``) covers the host."""
    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        name, _, entry_port = entry.partition(":")
        name = name.lstrip(".")
        if not name or (entry_port and entry_port != str(port)):
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


class Connection:
    """A kept-alive HTTP/1.1 connection to one server, with default headers and a timeout."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL {base_url!r}: expected http://HOST[:PORT] or https://…")
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.headers: dict[str, str] = dict(headers or {})
        self.timeout = timeout
        self.context = context
        self._conn: http.client.HTTPConnection | None = None
        self._proxied = False
        self._proxy_headers: dict[str, str] = {}

    # -- httpx's client interface, the part the SDK uses ----------------------------------
    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
        sink: BinaryIO | None = None,
    ) -> Response:
        """One request. ``content`` may be a file (its bytes stream; give Content-Length in
        ``headers``); with ``sink``, a successful answer's body is copied there as it comes
        instead of being kept."""
        target = self.prefix + path
        if params:
            target += "?" + urlencode(
                {k: _param(v) for k, v in params.items() if v is not None}, doseq=True
            )
        sent = {**self.headers, **(headers or {})}
        if json is not None:
            content = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        url = f"{self.base_url}{path}"
        try:
            conn = self._connection()
            sent.update(self._proxy_headers)
            conn.request(
                method,
                f"{self.scheme}://{self.host}:{self.port}{target}" if self._proxied else target,
                body=content,
                headers=sent,
            )
            answer = conn.getresponse()
            if sink is not None and answer.status < 300:
                while chunk := answer.read(1 << 20):
                    sink.write(chunk)
                body = b""
            else:
                body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ConnectionError(f"{url}: {exc or type(exc).__name__}") from exc
        if answer.will_close:
            self.close()
        return Response(answer.status, answer.headers, body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections ------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and self._conn.sock is not None and _closed(self._conn.sock):
            self.close()
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> http.client.HTTPConnection:
        proxy = _proxy_for(self.scheme, self.host, self.port)
        self._proxied = bool(proxy) and self.scheme == "http"
        host, port = self.host, self.port
        tunnel_headers: dict[str, str] = {}
        if proxy:
            p = urlsplit(proxy)
            host, port = p.hostname or "", p.port or 80
            if p.username:
                credentials = f"{unquote(p.username)}:{unquote(p.password or '')}"
                auth = "Basic " + base64.b64encode(credentials.encode()).decode()
                if self._proxied:
                    self._proxy_headers["Proxy-Authorization"] = auth
                else:
                    tunnel_headers["Proxy-Authorization"] = auth
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            context = self.context or ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)
            if proxy:
                conn.set_tunnel(self.host, self.port, headers=tunnel_headers)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return conn


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _closed(sock: Any) -> bool:
    """Whether an idle kept-alive socket has been closed by the server (it reads as ready:
    end of file, or bytes nobody asked for, which make it unusable too)."""
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)
