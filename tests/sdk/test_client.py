"""The SDK against a served API: errors as :class:`ApiError` with the status, the domain
error and every problem's field; pages walked to the end; logs followed until the job ends;
YAML submitted as text; an unreachable server as a ``ConnectionError``."""

from __future__ import annotations

import pytest

from suanli.sdk.client import ApiError, Client

from ..live import free_port
from ..stack import Stack, job
from ..stepping import run_until


def test_an_invalid_job_is_an_api_error_naming_every_field(stack: Stack) -> None:
    with pytest.raises(ApiError) as info:
        stack.client("lab-user").submit(
            {"member": "lab", "accelerators": "H800:0", "priority": 99999}
        )
    err = info.value
    assert err.status == 422 and err.error == "ValidationError"
    assert {p["field"] for p in err.problems} >= {"accelerators", "priority"}
    assert "accelerators:" in str(err)


def test_another_members_job_is_not_found(stack: Stack) -> None:
    stack.client("admin").submit(job("corp-x", "corp", "Ascend910B:1"))
    with pytest.raises(ApiError) as info:
        stack.client("lab-user").job("corp-x")
    assert info.value.status == 404 and info.value.error == "NotFoundError"


def test_iter_jobs_walks_every_page(stack: Stack) -> None:
    lab = stack.client("lab-user")
    lab.submit({"jobs": [job(f"lab-p{i:02d}", "lab") for i in range(12)]})
    assert [j["id"] for j in lab.iter_jobs()] == [f"lab-p{i:02d}" for i in range(12)]
    first = lab.jobs(limit=5)
    assert len(first["items"]) == 5 and first["total"] == 12 and first["next_after"]


def test_yaml_text_is_submitted_and_logs_are_followed_to_the_end(stack: Stack) -> None:
    lab = stack.client("lab-user")
    lab.submit("id: lab-y1\nmember: lab\naccelerators: H800:1\nentrypoint: echo one; echo two\n")
    run_until(stack.controller, stack.db, lambda r: r["lab-y1"].phase == "SUCCEEDED")
    assert b"".join(lab.follow_logs("lab-y1", poll_s=0.01)) == b"one\ntwo\n"
    data, offset, done = lab.logs("lab-y1", 4)
    assert data == b"two\n" and offset == 8 and done


def test_an_unreachable_server_is_a_connection_error() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", "t", timeout=2) as c,
        pytest.raises(ConnectionError),
    ):
        c.health()
