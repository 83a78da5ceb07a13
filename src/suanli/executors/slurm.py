"""A member's Slurm cluster as a site: each run one Slurm batch job on the nodes the pool's
scheduler chose, submitted, watched and stopped with Slurm's own commands.

The member keeps its Slurm. The pool only submits what its scheduler admitted, each run as a
batch job named ``suanli-JOB-ATTEMPT`` and pinned (``--nodelist``, ``--gres``) to the chosen
nodes; jobs the member runs itself are never touched. Only the command line is used
(``sbatch --parsable``, ``squeue --json``, ``scontrol -o show node``, ``scancel``): it is
stable across Slurm versions where the REST API is not, and it runs through the site's
``command`` prefix (``ssh hpc-login``, say) when the control plane is elsewhere.

Each run has a directory under the site's ``run_dir`` (shared with the cluster's nodes):

- ``run.sh``: the batch script (mode 0700: it holds the run's environment);
- ``jobid``: Slurm's id once submitted; a second :meth:`SlurmExecutor.start` finds it (or
  finds the job by its name in ``squeue``, if the service died between the two) and submits
  nothing;
- ``out.log``: the run's output (stdout and stderr);
- ``exit``: the command's exit status, written by the script when the command ends: how a
  run's end is known once Slurm has forgotten the job (no accounting database needed);
- ``gang``: present for a run over several nodes (its command runs in a job step per node);
- ``stop-by``: when a stop asked for its SIGTERM, plus the grace period: after it the job is
  killed, by this process or a restarted one;
- ``forgotten``: its outcome is recorded; it is no longer reported.

A run Slurm no longer lists and that wrote no exit status ended without its script finishing
(its node died, or an administrator cancelled it): it is reported lost, and the controller
requeues its job to resume from its checkpoint. Jobs are submitted with ``--no-requeue``: only
the pool decides where a job runs again, so nothing runs twice.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from suanli.catalog.accelerator import AcceleratorModel, Catalog
from suanli.errors import CannotRunError
from suanli.executors.base import (
    CHECKPOINT_DIR_VAR,
    RunPhase,
    RunRequest,
    RunState,
    device_env,
    rendezvous_env,
)
from suanli.executors.output import log_size, read_log
from suanli.model.ids import JobId, ModelId, NodeId
from suanli.model.site import SlurmSite

#: the generic resource kind a software stack's devices go by in Slurm, by default
STACK_GRES: Mapping[str, str] = {
    "cuda": "gpu",
    "npu": "npu",
    "mlu": "mlu",
    "dcu": "dcu",
    "xpu": "xpu",
    "gcu": "gcu",
}
PREFIX = "suanli-"
GANG_PORT = 29500
#: Slurm job states and what they mean for a run
_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
_RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
#: the job ended because its node or Slurm failed it, not because its command ended
_FAILED = {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "DEADLINE"}
#: node states that close a node to new jobs (a node's state may carry several, with +)
_CLOSED = ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "POWER", "REBOOT", "UNKNOWN", "MAINT")


def default_gres(model: AcceleratorModel) -> str:
    """``KIND:TYPE`` for a catalog model: the kind from its stack (``gpu`` for CUDA and the
    CUDA-like stacks), the type its family in lower case without punctuation:
    ``gpu:h800``, ``npu:ascend910b``, ``mlu:mlu370``, ``dcu:dcuk100``."""
    kind = STACK_GRES.get(model.stack, "gpu")
    return f"{kind}:{re.sub(r'[^a-z0-9]', '', model.family.lower())}"


def job_name(job: JobId, attempt: int) -> str:
    return f"{PREFIX}{job}-{attempt}"


def _key(name: str) -> tuple[JobId, int] | None:
    if not name.startswith(PREFIX):
        return None
    job, _, attempt = name[len(PREFIX) :].rpartition("-")
    return (JobId(job), int(attempt)) if job and attempt.isdigit() else None


class SlurmError(RuntimeError):
    """A Slurm command failed (the site is then silent to the per-site executor)."""


class SlurmExecutor:
    def __init__(
        self,
        site: SlurmSite,
        catalog: Catalog,
        models: Mapping[NodeId, ModelId],
        run_root: Path,
        checkpoint_root: Path,
        env: Mapping[str, str] | None = None,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``models``: the site's nodes and their models; ``env``: the environment Slurm's
        commands run with (``SLURM_CONF``, say; None: this process's)."""
        self.site = site
        self.catalog = catalog
        self.models = dict(models)
        self.run_root = run_root.resolve()
        self.checkpoint_root = checkpoint_root.resolve()
        self.env = dict(env) if env is not None else None
        self._run = run
        self.clock = clock

    # -- commands -------------------------------------------------------------------------
    def _cmd(self, *args: str, check: bool = True) -> str:
        argv = [*self.site.command, *args]
        try:
            done = self._run(
                argv, capture_output=True, text=True, timeout=60, env=self.env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmError(f"{shlex.join(argv)}: {exc}") from None
        if check and done.returncode != 0:
            raise SlurmError(f"{shlex.join(argv)}: {done.stderr.strip() or done.returncode}")
        return done.stdout

    def name(self, node: NodeId) -> str:
        """The node's name in Slurm."""
        return self.site.names.get(node, node)

    def gres(self, model: ModelId) -> str:
        return self.site.gres.get(model) or default_gres(self.catalog.get(model))

    # -- runs -----------------------------------------------------------------------------
    def _dir(self, job: JobId, attempt: int) -> Path:
        return self.run_root / f"{job}-{attempt}"

    def _jobid(self, job: JobId, attempt: int) -> str | None:
        try:
            return (self._dir(job, attempt) / "jobid").read_text().strip() or None
        except OSError:
            return None

    def _find(self, name: str, d: Path) -> str | None:
        """The job of that name submitted for the run directory ``d`` (its comment says so:
        a job of the same name from another pool, or a past one, is not this run), in any
        state Slurm still knows of."""
        out = self._cmd("squeue", "--noheader", "--states=all", "--name", name, "--format=%i %k")
        for line in out.splitlines():
            jobid, _, comment = line.strip().partition(" ")
            if comment.strip() == f"suanli:{d}":
                return jobid
        return None

    def start(self, run: RunRequest) -> None:
        d = self._dir(run.job, run.attempt)
        if self._jobid(run.job, run.attempt) is not None:
            return
        name = job_name(run.job, run.attempt)
        # (the directory comes before the submission: without it, nothing was submitted)
        found = self._find(name, d) if d.exists() else None
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if found is not None:  # (submitted by a service that died before it wrote the id)
            (d / "jobid").write_text(found + "\n")
            return
        ckpt = self.checkpoint_root / run.job
        ckpt.mkdir(parents=True, exist_ok=True, mode=0o700)
        script = d / "run.sh"
        per_node = {len(devs) for _, devs in run.devices}
        if len(per_node) != 1:
            raise CannotRunError("a Slurm gang takes the same number of devices on every node")
        script.write_text(self._script(run, d, ckpt))
        script.chmod(0o700)
        if len(run.devices) > 1:
            (d / "gang").touch()
        args = [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--nodelist={','.join(self.name(n) for n, _ in run.devices)}",
            f"--nodes={len(run.devices)}",
            "--ntasks-per-node=1",
            f"--gres={self.gres(run.model)}:{per_node.pop()}",
            f"--output={d / 'out.log'}",
            f"--error={d / 'out.log'}",
            "--open-mode=append",
            f"--chdir={run.working_dir or d}",
            "--no-requeue",
            f"--comment=suanli:{d}",
            "--export=NONE",
        ]
        for flag, value in (
            ("partition", self.site.partition),
            ("account", self.site.account),
            ("qos", self.site.qos),
        ):
            if value:
                args.append(f"--{flag}={value}")
        out = self._cmd(*args, str(script))
        jobid = out.strip().split(";")[0]
        if not jobid.isdigit():
            raise SlurmError(f"sbatch answered {out.strip()!r}, not a job id")
        tmp = d / "jobid.tmp"
        tmp.write_text(jobid + "\n")
        tmp.replace(d / "jobid")

    def _script(self, run: RunRequest, d: Path, ckpt: Path) -> str:
        """The batch script: the command, then its exit status written beside the log. A
        gang's command runs once per node (``srun``), each copy with its node's devices and
        rank."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            **{k: v for k, v in run.env.items() if k != CHECKPOINT_DIR_VAR},
            CHECKPOINT_DIR_VAR: str(ckpt),
            "SUANLI_JOB_ID": run.job,
            "SUANLI_ATTEMPT": str(run.attempt),
            "SUANLI_NUM_NODES": str(len(run.devices)),
        }
        if run.datasets:
            env["SUANLI_DATASETS"] = ",".join(run.datasets)
        lines = ["#!/bin/bash", f"# suanli: job {run.job}, attempt {run.attempt}"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
        exit_file = shlex.quote(str(d / "exit"))
        if len(run.devices) == 1:
            node, devs = run.devices[0]
            per = {**device_env(run.stack, devs), "SUANLI_NODE": node}
            lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(per.items())]
            command = f"bash -c {shlex.quote(run.entrypoint)}"
        else:
            master = self.name(run.devices[0][0])
            cases = []
            for rank, (node, devs) in enumerate(run.devices):
                per = {
                    **device_env(run.stack, devs),
                    "SUANLI_NODE": node,
                    **rendezvous_env(rank, len(run.devices), master, GANG_PORT),
                }
                exports = "; ".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(per.items()))
                cases.append(f"  {shlex.quote(self.name(node))}) {exports} ;;")
            member = "\n".join(
                [
                    'case "$SLURMD_NODENAME" in',
                    *cases,
                    '  *) echo "unplanned node" >&2; exit 70;;',
                    "esac",
                    f"exec bash -c {shlex.quote(run.entrypoint)}",
                ]
            )
            command = (
                "srun --ntasks-per-node=1 --kill-on-bad-exit=1 --export=ALL "
                f"bash -c {shlex.quote(member)}"
            )
        # A stop signals every process of the job (of a gang, its steps): the command decides
        # what SIGTERM does; the shells around it only note it (a handler, which the command
        # does not inherit) and go on waiting, so that its own exit status is what is written.
        lines += [
            "trap : TERM",
            f"( trap : TERM; {command}; echo $? > {exit_file}.tmp ) ",
            f"mv {exit_file}.tmp {exit_file} && exit $(cat {exit_file})",
            "exit 70",
        ]
        return "\n".join(lines) + "\n"

    # -- watching -------------------------------------------------------------------------
    def _queue(self) -> dict[tuple[JobId, int], dict[str, object]]:
        """The pool's jobs Slurm lists (running, waiting, or ended within its MinJobAge)."""
        data = json.loads(self._cmd("squeue", "--json"))
        out: dict[tuple[JobId, int], dict[str, object]] = {}
        for j in data.get("jobs", []):
            key = _key(str(j.get("name", "")))
            if key is not None:
                out[key] = j
        return out

    def _runs(self) -> list[tuple[JobId, int, Path]]:
        """The runs submitted from here and not forgotten."""
        out: list[tuple[JobId, int, Path]] = []
        if not self.run_root.is_dir():
            return out
        for d in self.run_root.iterdir():
            job, _, attempt = d.name.rpartition("-")
            live = (d / "jobid").exists() and not (d / "forgotten").exists()
            if job and attempt.isdigit() and live:
                out.append((JobId(job), int(attempt), d))
        return out

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        queue = self._queue()
        now = self.clock()
        out: dict[tuple[JobId, int], RunState] = {}
        for job, attempt, d in self._runs():
            j = queue.get((job, attempt))
            code = _exit_code(d)
            state = str(_state(j)) if j is not None else ""
            start = _time(j, "start_time") if j is not None else None
            end = _time(j, "end_time") if j is not None else None
            if state in _FAILED:  # (its script may have written a status as it was killed)
                out[(job, attempt)] = RunState(job, attempt, RunPhase.LOST, None, start, now)
            elif code is not None and state not in _PENDING | _RUNNING:
                out[(job, attempt)] = RunState(job, attempt, RunPhase.EXITED, code, start, end)
            elif state in _PENDING:
                out[(job, attempt)] = RunState(job, attempt, RunPhase.PENDING)
            elif state in _RUNNING:
                out[(job, attempt)] = RunState(job, attempt, RunPhase.RUNNING, None, start)
                self._kill_if_due(d)
            elif state == "CANCELLED":  # cancelled before its script could say how it ended
                out[(job, attempt)] = RunState(job, attempt, RunPhase.EXITED, -15, start, end)
            else:  # its node failed, or Slurm forgot it without its script finishing
                out[(job, attempt)] = RunState(job, attempt, RunPhase.LOST, None, start, now)
        return out

    def _kill_if_due(self, d: Path) -> None:
        try:
            due = float((d / "stop-by").read_text())
        except (OSError, ValueError):
            return
        jobid = (d / "jobid").read_text().strip()
        if self.clock() >= due:
            self._cmd("scancel", "--signal=KILL", "--full", jobid, check=False)
            self._cmd("scancel", jobid, check=False)

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        jobid = self._jobid(job, attempt)
        if jobid is None:
            return
        d = self._dir(job, attempt)
        if not (d / "stop-by").exists():
            (d / "stop-by").write_text(f"{self.clock() + grace_s}\n")
        state = self._cmd("squeue", "--noheader", "--states=all", "--job", jobid, "--format=%T")
        if state.strip() in _PENDING:
            self._cmd("scancel", jobid, check=False)
        elif (d / "gang").exists():
            # a gang's command runs in a job step on each node: SIGTERM to the steps only, as
            # srun (in the batch script) would answer one with a kill of every rank
            self._cmd("scancel", "--signal=TERM", jobid, check=False)
        else:
            self._cmd("scancel", "--signal=TERM", "--full", jobid, check=False)
            if grace_s <= 0:
                self._kill_if_due(d)

    def logs(self, job: JobId, attempt: int, offset: int = 0, limit: int | None = None) -> bytes:
        return read_log(self._dir(job, attempt) / "out.log", offset, limit)

    def log_size(self, job: JobId, attempt: int) -> int:
        return log_size(self._dir(job, attempt) / "out.log")

    def forget(self, job: JobId, attempt: int) -> None:
        d = self._dir(job, attempt)
        if d.is_dir():
            (d / "forgotten").touch()

    # -- nodes ----------------------------------------------------------------------------
    def _nodes(self) -> dict[str, dict[str, str]]:
        """Slurm's view of every node: its fields by name (``scontrol -o -d show node``)."""
        out = {}
        for line in self._cmd("scontrol", "-o", "-d", "show", "node").splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "NodeName" in fields:
                out[fields["NodeName"]] = fields
        return out

    def node_health(self) -> dict[NodeId, str | None]:
        """A node Slurm reports down, drained, failing or not responding is closed."""
        seen = self._nodes()
        out: dict[NodeId, str | None] = {}
        for node in self.models:
            fields = seen.get(self.name(node))
            if fields is None:
                out[node] = f"Slurm has no node {self.name(node)!r}"
                continue
            state = fields.get("State", "")
            closed = [s for s in _CLOSED if s in state.upper()]
            if closed or state.endswith("*"):
                reason = fields.get("Reason", "")
                out[node] = f"Slurm reports it {state}" + (f" ({reason})" if reason else "")
            else:
                out[node] = None
        return out

    def busy_outside(self) -> dict[NodeId, int]:
        """Devices of each node held by jobs the member runs outside the pool: the node's
        allocated generic resources of its model's kind, less the pool's own runs there."""
        seen = self._nodes()
        ours: dict[str, int] = {}
        for j in self._queue().values():
            if str(_state(j)) in _RUNNING:
                for node in str(j.get("nodes", "")).split(","):
                    per = _gres_count(str(j.get("tres_per_node", "")))
                    ours[node] = ours.get(node, 0) + per
        out: dict[NodeId, int] = {}
        for node, model in self.models.items():
            fields = seen.get(self.name(node))
            if fields is None:
                continue
            used = _used(fields.get("GresUsed", ""), self.gres(model))
            outside = used - ours.get(self.name(node), 0)
            if outside > 0:
                out[node] = outside
        return out


def _state(j: Mapping[str, object]) -> str:
    state = j.get("job_state", "")
    if isinstance(state, list):  # (newer Slurm: a list of flags)
        state = state[0] if state else ""
    return str(state)


def _time(j: Mapping[str, object], field: str) -> float | None:
    value = j.get(field)
    if isinstance(value, dict):  # (newer Slurm: {"set": ..., "number": ...})
        value = value.get("number") if value.get("set", True) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _exit_code(d: Path) -> int | None:
    try:
        return int((d / "exit").read_text().strip())
    except (OSError, ValueError):
        return None


def _gres_count(tres: str) -> int:
    """``gres:npu:ascend910b:4`` (or ``gres/npu:4``) -> 4."""
    m = re.search(r"gres[:/][^,]*?:(\d+)(?:,|$)", tres)
    return int(m.group(1)) if m else 0


def _used(gres_used: str, gres: str) -> int:
    """A node's count in use of one generic resource, from ``GresUsed``
    (``mlu:mlu370:0,npu:ascend910b:6(IDX:0-5)``)."""
    for part in re.split(r",(?![^(]*\))", gres_used):
        name, _, count = part.split("(")[0].rpartition(":")
        if name == gres and count.isdigit():
            return int(count)
    return 0
