from pathlib import Path

import pytest

from suanli.errors import ValidationError
from suanli.model.alliance import Alliance
from suanli.sim.scenario import load_scenario
from suanli.sim.traces.generic_csv import load_csv

HEADER = "submit_time,member,accelerators,models,duration,gang,preemptible\n"


def test_example_csv_scenario_loads_with_nu_relative_speeds() -> None:
    sc = load_scenario("example-csv")
    assert len(sc.jobs) == 6
    npu = next(j for j in sc.jobs if j.spec.member == "pengcheng-lab")
    assert npu.spec.models == {"Ascend910B", "Ascend910C"}
    assert max(npu.speed.values()) == 1.0 and min(npu.speed.values()) < 1.0
    assert next(j for j in sc.jobs if j.spec.count == 16).spec.gang.nodes == 2


def test_bad_rows_name_file_line_and_column(tmp_path: Path, example_alliance: Alliance) -> None:
    f = tmp_path / "t.csv"
    f.write_text(
        HEADER + "0,xinghuo,8,H800,60,,true\n"
        "x,xinghuo,8,H800,60,,true\n"
        "0,nobody,8,H800,60,,true\n"
        "0,xinghuo,8,TPU,60,,true\n"
        "0,xinghuo,8,H800,60,3x3,true\n"
        "0,xinghuo,8,H800,60,,maybe\n"
        "0,xinghuo\n"
    )
    with pytest.raises(ValidationError) as err:
        load_csv(f, example_alliance)
    got = [p.field for p in err.value.problems]
    assert got == [
        "t.csv:3",
        "t.csv:4.member",
        "t.csv:5.models",
        "t.csv:6.gang",
        "t.csv:7.preemptible",
        "t.csv:8",
    ]


def test_header_problems(tmp_path: Path, example_alliance: Alliance) -> None:
    f = tmp_path / "t.csv"
    f.write_text("submit_time,member,accelerators,models,colour\n")
    with pytest.raises(ValidationError) as err:
        load_csv(f, example_alliance)
    msgs = [p.message for p in err.value.problems]
    assert "missing column 'duration'" in msgs and "unknown column 'colour'" in msgs
