"""Several executors, one per site (each member's own Ray cluster, say), behind the one
executor interface: a run goes to the executor of the site of its placement's first node."""

from __future__ import annotations

from collections.abc import Mapping

from suanli.executors.base import Executor, RunRequest, RunState
from suanli.model.ids import JobId, NodeId, SiteId


class PerSiteExecutor:
    def __init__(self, executors: Mapping[SiteId, Executor], site_of: Mapping[NodeId, SiteId]):
        self.executors = dict(executors)
        self.site_of = dict(site_of)
        #: where each run went, learned from starts and from every site's observations
        self._where: dict[tuple[JobId, int], SiteId] = {}

    def _for(self, run: RunRequest) -> tuple[SiteId, Executor]:
        node = run.devices[0][0]
        site = self.site_of.get(node)
        if site is None or site not in self.executors:
            raise ValueError(f"no executor for the site of node {node!r}")
        return site, self.executors[site]

    def start(self, run: RunRequest) -> None:
        site, ex = self._for(run)
        ex.start(run)
        self._where[run.key] = site

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        out: dict[tuple[JobId, int], RunState] = {}
        for site, ex in self.executors.items():
            for key, st in ex.observe().items():
                out[key] = st
                self._where[key] = site
        return out

    def _site_ex(self, job: JobId, attempt: int) -> Executor | None:
        site = self._where.get((job, attempt))
        return None if site is None else self.executors[site]

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        ex = self._site_ex(job, attempt)
        targets = [ex] if ex is not None else list(self.executors.values())
        for t in targets:
            t.stop(job, attempt, grace_s)

    def logs(self, job: JobId, attempt: int, offset: int = 0) -> bytes:
        ex = self._site_ex(job, attempt)
        if ex is None:
            self.observe()
            ex = self._site_ex(job, attempt)
        return b"" if ex is None else ex.logs(job, attempt, offset)

    def forget(self, job: JobId, attempt: int) -> None:
        ex = self._site_ex(job, attempt)
        if ex is not None:
            ex.forget(job, attempt)
