"""The hash chain finds any change, removal or reordering of records."""

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from suanli.ledger.record import GENESIS, Record, chain_hash, verify_chain

records = st.builds(
    Record,
    book=st.just("real"),
    kind=st.sampled_from(["usage", "capacity"]),
    member=st.sampled_from(["a", "b", "c"]),
    provider=st.sampled_from(["a", "b", "c"]),
    model=st.sampled_from(["H800-80GB", "Ascend910B"]),
    devices=st.integers(1, 64),
    start=st.floats(0, 1e9),
    end=st.floats(0, 1e9),
    units=st.floats(0, 1e6),
    job=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
    attempt=st.one_of(st.none(), st.integers(1, 5)),
)


def chain(recs: list[Record]) -> list[tuple[int, Record, str, str]]:
    out, prev = [], GENESIS
    for i, r in enumerate(recs, start=1):
        h = chain_hash(prev, r)
        out.append((i, r, prev, h))
        prev = h
    return out


@given(st.lists(records, min_size=1, max_size=20))
def test_an_untouched_chain_checks(recs: list[Record]) -> None:
    check = verify_chain(chain(recs))
    assert check.ok and check.records == len(recs)


@given(st.lists(records, min_size=1, max_size=20), st.data())
def test_a_changed_field_is_found_at_its_record(recs: list[Record], data: st.DataObject) -> None:
    rows = chain(recs)
    i = data.draw(st.integers(0, len(rows) - 1))
    seq, rec, prev, h = rows[i]
    changed = dataclasses.replace(rec, units=rec.units + 1.0, devices=rec.devices + 1)
    rows[i] = (seq, changed, prev, h)
    check = verify_chain(rows)
    assert not check.ok and check.first_bad == seq


@given(st.lists(records, min_size=2, max_size=20), st.data())
def test_a_removed_or_swapped_record_is_found(recs: list[Record], data: st.DataObject) -> None:
    rows = chain(recs)
    i = data.draw(st.integers(0, len(rows) - 2))
    removed = rows[:i] + rows[i + 1 :]
    assert not verify_chain(removed).ok
    swapped = list(rows)
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    assert not verify_chain(swapped).ok
