"""Users and tokens through the API: listing by role, revocation that takes effect at the next
request, rotation that keeps the user, expiry; and jobs' secrets: sealed at rest, handed to the
job's run only, never shown; ``env_vars`` values shown to the job's own member only."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from suanli.api.app import Service, create_app
from suanli.service.vault import Vault
from suanli.store.tables import JobRow

from ..stepping import run_until
from .live import serving
from .test_api import Env, env, status  # noqa: F401 - the fixture


def test_a_revoked_token_is_refused_at_the_next_request(env: Env) -> None:  # noqa: F811
    lab = env.client("lab-user")
    assert lab.whoami()["name"] == "lab-user"
    assert env.client("lab-admin").revoke_user("lab-user")["revoked"] == 1
    assert status(lab.whoami) == 401  # no grace period after revocation


def test_rotation_keeps_the_user_and_ends_its_other_tokens(env: Env) -> None:  # noqa: F811
    old = env.client("corp-user")
    new_token = old.rotate_token("corp-user")["token"]  # everyone may rotate their own
    assert status(old.whoami) == 401
    env.tokens["corp-user-2"] = new_token
    again = env.client("corp-user-2")
    assert again.whoami() == {"name": "corp-user", "role": "member-user", "member": "corp"}


def test_who_may_list_revoke_and_rotate_whom(env: Env) -> None:  # noqa: F811
    assert {u["name"] for u in env.client("admin").users()} == {
        "admin",
        "lab-admin",
        "lab-user",
        "corp-user",
        "startup-user",
        "viewer",
    }
    assert {u["name"] for u in env.client("lab-admin").users()} == {"lab-admin", "lab-user"}
    assert [u["name"] for u in env.client("lab-user").users()] == ["lab-user"]
    assert env.client("lab-admin").users()[0]["tokens"] == 1
    # a member admin manages its member's users only; others do not learn who exists
    assert status(lambda: env.client("lab-admin").revoke_user("corp-user")) == 403
    assert status(lambda: env.client("lab-user").revoke_user("corp-user")) == 404
    assert status(lambda: env.client("lab-user").rotate_token("lab-admin")) == 404
    assert status(lambda: env.client("viewer").revoke_user("nobody")) == 404
    assert env.client("corp-user").whoami()["name"] == "corp-user"  # untouched


def test_a_token_with_an_expiry_stops_working_then(env: Env) -> None:  # noqa: F811
    made = env.client("admin").create_user("temp", "viewer", expires_in_days=1)
    env.tokens["temp"] = made["token"]
    assert env.client("temp").whoami()["name"] == "temp"
    listed = {u["name"]: u for u in env.client("admin").users()}
    assert abs(listed["temp"]["expires_at"] - (time.time() + 86400)) < 60
    with env.db.session() as s:  # a day later
        from suanli.service.auth import authenticate

        try:
            authenticate(s, made["token"], time.time() + 86401)
        except Exception as exc:
            assert "expired" in str(exc)
        else:
            raise AssertionError("an expired token was accepted")
    assert status(lambda: env.client("admin").create_user("x", "viewer", expires_in_days=-1)) == 422


def test_secrets_reach_the_run_only_and_env_values_only_the_member(
    env: Env,  # noqa: F811
    tmp_path: Path,
) -> None:
    vault = Vault.open(tmp_path)
    app = create_app(Service(env.db, env.controller.policy, env.executor, vault=vault))
    env.controller.vault = vault
    with serving(app) as url:
        from suanli.sdk.client import Client

        with Client(url, env.tokens["lab-user"]) as lab, Client(url, env.tokens["viewer"]) as v:
            lab.submit(
                {
                    "id": "s1",
                    "member": "lab",
                    "accelerators": "H800:1",
                    "entrypoint": '[ "${API_KEY#sk-}" = 123 ] && echo "key ok; plain $PLAIN"',
                    "runtime_env": {"env_vars": {"PLAIN": "visible-to-lab"}},
                    "secrets": {"API_KEY": "sk-123"},
                }
            )
            mine, theirs = lab.job("s1"), v.job("s1")
            assert mine["spec"]["secrets"] == ["API_KEY"] and "sk-123" not in str(mine)
            assert mine["spec"]["runtime_env"]["env_vars"] == {"PLAIN": "visible-to-lab"}
            assert theirs["spec"]["runtime_env"]["env_vars"] == {"PLAIN": "(hidden)"}
            assert "sk-123" not in str(theirs) and "visible-to-lab" not in str(theirs)
            with env.db.session() as s:  # sealed at rest
                row = s.scalars(select(JobRow).where(JobRow.id == "s1")).one()
                assert row.secrets and "sk-123" not in row.secrets
                assert "sk-123" not in str(row.spec)
                assert vault.open_sealed(row.secrets) == {"API_KEY": "sk-123"}
            rows = run_until(env.controller, env.db, lambda r: r["s1"].phase == "SUCCEEDED")
            assert rows["s1"].phase == "SUCCEEDED"
            assert b"key ok; plain visible-to-lab" in lab.logs("s1")[0]
            audit = str(env.client("admin").audit(limit=1000))
            assert "sk-123" not in audit
    # a server that keeps no secrets refuses them, naming the field
    code = status(
        lambda: env.client("lab-user").submit(
            {"member": "lab", "accelerators": "H800:1", "secrets": {"K": "v"}}
        )
    )
    assert code == 422
