"""The hub with the real Hugging Face client (``huggingface_hub``, pinned in the lock) pointed
at a served stack: what users' code calls, unchanged, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import filecmp
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, close_session, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..stack import Stack

CARD = "---\nlicense: apache-2.0\n---\n# A model\n"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    yield
    close_session()  # (the client's shared connections: none outlives the test)


@pytest.fixture
def api(stack: Stack) -> HfApi:
    return HfApi(endpoint=stack.url, token=stack.tokens["lab-user"])


def _folder(root: Path) -> Path:
    (root / "weights").mkdir(parents=True)
    (root / "README.md").write_text(CARD)
    (root / "config.json").write_text('{"hidden": 96}')
    (root / "weights" / "model.bin").write_bytes(os.urandom(3 << 20) + b"\0" * 1000)
    (root / "weights" / "empty.bin").write_bytes(b"")
    return root


def test_upload_folder_then_snapshot_download_gives_the_same_bytes(
    stack: Stack, api: HfApi, tmp_path: Path
) -> None:
    url = api.create_repo("lab/charlm", private=False)
    assert str(url).endswith("/lab/charlm")
    src = _folder(tmp_path / "src")
    info = api.upload_folder(folder_path=src, repo_id="lab/charlm", commit_message="first")
    assert len(info.oid) == 40
    got = Path(
        snapshot_download(
            "lab/charlm",
            endpoint=stack.url,
            token=stack.tokens["corp-user"],
            cache_dir=tmp_path / "cache",
        )
    )
    cmp = filecmp.dircmp(src, got)
    assert sorted(p.name for p in got.iterdir()) == ["README.md", "config.json", "weights"]
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    assert filecmp.cmp(src / "weights" / "model.bin", got / "weights" / "model.bin", False)
    files = sorted(api.list_repo_files("lab/charlm"))
    assert files == ["README.md", "config.json", "weights/empty.bin", "weights/model.bin"]
    model = api.model_info("lab/charlm")
    assert model.sha == info.oid and model.card_data is not None


def test_a_revision_a_subfolder_tags_branches_and_refs(
    stack: Stack, api: HfApi, tmp_path: Path
) -> None:
    api.create_repo("lab/tagged", private=True)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="sub/x.txt", repo_id="lab/tagged")
    api.create_tag("lab/tagged", tag="v1.0")
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="sub/x.txt", repo_id="lab/tagged")
    api.create_branch("lab/tagged", branch="dev", revision="v1.0")
    common = {"endpoint": stack.url, "token": stack.tokens["lab-admin"], "cache_dir": tmp_path}
    old = hf_hub_download("lab/tagged", "x.txt", subfolder="sub", revision="v1.0", **common)
    new = hf_hub_download("lab/tagged", "x.txt", subfolder="sub", **common)
    dev = hf_hub_download("lab/tagged", "sub/x.txt", revision="dev", **common)
    assert (Path(old).read_bytes(), Path(new).read_bytes(), Path(dev).read_bytes()) == (
        b"v1",
        b"v2",
        b"v1",
    )
    refs = api.list_repo_refs("lab/tagged")
    assert sorted(b.name for b in refs.branches) == ["dev", "main"]
    assert [t.name for t in refs.tags] == ["v1.0"]
    commits = api.list_repo_commits("lab/tagged")
    assert len(commits) == 3 and commits[-1].title == "initial commit"
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("lab/tagged", "sub/x.txt", revision="nope", **common)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("lab/tagged", "sub/y.txt", **common)


@pytest.fixture
def seen() -> Iterator[list[tuple[str, str, str | None]]]:
    """Every request the client sends: method, path, Range header."""
    from huggingface_hub.utils import _http

    log: list[tuple[str, str, str | None]] = []

    def hook(request: Any) -> None:
        log.append((request.method, request.url.path, request.headers.get("range")))

    def factory() -> Any:
        client = _http.default_client_factory()
        client.event_hooks["request"].append(hook)
        return client

    _http.set_client_factory(factory)
    yield log
    _http.set_client_factory(_http.default_client_factory)
    close_session()


def test_a_cached_file_is_checked_with_head_only(
    stack: Stack, api: HfApi, tmp_path: Path, seen: list[tuple[str, str, str | None]]
) -> None:
    api.create_repo("lab/cached", private=True)
    api.upload_file(path_or_fileobj=b"x" * 5000, path_in_repo="a.bin", repo_id="lab/cached")
    common = {"endpoint": stack.url, "token": stack.tokens["lab-user"], "cache_dir": tmp_path}
    first = hf_hub_download("lab/cached", "a.bin", **common)
    seen.clear()
    again = hf_hub_download("lab/cached", "a.bin", **common)
    assert first == again
    assert [(m, p) for m, p, _ in seen] == [("HEAD", "/lab/cached/resolve/main/a.bin")]


class Dropper:
    """A TCP proxy to the server that breaks the first connection once more than ``after``
    bytes have come back through it (a download cut halfway)."""

    def __init__(self, port: int, after: int) -> None:
        self.target, self.after, self.dropped = ("127.0.0.1", port), after, False
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, back: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                sent += len(data)
                if back and not self.dropped and sent > self.after:
                    self.dropped = True
                    break
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()
        for sock in self.open:
            sock.close()


def test_an_interrupted_download_resumes_with_range(
    stack: Stack, api: HfApi, tmp_path: Path, seen: list[tuple[str, str, str | None]]
) -> None:
    data = os.urandom(24 << 20)  # (the client writes what it got in 10 MiB pieces)
    api.create_repo("lab/big", private=True)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id="lab/big")
    dropper = Dropper(int(stack.url.rsplit(":", 1)[1]), after=15 << 20)
    try:
        got = hf_hub_download(
            "lab/big",
            "w.bin",
            endpoint=dropper.url,
            token=stack.tokens["lab-user"],
            cache_dir=tmp_path,
        )
    finally:
        dropper.close()
    assert dropper.dropped and Path(got).read_bytes() == data
    gets = [r for m, p, r in seen if m == "GET" and p == "/lab/big/resolve/main/w.bin"]
    assert len(gets) == 2 and gets[0] is None, gets
    assert gets[1] is not None and gets[1].startswith("bytes=") and gets[1] != "bytes=0-"


def test_a_dataset_repo_the_same_way(stack: Stack, api: HfApi, tmp_path: Path) -> None:
    api.create_repo("lab/poems", repo_type="dataset", private=False)
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "README.md").write_text("---\nlicense: cc0-1.0\n---\nTang poems\n")
    (src / "data" / "train.txt").write_text("床前明月光\n" * 1000)
    api.upload_folder(folder_path=src, repo_id="lab/poems", repo_type="dataset")
    got = Path(
        snapshot_download(
            "lab/poems",
            repo_type="dataset",
            endpoint=stack.url,
            token=stack.tokens["startup-user"],
            cache_dir=tmp_path / "cache",
        )
    )
    assert (got / "data" / "train.txt").read_text() == "床前明月光\n" * 1000
    assert (
        api.dataset_info("lab/poems").sha
        == api.list_repo_refs("lab/poems", repo_type="dataset").branches[0].target_commit
    )
    with pytest.raises(RepositoryNotFoundError):  # a dataset is not a model
        api.model_info("lab/poems")


def test_another_members_private_repo_is_not_found(
    stack: Stack, api: HfApi, tmp_path: Path
) -> None:
    api.create_repo("lab/secret", private=True)
    api.upload_file(path_or_fileobj=b"s", path_in_repo="s.txt", repo_id="lab/secret")
    corp = HfApi(endpoint=stack.url, token=stack.tokens["corp-user"])
    with pytest.raises(RepositoryNotFoundError):
        corp.model_info("lab/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(
            "lab/secret",
            "s.txt",
            endpoint=stack.url,
            token=stack.tokens["corp-user"],
            cache_dir=tmp_path,
        )
    anonymous = HfApi(endpoint=stack.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("lab/secret")
    with pytest.raises(HfHubHTTPError) as caught:  # writing to it: not even told it exists
        corp.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="lab/secret")
    assert caught.value.response.status_code == 404
    with pytest.raises(HfHubHTTPError) as caught:
        corp.create_repo("lab/theirs")
    assert caught.value.response.status_code == 403
    assert [r.id for r in corp.list_models()] == []
    assert [r.id for r in api.list_models(author="lab")] == ["lab/secret"]
