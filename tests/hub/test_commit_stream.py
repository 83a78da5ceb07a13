"""The hub's pure parts: a commit body read as it streams gives back every file's bytes
whatever the pieces it arrives in, and a path the hub accepts never leaves the repo."""

from __future__ import annotations

import base64
import json
import posixpath
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.errors import ValidationError
from suanli.hub import commit, names
from suanli.hub.blobs import BlobStore

SEGMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=12,
)


def _body(files: dict[str, bytes]) -> bytes:
    lines = [{"key": "header", "value": {"summary": "s", "description": ""}}]
    for path, data in files.items():
        content = base64.b64encode(data).decode()
        lines.append({"key": "file", "value": {"content": content, "path": path}})
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


@settings(max_examples=60, deadline=None)
@given(
    files=st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.bin", fullmatch=True),
        st.binary(max_size=3000),
        min_size=1,
        max_size=4,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=30),
)
def test_any_chunking_gives_back_every_files_bytes(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], cuts: list[int]
) -> None:
    if any(a != b and b.startswith(a + "/") for a in files for b in files):
        return  # (a file under a file: refused later, by the service)
    store = BlobStore(tmp_path_factory.mktemp("blobs"))
    body = _body(files)
    chunks, at, i = [], 0, 0
    while at < len(body):
        step = cuts[i % len(cuts)]
        chunks.append(body[at : at + step])
        at, i = at + step, i + 1
    ops = commit.read(chunks, store, 1 << 20)
    assert set(ops.added) == set(files)
    for path, data in files.items():
        assert store.path(ops.added[path].sha256).read_bytes() == data
        assert ops.added[path].size == len(data)
    assert list(store.incoming.iterdir()) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(SEGMENT, st.sampled_from(["..", ".", "", ".git"])), min_size=1, max_size=6)
)
def test_an_accepted_path_stays_inside_the_repo(parts: list[str]) -> None:
    path = "/".join(parts)
    try:
        names.file_path(path)
    except ValidationError:
        return
    root = Path("/repo")
    joined = posixpath.normpath(posixpath.join(str(root), path))
    assert joined.startswith("/repo/") and joined == f"/repo/{path}"
    assert ".." not in path.split("/") and "\\" not in path
