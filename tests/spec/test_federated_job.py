"""The federated job spec: its parts, and validation that names the field."""

from __future__ import annotations

import tomllib
from typing import Any

import jsonschema
import pytest
import yaml

from suanli.errors import ValidationError
from suanli.model.alliance import Alliance
from suanli.model.federation import RESERVED_KEYS, FederatedSpec
from suanli.spec.alliance_file import parse_alliance
from suanli.spec.common import read_yaml
from suanli.spec.job_file import load_specs, parse_jobs, parse_specs
from suanli.spec.schema import job_schema
from suanli.store.codec import spec_from_json, spec_to_json

from ..conftest import EXAMPLES, ROOT

EXAMPLE = EXAMPLES / "federated-job.yaml"


def doc(**changes: Any) -> dict[str, Any]:
    """The shipped example, changed."""
    d: dict[str, Any] = read_yaml(EXAMPLE)
    d.update(changes)
    return d


def problems(document: Any, alliance: Alliance | None) -> dict[str, str]:
    with pytest.raises(ValidationError) as err:
        parse_specs(document, "t", alliance)
    return {p.field: p.message for p in err.value.problems}


def test_the_example_is_a_federation_of_three(example_alliance: Alliance) -> None:
    (spec,) = load_specs(EXAMPLE, example_alliance)
    assert isinstance(spec, FederatedSpec)
    assert spec.member == "pengcheng-lab" and spec.rounds == 10 and spec.min_participants == 2
    assert dict(spec.run_config) == {"local-steps": 40, "learning-rate": 0.003}
    parts = spec.parts()
    assert [(p.member, p.datasets) for p in parts] == [
        ("qinghe-univ", ("tang300",)),
        ("pengcheng-lab", ("song100",)),
        ("zhiyuan-ai", ("chinese",)),
    ]
    assert all(p.own_nodes and p.group == parts[0].group for p in parts)
    assert parts[0].group is not None and parts[0].group.size == 3
    assert parts[0].group.min_size == 2 and parts[0].group.id == spec.id
    assert parts[2].models == {"MLU370-X8", "C550"}
    # each part may run only at its own member's site, where its corpus lies
    assert [example_alliance.sites_for(p) for p in parts] == [
        {"qh-beijing"},
        {"pc-shenzhen"},
        {"zy-hangzhou"},
    ]


def test_a_part_survives_the_database_codec(example_alliance: Alliance) -> None:
    (spec,) = load_specs(EXAMPLE, example_alliance)
    assert isinstance(spec, FederatedSpec)
    for part in spec.parts():
        assert spec_from_json(spec_to_json(part)) == part


def test_minimum_defaults_to_every_participant() -> None:
    d = doc()
    del d["min_participants"]
    (spec,) = parse_specs(d)
    assert isinstance(spec, FederatedSpec) and spec.min_participants == 3


def test_published_schema_describes_it() -> None:
    jsonschema.validate(read_yaml(EXAMPLE), job_schema())
    both = {"jobs": [read_yaml(EXAMPLE), {"member": "m", "accelerators": "H800:8"}]}
    jsonschema.validate(both, job_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc(rounds=0), job_schema())


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        # a participant who may not read the dataset it would train on
        ({"participants": [{"member": "xinghuo", "dataset": "tang300", "accelerators": "H800:1"}]},
         "participants.0.dataset", "may not read dataset 'tang300'"),
        # the dataset's owner does not let this submitter's runs train on it
        ({"member": "huaxia-cloud"}, "participants.0.dataset",
         "does not let federated runs of 'huaxia-cloud' train on it"),
        # a member with no node that could host its part
        ({"member": "nanhu-univ", "min_participants": 1, "participants": [
            {"member": "nanhu-univ", "dataset": "clinical-notes", "accelerators": "H800:1"}]},
         "participants.0.accelerators", "member 'nanhu-univ' has no node"),
        ({"min_participants": 4}, "min_participants", "only 3 participant(s)"),
        ({"participants": [
            {"member": "qinghe-univ", "dataset": "tang300", "accelerators": "RTX4090:1"},
            {"member": "qinghe-univ", "dataset": "tang300", "accelerators": "RTX4090:2"}]},
         "participants.1", "already takes part with dataset 'tang300'"),
        ({"participants": [
            {"member": "pengcheng-lab", "dataset": "song100", "accelerators": "Acsend910B:1"}],
          "min_participants": 1},
         "participants.0.accelerators", "did you mean"),
        ({"app": "../elsewhere"}, "app", "inside the job's working directory"),
        ({"rounds": 0}, "rounds", "greater than or equal to 1"),
        ({"participants": [{"member": "qinghe-univ", "dataset": "tang300",
                            "accelerators": "RTX4090:1", "gpus": 1}]},
         "participants.0.gpus", "unknown field"),
        ({"run_config": {"bad key": 1}}, "run_config.bad key", "pattern"),
        ({"secure_aggregation": {"num_shares": 3, "reconstruction_threshold": 3},
          "min_participants": 3},
         "secure_aggregation.reconstruction_threshold", "below num_shares"),
        ({"secure_aggregation": {"num_shares": 3, "reconstruction_threshold": 2}},
         "secure_aggregation.num_shares", "min_participants (2)"),
        ({"differential_privacy": {"noise_multiplier": 1.0, "clipping_norm": 0}},
         "differential_privacy.clipping_norm", "greater than 0"),
        ({"participants": []}, "participants", "at least 1"),
        ({"run_config": {"num-server-rounds": 99}},
         "run_config.num-server-rounds", "set by suanli"),
        ({"secure_aggregation": {"num_shares": 3, "reconstruction_threshold": 2},
          "min_participants": 3,
          "differential_privacy": {"noise_multiplier": 1.0, "clipping_norm": 1.0}},
         "differential_privacy.side", "use side: client"),
        ({"publish": "qinghe-univ/charlm"}, "publish", "its submitter's repos"),
        ({"publish": "pengcheng-lab/../x"}, "publish", "not a hub repo"),
    ],
)  # fmt: skip
def test_each_problem_names_its_field(
    example_alliance: Alliance, change: dict[str, Any], field: str, words: str
) -> None:
    found = problems(doc(**change), example_alliance)
    assert field in found, found
    assert words in found[field]


def test_a_dataset_whose_residency_excludes_the_participants_nodes() -> None:
    text = (EXAMPLES / "alliance.yaml").read_text()
    data = yaml.safe_load(text)
    data["datasets"].append(
        {
            "id": "shenzhen-only",
            "owner": "pengcheng-lab",
            "readers": ["huaxia-cloud"],
            "residency": {"sites": ["pc-shenzhen"]},
        }
    )
    alliance = parse_alliance(data)
    part = {"member": "huaxia-cloud", "dataset": "shenzhen-only", "accelerators": "H800:1"}
    found = problems(doc(participants=[part], min_participants=1), alliance)
    assert "no node of member 'huaxia-cloud'" in found["participants.0.dataset"]
    assert "pc-shenzhen" in found["participants.0.dataset"]


def test_in_a_file_of_several_jobs_problems_name_the_job(example_alliance: Alliance) -> None:
    found = problems({"jobs": [{"member": "m", "accelerators": "H800:1"}, doc(rounds=0)]}, None)
    assert "jobs.1.rounds" in found and "pengcheng-lab-poetry-lm" in found["jobs.1.rounds"]


def test_where_only_batch_jobs_run_a_federated_one_is_refused_by_its_kind() -> None:
    with pytest.raises(ValidationError) as err:
        parse_jobs(doc())
    (p,) = err.value.problems
    assert p.field == "kind" and "only batch jobs" in p.message


def test_the_app_gets_the_jobs_fields_as_its_run_config(example_alliance: Alliance) -> None:
    secure = doc(
        min_participants=3,
        secure_aggregation={"num_shares": 3, "reconstruction_threshold": 2},
        differential_privacy={"noise_multiplier": 0.5, "clipping_norm": 4, "side": "client"},
    )
    (spec,) = parse_specs(secure, "t", example_alliance)
    assert isinstance(spec, FederatedSpec)
    assert spec.flower_config() == {
        "local-steps": 40,
        "learning-rate": 0.003,
        "num-server-rounds": 10,
        "min-participants": 3,
        "secagg-num-shares": 3,
        "secagg-reconstruction-threshold": 2,
        "secagg-clipping-range": 8.0,
        "secagg-quantization-range": 4_194_304,
        "dp-noise-multiplier": 0.5,
        "dp-clipping-norm": 4.0,
        "dp-side": "client",
    }
    # every key suanli sets is one the shipped app declares
    app = tomllib.loads((ROOT / "examples/federated/charlm/pyproject.toml").read_text())
    assert set(app["tool"]["flwr"]["app"]["config"]) >= RESERVED_KEYS
