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
from sqlalchemy.orm import Session, sessionmaker

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
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as s:
            yield s

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
