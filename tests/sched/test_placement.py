"""Placement rules, one at a time, on hand-built pools."""

import random

from hypothesis import given
from hypothesis import strategies as st

from suanli.model.ids import ModelId, SiteId
from suanli.model.job import Placement
from suanli.sched.placement import FreeState, _pick
from suanli.sched.pool import Pool

from ..builders import AllianceBuilder, job

RINGS = ((0, 1, 2, 3), (4, 5, 6, 7))


def free_state(b: AllianceBuilder) -> FreeState:
    return FreeState(Pool.from_alliance(b.build()))


def base() -> AllianceBuilder:
    return AllianceBuilder().member("a").site("s1", "a").site("s2", "a")


def test_single_node_job_stays_in_one_topology_group() -> None:
    fs = free_state(base().nodes_of("s1", "Ascend910B", 1, topology=RINGS))
    p1 = fs.fit(job("j1", "a", 2, "Ascend910B"), "Ascend910B", None)
    assert p1 is not None
    fs.take(p1, 1, 1)
    # 4 devices must come from the untouched ring, not 2 + 2 across rings
    p2 = fs.fit(job("j2", "a", 4, "Ascend910B"), "Ascend910B", None)
    assert p2 is not None and set(p2.assignments[0][1]) == {4, 5, 6, 7}
    fs.take(p2, 1, 1)
    # 3 devices fit in no ring now (2 free in ring 0): no placement although 2 are free
    assert fs.fit(job("j3", "a", 3, "Ascend910B"), "Ascend910B", None) is None


def test_best_fit_prefers_the_fullest_group_that_fits() -> None:
    fs = free_state(base().nodes_of("s1", "Ascend910B", 1, topology=RINGS))
    fs.take(Placement("Ascend910B", (("s1-n000", (0, 1, 2)),)), 1, 1)  # type: ignore[arg-type]
    p = fs.fit(job("j", "a", 1, "Ascend910B"), "Ascend910B", None)
    assert p is not None and p.assignments[0][1] == (3,)


def test_job_larger_than_a_group_spans_groups_on_one_node() -> None:
    fs = free_state(base().nodes_of("s1", "Ascend910B", 2, topology=RINGS))
    p = fs.fit(job("j", "a", 6, "Ascend910B"), "Ascend910B", None)
    assert p is not None and len(p.assignments) == 1 and p.devices == 6


def test_multi_node_gang_takes_whole_nodes_at_one_site() -> None:
    fs = free_state(base().nodes_of("s1", "H800-80GB", 1).nodes_of("s2", "H800-80GB", 2))
    p = fs.fit(job("g", "a", 16, "H800-80GB", nodes=2), "H800-80GB", None)
    assert p is not None
    assert {fs.pool.node(n).site for n in p.nodes} == {"s2"}
    assert all(d == tuple(range(8)) for _, d in p.assignments)
    fs.take(p, 1, 1)
    # one whole node left at s1 and none at s2: a 2-node gang has nowhere to go
    assert fs.fit(job("g2", "a", 16, "H800-80GB", nodes=2), "H800-80GB", None) is None


def test_gang_is_all_or_nothing_when_one_node_is_partly_used() -> None:
    fs = free_state(base().nodes_of("s1", "H800-80GB", 2))
    fs.take(Placement("H800-80GB", (("s1-n000", (0,)),)), 1, 1)  # type: ignore[arg-type]
    assert fs.fit(job("g", "a", 16, "H800-80GB", nodes=2), "H800-80GB", None) is None


def test_910c_devices_go_in_aligned_pairs() -> None:
    fs = free_state(base().nodes_of("s1", "Ascend910C", 1, devices=8))
    fs.take(Placement("Ascend910C", (("s1-n000", (0, 1)),)), 1, 1)  # type: ignore[arg-type]
    p = fs.fit(job("j", "a", 2, "Ascend910C"), "Ascend910C", None)
    assert p is not None and p.assignments[0][1] == (2, 3)


@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 255), st.integers(1, 8)), max_size=60))
def test_a_choice_of_devices_remembered_is_the_one_made_afresh_on_every_shape(
    picks: list[tuple[int, int, int]],
) -> None:
    """Nodes of one shape (devices, topology, allocation unit) share their choices of
    devices; a node of another shape never gets one made for another."""
    fs = free_state(
        base()
        .nodes_of("s1", "Ascend910B", 2, topology=RINGS)
        .nodes_of("s2", "Ascend910B", 2)
        .nodes_of("s1", "Ascend910C", 2)
        .nodes_of("s2", "H800-80GB", 1, devices=4)
        .nodes_of("s2", "H800-80GB", 1)
    )
    nodes = fs.pool.nodes
    shapes = {(n.devices, n.group_masks, n.alloc_unit): n.shape for n in nodes}
    assert (
        len(shapes) == len(set(shapes.values())) == 4
    )  # (910B in rings; 910B and H800 of 8; 910C in pairs; 4)
    for k, mask, n in picks:
        node = nodes[k]
        free = mask & node.full_mask
        assert fs._pick_devices(node, n, free) == _pick(node, n, free)


def test_residency_limits_sites() -> None:
    fs = free_state(base().nodes_of("s1", "H800-80GB", 1).nodes_of("s2", "H800-80GB", 1))
    p = fs.fit(job("j", "a", 1, "H800-80GB"), "H800-80GB", frozenset({SiteId("s2")}))
    assert p is not None and fs.pool.node(p.nodes[0]).site == "s2"
    assert fs.fit(job("j", "a", 1, "H800-80GB"), "H800-80GB", frozenset()) is None


def test_a_job_no_one_can_move_goes_away_from_data_while_there_is_room() -> None:
    """A non-preemptible job that may run anywhere takes a node at no data site while one has
    room (one or a gang); then a data site's; a preemptible one takes the first that fits (it
    can be moved out of the data's way)."""
    b = base().site("s3", "a").dataset("corpus", "a", sites=("s1",))
    fs = free_state(
        b.nodes_of("s1", "H800-80GB", 2)
        .nodes_of("s2", "H800-80GB", 1)
        .nodes_of("s3", "H800-80GB", 2)
    )
    site = {n.id: n.site for n in fs.pool.nodes}
    free_preemptible = fs.fit(job("p", "a", 2, "H800-80GB"), "H800-80GB", None)
    assert free_preemptible is not None and site[free_preemptible.nodes[0]] == "s1"
    one = fs.fit(job("j", "a", 2, "H800-80GB", preemptible=False), "H800-80GB", None)
    assert one is not None and site[one.nodes[0]] == "s2"
    gang = fs.fit(job("g", "a", 16, "H800-80GB", nodes=2, preemptible=False), "H800-80GB", None)
    assert gang is not None and {site[n] for n in gang.nodes} == {"s3"}
    fs.take(gang, 1, 1)
    fs.take(Placement("H800-80GB", ((one.nodes[0], tuple(range(8))),)), 1, 1)
    # no room away from the data: its site is used rather than none
    late = fs.fit(job("k", "a", 8, "H800-80GB", preemptible=False), "H800-80GB", None)
    assert late is not None and site[late.nodes[0]] == "s1"


def test_at_data_sites_a_job_no_one_can_move_goes_where_most_nodes_stay_free_of_such_jobs() -> None:
    """Where every site holds data, a non-preemptible job (one or a gang) goes to the site
    where the most of its model's nodes would stay free of jobs no one can move (then the
    roomiest), not to a small site, whose held gangs it would keep out for as long as it
    runs; a preemptible one still takes the first that fits."""
    b = base().site("s3", "a").dataset("d1", "a", sites=("s1",))
    b = b.dataset("d2", "a", sites=("s2",)).dataset("d3", "a", sites=("s3",))
    fs = free_state(
        b.nodes_of("s1", "H800-80GB", 1)
        .nodes_of("s2", "H800-80GB", 3)
        .nodes_of("s3", "H800-80GB", 2)
    )
    site = {n.id: n.site for n in fs.pool.nodes}
    anywhere = fs.fit(job("p", "a", 4, "H800-80GB"), "H800-80GB", None)
    assert anywhere is not None and site[anywhere.nodes[0]] == "s1"
    one = fs.fit(job("j", "a", 4, "H800-80GB", preemptible=False), "H800-80GB", None)
    assert one is not None and site[one.nodes[0]] == "s2"  # (2 such nodes left, 1, none)
    fs.take(one, 1, 1, pinned=True)
    gang = fs.fit(job("g", "a", 16, "H800-80GB", nodes=2, preemptible=False), "H800-80GB", None)
    assert gang is not None and {site[n] for n in gang.nodes} == {"s2"}  # (none: the roomier)
    fs.take(gang, 1, 1, pinned=True)  # s2: every node held, 4 devices free; s3, s1: none
    late = fs.fit(job("k", "a", 4, "H800-80GB", preemptible=False), "H800-80GB", None)
    assert late is not None and site[late.nodes[0]] == "s3"
    assert fs.pinned_by_group == [0, 3, 0] and sum(fs.pinned) == 20
    fs.give(gang, 1, 1, pinned=True)
    assert fs.pinned_by_group == [0, 1, 0] and fs.copy().pinned == fs.pinned


def test_a_job_no_one_can_move_leaves_a_small_site_whole_and_packs_onto_pinned_nodes() -> None:
    """A two-node site wholly free is roomier than a large site nearly full of preemptible
    work, but one non-preemptible job there would hold half its nodes until it ends (a gang
    held to that site could not start, and no reclaim helps): it goes to the large site, to
    the node a non-preemptible job already holds rather than one preemptible work holds."""
    h800 = ModelId("H800-80GB")
    b = base().dataset("d1", "a", sites=("s1",)).dataset("d2", "a", sites=("s2",))
    fs = free_state(b.nodes_of("s1", "H800-80GB", 2).nodes_of("s2", "H800-80GB", 10))
    site = {n.id: n.site for n in fs.pool.nodes}
    big = [n.id for n in fs.pool.nodes if n.site == "s2"]
    for node in big[:8]:  # preemptible work, all but two nodes...
        fs.take(Placement(h800, ((node, tuple(range(8))),)), 1, 1)
    fs.take(Placement(h800, ((big[8], (0, 1, 2, 3)),)), 1, 1)  # ...half of one
    fs.take(Placement(h800, ((big[9], (0, 1, 2, 3)),)), 1, 1, pinned=True)  # a fixed job
    assert fs.by_group == [16, 8]
    fixed = job("f", "a", 4, "H800-80GB", preemptible=False)
    p = fs.fit(fixed, h800, None)
    assert p is not None and p.nodes == (big[9],)  # (9 nodes free of such jobs, against 1)
    # a preemptible job still takes the best fit, wherever it is
    p = fs.fit(job("p", "a", 4, "H800-80GB"), h800, None)
    assert p is not None and site[p.nodes[0]] == "s2"


def test_a_job_that_may_run_anywhere_takes_the_groups_kept_for_held_jobs_last() -> None:
    """The (model, site) groups a pass keeps for jobs held to their site are taken last by a
    job that may run anywhere: elsewhere while anything fits there (one node, a gang, a
    non-preemptible job among data sites), on them when nothing else does; ``keeps`` says
    so of a placement."""
    h800 = ModelId("H800-80GB")
    b = AllianceBuilder().member("a").site("s1", "a", "r").site("s2", "a", "r")
    b = b.dataset("d1", "a", sites=("s1",)).dataset("d2", "a", sites=("s2",))
    fs = free_state(b.nodes_of("s1", "H800-80GB", 2).nodes_of("s2", "H800-80GB", 2))
    site = {n.id: n.site for n in fs.pool.nodes}
    s1 = frozenset({fs.pool.groups[(h800, SiteId("s1"))]})
    gang = job("g", "a", 16, "H800-80GB", nodes=2)
    # nothing kept: the first two whole nodes of the zone (s1's), best fit for one node
    assert {site[n] for n in fs.fit(gang, h800, None).nodes} == {"s1"}  # type: ignore[union-attr]
    fs.kept = {h800: s1}
    p = fs.fit(gang, h800, None)
    assert p is not None and {site[n] for n in p.nodes} == {"s2"} and not fs.keeps(p)
    fs.take(Placement(h800, (("s1-n000", tuple(range(6))),)), 1, 1)  # s1-n000: 2 free
    small = job("p", "a", 2, "H800-80GB")
    p = fs.fit(small, h800, None)
    assert p is not None and site[p.nodes[0]] == "s2"
    fs.kept = {}
    p = fs.fit(small, h800, None)
    assert p is not None and p.nodes == ("s1-n000",)  # (the best fit)
    # the most free devices are at s1 (10 against s2's 8 once one of its nodes is partly
    # taken): a non-preemptible job goes there, unless s1 is kept
    fs.take(Placement(h800, (("s2-n002", (0, 1, 2, 3, 4, 5, 6, 7)),)), 1, 1)
    fixed = job("f", "a", 2, "H800-80GB", preemptible=False)
    assert site[fs.fit(fixed, h800, None).nodes[0]] == "s1"  # type: ignore[union-attr]
    fs.kept = {h800: s1}
    assert site[fs.fit(fixed, h800, None).nodes[0]] == "s2"  # type: ignore[union-attr]
    # nothing fits elsewhere: the kept group is used rather than none
    fs.take(Placement(h800, (("s2-n003", (0, 1, 2, 3, 4, 5, 6, 7)),)), 1, 1)
    p = fs.fit(small, h800, None)
    assert p is not None and p.nodes == ("s1-n000",) and fs.keeps(p)
    # a pass's copy keeps what was kept until its policy says otherwise
    assert fs.copy().kept == {h800: s1}


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 255), st.booleans()), max_size=30))
def test_free_devices_are_counted_per_model_and_site(steps: list[tuple[int, int, bool]]) -> None:
    """The free devices counted per (model, site) group follow every take, give and drain."""
    b = base().nodes_of("s1", "H800-80GB", 2).nodes_of("s2", "H800-80GB", 1)
    fs = free_state(b.nodes_of("s2", "Ascend910B", 2, topology=RINGS))
    pool = fs.pool
    for k, mask, drain in steps:
        node = pool.nodes[k]
        if drain:
            fs.set_schedulable(node.id, not fs.schedulable[k])
            continue
        devices = tuple(d for d in range(8) if mask >> d & 1)
        if devices and fs.free[k] & mask == mask:
            fs.take(Placement(node.model, ((node.id, devices),)), 0, 0)
        elif devices and fs.free[k] & mask == 0:
            fs.give(Placement(node.model, ((node.id, devices),)), 0, 0)
        for (model, site), g in pool.groups.items():
            free = sum(
                fs.free[n.index].bit_count()
                for n in pool.nodes
                if n.model == model and n.site == site and fs.schedulable[n.index]
            )
            assert fs.by_group[g] == free
        assert sum(fs.by_group) == fs.free_count
        assert fs.copy().by_group == fs.by_group


def test_cpu_and_memory_are_per_node_limits() -> None:
    fs = free_state(base().nodes_of("s1", "H800-80GB", 1, cpu=8))
    assert fs.fit(job("j", "a", 1, "H800-80GB", cpu=16), "H800-80GB", None) is None
    assert fs.fit(job("j", "a", 1, "H800-80GB", cpu=8), "H800-80GB", None) is not None


def test_drained_nodes_take_nothing_and_counts_stay_right() -> None:
    fs = free_state(base().nodes_of("s1", "H800-80GB", 2))
    assert fs.free_count == 16
    fs.set_schedulable("s1-n000", False)  # type: ignore[arg-type]
    assert fs.free_count == 8 and fs.free_devices("H800-80GB") == 8
    p = fs.fit(job("j", "a", 8, "H800-80GB"), "H800-80GB", None)
    assert p is not None and p.nodes == ("s1-n001",)
    fs.set_schedulable("s1-n000", True)  # type: ignore[arg-type]
    assert fs.free_count == 16


def test_double_allocation_is_refused() -> None:
    fs = free_state(base().nodes_of("s1", "H800-80GB", 1))
    p = Placement("H800-80GB", (("s1-n000", (0, 1)),))  # type: ignore[arg-type]
    fs.take(p, 1, 1)
    import pytest

    with pytest.raises(ValueError, match="not free"):
        fs.take(p, 1, 1)
    fs.give(p, 1, 1)
    with pytest.raises(ValueError, match="already free"):
        fs.give(p, 1, 1)


@given(
    st.lists(st.integers(1, 8), min_size=1, max_size=24),
    st.sampled_from([None, frozenset({"s1"}), frozenset({"s2"}), frozenset({"s1", "s2"})]),
    st.data(),
)
def test_might_fit_after_is_a_necessary_condition(
    sizes: list[int], sites: frozenset[SiteId] | None, data: st.DataObject
) -> None:
    """Whenever the cheap bound says no, giving back the jobs really leaves no placement: for
    one-node jobs and gangs (the two sites are two zones: 3 and 2 nodes), anywhere or held to
    sites (the gains counted everywhere or at those sites), and whether or not the job fits
    somewhere now."""
    fs = free_state(base().nodes_of("s1", "H800-80GB", 3).nodes_of("s2", "H800-80GB", 2))
    taken = []
    for k, size in enumerate(sizes):
        p = fs.fit(job(f"r{k}", "a", size, "H800-80GB"), "H800-80GB", None)
        if p is not None:
            fs.take(p, 1, 1)
            taken.append(p)
    freed = data.draw(st.lists(st.sampled_from(taken), unique=True)) if taken else []
    specs = [job(f"q{c}", "a", c, "H800-80GB") for c in range(1, 9)]
    specs += [job(f"g{n}", "a", 8 * n, "H800-80GB", nodes=n) for n in (2, 3, 4)]
    # (counted over every node, or, as for a job held to sites, over the nodes there only)
    counted_at = sites if data.draw(st.booleans()) else None
    gains = fs.gains("H800-80GB", freed, counted_at)  # type: ignore[arg-type]
    bounds = []
    for q in specs:
        nowhere = fs.fit(q, "H800-80GB", sites) is None  # type: ignore[arg-type]
        bounds.append(fs.might_fit(q, "H800-80GB", gains, nowhere, sites))  # type: ignore[arg-type]
    for p in freed:
        fs.give(p, 1, 1)
    for q, bound in zip(specs, bounds, strict=True):
        assert bound or fs.fit(q, "H800-80GB", sites) is None  # type: ignore[arg-type]


@given(
    st.lists(st.integers(0, 255), min_size=6, max_size=6),
    st.sampled_from([1, 2, 3, 4, 8]),
    st.integers(1, 2),
    st.sets(st.sampled_from(["s1", "s2", "s3"])),
)
def test_a_job_held_to_sites_is_placed_as_if_the_other_sites_were_closed(
    taken: list[int], per_node: int, nodes: int, sites: set[str]
) -> None:
    """Residency's own search (the nodes at the sites only) finds a place exactly when the
    search over every node would with the other sites closed, and as tight a one."""
    b = base().site("s3", "a")
    for s in ("s1", "s2", "s3"):
        b = b.nodes_of(s, "Ascend910B", 2, topology=RINGS)
    held = FreeState(Pool.from_alliance(b.build()))
    closed = FreeState(held.pool)
    for i, mask in enumerate(taken):
        devices = tuple(d for d in range(8) if mask >> d & 1)
        if devices:
            p = Placement("Ascend910B", ((held.pool.nodes[i].id, devices),))  # type: ignore[arg-type]
            held.take(p, 1, 1)
            closed.take(p, 1, 1)
    for n in held.pool.nodes:
        if n.site not in sites:
            closed.set_schedulable(n.id, False)
    if nodes > 1 and per_node != 8:
        return
    spec = job("j", "a", per_node * nodes, "Ascend910B", nodes=nodes)
    allowed = frozenset(SiteId(s) for s in sites)
    got = held.fit(spec, "Ascend910B", allowed)  # type: ignore[arg-type]
    want = closed.fit(spec, "Ascend910B", None)  # type: ignore[arg-type]
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert all(held.pool.node(n).site in sites for n in got.nodes)
        for node_id, devices in got.assignments:
            free = held.free[held.pool.index[node_id]]
            assert all(free >> d & 1 for d in devices)
        left = [held.free[held.pool.index[n]].bit_count() for n in got.nodes]
        best = [closed.free[closed.pool.index[n]].bit_count() for n in want.nodes]
        assert sorted(left) == sorted(best)  # the same best fit by free devices


@given(
    st.lists(st.integers(1, 255), min_size=6, max_size=6),
    st.sampled_from([1, 2, 3, 4, 8]),
    st.integers(1, 3),
    st.sets(st.sampled_from(["s1", "s2", "s3"]), min_size=1),
    st.randoms(use_true_random=False),
)
def test_counting_what_victims_free_agrees_with_giving_it_back(
    taken: list[int], per_node: int, nodes: int, sites: set[str], rnd: random.Random
) -> None:
    """Reclaim's search (count per node what the victims would free, in order) finds the
    same shortest prefix as giving the victims back one by one and trying to fit."""
    b = base().site("s3", "a")
    for s in ("s1", "s2", "s3"):
        b = b.nodes_of(s, "Ascend910B", 2, topology=RINGS)
    fs = FreeState(Pool.from_alliance(b.build()))
    victims = []
    for i, mask in enumerate(taken):
        devices = tuple(d for d in range(8) if mask >> d & 1)
        node = fs.pool.nodes[i].id
        # each node's busy devices as one or two running jobs
        cut = rnd.randrange(len(devices) + 1)
        for part in (devices[:cut], devices[cut:]):
            if part:
                p = Placement("Ascend910B", ((node, part),))  # type: ignore[arg-type]
                fs.take(p, 1, 1)
                victims.append((p, 1.0, 1.0))
    rnd.shuffle(victims)
    if nodes > 1:
        per_node = 8
    spec = job("j", "a", per_node * nodes, "Ascend910B", nodes=nodes)
    allowed = frozenset(SiteId(s) for s in sites)
    if fs.fit(spec, "Ascend910B", allowed) is not None:  # type: ignore[arg-type]
        return
    got = fs.first_fitting(spec, "Ascend910B", allowed, victims)  # type: ignore[arg-type]
    want = None
    for k, (p, cpu, mem) in enumerate(victims):
        fs.give(p, cpu, mem)
        if fs.fit(spec, "Ascend910B", allowed) is not None:  # type: ignore[arg-type]
            want = k + 1
            break
    assert got == want


def test_a_copy_and_its_original_change_apart() -> None:
    """A copy shares its buckets until one side changes them: neither sees the other's
    changes, whichever changes first."""
    fs = free_state(base().nodes_of("s1", "H800-80GB", 2))
    h800 = job("h", "a", 8, "H800-80GB")
    p = fs.fit(h800, "H800-80GB", None)  # type: ignore[arg-type]
    assert p is not None
    copy = fs.copy()
    fs.take(p, 1, 1)  # the original first
    assert copy.free_devices("H800-80GB") == 16  # type: ignore[arg-type]
    assert copy.fit(h800, "H800-80GB", None) == p  # type: ignore[arg-type]
    again = copy.copy()
    copy.take(p, 1, 1)  # then the copy, with a copy of its own
    assert again.fit(h800, "H800-80GB", None) == p  # type: ignore[arg-type]
    other = next(n for n in ("s1-n000", "s1-n001") if n != p.nodes[0])
    again.set_schedulable(other, False)  # type: ignore[arg-type]
    for state in (fs, copy):
        q = state.fit(h800, "H800-80GB", None)  # type: ignore[arg-type]
        assert q is not None and q.nodes == (other,)
    assert again.fit(h800, "H800-80GB", None) == p  # type: ignore[arg-type]
