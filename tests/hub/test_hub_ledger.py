"""A release (a tag) is a record in the ledger's hash chain, with what made it; it changes
no statement, and changing it afterwards breaks the chain."""

from __future__ import annotations

import time

from huggingface_hub import HfApi
from sqlalchemy import select, update

from suanli.ledger.record import Kind
from suanli.store.ledger_rows import member_statement, verify
from suanli.store.tables import LedgerRow

from ..stack import Stack


def test_a_tag_is_a_release_in_the_chain(stack: Stack) -> None:
    api = HfApi(endpoint=stack.url, token=stack.tokens["lab-user"])
    api.create_repo("lab/charlm", private=True)
    api.upload_file(
        path_or_fileobj=b"---\nlicense: apache-2.0\n---\n",
        path_in_repo="README.md",
        repo_id="lab/charlm",
    )
    head = api.model_info("lab/charlm").sha
    period = time.strftime("%Y-%m", time.gmtime())
    with stack.db.session() as s:
        before = member_statement(s, "lab", period).to_json()
    api.create_tag("lab/charlm", tag="v1.0")
    api.create_branch("lab/charlm", branch="dev")  # (a branch is not a release)
    with stack.db.session() as s:
        rows = s.scalars(select(LedgerRow).where(LedgerRow.kind == Kind.RELEASE.value)).all()
        assert len(rows) == 1
        r = rows[0]
        assert (r.member, r.model, r.units, r.devices) == ("lab", "model:lab/charlm", 0.0, 0)
        assert r.detail == {
            "repo": "lab/charlm",
            "kind": "model",
            "tag": "v1.0",
            "commit": head,
            "licence": "apache-2.0",
            "jobs": [],
            "by": "lab-user",
        }
        assert verify(s).ok
        assert member_statement(s, "lab", period).to_json() == before
    with stack.db.session() as s:  # rewriting history: the commit a release names
        s.execute(
            update(LedgerRow)
            .where(LedgerRow.seq == r.seq)
            .values(detail={**r.detail, "commit": "0" * 40})
        )
    with stack.db.session() as s:
        check = verify(s)
        assert not check.ok and check.first_bad == r.seq
