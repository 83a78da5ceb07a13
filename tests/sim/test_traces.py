"""Trace loading and scenarios: real files, and bad lines reported with file and line."""

import json
import shutil
from pathlib import Path

import pytest

from suanli.errors import NotFoundError, ValidationError
from suanli.sim.scenario import GAVEL_TYPES, load_scenario
from suanli.sim.traces.gavel import Throughputs, load_gavel

from ..conftest import ROOT

DATA = ROOT / "data" / "traces"
THR = DATA / "gavel-msr" / "throughputs" / "simulation_throughputs.json"


def small_scenario(tmp: Path, lines_per_vc: int = 40) -> Path:
    trace = tmp / "trace"
    trace.mkdir()
    for vc in ("6214e9", "ed69ec", "23dbec"):
        src = (DATA / "gavel-msr" / "seed=0" / f"{vc}.trace").read_text().splitlines()
        (trace / f"{vc}.trace").write_text("\n".join(src[:lines_per_vc]) + "\n")
    shutil.copy(DATA / "helios" / "philly_vc.csv", tmp / "vc.csv")
    scenario = tmp / "small.yaml"
    scenario.write_text(f"""name: small
trace: {{format: gavel-msr, path: trace, throughputs: {THR}}}
pool: {{format: philly-vc, vc_sizes: vc.csv, devices: {{V100-16GB: 64, P100: 64, K80: 64}},
        devices_per_node: 4}}
sim: {{checkpoint_interval: 30m, grace: 5m}}
""")
    return scenario


def test_alliance_philly_loads_every_job_and_counts_the_rule() -> None:
    sc = load_scenario("alliance-philly")
    assert len(sc.jobs) == 15264
    assert sum(n.devices for n in sc.alliance.nodes.values()) == 900
    tiers = [m.tier.value for m in sc.alliance.members.values()]
    assert tiers.count("contributor") == 11 and tiers.count("commons") == 4
    ruled = sum(1 for j in sc.jobs if j.info["speed"] == "extrapolated")
    assert ruled == sc.notes["extrapolated_jobs"] and 1000 < ruled < 2000
    big = [j for j in sc.jobs if j.spec.count > 4]
    assert all(j.spec.gang.per_node == 4 for j in big)


def test_missing_throughputs_follow_the_documented_rule() -> None:
    thr = Throughputs(THR, GAVEL_TYPES)
    raw = json.loads(THR.read_text())
    t8 = raw["v100"]["('ResNet-50 (batch size 64)', 8)"]["null"]
    speed, ruled = thr.speed("ResNet-50 (batch size 64)", 16)
    assert ruled and speed["V100-16GB"] == pytest.approx(t8 * 2 * 0.9)
    speed, ruled = thr.speed("ResNet-50 (batch size 64)", 1)
    assert not ruled


def test_bad_trace_lines_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "vc1.trace").write_text(
        "ResNet-50 (batch size 64)\tcmd\t-n\t1\t100\t0\t1\n"
        "truncated line\t1\n"
        "ResNet-50 (batch size 64)\tcmd\t-n\t1\tmany\t0\t1\n"
        "Unknown job\tcmd\t-n\t1\t100\t0\t1\n"
    )
    with pytest.raises(ValidationError) as err:
        load_gavel(tmp_path, Throughputs(THR, GAVEL_TYPES), 4)
    where = [p.field for p in err.value.problems]
    assert where == ["vc1.trace:2", "vc1.trace:3", "vc1.trace:4"]


def test_scenario_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="unknown scenario"):
        load_scenario("no-such-scenario")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrace: {format: parquet, path: t}\npool: {}\n")
    with pytest.raises(ValidationError) as err:
        load_scenario(str(bad))
    fields = {p.field for p in err.value.problems}
    assert "trace.format" in fields and "pool" in fields
    scenario = small_scenario(tmp_path)
    with pytest.raises(ValidationError, match="does not exist"):
        load_scenario(str(scenario), trace=str(tmp_path / "nowhere"))


def test_scenario_faults_are_checked_and_loaded(tmp_path: Path) -> None:
    scenario = small_scenario(tmp_path)
    text = scenario.read_text()
    scenario.write_text(text + "faults:\n  - {at: 1d, node: nowhere}\n")
    with pytest.raises(ValidationError, match="unknown node"):
        load_scenario(str(scenario))
    scenario.write_text(text + "faults:\n  - {at: 1d, node: 6214e9-K80-000, down: 2h}\n")
    sc = load_scenario(str(scenario))
    assert sc.faults[0].at == 86400 and sc.faults[0].down_s == 7200
