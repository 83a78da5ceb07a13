"""Users and tokens through the API: listing by role, revocation that takes effect at the next
request, rotation that keeps the user, expiry; and jobs' secrets: sealed at rest, handed to the
job's run only, never shown; ``env_vars`` values shown to the job's own member only."""

from __future__ import annotations

import time

from sqlalchemy import select

from suanli.api.app import create_app
from suanli.sdk.client import Client
from suanli.service.context import Service
from suanli.store.tables import JobRow

from ..live import serving
from ..stack import Stack, status
from ..stepping import run_until


def test_a_revoked_token_is_refused_at_the_next_request(stack: Stack) -> None:
    lab = stack.client("lab-user")
    assert lab.whoami()["name"] == "lab-user"
    assert stack.client("lab-admin").revoke_user("lab-user")["revoked"] == 1
    assert status(lab.whoami) == 401  # no grace period after revocation


def test_rotation_keeps_the_user_and_ends_its_other_tokens(stack: Stack) -> None:
    old = stack.client("corp-user")
    new_token = old.rotate_token("corp-user")["token"]  # everyone may rotate their own
    assert status(old.whoami) == 401
    stack.tokens["corp-user-2"] = new_token
    again = stack.client("corp-user-2")
    assert again.whoami() == {"name": "corp-user", "role": "member-user", "member": "corp"}


def test_who_may_list_revoke_and_rotate_whom(stack: Stack) -> None:
    assert {u["name"] for u in stack.client("admin").users()} == {
        "admin",
        "lab-admin",
        "lab-user",
        "corp-user",
        "startup-user",
        "viewer",
    }
    assert {u["name"] for u in stack.client("lab-admin").users()} == {"lab-admin", "lab-user"}
    assert [u["name"] for u in stack.client("lab-user").users()] == ["lab-user"]
    assert stack.client("lab-admin").users()[0]["tokens"] == 1
    # a member admin manages its member's users only; others do not learn who exists
    assert status(lambda: stack.client("lab-admin").revoke_user("corp-user")) == 403
    assert status(lambda: stack.client("lab-user").revoke_user("corp-user")) == 404
    assert status(lambda: stack.client("lab-user").rotate_token("lab-admin")) == 404
    assert status(lambda: stack.client("viewer").revoke_user("nobody")) == 404
    assert stack.client("corp-user").whoami()["name"] == "corp-user"  # untouched


def test_a_token_with_an_expiry_stops_working_then(stack: Stack) -> None:
    made = stack.client("admin").create_user("temp", "viewer", expires_in_days=1)
    stack.tokens["temp"] = made["token"]
    assert stack.client("temp").whoami()["name"] == "temp"
    listed = {u["name"]: u for u in stack.client("admin").users()}
    assert abs(listed["temp"]["expires_at"] - (time.time() + 86400)) < 60
    with stack.db.session() as s:  # a day later
        from suanli.service.auth import authenticate

        try:
            authenticate(s, made["token"], time.time() + 86401)
        except Exception as exc:
            assert "expired" in str(exc)
        else:
            raise AssertionError("an expired token was accepted")
    admin = stack.client("admin")
    assert status(lambda: admin.create_user("x", "viewer", expires_in_days=-1)) == 422


def test_secrets_reach_the_run_only_and_env_values_only_the_member(stack: Stack) -> None:
    lab, viewer = stack.client("lab-user"), stack.client("viewer")
    lab.submit(
        {
            "id": "lab-s1",
            "member": "lab",
            "accelerators": "H800:1",
            "entrypoint": '[ "${API_KEY#sk-}" = 123 ] && echo "key ok; plain $PLAIN"',
            "runtime_env": {"env_vars": {"PLAIN": "visible-to-lab"}},
            "secrets": {"API_KEY": "sk-123"},
        }
    )
    mine, theirs = lab.job("lab-s1"), viewer.job("lab-s1")
    assert mine["spec"]["secrets"] == ["API_KEY"] and "sk-123" not in str(mine)
    assert mine["spec"]["runtime_env"]["env_vars"] == {"PLAIN": "visible-to-lab"}
    assert theirs["spec"]["runtime_env"]["env_vars"] == {"PLAIN": "(hidden)"}
    assert "sk-123" not in str(theirs) and "visible-to-lab" not in str(theirs)
    with stack.db.session() as s:  # sealed at rest
        row = s.scalars(select(JobRow).where(JobRow.id == "lab-s1")).one()
        assert row.secrets and "sk-123" not in row.secrets
        assert "sk-123" not in str(row.spec)
        assert stack.vault.open_sealed(row.secrets) == {"API_KEY": "sk-123"}
    rows = run_until(stack.controller, stack.db, lambda r: r["lab-s1"].phase == "SUCCEEDED")
    assert rows["lab-s1"].phase == "SUCCEEDED"
    assert b"key ok; plain visible-to-lab" in lab.logs("lab-s1")[0]
    assert "sk-123" not in str(stack.client("admin").audit(limit=1000))


def test_a_server_that_keeps_no_secrets_refuses_them(stack: Stack) -> None:
    app = create_app(Service(stack.db, stack.controller.policy, stack.executor))
    with serving(app) as url, Client(url, stack.tokens["lab-user"]) as lab:
        code = status(
            lambda: lab.submit({"member": "lab", "accelerators": "H800:1", "secrets": {"K": "v"}})
        )
    assert code == 422
