import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import text

from suanli.executors.local import LocalProcessExecutor
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId
from suanli.spec.alliance_file import load_alliance
from suanli.store.database import Database
from suanli.store.tables import Base

from .live import serving
from .pg import postgres_server
from .stack import Stack

# HYPOTHESIS_PROFILE=deep for a long search; CI uses the default.
settings.register_profile("default", max_examples=60)
settings.register_profile("deep", max_examples=1500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "suanli" / "examples"


@pytest.fixture(autouse=True)
def no_run_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Local runs are detached (they outlive a crash of the service): stop those a test left
    running in its temporary directory, so that none runs on through the rest of the session."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp: Path = request.getfixturevalue("tmp_path")
    yield
    for sup in tmp.glob("**/runs/*/*/supervisor.json"):
        run = sup.parent
        if not (run / "exit.json").exists():
            ex = LocalProcessExecutor(run.parent.parent.parent)
            ex.stop(JobId(run.parent.name), int(run.name), 0.0)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user may read (a job's working directory: runs read it as their
    member's own OS user, who cannot enter a test's private temporary directory)."""
    d = Path(tempfile.mkdtemp(prefix="suanli-test-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str | None) -> Iterator[Database]:
    """A migrated database: SQLite in the test's directory, and the PostgreSQL server CI
    installs (skipped where none is installed)."""
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
        _drop_schema(database)
    database.close()


def _drop_schema(database: Database) -> None:
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture
def stack(db: Database, tmp_path: Path) -> Iterator[Stack]:
    """The service stack on ``db``, its API served (see :mod:`tests.stack`)."""
    st = Stack(db, tmp_path)
    with serving(st.app) as url:
        st.url = url
        yield st
        for c in st.clients.values():
            c.close()


@pytest.fixture(scope="session")
def example_alliance() -> Alliance:
    return load_alliance(EXAMPLES / "alliance.yaml")
