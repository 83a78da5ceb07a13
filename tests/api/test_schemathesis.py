"""Requests generated from the OpenAPI schema (schemathesis) against the live API, as an
alliance admin and as a member user: no answer is a 5xx."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis import Case

from suanli.api.app import create_app, openapi_document
from suanli.executors.local import LocalProcessExecutor
from suanli.hub.stores import Stores
from suanli.sched.policy import get_policy
from suanli.service.auth import create_user
from suanli.service.context import Service
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import load_alliance
from suanli.store.database import Database

from ..conftest import ROOT
from ..live import serving

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("api")
    db = Database.open(f"sqlite:///{tmp / 'suanli.db'}")
    with db.session() as s:
        create_alliance(
            s, load_alliance(ROOT / "src/suanli/examples/alliance.yaml"), "t", time.time()
        )
        tokens = {
            "admin": create_user(s, None, "admin", "alliance-admin", None, time.time()),
            "user": create_user(s, None, "user", "member-user", "huaxia-cloud", time.time()),
        }
    executor = LocalProcessExecutor(tmp / "exec")
    app = create_app(Service(db, get_policy("alliance"), executor, hub=Stores(tmp / "hub")))
    with serving(app) as url:
        yield url, tokens
    db.close()


schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_published_openapi_document_is_current() -> None:
    published = json.loads((ROOT / "schemas" / "openapi.json").read_text())
    assert published == openapi_document(), (
        "regenerate with: suanli spec schema openapi > schemas/openapi.json"
    )


@schema.parametrize()
def test_no_5xx(case: Case, live: tuple[str, dict[str, str]]) -> None:
    url, tokens = live
    for token in tokens.values():
        response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
