"""The command line, through click's runner and once as a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from suanli.cli.main import cli

from ..conftest import EXAMPLES

ALLIANCE = str(EXAMPLES / "alliance.yaml")
JOBS = str(EXAMPLES / "jobs.yaml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_catalog_list_json() -> None:
    code, out, _ = run("catalog", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) >= 28
    assert all({"vendor", "model", "memory_gb", "stack"} <= set(r) for r in rows)
    code, out, _ = run("catalog", "list")
    assert code == 0 and "(calibrate)" in out and "Ascend910C" in out


def test_spec_validate_accepts_valid_files() -> None:
    assert run("spec", "validate", ALLIANCE)[0] == 0
    code, out, _ = run("spec", "validate", JOBS, "--alliance", ALLIANCE)
    assert code == 0 and "10 job(s)" in out


def test_spec_validate_prints_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("member: xinghuo\naccelerators: H900:8\npriority: high\n")
    code, out, err = run("spec", "validate", str(bad))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2
    typo = "accelerators: unknown accelerator model 'H900'; did you mean 'H800'?"
    assert any(typo in x for x in lines)
    assert any("priority:" in x for x in lines)
    code, _, err = run("spec", "validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read" in err


def test_spec_validate_bad_alliance_file(tmp_path: Path) -> None:
    bad = tmp_path / "a.yaml"
    bad.write_text((EXAMPLES / "alliance.yaml").read_text().replace(", calibrated_tflops: 240", ""))
    code, _, err = run("spec", "validate", str(bad))
    assert code == 2 and "calibrated_tflops: required" in err


def test_schedule_json_lists_decisions_and_reasons() -> None:
    code, out, _ = run("schedule", ALLIANCE, JOBS, "--policy", "fair", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["policy"] == "fair"
    assert {d["action"] for d in data["decisions"]} <= {"admit", "preempt"}
    assert all(p["reason"] for p in data["pending"])
    decided = {d["job"] for d in data["decisions"]} | {p["job"] for p in data["pending"]}
    assert len(decided) == 10


def test_schedule_every_policy_and_unknown_policy() -> None:
    for policy in ("fifo", "fair", "gavel", "alliance"):
        code, out, _ = run("schedule", ALLIANCE, JOBS, "--policy", policy)
        assert code == 0 and f"Policy {policy}" in out
    code, _, err = run("schedule", ALLIANCE, JOBS, "--policy", "lottery")
    assert code == 3 and "unknown policy" in err


def test_schema_and_policies() -> None:
    code, out, _ = run("spec", "schema", "job")
    assert code == 0 and json.loads(out)["$id"].endswith("job.schema.json")
    code, out, _ = run("policies")
    assert out.split() == ["alliance", "fair", "fifo", "gavel"]


def test_demo_runs_as_a_real_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "suanli.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Alliance example-alliance" in proc.stdout
    assert "ADMIT" in proc.stdout and "why it waits" in proc.stdout


def test_pool_and_preemptions_render_as_text() -> None:
    from suanli.cli.report import pass_json, pass_text, pool_text
    from suanli.sched.policy import get_policy
    from suanli.sched.schedule import schedule
    from suanli.spec.alliance_file import load_alliance

    from ..builders import job, snapshot
    from ..sched.apply import apply

    alliance = load_alliance(EXAMPLES / "alliance.yaml")
    text = pool_text(alliance)
    assert "Huawei" in text and "Ascend910C" in text and "lending limit" in text
    borrowers = [job(f"c{i}", "xinghuo", 8, "H800-80GB") for i in range(4)]
    snap = snapshot(alliance, *borrowers)
    apply(snap, schedule(snap, get_policy("alliance")))
    snap.submit(job("hx", "huaxia-cloud", 8, "H800-80GB"), submitted_at=9)
    out = pass_text(pass_json(snap, schedule(snap, get_policy("alliance")), "alliance"))
    assert "PREEMPT" in out and "grace 300s" in out and "reclaiming H800-80GB" in out


def test_the_command_table_matches_the_commands() -> None:
    """``suanli --help`` lists commands from a table without importing them: each entry names
    the command it loads, with that command's own one-line help."""
    from suanli.cli.main import COMMANDS, LazyGroup

    group = cli
    assert isinstance(group, LazyGroup)
    for name, (_module, _attr, help_line) in COMMANDS.items():
        command = group.get_command(click.Context(group), name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=80) == help_line, name


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["jobs", "--help"],
        ["queue", "--help"],
        ["jobs", "--url", "http://127.0.0.1:9"],
        ["queue", "--url", "http://127.0.0.1:9"],
    ],
)
def test_everyday_commands_import_no_simulator_nor_plotting(argv: list[str]) -> None:
    """The CLI starts in a fraction of a second: the simulator, matplotlib, numpy, the
    database and httpx are imported only by the commands that use them (the SDK speaks HTTP
    through the standard library)."""
    code = (
        "import sys\nfrom suanli.cli.main import cli\n"
        f"try:\n    cli({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('matplotlib', 'numpy', 'suanli.sim', 'sqlalchemy', 'ray', 'httpx')"
        " if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


def test_schedule_places_a_federated_jobs_parts_at_their_owners_sites() -> None:
    fed = str(EXAMPLES / "federated-job.yaml")
    code, out, _ = run("spec", "validate", fed, "--alliance", ALLIANCE)
    assert code == 0 and "1 federated" in out
    code, out, _ = run("schedule", ALLIANCE, fed, "--json")
    assert code == 0
    where = {d["job"]: d["placement"] for d in json.loads(out)["decisions"]}
    run_id = "pengcheng-lab-poetry-lm"
    assert set(where) == {f"{run_id}.1", f"{run_id}.2", f"{run_id}.3"}
    # each corpus (tang300, song100, chinese) is trained on at its owner's site only
    assert "qh-4090" in str(where[f"{run_id}.1"])
    assert "pc-910b" in str(where[f"{run_id}.2"])
    assert "zy-" in str(where[f"{run_id}.3"])
