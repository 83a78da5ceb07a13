import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from suanli.executors.local import LocalProcessExecutor
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId
from suanli.spec.alliance_file import load_alliance

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
def example_alliance() -> Alliance:
    return load_alliance(EXAMPLES / "alliance.yaml")
