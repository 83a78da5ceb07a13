from pathlib import Path

import pytest

from suanli.model.alliance import Alliance
from suanli.spec.alliance_file import load_alliance

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def example_alliance() -> Alliance:
    return load_alliance(EXAMPLES / "alliance.yaml")
