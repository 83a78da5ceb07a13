"""Groups (a federated run's parts): started together with at least their minimum, each part
on its own member's nodes where its dataset may be processed, charged to that member."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from suanli.model.alliance import Alliance
from suanli.model.federation import FederatedSpec, Participant
from suanli.model.ids import DatasetId, JobId, MemberId, ModelId
from suanli.model.job import Group, JobSpec
from suanli.sched.policy import get_policy
from suanli.sched.schedule import PassResult, schedule
from suanli.sched.snapshot import Snapshot

from ..builders import AllianceBuilder, job, snapshot
from .apply import apply
from .test_invariants import POLICIES, SETTINGS, check, pools

H800 = "H800-80GB"


def part(jid: str, member: str, count: int, group: Group, dataset: str = "") -> JobSpec:
    spec = job(jid, member, count, H800, datasets=(dataset,) if dataset else ())
    return replace(spec, own_nodes=True, group=group)


def home(spec: JobSpec) -> JobSpec:
    """``spec`` bound to its member's own nodes."""
    return replace(spec, own_nodes=True)


def three() -> Alliance:
    """Members a, b, c with one 8-device node each; d owns no node."""
    b = AllianceBuilder().member("a").member("b").member("c").member("d")
    for m in "abc":
        b.site(f"s{m}", m).nodes_of(f"s{m}", H800, 1)
    return b.build()


def queued_behind(alliance: Alliance, busy: JobSpec, policy: str, *specs: JobSpec) -> Snapshot:
    """``busy`` running, then ``specs`` submitted in order."""
    snap = snapshot(alliance, busy)
    apply(snap, schedule(snap, get_policy(policy)))
    for i, s in enumerate(specs):
        snap.submit(s, submitted_at=10.0 + i, allowed_sites=alliance.sites_for(s))
    return snap


def admitted(result: PassResult) -> set[str]:
    return {d.job for d in result.admits}


def test_a_group_below_its_minimum_starts_nothing_and_frees_its_room() -> None:
    alliance = three()
    g = Group(JobId("fed"), 3, 3)
    busy = home(job("c-own", "c", 8, H800, preemptible=False))
    parts = [part(f"fed/{m}", m, 8, g) for m in "abc"]
    after = job("a-next", "a", 8, H800)
    for policy in POLICIES:
        snap = queued_behind(alliance, busy, policy, *parts, after)
        result = schedule(snap, get_policy(policy))
        assert not admitted(result) & {"fed/a", "fed/b", "fed/c"}, policy
        assert "only 2 of its 3 jobs" in result.reason(snap, JobId("fed/a")), policy
        # the room the held parts would have taken goes to the next job
        assert "a-next" in admitted(result), policy
        check(snap, result)


def test_with_its_minimum_it_starts_and_a_late_part_joins_alone() -> None:
    alliance = three()
    g = Group(JobId("fed"), 3, 2)
    busy = home(job("c-own", "c", 8, H800, preemptible=False))
    for policy in POLICIES:
        snap = queued_behind(alliance, busy, policy, *(part(f"fed/{m}", m, 8, g) for m in "abc"))
        result = schedule(snap, get_policy(policy))
        assert admitted(result) == {"fed/a", "fed/b"}, policy
        apply(snap, result)
        snap.finish(JobId("c-own"))
        result = schedule(snap, get_policy(policy))
        assert admitted(result) == {"fed/c"}, policy  # the group already holds its minimum


def test_each_part_runs_on_its_own_members_nodes_only() -> None:
    alliance = three()
    g = Group(JobId("fed"), 2, 2)
    busy = home(job("a-own", "a", 8, H800, preemptible=False))
    for policy in POLICIES:
        snap = queued_behind(
            alliance, busy, policy, part("fed/a", "a", 1, g), part("fed/b", "b", 1, g)
        )
        result = schedule(snap, get_policy(policy))
        # b's and c's nodes are free, but a's part may not borrow them
        assert not admitted(result), policy


def test_preemptions_for_a_group_that_cannot_start_are_not_made() -> None:
    """a reclaims its node from a borrower for its part, but b's part cannot start: the
    borrower is left alone."""
    alliance = three()
    g = Group(JobId("fed"), 2, 2)
    for policy in ["fair", "alliance"]:
        borrower = job("d-borrow", "d", 8, H800)
        snap = snapshot(alliance, borrower, home(job("b-own", "b", 8, H800)))
        apply(snap, schedule(snap, get_policy(policy)))
        assert {"d-borrow", "b-own"} <= set(snap.running), policy
        for i, s in enumerate([part("fed/a", "a", 8, g), part("fed/b", "b", 8, g)]):
            snap.submit(s, submitted_at=10.0 + i, allowed_sites=alliance.sites_for(s))
        result = schedule(snap, get_policy(policy))
        assert not result.decisions, (policy, result.decisions)
        # the same reclaim for a group that can start is made
        snap.finish(JobId("b-own"))
        result = schedule(snap, get_policy(policy))
        assert [d.job for d in result.preempts] == ["d-borrow"], policy
        assert "fed/a" in result.reserved and admitted(result) == {"fed/b"}, policy


def test_a_part_counts_against_its_own_members_share() -> None:
    alliance = three()
    g = Group(JobId("fed"), 2, 2)
    snap = snapshot(alliance, part("fed/a", "a", 8, g), part("fed/b", "b", 4, g))
    apply(snap, schedule(snap, get_policy("alliance")))
    assert snap.used_devices == {(MemberId("a"), H800): 8, (MemberId("b"), H800): 4}


@st.composite
def federations(draw: st.DrawFn, alliance: Alliance, k: int) -> FederatedSpec:
    members = sorted(alliance.members)
    chosen = draw(st.lists(st.sampled_from(members), min_size=1, max_size=4, unique=True))
    present = sorted({n.model for n in alliance.nodes.values()})
    participants = []
    for m in chosen:
        models = draw(st.lists(st.sampled_from(present), min_size=1, unique=True))
        # (Ascend910C allocates devices in pairs)
        count = draw(st.sampled_from([2, 4, 8] if "Ascend910C" in models else [1, 2, 4, 8]))
        participants.append(
            Participant(MemberId(m), DatasetId(f"{m}-data"), count, frozenset(map(ModelId, models)))
        )
    least = draw(st.integers(1, len(participants)))
    return FederatedSpec(
        JobId(f"fed{k}"), MemberId(members[0]), "app", 1, tuple(participants), least
    )


@given(data=st.data(), policy=st.sampled_from(POLICIES))
@SETTINGS
def test_groups_keep_their_minimum_and_parts_stay_home(data: st.DataObject, policy: str) -> None:
    base = data.draw(pools())
    b = AllianceBuilder(
        members=dict(base.members),
        sites=dict(base.sites),
        nodes=dict(base.nodes),
        datasets=dict(base.datasets),
    )
    for m in base.members:  # each member's corpus, resident at one of its sites (if any)
        own = sorted(s for s, site in base.sites.items() if site.member == m)
        where = (data.draw(st.sampled_from(own)),) if own and data.draw(st.booleans()) else ()
        b.dataset(f"{m}-data", m, sites=where)
    alliance = b.build()
    feds = [data.draw(federations(alliance, k)) for k in range(data.draw(st.integers(1, 3)))]
    others = [
        job(f"j{i}", data.draw(st.sampled_from(sorted(alliance.members))), 4, H800)
        for i in range(data.draw(st.integers(0, 6)))
    ]
    snap = Snapshot.from_alliance(alliance)
    order = [p for f in feds for p in f.parts()] + others
    for i, s in enumerate(data.draw(st.permutations(order))):
        snap.submit(s, submitted_at=float(i), allowed_sites=alliance.sites_for(s))
    for _ in range(3):
        result = schedule(snap, get_policy(policy))
        check(snap, result)
        for d in result.admits:
            spec = snap.pending[d.job].spec
            if spec.group is None:
                continue
            # home: the part's member's own sites, within its dataset's residency
            sites = {alliance.nodes[n].site for n in d.placement.nodes}
            assert all(alliance.sites[s].member == spec.member for s in sites)
            allowed = alliance.allowed_sites(spec.datasets)
            assert allowed is None or sites <= allowed
            # together: with it, the group holds at least its minimum
            parts = snap.groups[spec.group.id]
            live = {j for j in parts if j in snap.running and j not in snap.stopping}
            live |= {j for j in parts if j in admitted(result) | result.reserved}
            preempted = {d.job for d in result.preempts}
            assert len(live - preempted) >= spec.group.min_size
        apply(snap, result)


@given(data=st.data())
@SETTINGS
def test_a_part_holds_its_own_participants_data_only(data: st.DataObject) -> None:
    alliance = data.draw(pools())
    fed = data.draw(federations(alliance, 0))
    for p, spec in zip(fed.participants, fed.parts(), strict=True):
        assert spec.member == p.member and spec.datasets == (p.dataset,)
        assert spec.own_nodes and spec.group is not None
        assert spec.group.min_size == fed.min_participants
    assert len({s.id for s in fed.parts()}) == len(fed.participants)
