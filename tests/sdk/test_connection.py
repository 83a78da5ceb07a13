"""The SDK's standard-library HTTP connection against real sockets: one kept-alive connection
for many requests, a connection the server closed while idle replaced without resending, TLS
verified against the trust store that ``SSL_CERT_FILE`` names, the proxy variables honoured
(absolute-form requests to an HTTP proxy, CONNECT tunnels for HTTPS, ``no_proxy``)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from suanli.sdk.client import ApiError, Client
from suanli.sdk.connection import Connection, _bypassed, _closed


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lines: list[str] = []
        self.peers: set[tuple[str, int]] = set()
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        self.close_after = False
        self.closed = threading.Event()

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        # read before answering: the client sets the flag only once this answer has reached it
        close = self.server.close_after
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(self.rfile.read(length))
        self.server.lines.append(self.requestline)
        self.server.peers.add(self.client_address)
        self.server.headers.append(dict(self.headers))
        status = 404 if "missing" in self.path else 200
        body = json.dumps({"path": self.path, "error": "NotFoundError", "message": "no such"})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())
        if close:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def do_CONNECT(self) -> None:
        self.server.lines.append(self.requestline)
        self.server.headers.append(dict(self.headers))
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True


@contextmanager
def running(srv: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[Recorder]:
    with running(Recorder()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_requests_share_one_connection_and_carry_params_json_and_headers(server: Recorder) -> None:
    with Connection(server.url + "/base/", {"Authorization": "Bearer t"}) as c:
        assert c.get("/a", params={"member": ["x", "y"], "n": 1, "skip": None}).json() == {
            "path": "/base/a?member=x&member=y&n=1",
            "error": "NotFoundError",
            "message": "no such",
        }
        assert c.post("/b", json={"k": "v"}).status_code == 200
        assert c.put("/c", content=b"raw", headers={"Content-Type": "text/plain"}).text
        c.delete("/d")
    assert [line.split()[0] for line in server.lines] == ["GET", "POST", "PUT", "DELETE"]
    assert len(server.peers) == 1, "every request on one kept-alive connection"
    assert server.bodies[1:3] == [b'{"k": "v"}', b"raw"]
    assert server.headers[1]["Content-Type"] == "application/json"
    assert server.headers[2]["Content-Type"] == "text/plain"
    assert all(h["Authorization"] == "Bearer t" for h in server.headers)


def test_a_connection_the_server_closed_is_replaced_and_nothing_is_sent_twice(
    server: Recorder,
) -> None:
    with Connection(server.url) as c:
        c.get("/one")
        # the server drops the connection once idle, as uvicorn does after its keep-alive
        # timeout (without saying so in the answer)
        server.close_after = True
        c.post("/two", json={"once": True})
        server.close_after = False
        assert server.closed.wait(30)
        # and its end has reached this side (on a loaded machine the kernel can take a moment
        # to deliver it; an idle connection's close arrives long before the next request)
        deadline = time.time() + 30
        while c._conn is not None and not _closed(c._conn.sock):
            assert time.time() < deadline
            time.sleep(0.01)
        c.post("/three", json={"once": True})
    assert [line.split()[1] for line in server.lines] == ["/one", "/two", "/three"]
    assert len(server.peers) == 2


def test_api_errors_and_unreachable_servers_through_the_client(server: Recorder) -> None:
    with Client(server.url, "t") as c:
        with pytest.raises(ApiError) as info:
            c.job("missing")
        assert info.value.status == 404 and info.value.error == "NotFoundError"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=2) as c, pytest.raises(ConnectionError) as e:
        c.health()
    assert f"127.0.0.1:{port}/healthz" in str(e.value)


def test_a_bad_server_url_names_the_problem() -> None:
    with pytest.raises(ValueError, match="expected http://HOST"):
        Connection("127.0.0.1:8470")


def test_an_http_proxy_gets_the_absolute_url_unless_no_proxy_covers_the_host(
    server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://alice:s%40cret@127.0.0.1:{server.server_address[1]}")
    with Connection("http://suanli.example:8470", {"Authorization": "Bearer t"}) as c:
        c.get("/api/v1/jobs", params={"limit": 5})
    assert server.lines[-1] == "GET http://suanli.example:8470/api/v1/jobs?limit=5 HTTP/1.1"
    assert server.headers[-1]["Proxy-Authorization"] == "Basic YWxpY2U6c0BjcmV0"
    monkeypatch.setenv("no_proxy", "localhost, .example")
    with Connection("http://suanli.example:8470") as c, pytest.raises(ConnectionError):
        c.get("/api/v1/jobs")  # direct, and suanli.example does not resolve
    assert len(server.lines) == 1


def test_https_through_a_proxy_opens_a_tunnel(
    server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", f"127.0.0.1:{server.server_address[1]}")
    with Connection("https://suanli.example") as c, pytest.raises(ConnectionError):
        c.get("/healthz")  # the recorder refuses the tunnel
    assert [line.rsplit(" ", 1)[0] for line in server.lines] == ["CONNECT suanli.example:443"]


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("a.example", 80, "*", True),
        ("a.example", 80, "example", True),
        ("a.example", 80, ".example", True),
        ("notexample", 80, "example", False),
        ("a.example", 80, "a.example:8080", False),
        ("a.example", 8080, "a.example:8080", True),
        ("10.0.0.1", 80, "10.0.0.1, localhost", True),
        ("A.Example", 80, "a.example", True),
        ("a.example", 80, "", False),
    ],
)
def test_no_proxy_rules(host: str, port: int, no_proxy: str, bypassed: bool) -> None:
    assert _bypassed(host, port, no_proxy) is bypassed


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_is_verified_against_the_trust_store_ssl_cert_file_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    srv = Recorder()
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    with running(srv):
        url = f"https://127.0.0.1:{srv.server_address[1]}"
        with Connection(url) as c, pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY"):
            c.get("/healthz")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        with Connection(url) as c:
            assert c.get("/healthz").json()["path"] == "/healthz"
