"""Several executors, one per site (each member's own Ray cluster, say), behind the one
executor interface: a run goes to the executor of the site of its placement's nodes.

A site that does not answer is not given up at once. For ``timeout_s`` its runs are reported
:attr:`~RunPhase.UNKNOWN` (the controller leaves their jobs as they are); after that they are
reported :attr:`~RunPhase.LOST` and the site's nodes down, so their jobs are requeued and placed
elsewhere. The site is given up in one place, :meth:`PerSiteExecutor.node_health` (which the
controller asks at the start of each step, before it observes): its runs are reported lost only
once its nodes have been reported down, never in between, or a lost job could be placed again on
a node of the silent site that still looked up. When the site answers again its nodes are up,
and any run it still has of an attempt that was replaced is stopped by the controller (fenced):
a job never goes on running in two places once the pool can see both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from suanli.errors import CannotRunError
from suanli.executors.base import Executor, RunPhase, RunRequest, RunState
from suanli.model.ids import JobId, NodeId, SiteId

log = logging.getLogger("suanli.sites")


class PerSiteExecutor:
    def __init__(
        self,
        executors: Mapping[SiteId, Executor],
        site_of: Mapping[NodeId, SiteId],
        timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.executors = dict(executors)
        self.site_of = dict(site_of)
        self.timeout_s = timeout_s
        self.clock = clock
        #: where each run went, learned from starts and from every site's observations
        self._where: dict[tuple[JobId, int], SiteId] = {}
        #: the last answer of each site: its runs
        self._seen: dict[SiteId, dict[tuple[JobId, int], RunState]] = {}
        #: since when a site has not answered, and its last error
        self._silent: dict[SiteId, tuple[float, str]] = {}
        #: silent sites given up (their nodes reported down), until they answer again
        self._gone: set[SiteId] = set()

    def _groups(self) -> list[tuple[list[SiteId], Executor]]:
        """Sites sharing one executor (one embedded cluster) are asked once."""
        groups: dict[int, tuple[list[SiteId], Executor]] = {}
        for site, ex in self.executors.items():
            groups.setdefault(id(ex), ([], ex))[0].append(site)
        return list(groups.values())

    def _for(self, run: RunRequest) -> tuple[SiteId, Executor]:
        sites = {self.site_of.get(node) for node, _ in run.devices}
        if None in sites or not sites <= set(self.executors):
            missing = [n for n, _ in run.devices if self.site_of.get(n) not in self.executors]
            raise CannotRunError(f"no executor for the site of node {missing[0]!r}")
        executors = {id(self.executors[s]) for s in sites if s is not None}
        if len(executors) > 1:
            raise CannotRunError(
                f"the gang spans sites {sorted(str(s) for s in sites)} that are different "
                "clusters; a gang must run within one"
            )
        site = self.site_of[run.devices[0][0]]
        return site, self.executors[site]

    def start(self, run: RunRequest) -> None:
        site, ex = self._for(run)
        self._where[run.key] = site
        ex.start(run)

    def unreachable(self) -> dict[SiteId, str]:
        """Sites silent for longer than the timeout, and why. A site found so is given up:
        from now on its runs are reported lost, until it answers again."""
        now = self.clock()
        out = {
            site: f"site {site} has not answered for {now - since:.0f} s: {error}"
            for site, (since, error) in self._silent.items()
            if now - since >= self.timeout_s
        }
        self._gone.update(out)
        return out

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        out: dict[tuple[JobId, int], RunState] = {}
        now = self.clock()
        for sites, ex in self._groups():
            try:
                runs = ex.observe()
            except Exception as exc:  # any failure to answer is silence
                for site in sites:
                    if site not in self._silent:
                        log.warning("site %s does not answer: %s", site, exc)
                    since = self._silent.get(site, (now, ""))[0]
                    self._silent[site] = (since, f"{type(exc).__name__}: {exc}")
                    out.update(self._silent_runs(site, site in self._gone))
                continue
            for site in sites:
                self._gone.discard(site)
                if self._silent.pop(site, None) is not None:
                    log.warning("site %s answers again", site)
            for key, st in runs.items():
                out[key] = st
                site = self._where.setdefault(key, sites[0])
                self._seen.setdefault(site, {})[key] = st
            for site in sites:
                seen = self._seen.get(site, {})
                for key in [k for k in seen if k not in runs]:
                    del seen[key]
        return out

    def _silent_runs(self, site: SiteId, gone: bool) -> dict[tuple[JobId, int], RunState]:
        """What is said of a silent site's runs: unknown, or lost once it is past the timeout."""
        keys = set(self._seen.get(site, {})) | {k for k, s in self._where.items() if s == site}
        out = {}
        for key in keys:
            last = self._seen.get(site, {}).get(key)
            if last is not None and last.phase is RunPhase.EXITED:
                out[key] = last
            elif gone:
                started = last.started_at if last is not None else None
                out[key] = RunState(key[0], key[1], RunPhase.LOST, None, started, time.time())
            else:
                out[key] = RunState(key[0], key[1], RunPhase.UNKNOWN)
        return out

    def node_health(self) -> dict[NodeId, str | None]:
        out: dict[NodeId, str | None] = {}
        unreachable = self.unreachable()
        for sites, ex in self._groups():
            if any(s in self._silent for s in sites):
                continue
            try:
                out.update(ex.node_health())
            except Exception as exc:
                log.warning("site %s: node health unknown: %s", sites[0], exc)
        for node, site in self.site_of.items():
            if site in unreachable:
                out[node] = unreachable[site]
        return out

    def busy_outside(self) -> dict[NodeId, int]:
        """Devices busy with work outside the pool, from the sites that can tell (Slurm)."""
        out: dict[NodeId, int] = {}
        for sites, ex in self._groups():
            ask = getattr(ex, "busy_outside", None)
            if ask is None or any(s in self._silent for s in sites):
                continue
            try:
                out.update(ask())
            except Exception as exc:  # (it will be silent to observe too)
                log.warning("site %s: busy capacity unknown: %s", sites[0], exc)
        return out

    def _site_ex(self, job: JobId, attempt: int) -> Executor | None:
        site = self._where.get((job, attempt))
        return None if site is None else self.executors[site]

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        ex = self._site_ex(job, attempt)
        targets = [ex] if ex is not None else [e for _, e in self._groups()]
        for t in targets:
            t.stop(job, attempt, grace_s)

    def _holder(self, job: JobId, attempt: int) -> Executor | None:
        """The site that holds the run's output: its own, or for a run whose outcome was
        recorded (and its site forgotten) the first site that has some."""
        ex = self._site_ex(job, attempt)
        if ex is not None:
            return ex
        for _, other in self._groups():
            try:
                if other.log_size(job, attempt) > 0:
                    return other
            except Exception:  # a silent site has nothing to say
                continue
        return None

    def logs(self, job: JobId, attempt: int, offset: int = 0, limit: int | None = None) -> bytes:
        ex = self._holder(job, attempt)
        return b"" if ex is None else ex.logs(job, attempt, offset, limit)

    def log_size(self, job: JobId, attempt: int) -> int:
        ex = self._holder(job, attempt)
        return 0 if ex is None else ex.log_size(job, attempt)

    def forget(self, job: JobId, attempt: int) -> None:
        key = (job, attempt)
        site = self._where.pop(key, None)
        if site is not None:
            self._seen.get(site, {}).pop(key, None)
            self.executors[site].forget(job, attempt)
