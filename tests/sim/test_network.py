"""The national network generator (sizes, chips, rhythm, determinism) and the simulator's
streaming mode (a stream gives the same results as the list it came from, keeping only live
jobs)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from suanli.catalog.accelerator import load_catalog
from suanli.model.member import Tier
from suanli.sched.policy import get_policy
from suanli.sim.network import (
    MIX,
    NetworkSpec,
    build_alliance,
    generate_jobs,
    load_calibration,
    national_network,
)
from suanli.sim.simulator import SimParams, Simulation

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"


@pytest.fixture(scope="module")
def calibration():  # type: ignore[no-untyped-def]
    return load_calibration(TRACES)


def test_the_pool_has_the_size_members_and_chips_asked_for(calibration) -> None:  # type: ignore[no-untyped-def]
    spec = NetworkSpec(members=100, accelerators=200_000, jobs=1)
    a = build_alliance(spec, calibration)
    assert len(a.members) == 100
    assert sum(n.devices for n in a.nodes.values()) == 200_000
    by_vendor: Counter[str] = Counter()
    models = set()
    for n in a.nodes.values():
        by_vendor[a.catalog.get(n.model).vendor] += n.devices
        models.add(n.model)
    assert len(models) >= 20 and models <= set(MIX)
    assert by_vendor["NVIDIA"] < 100_000  # Chinese chips are the majority
    contributors = {a.owner(n) for n in a.nodes.values()}
    assert len(contributors) == 80  # a fifth in the commons tier
    # member sizes follow real virtual clusters: a long tail, not equal parts
    sizes = sorted(Counter(a.owner(n) for n in a.nodes.values()).values())
    assert sizes[-1] > 5 * sizes[len(sizes) // 2]
    # every node's model has a datasheet NU figure (no invented calibration)
    cat = load_catalog()
    assert all(cat.get(m).nu_per_device for m in models)


def test_jobs_arrive_in_order_follow_the_traces_and_repeat_by_seed(calibration) -> None:  # type: ignore[no-untyped-def]
    spec = NetworkSpec(members=30, accelerators=8_000, jobs=3_000, seed=3)
    a = build_alliance(spec, calibration)
    jobs = list(generate_jobs(a, spec, calibration))
    assert len(jobs) == 3_000 and len({j.spec.id for j in jobs}) == 3_000
    assert all(x.arrival <= y.arrival for x, y in itertools.pairwise(jobs))
    sizes = Counter(j.spec.count for j in jobs)
    assert sizes.most_common(1)[0][0] == 1  # most jobs take one device, as in both traces
    assert any(j.spec.gang.nodes > 1 for j in jobs)
    for j in jobs:
        assert j.speed.keys() == j.spec.models
        assert all(a.catalog.get(m).alloc_unit == 1 for m in j.spec.models) or (
            j.spec.gang.per_node % 2 == 0
        )
        for d in j.spec.datasets:  # a resident dataset's site has a model the job accepts
            site = next(iter(a.datasets[d].resident_sites))
            assert any(n.site == site and n.model in j.spec.models for n in a.nodes.values())
    assert any(j.spec.datasets for j in jobs)
    again = list(generate_jobs(build_alliance(spec, calibration), spec, calibration))
    assert [(j.spec, j.arrival, j.work) for j in again] == [
        (j.spec, j.arrival, j.work) for j in jobs
    ]


def test_the_rhythm_is_busier_at_the_traces_peak_hours(calibration) -> None:  # type: ignore[no-untyped-def]
    hourly = calibration.hourly
    assert len(hourly) == 168 and abs(sum(hourly) / 168 - 1) < 1e-9
    spec = NetworkSpec(members=10, accelerators=2_000, jobs=20_000)
    a = build_alliance(spec, calibration)
    per_hour = Counter(int(j.arrival // 3600) % 168 for j in generate_jobs(a, spec, calibration))
    quiet = min(range(168), key=lambda h: hourly[h])
    busy = max(range(168), key=lambda h: hourly[h])
    assert per_hour[busy] > per_hour[quiet]


@pytest.mark.parametrize("load", [0.5, 0.8])
def test_the_jobs_hold_the_load_asked_for(calibration, load: float) -> None:  # type: ignore[no-untyped-def]
    """Over four weeks of arrivals, what the jobs hold on their fastest models (devices x run
    time x NU) is ``load`` of the pool's NU, within a tenth (the traces' long jobs make the
    sum noisy)."""
    spec = NetworkSpec(members=12, accelerators=1_600, jobs=10**9, load=load)
    a = build_alliance(spec, calibration)
    nu = {n.model: a.catalog.get(n.model).nu_per_device or 0.0 for n in a.nodes.values()}
    capacity = sum(n.devices * nu[n.model] for n in a.nodes.values())
    span = 28 * 86400.0
    held = 0.0
    for j in generate_jobs(a, spec, calibration):
        if j.arrival >= span:
            break
        fastest = max(j.speed, key=j.speed.__getitem__)
        held += j.spec.count * nu[fastest] * j.work / j.speed[fastest]
    assert held / (capacity * span) == pytest.approx(load, rel=0.1)


def test_each_site_keeps_data_and_its_own_data_asks_a_small_share_of_it(calibration) -> None:  # type: ignore[no-untyped-def]
    """A contributor keeps a dataset at each of its sites and its data-reading jobs are spread
    over them by NU: no site is asked by its own data for more than a small share of what it
    holds (were all of a large member's data at one site, that site would be oversubscribed and
    its backlog would grow without end)."""
    spec = NetworkSpec(members=5, accelerators=80_000, jobs=10**9, load=0.7)
    a = build_alliance(spec, calibration)
    nu = {n.model: a.catalog.get(n.model).nu_per_device or 0.0 for n in a.nodes.values()}
    capacity: Counter[str] = Counter()
    for n in a.nodes.values():
        capacity[n.site] += n.devices * nu[n.model]
    contributors = {m for m, x in a.members.items() if x.tier is Tier.CONTRIBUTOR}
    assert {d.owner for d in a.datasets.values()} == contributors
    assert sorted(s for d in a.datasets.values() for s in d.resident_sites) == sorted(a.sites)
    span = 7 * 86400.0
    held: Counter[str] = Counter()
    for j in generate_jobs(a, spec, calibration):
        if j.arrival >= span:
            break
        for d in j.spec.datasets:
            (site,) = a.datasets[d].resident_sites
            fastest = max(j.speed, key=j.speed.__getitem__)
            held[site] += j.spec.count * nu[fastest] * j.work / j.speed[fastest]
    assert len(held) == len(a.sites)  # every site's data is read
    assert max(held[s] / (capacity[s] * span) for s in a.sites) < 0.2


def test_bad_specs_name_the_field() -> None:
    with pytest.raises(ValueError, match="accelerators"):
        NetworkSpec(members=100, accelerators=10)
    with pytest.raises(ValueError, match="load"):
        NetworkSpec(load=0)


def test_a_stream_gives_the_results_of_its_list_and_forgets_finished_jobs() -> None:
    spec = NetworkSpec(members=12, accelerators=1_600, jobs=1_500, load=0.9)
    alliance, stream = national_network(spec, TRACES)
    jobs = list(stream)
    params = SimParams(1800.0, grace_s=60.0, pass_interval_s=60.0)
    listed = Simulation(alliance, jobs, get_policy("alliance", grace_s=60), params).run()
    streamed_sim = Simulation(alliance, iter(jobs), get_policy("alliance", grace_s=60), params)
    streamed = streamed_sim.run()
    tally = streamed.tally
    assert tally is not None and tally.jobs + len(streamed.records) == len(jobs)
    done = [r for r in listed.records.values() if r.finished_at is not None]
    assert tally.jobs == len(done)
    assert tally.jct_s == pytest.approx(sum(r.finished_at - r.job.arrival for r in done))  # type: ignore[operator]
    assert tally.preemptions == sum(r.preemptions for r in done)
    assert streamed.member_nu_s == pytest.approx(listed.member_nu_s)
    assert streamed.violation_s == pytest.approx(listed.violation_s)
    assert streamed.passes == listed.passes
    assert not streamed_sim.jobs or all(j in streamed.records for j in streamed_sim.jobs)


def test_a_stream_out_of_order_is_refused() -> None:
    spec = NetworkSpec(members=4, accelerators=64, jobs=3)
    alliance, stream = national_network(spec, TRACES)
    a, b, c = stream
    b.arrival = a.arrival - 1
    sim = Simulation(alliance, iter([a, b, c]), get_policy("fifo"), SimParams())
    with pytest.raises(ValueError, match=f"job {b.spec.id}: arrives at"):
        sim.run()


def test_the_bundled_scenario_loads_and_a_bad_one_names_its_field(tmp_path: Path) -> None:
    from suanli.errors import ValidationError
    from suanli.sim.scenario import load_scenario

    sc = load_scenario("national-network", seed=1)
    assert len(sc.jobs) == 10_000 and len(sc.alliance.members) == 100
    assert sum(n.devices for n in sc.alliance.nodes.values()) == 200_000
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"name: bad\ntrace: {{format: national-network, path: {TRACES}, jobs: 5}}\n"
        "pool: {format: national-network, members: 50, accelerators: 100}\n"
    )
    with pytest.raises(ValidationError) as info:
        load_scenario(str(bad))
    assert "pool" in str(info.value) and "accelerators" in str(info.value)
