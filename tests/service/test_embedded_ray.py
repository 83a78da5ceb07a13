"""``suanli server --executor ray`` on this machine: it starts its own Ray cluster (one Ray
node per suanli node of the embedded example alliance, token authentication on), runs the
example jobs on the nodes the scheduler chose, and stops every process it started."""

import subprocess
import sys
from pathlib import Path

from ..conftest import EXAMPLES
from ..live import free_port


def ray_processes() -> set[int]:
    out = subprocess.run(
        ["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True, check=False
    )
    return {int(p) for p in out.stdout.split()}


def test_embedded_ray_runs_the_example_jobs_and_cleans_up(tmp_path: Path) -> None:
    before = ray_processes()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "suanli",
            "server",
            "--executor",
            "ray",
            "--state-dir",
            str(tmp_path / "state"),
            "--port",
            str(free_port()),
            "--alliance",
            str(EXAMPLES / "embedded-alliance.yaml"),
            "--submit",
            str(EXAMPLES / "embedded-jobs.yaml"),
            "--until-done",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert out.count("SUCCEEDED") >= 4, out
    assert "training on CUDA_VISIBLE_DEVICES=0,1,2,3 at hx-h800" in out
    assert "ASCEND_RT_VISIBLE_DEVICES=0,1,2,3 at pc-910b" in out
    assert "serving on MLU_VISIBLE_DEVICES=0,1 at zy-mlu370" in out
    assert ray_processes() <= before, "the embedded Ray cluster left processes behind"
