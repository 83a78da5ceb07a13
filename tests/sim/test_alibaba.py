"""The Alibaba 2023 trace: the real files, the documented rules, and bad lines."""

import shutil
from collections import Counter
from pathlib import Path

import pytest

from suanli.errors import ValidationError
from suanli.model.ids import ModelId
from suanli.model.member import Tier
from suanli.sched.policy import get_policy
from suanli.sim.scenario import load_scenario
from suanli.sim.simulator import Simulation
from suanli.sim.traces.alibaba import MemberShare, TraceNode, deal_nodes, load_pods, pod_owner

from ..conftest import ROOT

DATA = ROOT / "data" / "traces" / "alibaba-gpu-v2023"
POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)


def test_bundled_scenario_has_the_real_inventory_and_counts_what_it_changes() -> None:
    sc = load_scenario("alibaba-2023")
    nodes = sc.alliance.nodes.values()
    assert len(nodes) == 1213 and sum(n.devices for n in nodes) == 6212
    assert {n.model for n in nodes} == {
        ModelId(m) for m in ("G2", "G3", "T4", "P100", "A10", "V100-16GB", "V100-32GB")
    }
    assert sc.alliance.catalog.get("G2").peak_basis == "estimate"
    notes = sc.notes
    assert notes["pods"] == 8152 and notes["cpu_only_pods_left_out"] == 1088
    assert len(sc.jobs) == 8152 - 1088
    assert notes["fractional_gpu_pods"] == 3078
    tiers = Counter(m.tier for m in sc.alliance.members.values())
    assert tiers == {Tier.CONTRIBUTOR: 6, Tier.COMMONS: 3}
    commons = {m for m, v in sc.alliance.members.items() if v.tier is Tier.COMMONS}
    assert all(j.spec.preemptible for j in sc.jobs if j.spec.member in commons)
    services = [j for j in sc.jobs if j.info["qos"] != "BE" and j.spec.member not in commons]
    assert services and not any(j.spec.preemptible for j in services)
    # a service lasts as long on any chip; batch work scales with NU per device
    assert all(len(set(j.speed.values())) == 1 for j in services)
    batch = next(j for j in sc.jobs if j.info["qos"] == "BE" and len(j.speed) > 2)
    assert max(batch.speed.values()) == 1.0 > min(batch.speed.values())


def test_node_owners_follow_weights_per_model() -> None:
    nodes = [TraceNode(f"n{i}", 8, 64, 2, "T4") for i in range(100)] + [
        TraceNode(f"g{i}", 8, 64, 8, "G2") for i in range(10)
    ]
    members = [MemberShare("a", 3, 1), MemberShare("b", 1, 1), MemberShare("c", 0, 1)]
    owners = deal_nodes(nodes, members)
    t4 = Counter(owners[f"n{i}"] for i in range(100))
    g2 = Counter(owners[f"g{i}"] for i in range(10))
    assert t4 == {"a": 75, "b": 25} and g2 == {"a": 8, "b": 2}
    # contiguous runs in trace order
    assert [owners[f"n{i}"] for i in range(100)] == ["a"] * 75 + ["b"] * 25


def test_pod_owner_is_a_stable_hash_in_proportion_to_weights() -> None:
    members = [MemberShare("a", 1, 3), MemberShare("b", 1, 1)]
    picks = Counter(pod_owner(f"pod-{i}", members) for i in range(4000))
    assert 2800 < picks["a"] < 3200
    assert pod_owner("pod-7", members) == pod_owner("pod-7", list(members))


def test_bad_pod_lines_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "pods.csv"
    f.write_text(
        POD_HEADER
        + "p0,1000,1024,1,1000,,LS,Running,0,100,0\n"
        + "p1,1000,1024,one,1000,,LS,Running,0,100,0\n"
        + "p2,1000,1024,1,1000,,XX,Running,0,100,0\n"
        + "p3,1000,1024,1,1000,,BE,Running,50,10,\n"
        + "p4,1000,1024,1,1000\n"
    )
    with pytest.raises(ValidationError) as err:
        load_pods(f)
    fields = [p.field for p in err.value.problems]
    assert fields == ["pods.csv:3", "pods.csv:4.qos", "pods.csv:5.deletion_time", "pods.csv:6"]
    assert "truncated" in err.value.problems[-1].message
    (tmp_path / "wrong.csv").write_text("name,cpu\np,1\n")
    with pytest.raises(ValidationError, match="expected columns"):
        load_pods(tmp_path / "wrong.csv")


def _copy_scenario(tmp_path: Path, pods: str, models: str) -> Path:
    shutil.copy(DATA / "openb_node_list_gpu_node.csv", tmp_path / "nodes.csv")
    (tmp_path / "pods.csv").write_text(POD_HEADER + pods)
    sc = tmp_path / "s.yaml"
    sc.write_text(f"""name: small-alibaba
trace: {{format: alibaba-2023, path: pods.csv}}
pool:
  format: alibaba-2023
  nodes: nodes.csv
  members: [{{name: a, nodes: 2, pods: 1}}, {{name: b, nodes: 1, pods: 1}}, {{name: c, pods: 1}}]
  models: {models}
""")
    return sc


G_MODELS = "{G2: {tflops: 125, note: assumed}, G3: {tflops: 312, note: assumed}}"


def test_undeclared_and_unknown_models_are_named(tmp_path: Path) -> None:
    sc = _copy_scenario(tmp_path, "p0,1000,1024,1,1000,,LS,Running,0,100,0\n", "{}")
    with pytest.raises(ValidationError) as err:
        load_scenario(str(sc))
    assert {p.message for p in err.value.problems} >= {
        "trace model 'G2' is not in the catalog; declare it here"
    }
    sc = _copy_scenario(tmp_path, "p0,1000,1024,1,1000,H100|T4,LS,Running,0,100,0\n", G_MODELS)
    with pytest.raises(ValidationError) as err:
        load_scenario(str(sc))
    assert err.value.problems[0].field == "pods.csv:2.gpu_spec"
    assert "'H100'" in err.value.problems[0].message


def test_small_alibaba_scenario_runs_and_honours_gpu_spec(tmp_path: Path) -> None:
    pods = (
        "".join(
            f"p{i},4000,8192,{g},{m},{spec},{qos},Running,{i * 10},{i * 10 + 3600},{i * 10}\n"
            for i, (g, m, spec, qos) in enumerate(
                [(1, 500, "T4", "LS"), (8, 1000, "G2", "BE"), (2, 1000, "V100M32|P100", "BE")] * 5
            )
        )
        + "cpu,4000,8192,0,0,,LS,Running,0,10,0\n"
    )
    sc = load_scenario(str(_copy_scenario(tmp_path, pods, G_MODELS)))
    assert len(sc.jobs) == 15 and sc.notes["cpu_only_pods_left_out"] == 1
    res = Simulation(sc.alliance, sc.jobs, get_policy("alliance"), sc.params).run()
    assert not res.unfinished
    for rec in res.records.values():
        assert rec.finished_at is not None
        assert all(run.model in rec.job.spec.models for run in rec.runs)
