import json

import jsonschema
import pytest

from suanli.spec.card import card_schema, problems
from suanli.spec.common import read_yaml
from suanli.spec.schema import alliance_schema, job_schema

from ..conftest import EXAMPLES, ROOT


@pytest.mark.parametrize(
    ("name", "make"), [("alliance", alliance_schema), ("job", job_schema), ("card", card_schema)]
)
def test_published_schema_is_current(name: str, make: object) -> None:
    published = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
    assert published == make(), "regenerate with: suanli spec schema NAME > schemas/..."  # type: ignore[operator]


def test_examples_validate_against_the_schemas() -> None:
    for alliance in ("alliance.yaml", "embedded-alliance.yaml", "slurm-alliance.yaml"):
        jsonschema.validate(read_yaml(EXAMPLES / alliance), alliance_schema())
    for jobs in ("jobs.yaml", "embedded-jobs.yaml", "slurm-jobs.yaml"):
        jsonschema.validate(read_yaml(EXAMPLES / jobs), job_schema())
    jsonschema.validate(
        {"member": "m", "accelerators": "H800:8", "gang": "1x8", "checkpoint_interval": "30m"},
        job_schema(),
    )


def test_schema_rejects_unknown_fields() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"member": "m", "accelerators": "H800:8", "gpus": 1}, job_schema())


def test_cards_validate_as_the_published_schema_says() -> None:
    good = {"license": "apache-2.0", "language": ["zh"], "datasets": ["lab/poems"], "x": 1}
    jsonschema.validate(good, card_schema())
    assert problems(good) == []
    bad = {"license": "", "tags": "not-a-list"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, card_schema())
    assert sorted(p.field for p in problems(bad)) == ["license", "tags"]
    assert [p.field for p in problems({"license": "other"})] == ["license"]
