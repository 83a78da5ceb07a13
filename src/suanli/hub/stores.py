"""Where the hub's blobs are kept: the control plane's own store, for every repo that is not
resident, and one store per site, for datasets resident there. A resident dataset's files
are written to its sites' stores only (its commit's body is spooled there as well) and read
from them only; the control plane's store never holds them unless another, non-resident
repo holds the same bytes (which its owner's rules then allowed).

A site's store is a directory this server reaches: by default ``HUB_DIR/sites/SITE``; in
production the mount of storage at that site (``suanli server --hub-site-store
SITE=PATH``)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from suanli.hub.blobs import BlobStore
from suanli.spec.common import ID_PATTERN

_SITE = re.compile(ID_PATTERN)


class Stores:
    def __init__(self, root: Path, sites: Mapping[str, Path] | None = None) -> None:
        self.root = root
        self.central = BlobStore(root)
        self._paths = {name: Path(p) for name, p in (sites or {}).items()}
        self._open: dict[str, BlobStore] = {}
        self._lock = threading.Lock()
        for name in self._paths:
            self.site(name)

    def site(self, name: str) -> BlobStore:
        """The store of site ``name`` (made on first use)."""
        if not _SITE.fullmatch(name):
            raise ValueError(f"{name!r} is not a site id")
        with self._lock:
            store = self._open.get(name)
            if store is None:
                store = BlobStore(self._paths.get(name) or self.root / "sites" / name)
                self._open[name] = store
            return store

    def homes(self, resident: Sequence[str] | None) -> list[BlobStore]:
        """Where a repo's blobs belong: its resident sites' stores, or the central one."""
        return [self.site(s) for s in resident] if resident else [self.central]

    def every(self) -> list[BlobStore]:
        """Every store: the central one, the configured sites' and any made before."""
        made = self.root / "sites"
        found = [d.name for d in made.iterdir() if d.is_dir()] if made.is_dir() else []
        return [self.central, *(self.site(s) for s in sorted(set(found) | set(self._paths)))]

    def find(self, sha256: str, resident: Sequence[str] | None, prefer: Iterable[str] = ()) -> Path:
        """The path of a blob of a repo resident at ``resident`` (None: not resident): in its
        homes first (the store of a site of ``prefer`` before the others), then in any store
        (a copy a commit or a change of residency has not yet moved, see :meth:`place`)."""
        ordered = [s for s in prefer if resident and s in resident]
        ordered += [s for s in resident or () if s not in ordered]
        homes = [self.site(s) for s in ordered] if resident else [self.central]
        for store in homes + [s for s in self.every() if s not in homes]:
            if store.has(sha256):
                return store.path(sha256)
        return homes[0].path(sha256)  # (absent: opening it says so)

    def place(self, sha256: str, resident: Sequence[str] | None) -> None:
        """Copies a blob into each of its homes that lacks it, from a store that has it
        (raises :class:`FileNotFoundError` when none has it)."""
        missing = [h for h in self.homes(resident) if not h.has(sha256)]
        if not missing:
            return
        source = next((s for s in self.every() if s.has(sha256)), None)
        if source is None:
            raise FileNotFoundError(f"no store holds blob {sha256}")
        for home in missing:
            home.copy_in(source.path(sha256), sha256)

    def clean_incoming(self) -> int:
        return sum(store.clean_incoming() for store in self.every())
