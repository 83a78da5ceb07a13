import json
from pathlib import Path

from click.testing import CliRunner

from suanli.cli.main import cli

from .test_traces import small_scenario


def test_sim_compare_writes_json_csv_and_html(tmp_path: Path) -> None:
    scenario = small_scenario(tmp_path)
    scenario.write_text(scenario.read_text() + "names: {6214e9: Search Team}\n")
    out = tmp_path / "out.json"
    report = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        [
            "sim",
            "compare",
            "--scenario",
            str(scenario),
            "--policies",
            "fifo,alliance",
            "--json",
            str(out),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [p["policy"] for p in doc["policies"]] == ["fifo", "alliance"]
    for p in doc["policies"]:
        assert {
            "jobs",
            "completed",
            "jct_mean_s",
            "jct_median_s",
            "jct_p99_s",
            "makespan_s",
            "utilization",
            "wall_s",
            "members",
        } <= set(p)
        assert p["completed"] == p["jobs"] == 40 + 40 + 9  # 23dbec has 9 jobs in all
        assert p["members"]["23dbec"]["jct_ratio_vs_alone"] is None  # commons
        assert p["members"]["6214e9"]["tier"] == "contributor"
        assert p["members"]["6214e9"]["jct_ratio_vs_alone"] is not None
    html = (report / "index.html").read_text()
    assert html.count("<img") == 6 and "Sharing incentive" in html
    # a report a person can read: the story in words, named members, explained columns,
    # broken guarantees and members worse off highlighted, no path of this machine
    assert "In short" in html and "finished jobs soonest on average" in html
    assert "Search Team (6214e9)" in html
    assert "<dt>violations (h)</dt>" in html and "title='mean job completion time" in html
    assert str(tmp_path) not in html and "/trace" not in html
    summary = json.loads(out.read_text())["policies"]
    worse = any(
        (m["jct_ratio_vs_alone"] or 0) > 1 or m["guarantee_violation_s"] > 0
        for p in summary
        for m in p["members"].values()
    )
    assert ("class='num bad'" in html) == worse
    assert (report / "jobs-alliance.csv").read_text().count("\n") == 90
    assert "HTML report:" in result.output


def test_sim_run_single_policy(tmp_path: Path) -> None:
    scenario = small_scenario(tmp_path, lines_per_vc=10)
    out = tmp_path / "one.json"
    result = CliRunner().invoke(
        cli,
        [
            "sim",
            "run",
            "--scenario",
            str(scenario),
            "--policy",
            "gavel",
            "--json",
            str(out),
            "--no-alone",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["policy"] == "gavel" and doc["completed"] == 29
    result = CliRunner().invoke(
        cli, ["sim", "run", "--scenario", str(scenario), "--policy", "lottery"]
    )
    assert result.exit_code == 3
