"""A run's output, copied from its pipe into ``output.log`` up to a cap.

A job can print without end (a loop that logs every step, a crash that dumps a tensor): the
log keeps its first ``cap`` bytes as they come, then a line that says the cap was reached, and
when the run ends its last :data:`TAIL_BYTES` (where the error usually is) after a line that
says how much was dropped in between. The job never blocks on its output: what is over the cap
is read and dropped.
"""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

#: how much of a capped log's end is kept (in memory while the run lasts)
TAIL_BYTES = 64 * 1024
#: the default cap of a run's log
DEFAULT_CAP_BYTES = 100 * 1024 * 1024
_READ = 64 * 1024


class CappedOutput:
    """Copies what is written to :attr:`write_fd` into the log file ``log_fd`` (append), at
    most ``cap`` bytes and then the end. :meth:`start` it, hand :attr:`write_fd` to the run
    (and :meth:`close_writer` here), :meth:`finish` once the run is over."""

    def __init__(self, log_fd: int, cap: int = DEFAULT_CAP_BYTES) -> None:
        self.log_fd = log_fd
        self.cap = max(0, cap)
        self.read_fd, self.write_fd = os.pipe()
        self.written = os.fstat(log_fd).st_size
        #: bytes over the cap, read and dropped (but for the tail)
        self.dropped = 0
        #: bytes the log file would not take (a full disk)
        self.unwritten = 0
        self._tail = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="output", daemon=True)

    def start(self) -> CappedOutput:
        self._thread.start()
        return self

    def close_writer(self) -> None:
        """This process's copy of the pipe's write end (the run holds its own)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.log_fd, view)
            except OSError:  # a full disk: what cannot be kept is lost, the run goes on
                self.unwritten += len(view)
                return
            view = view[n:]

    def _take(self, chunk: bytes) -> None:
        room = self.cap - self.written
        if room > 0:
            head = chunk[:room]
            self._write(head)
            self.written += len(head)
            chunk = chunk[room:]
        if chunk:
            if not self.dropped:  # the first byte over the cap
                note = (
                    f"\n[suanli: this log reached its cap of {self.cap} bytes: what follows is "
                    f"dropped, but for its last {TAIL_BYTES} bytes at the end of the run]\n"
                )
                self._write(note.encode())
            self.dropped += len(chunk)
            self._tail += chunk
            del self._tail[:-TAIL_BYTES]

    def _copy(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.read_fd], [], [], 0.2)
                if not ready:
                    if self._stop.is_set():
                        return
                    continue
                chunk = os.read(self.read_fd, _READ)
                if not chunk:
                    return
                self._take(chunk)
        finally:
            os.close(self.read_fd)

    def finish(self, wait_s: float = 5.0) -> None:
        """Wait until every writer has closed the pipe (``wait_s`` at most: a process that
        escaped the run may hold it), then write the end of a capped log."""
        self.close_writer()
        self._thread.join(wait_s)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        if self.dropped:
            kept = bytes(self._tail)
            self._write(
                f"\n[suanli: {self.dropped - len(kept)} bytes dropped here; the last "
                f"{len(kept)} bytes of the output follow]\n".encode()
                + kept
            )


def read_log(path: Path, offset: int = 0, limit: int | None = None) -> bytes:
    """At most ``limit`` bytes (None: all) of a run's log file from ``offset`` on; empty if
    it is not there (yet)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(-1 if limit is None else limit)
    except OSError:
        return b""


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
