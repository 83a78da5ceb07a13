from pathlib import Path

import pytest

from suanli.errors import CalibrationRequiredError, ValidationError
from suanli.model.alliance import Alliance
from suanli.spec.alliance_file import load_alliance, loads_alliance

BASE = """
alliance: a
members:
  - {id: m1, kind: enterprise}
  - {id: m2, kind: university, tier: commons}
sites:
  - {id: s1, member: m1}
nodes:
  - {id: n, site: s1, model: H800-80GB, devices: 8, cpu: 64, memory_gb: 512, count: 3}
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ValidationError) as err:
        loads_alliance(text)
    return {p.field: p.message for p in err.value.problems}


def test_example_alliance_loads_with_derived_shares(example_alliance: Alliance) -> None:
    a = example_alliance
    assert len(a.members) == 6
    shares = a.shares()
    # huaxia contributed 16 A800 and granted 8 of them to nanhu
    assert shares[("huaxia-cloud", "A800-80GB")].nominal == 8
    assert shares[("nanhu-univ", "A800-80GB")].nominal == 8
    assert shares[("huaxia-cloud", "H800-80GB")].lending_limit == 16
    ent = a.entitlement_nu()
    assert ent["xinghuo"] == 0.0
    assert ent["nanhu-univ"] == pytest.approx(8 * 0.312)
    # the C550 node's calibration counts, not a catalog figure (there is none)
    c550 = a.nodes["zy-c550"]
    assert a.nu_per_device(c550) == pytest.approx(0.240)


def test_count_expands_node_ids() -> None:
    a = loads_alliance(BASE)
    assert sorted(a.nodes) == ["n-01", "n-02", "n-03"]


def test_model_without_a_figure_needs_a_calibration_and_the_error_says_so() -> None:
    text = BASE.replace("H800-80GB", "MLU590")
    with pytest.raises(CalibrationRequiredError) as err:
        loads_alliance(text)
    (p,) = err.value.problems
    assert p.field == "nodes.0.calibrated_tflops"
    assert "no trustworthy peak figure for MLU590" in p.message
    assert "measured" in p.message
    ok = loads_alliance(text.replace("count: 3", "count: 3, calibrated_tflops: 250"))
    assert ok.nu_per_device(ok.nodes["n-01"]) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (("site: s1, model", "site: nowhere, model"), "nodes.0.site", "unknown site"),
        (("model: H800-80GB", "model: H900"), "nodes.0.model", "unknown accelerator model"),
        (("model: H800-80GB", "model: V100"), "nodes.0.model", "names several models"),
        (("devices: 8", "devices: 0"), "nodes.0.devices", "greater than or equal to 1"),
        (("cpu: 64", "cpu: 64, gpus: 2"), "nodes.0.gpus", "unknown field"),
        (("kind: enterprise", "kind: bank"), "members.0.kind", "should be"),
        (("{id: s1, member: m1}", "{id: s1, member: m9}"), "sites.0.member", "unknown member"),
        (("{id: m2,", "{id: m1,"), "members.1.id", "duplicate id"),
        (
            ("memory_gb: 512", "memory_gb: 512, topology: [[0,1,2],[3,4,5,6]]"),
            "nodes.0.topology",
            "cover every device",
        ),
        (("id: n,", "id: 'bad id/../x',"), "nodes.0.id", "should match pattern"),
    ],
)
def test_mistakes_name_the_field(edit: tuple[str, str], field: str, words: str) -> None:
    found = problems(BASE.replace(*edit))
    assert field in found, found
    assert words in found[field]


def test_910c_devices_come_in_pairs() -> None:
    found = problems(BASE.replace("H800-80GB, devices: 8", "Ascend910C, devices: 7"))
    assert "groups of 2" in found["nodes.0.devices"]


def test_grants_cannot_give_away_more_than_contributed() -> None:
    text = BASE + "grants:\n  - {member: m2, model: H800-80GB, devices: 30, donor: m1}\n"
    assert "grants away more" in problems(text)["grants"]


def test_dataset_references_are_checked() -> None:
    text = BASE + (
        "datasets:\n  - {id: d, owner: m1, readers: [m7],"
        " residency: {sites: [s9], members: [m8]}}\n"
    )
    found = problems(text)
    assert {
        "datasets.0.readers.0",
        "datasets.0.residency.sites.0",
        "datasets.0.residency.members.0",
    } <= set(found)


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("alliance: a\nmembers: [\n")
    with pytest.raises(ValidationError) as err:
        load_alliance(f)
    assert err.value.problems[0].field.startswith("line ")
    assert err.value.source == str(f)


def test_not_a_mapping() -> None:
    assert "" in problems("- just\n- a list\n")


SLURM = """
alliance: a
members:
  - {id: m1, kind: university}
sites:
  - id: hpc
    member: m1
    slurm:
      partition: gpu
      account: pool
      qos: normal
      command: [ssh, hpc-login]
      gres: {Ascend910B: "npu:910b"}
      names: {npu-01: cn001}
nodes:
  - {id: npu, site: hpc, model: Ascend910B, devices: 8, cpu: 64, memory_gb: 512, count: 2}
"""


def test_a_slurm_site_keeps_its_settings_and_stored_rows_give_them_back(tmp_path: Path) -> None:
    from suanli.service.pool import create_alliance, sites
    from suanli.store.alliance_rows import read_alliance
    from suanli.store.database import Database

    from ..builders import admin

    a = loads_alliance(SLURM)
    slurm = a.sites["hpc"].slurm  # type: ignore[index]
    assert slurm is not None
    assert (slurm.partition, slurm.account, slurm.qos) == ("gpu", "pool", "normal")
    assert slurm.command == ("ssh", "hpc-login")
    assert slurm.gres == {"Ascend910B": "npu:910b"} and slurm.names == {"npu-01": "cn001"}
    db = Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with db.session() as s:
            create_alliance(s, a, "t", 0.0)
        with db.session() as s:
            again, _ = read_alliance(s)
            (site,) = sites(s, admin())
        assert again.sites["hpc"] == a.sites["hpc"]  # type: ignore[index]
        assert (site.engine, site.partition, site.executor) == ("slurm", "gpu", "")
    finally:
        db.close()


def test_a_bad_slurm_site_names_each_problem() -> None:
    both = "member: m1\n    executor: http://ray:8265\n    slurm:"
    bad = (
        SLURM.replace("member: m1\n    slurm:", both)
        .replace("Ascend910B: ", "NoSuchChip: ")
        .replace("npu-01: cn001", "elsewhere: cn001")
    )
    got = problems(bad)
    assert "Ray or a Slurm" in got["sites.0.slurm"]
    assert "NoSuchChip" in got["sites.0.slurm.gres.NoSuchChip"]
    assert got["sites.0.slurm.names.elsewhere"] == "not a node of this site"
    # words that would reach Slurm's command line are checked before anything is built
    assert "sites.0.slurm.partition" in problems(SLURM.replace("gpu", "'gpu; rm -rf /'"))
