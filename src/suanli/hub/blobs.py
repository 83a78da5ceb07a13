"""Content-addressed blobs on the local filesystem: each file's bytes once, named by their
sha256, whatever repo, revision or path refers to them. A blob is written to ``incoming/``
as it streams in (never whole in memory), checked, and renamed into ``objects/`` only when
complete, so that no reader ever sees part of one."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from suanli.errors import PayloadTooLargeError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int
    #: git's blob id (sha1 of ``blob SIZE\0`` and the bytes): the ETag the Hugging Face
    #: client keys its cache on
    sha1: str


def git_sha1(f: BinaryIO, size: int) -> str:
    h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / "incoming"
        self.objects = root / "objects"
        for d in (root, self.incoming, self.objects):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def writer(self, limit: int) -> BlobWriter:
        """A new blob, at most ``limit`` bytes."""
        return BlobWriter(self, limit)

    def put(self, data: bytes) -> Blob:
        with self.writer(len(data)) as w:
            w.write(data)
            return w.finish()

    def copy_in(self, source: Path, sha256: str) -> Blob:
        """A copy of another store's blob, streamed and checked against its name."""
        with source.open("rb") as f, self.writer(source.stat().st_size) as w:
            while chunk := f.read(CHUNK):
                w.write(chunk)
            if w.digest() != sha256:
                raise ValueError(f"blob {sha256} does not hold the bytes it is named by")
            return w.finish()

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def clean_incoming(self) -> int:
        """Removes blobs that were being written when a process died; how many."""
        gone = 0
        for f in self.incoming.iterdir():
            f.unlink(missing_ok=True)
            gone += 1
        return gone


class BlobWriter:
    """Bytes in, a :class:`Blob` out (``finish``); anything else (an exception, ``abort``)
    leaves nothing behind."""

    def __init__(self, store: BlobStore, limit: int) -> None:
        self.store = store
        self.limit = limit
        fd, name = tempfile.mkstemp(dir=store.incoming)
        self._tmp = Path(name)
        self._f = os.fdopen(fd, "w+b")
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLargeError(f"a file is over the {self.limit} bytes allowed")
        self._hash.update(data)
        self._f.write(data)

    def digest(self) -> str:
        """The sha256 of the bytes written so far."""
        return self._hash.hexdigest()

    def finish(self) -> Blob:
        sha256 = self._hash.hexdigest()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.seek(0)
        sha1 = git_sha1(self._f, self.size)
        self._f.close()
        final = self.store.path(sha256)
        if final.is_file():  # (the same bytes are there already)
            self._tmp.unlink(missing_ok=True)
        else:
            final.parent.mkdir(exist_ok=True, mode=0o700)
            os.chmod(self._tmp, 0o600)
            os.replace(self._tmp, final)
            _sync_dir(final.parent)  # (the rename outlives a crash before the commit's rows)
        self._done = True
        return Blob(sha256, self.size, sha1)

    def abort(self) -> None:
        if not self._done:
            self._f.close()
            self._tmp.unlink(missing_ok=True)
            self._done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
