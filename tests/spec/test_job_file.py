from pathlib import Path

import pytest

from suanli.errors import ValidationError
from suanli.model.alliance import Alliance
from suanli.spec.common import parse_duration, parse_yaml
from suanli.spec.job_file import load_jobs, parse_jobs

from ..conftest import EXAMPLES


def jobs(text: str, alliance: Alliance | None = None) -> list:  # type: ignore[type-arg]
    return parse_jobs(parse_yaml(text, "t"), "t", alliance)


def problems(text: str, alliance: Alliance | None = None) -> dict[str, str]:
    with pytest.raises(ValidationError) as err:
        jobs(text, alliance)
    return {p.field: p.message for p in err.value.problems}


def test_example_jobs_validate(example_alliance: Alliance) -> None:
    specs = load_jobs(EXAMPLES / "jobs.yaml", example_alliance)
    assert len(specs) == 10
    pretrain = specs[0]
    assert pretrain.gang.nodes == 2 and pretrain.gang.per_node == 8
    assert pretrain.models == {"H800-80GB"}
    assert pretrain.checkpoint_interval_s == 1800
    assert pretrain.estimated_duration_s == 72 * 3600


def test_short_and_long_forms() -> None:
    (a,) = jobs("member: m\naccelerators: Ascend910B:8\n")
    assert a.count == 8 and "Ascend910B2" in a.models
    (b,) = jobs("member: m\naccelerators: {count: 4, any_of: [H800, A800]}\n")
    assert b.models == {"H800-80GB", "A800-80GB"}
    (c,) = jobs("member: m\naccelerators: {count: 2, stacks: [mlu]}\ngang: 1x2\n")
    assert c.models == {"MLU370-X8", "MLU590"}


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("member: m\naccelerators: H900:8\n", "accelerators", "unknown accelerator model"),
        ("member: m\naccelerators: H800:0\n", "accelerators", "greater than or equal to 1"),
        ("member: m\naccelerators: H800:99999999\n", "accelerators", "less than or equal"),
        (
            "member: m\naccelerators: Acsend910B:8\n",
            "accelerators",
            "unknown accelerator model 'Acsend910B'; did you mean 'Ascend910B'?",
        ),
        (
            "member: m\naccelerators: {count: 8, any_of: [H800, A8000]}\n",
            "accelerators.any_of.1",
            "did you mean 'A800'?",
        ),
        ("member: m\naccelerators: H800\n", "accelerators", "MODEL:COUNT"),
        (
            "member: m\naccelerators: {count: 2, stacks: [opencl]}\n",
            "accelerators.stacks.0",
            "unknown software stack",
        ),
        ("member: m\naccelerators: H800:16\ngang: 3x8\n", "gang", "accelerators.count is 16"),
        ("member: m\naccelerators: H800:16\ngang: two\n", "gang", "NODESxPER_NODE"),
        ("member: m\naccelerators: Ascend910C:3\n", "accelerators", "groups of [2]"),
        (
            "member: m\naccelerators: H800:8\ncheckpoint_interval: soon\n",
            "checkpoint_interval",
            "duration",
        ),
        ("member: m\naccelerators: H800:8\ngpu: 8\n", "gpu", "unknown field"),
        ("accelerators: H800:8\n", "member", "Field required"),
        ('member: "\'; DROP TABLE jobs;--"\naccelerators: H800:8\n', "member", "pattern"),
        (
            "member: m\naccelerators: H800:8\nruntime_env: {env_vars: [A=1]}\n",
            "runtime_env",
            "env_vars must map variable names",
        ),
        (
            "member: m\naccelerators: H800:8\nruntime_env: {working_dir: 3}\n",
            "runtime_env",
            "working_dir must be a directory path",
        ),
    ],
)
def test_mistakes_name_the_field(text: str, field: str, words: str) -> None:
    found = problems(text)
    assert field in found, found
    assert words in found[field]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("member: nobody\naccelerators: H800:8\n", "member", "unknown member"),
        (
            "member: huaxia-cluod\naccelerators: H800:8\n",
            "member",
            "unknown member 'huaxia-cluod'; did you mean 'huaxia-cloud'?",
        ),
        ("member: xinghuo\naccelerators: H800:9\n", "accelerators", "impossible count"),
        (
            "member: xinghuo\naccelerators: H800:40\ngang: 5x8\n",
            "accelerators",
            "impossible count",
        ),
        (
            "member: xinghuo\naccelerators: {count: 8, stacks: [musa]}\n",
            "accelerators",
            "no node in the pool has stacks ['musa']",
        ),
        (
            "member: xinghuo\naccelerators: H800:8\ndatasets: [secret]\n",
            "datasets.0",
            "unknown dataset",
        ),
        (
            "member: xinghuo\naccelerators: Ascend910B:4\ndatasets: [clinical-notes]\n",
            "datasets.0",
            "may not read",
        ),
        (
            "member: nanhu-univ\naccelerators: H800:8\ndatasets: [clinical-notes]\n",
            "datasets",
            "no acceptable node lies where the datasets may be processed",
        ),
    ],
)
def test_mistakes_against_the_alliance(
    example_alliance: Alliance, text: str, field: str, words: str
) -> None:
    found = problems(text, example_alliance)
    assert field in found, found
    assert words in found[field]


def test_nothing_is_half_accepted(example_alliance: Alliance) -> None:
    text = """jobs:
  - {member: xinghuo, accelerators: "H800:8"}
  - {member: xinghuo, accelerators: "H900:8"}
  - {member: xinghuo, accelerators: "H800:8", id: same}
  - {member: xinghuo, accelerators: "H800:8", id: same}
"""
    found = problems(text, example_alliance)
    assert set(found) == {"jobs.1.accelerators", "jobs.3.id"}


def test_a_file_of_jobs_names_each_job_by_its_id(example_alliance: Alliance) -> None:
    text = """jobs:
  - {id: ok, member: xinghuo, accelerators: "H800:8"}
  - {id: typo, member: xinghuo, accelerators: "H8000:8"}
"""
    found = problems(text, example_alliance)
    assert found == {
        "jobs.1.accelerators": "job 'typo': unknown accelerator model 'H8000'; did you mean 'H800'?"
    }


def test_models_a_count_cannot_use_are_dropped_when_others_can() -> None:
    (spec,) = jobs("member: m\naccelerators: {count: 3, stacks: [npu]}\n")
    assert "Ascend910C" not in spec.models and "Ascend910B" in spec.models


def test_durations() -> None:
    assert parse_duration(90) == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("1.5h") == 5400
    assert parse_duration("2d") == 172800
    for bad in ("-1", "0", "soon", True):
        with pytest.raises(ValueError):
            parse_duration(bad)  # type: ignore[arg-type]


def test_files(tmp_path: Path) -> None:
    f = tmp_path / "j.yaml"
    f.write_text("[1, 2]\n")
    with pytest.raises(ValidationError) as err:
        load_jobs(f)
    assert "a job file is a mapping" in str(err.value)
    with pytest.raises(ValidationError) as err:
        load_jobs(tmp_path / "missing.yaml")
    assert "cannot read" in str(err.value)
    f.write_text("jobs: {a: 1}\n")
    with pytest.raises(ValidationError, match="must be a list"):
        load_jobs(f)
