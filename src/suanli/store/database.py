"""The database handle: one engine, migrations applied on open, short transactions.

``sqlite:///PATH`` (the embedded default) runs in WAL mode with a busy timeout and foreign keys
on; ``postgresql+psycopg://...`` for production. The schema comes only from the Alembic
migrations in ``store/migrations``: :meth:`Database.open` upgrades to the newest one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from suanli.errors import DatabaseError

__all__ = ["Database", "DatabaseError", "per_engine"]


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("suanli.store") / "migrations"))
    return cfg


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        #: why the last transaction failed (a full disk), until one that writes succeeds
        self.write_problem: str | None = None
        # SQLite lets one writer at a time in, and makes the others poll for the lock with
        # sleeps of up to 100 ms: this process's writers queue on a lock of its own instead,
        # taken just before a transaction's first write (pysqlite begins it there) and held
        # to its end (readers never wait: WAL)
        self._writer = threading.RLock() if engine.dialect.name == "sqlite" else None
        event.listen(self._sessions, "before_flush", self._before_flush)
        event.listen(self._sessions, "do_orm_execute", self._before_statement)

    def _writes(self, s: Session) -> None:
        s.info["wrote"] = True
        if self._writer is not None and not s.info.get("writer"):
            self._writer.acquire()
            s.info["writer"] = True

    def _before_flush(self, s: Session, _context: object, _instances: object) -> None:
        if s.new or s.dirty or s.deleted:
            self._writes(s)

    def _before_statement(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            self._writes(state.session)

    @contextmanager
    def writer_if_free(self) -> Iterator[bool]:
        """On SQLite, this process's write lock if no one holds it (True), without waiting:
        what runs inside cannot wait for the database (on an event loop, say). Elsewhere,
        False."""
        got = self._writer is not None and self._writer.acquire(blocking=False)
        try:
            yield got
        finally:
            if got and self._writer is not None:
                self._writer.release()

    @classmethod
    def open(cls, url: str, upgrade: bool = True) -> Database:
        """Connect to ``url`` and bring the schema to the newest migration."""
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        engine = create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        db = cls(engine)
        if upgrade:
            db.upgrade()
        return db

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        cfg = _alembic_config()
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except Exception as exc:  # connection refused, bad URL, permissions
            raise DatabaseError(f"cannot migrate the database: {exc}") from exc

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head() -> str | None:
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises. A
        database that cannot be used just now (its disk full, unreachable, locked past the
        timeout) raises :class:`DatabaseError`."""
        s: Session | None = None
        try:
            with self._sessions.begin() as s:
                yield s
                s.flush()
                wrote = bool(s.info.get("wrote"))
        except OperationalError as exc:
            self.write_problem = f"the database cannot be used now: {exc.orig}"
            raise DatabaseError(self.write_problem) from exc
        finally:
            if s is not None and s.info.pop("writer", False) and self._writer is not None:
                self._writer.release()
        if wrote:
            self.write_problem = None

    def close(self) -> None:
        self.engine.dispose()


_T = TypeVar("_T")
_per_engine_lock = threading.Lock()


def per_engine(
    s: Session, caches: weakref.WeakKeyDictionary[Engine, _T], factory: Callable[[], _T]
) -> _T:
    """The cache object of the database ``s`` is bound to (made on first use): each database
    has its own, and it goes when the engine does."""
    engine = s.get_bind()
    assert isinstance(engine, Engine)
    with _per_engine_lock:
        cache = caches.get(engine)
        if cache is None:
            cache = caches[engine] = factory()
    return cache
