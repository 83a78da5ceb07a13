import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
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


#: what a test may start that must not outlive the session (the command line's words)
LEFTOVER = (
    "suanli server",
    "suanli.executors.runner",
    "raylet",
    "gcs_server",
    "postgres -D",
    "flower-superlink",
    "flower-supernode",
    "flwr-serverapp",
    "flwr-clientapp",
)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _ours() -> dict[int, str]:
    """Processes this session started (below this process, or naming its temporary
    directory: detached supervisors) that must not outlive it: pid -> command line. Another
    test session running beside this one is not ours."""
    me = os.getpid()
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not any(word in cmd for word in LEFTOVER):
            continue
        pid, ancestor = int(entry.name), int(entry.name)
        while ancestor > 1 and ancestor != me:
            ancestor = _parent(ancestor)
        if ancestor == me or any(base in cmd for base in _BASE):
            out[pid] = cmd.strip()
    return out


_BASE: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _session_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    _BASE.append(str(tmp_path_factory.getbasetemp()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A server, supervisor, Ray or PostgreSQL process a test left behind fails the run (after
    a grace for those already stopping), and is killed."""
    deadline = time.monotonic() + 15
    while (left := _ours()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if not left:
        return
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    lines = "\n".join(f"  {pid}: {cmd[:200]}" for pid, cmd in sorted(left.items()))
    print(f"\n{len(left)} process(es) outlived the tests (killed now):\n{lines}", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _supervisors(root: Path) -> list[Path]:
    """Every ``runs/JOB/ATTEMPT/supervisor.json`` under ``root`` (directories that vanish
    while we look, a run's scratch space say, are skipped)."""
    out = []
    for where, dirs, _files in os.walk(root, onerror=lambda _e: None):
        if Path(where).name == "runs":
            out += list(Path(where).glob("*/*/supervisor.json"))
            dirs.clear()
    return out


@pytest.fixture(autouse=True)
def no_run_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Local runs are detached (they outlive a crash of the service): stop those a test left
    running in its temporary directory, so that none runs on through the rest of the session."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp: Path = request.getfixturevalue("tmp_path")
    yield
    for sup in _supervisors(tmp):
        run = sup.parent
        if not (run / "exit.json").exists():
            ex = LocalProcessExecutor(run.parent.parent.parent)
            ex.stop(JobId(run.parent.name), int(run.name), 0.0)


@pytest.fixture(scope="session")
def flower_required() -> None:
    """Flower's environment (``envs/flower``), or a skip saying how to make it; a failure
    where it is required (``SUANLI_REQUIRE_FLOWER=1``, as in CI)."""
    from suanli.errors import CannotRunError
    from suanli.executors.flower import flower_env

    try:
        flower_env()
    except CannotRunError as exc:
        if os.environ.get("SUANLI_REQUIRE_FLOWER") == "1":
            pytest.fail(f"Flower is required here (SUANLI_REQUIRE_FLOWER=1): {exc}")
        pytest.skip(str(exc))


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
