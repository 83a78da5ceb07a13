import os
from pathlib import Path

import pytest
from hypothesis import settings

from suanli.model.alliance import Alliance
from suanli.spec.alliance_file import load_alliance

# HYPOTHESIS_PROFILE=deep for a long search; CI uses the default.
settings.register_profile("default", max_examples=60)
settings.register_profile("deep", max_examples=1500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "suanli" / "examples"


@pytest.fixture(scope="session")
def example_alliance() -> Alliance:
    return load_alliance(EXAMPLES / "alliance.yaml")
