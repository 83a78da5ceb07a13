import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from suanli.store.database import Database
from suanli.store.tables import Base

from ..pg import postgres_server


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str | None) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database.open(f"sqlite:///{tmp_path / 'suanli.db'}")
    else:
        if pg_url is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PostgreSQL is not installed (CI installs it: see .ci/run)")
            pytest.skip("PostgreSQL is not installed here")
        database = Database.open(pg_url)
    yield database
    if request.param == "postgresql":  # a clean schema for the next test
        with database.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    database.close()
