"""A commit as the Hugging Face client sends it: newline-delimited JSON, a ``header`` line
(``summary``, ``description``, optionally ``parentCommit``), then one line per operation:
``file`` (``path``, ``content`` in base64), ``lfsFile`` (``path``, ``oid``: a sha256 already
uploaded), ``deletedFile``, ``deletedFolder``.

A file's content may be gigabytes of base64 on one line, so it is never read whole: each
``"content"`` string streams through a base64 decoder into a new blob while the rest of its
line (bounded) is kept and parsed as JSON once the line ends."""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from suanli.errors import Problem, ValidationError
from suanli.hub import names
from suanli.hub.blobs import Blob, BlobStore, BlobWriter

#: the most bytes of a line outside its file's content
MAX_FIELDS = 1 << 20
#: the most operations in one commit
MAX_OPERATIONS = 100_000
_CONTENT = re.compile(rb'"content"\s*:\s*"')


@dataclass
class Operations:
    summary: str = ""
    description: str = ""
    parent: str | None = None
    #: path -> a blob written by this commit
    added: dict[str, Blob] = field(default_factory=dict)
    #: path -> the sha256 of a blob uploaded before
    linked: dict[str, str] = field(default_factory=dict)
    deleted_files: list[str] = field(default_factory=list)
    deleted_folders: list[str] = field(default_factory=list)


def _bad(line: int, message: str) -> ValidationError:
    return ValidationError([Problem(f"commit line {line}", message)], "commit")


class _Decoder:
    """Base64 text in (in pieces of any length), the decoded bytes into a blob."""

    def __init__(self, writer: BlobWriter, line: int) -> None:
        self.writer = writer
        self.line = line
        self.rest = b""

    def feed(self, text: bytes) -> None:
        data = self.rest + text
        cut = len(data) - len(data) % 4
        self.rest = data[cut:]
        if cut:
            self._decode(data[:cut])

    def close(self) -> Blob:
        if self.rest:
            raise _bad(self.line, "a file's content is not base64 (its length)")
        return self.writer.finish()

    def _decode(self, text: bytes) -> None:
        if b"\\" in text:
            raise _bad(self.line, "a file's content is plain base64, without JSON escapes")
        try:
            self.writer.write(binascii.a2b_base64(text, strict_mode=True))
        except binascii.Error as e:
            raise _bad(self.line, f"a file's content is not base64 ({e})") from None


def read(chunks: Iterable[bytes], store: BlobStore, max_file: int) -> Operations:
    """The operations of a commit read from ``chunks`` (the request's body); the files'
    bytes are in ``store`` when it returns. A malformed line raises, naming it."""
    ops = Operations()
    for number, (doc, blobs) in enumerate(_lines(chunks, store, max_file), start=1):
        if number > MAX_OPERATIONS + 1:
            raise _bad(number, f"a commit has at most {MAX_OPERATIONS} operations")
        _apply(ops, number, doc, blobs)
    if not ops.added and not ops.linked and not ops.deleted_files and not ops.deleted_folders:
        raise ValidationError([Problem("commit", "no operation: nothing to commit")], "commit")
    return ops


def _apply(ops: Operations, number: int, doc: Any, blobs: list[Blob]) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), dict):
        raise _bad(number, "each line is an object with a key and a value object")
    key, value = doc.get("key"), doc["value"]
    if number == 1:
        if key != "header":
            raise _bad(number, "the first line is the header")
        ops.summary = str(value.get("summary") or "")[:1000]
        ops.description = str(value.get("description") or "")[:10_000]
        parent = value.get("parentCommit")
        if parent is not None and not (isinstance(parent, str) and names.is_commit(parent)):
            raise _bad(number, "parentCommit is a commit's 40-hex id")
        ops.parent = parent
        return
    path = value.get("path")
    if not isinstance(path, str):
        raise _bad(number, "value.path is a string")
    try:
        names.file_path(path, f"commit line {number}: value.path")
    except ValidationError as e:
        raise ValidationError(e.problems, "commit") from None
    if key == "file":
        if value.get("encoding", "base64") != "base64" or len(blobs) != 1:
            raise _bad(number, "a file's content is one base64 string")
        ops.added[path] = blobs[0]
    elif key == "lfsFile":
        oid = value.get("oid")
        if not (isinstance(oid, str) and re.fullmatch(r"[0-9a-f]{64}", oid)):
            raise _bad(number, "an lfsFile's oid is a sha256 in hex")
        ops.linked[path] = oid
    elif key == "deletedFile":
        ops.deleted_files.append(path)
    elif key == "deletedFolder":
        ops.deleted_folders.append(path.rstrip("/"))
    else:
        known = "file, lfsFile, deletedFile, deletedFolder"
        raise _bad(number, f"{key!r} is not an operation ({known})")
    if key != "file" and blobs:
        raise _bad(number, f"a {key} has no content")


def _lines(
    chunks: Iterable[bytes], store: BlobStore, max_file: int
) -> Iterator[tuple[Any, list[Blob]]]:
    """Each line's JSON (its contents replaced by empty strings) and the blobs of its
    contents, in order."""
    fields = bytearray()  # the current line, less its contents
    blobs: list[Blob] = []
    decoder: _Decoder | None = None
    number = 1
    try:
        for chunk in chunks:
            pos, n = 0, len(chunk)
            while pos < n:
                if decoder is not None:  # inside a content string: up to its closing quote
                    end = chunk.find(b'"', pos)
                    decoder.feed(chunk[pos : n if end < 0 else end])
                    if end < 0:
                        break
                    blobs.append(decoder.close())
                    decoder = None
                    fields += b'"'
                    pos = end + 1
                    continue
                newline = chunk.find(b"\n", pos)
                stop = n if newline < 0 else newline
                start = len(fields)
                fields += chunk[pos:stop]
                found = _content(fields, start)
                if found >= 0:  # what follows the opening quote is content
                    pos = stop - (len(fields) - found)
                    del fields[found:]
                    decoder = _Decoder(store.writer(max_file), number)
                    continue
                if len(fields) > MAX_FIELDS:
                    raise _bad(number, f"its fields (outside content) are over {MAX_FIELDS} bytes")
                if newline < 0:
                    break
                pos = newline + 1
                if fields.strip():
                    yield _parse(fields, number), blobs
                    number += 1
                fields, blobs = bytearray(), []
        if decoder is not None:
            raise _bad(number, "the body ended inside a file's content")
        if fields.strip():
            yield _parse(fields, number), blobs
    finally:
        if decoder is not None:
            decoder.writer.abort()


def _content(fields: bytearray, start: int) -> int:
    """Where a ``"content": "`` that the bytes from ``start`` completed ends, or -1 (one
    ending earlier has been read already)."""
    for m in _CONTENT.finditer(fields, max(0, start - 64)):
        if m.end() > start:
            return m.end()
    return -1


def _parse(fields: bytearray, number: int) -> Any:
    try:
        return json.loads(fields)
    except (ValueError, RecursionError) as e:
        raise _bad(number, f"not JSON ({e})") from None
