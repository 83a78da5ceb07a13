"""The REST API through the SDK, on a real database: every role against every endpoint,
and bad input answered with a 4xx that names the problem."""

import time

import httpx
import pytest

from suanli.sdk.client import ApiError

from ..stack import Stack, job, status


def test_whole_matrix_of_roles_and_endpoints(stack: Stack) -> None:
    stack.client("admin").submit(job("lab-j", "lab"))
    stack.client("admin").submit(job("corp-j", "corp", "Ascend910B:1"))
    node = {
        "id": "lab-extra",
        "site": "lab-site",
        "model": "H800",
        "devices": 8,
        "cpu": 32,
        "memory_gb": 256,
    }
    n = iter(range(1000))
    calls = {
        "whoami": lambda c: c.whoami(),
        "members": lambda c: c.members(),
        "nodes": lambda c: c.nodes(),
        "shares": lambda c: c.shares(),
        "queue": lambda c: c.queue(),
        "read lab job": lambda c: c.job("lab-j"),
        "lab logs": lambda c: c.logs("lab-j"),
        "submit for lab": lambda c: c.submit(job(f"lab-x{next(n)}", "lab")),
        "submit for corp": lambda c: c.submit(job(f"corp-y{next(n)}", "corp", "Ascend910B:1")),
        "cancel corp job": lambda c: c.cancel("corp-j"),
        "register lab node": lambda c: c.register_node({**node, "id": f"lab-extra-{next(n)}"}),
        "drain corp node": lambda c: c.drain("corp-910b"),
        "set share": lambda c: c.set_share_limits("lab", "H800-80GB", 4, 4),
        "audit": lambda c: c.audit(),
        "create lab user": lambda c: c.create_user(f"u{next(n)}", "member-user", "lab"),
    }
    allowed = {
        "admin": set(calls),
        "lab-admin": set(calls)
        - {"submit for corp", "cancel corp job", "drain corp node", "set share", "audit"},
        "lab-user": set(calls)
        - {
            "submit for corp",
            "cancel corp job",
            "drain corp node",
            "set share",
            "audit",
            "register lab node",
            "create lab user",
        },
        "corp-user": {
            "whoami",
            "members",
            "nodes",
            "shares",
            "queue",
            "submit for corp",
            "cancel corp job",
        },
        "startup-user": {"whoami", "members", "nodes", "shares", "queue"},
        "viewer": {"whoami", "members", "nodes", "shares", "queue", "read lab job"},
    }
    for user, ok in allowed.items():
        c = stack.client(user)
        for name, call in calls.items():
            code = status(lambda: call(c))  # noqa: B023
            if name == "cancel corp job" and user == "admin":
                continue  # after corp-user cancelled it, a repeat is a no-op 200 anyway
            expected_ok = name in ok
            assert (code < 400) == expected_ok, f"{user} {name}: {code}"
            if not expected_ok:
                # another member's job is invisible, not forbidden: 404
                hidden = name in {"read lab job", "lab logs", "cancel corp job"}
                assert code in ({404} if hidden and user != "viewer" else {403, 404}), (
                    f"{user} {name}: {code}"
                )
    for call in calls.values():
        assert status(lambda: call(stack.client(None))) == 401  # noqa: B023


def test_members_see_only_their_jobs_and_datasets(stack: Stack) -> None:
    stack.client("admin").submit({"jobs": [job("a1", "lab"), job("b1", "corp", "Ascend910B:1")]})
    assert [j["id"] for j in stack.client("lab-user").jobs()["items"]] == ["a1"]
    assert [j["id"] for j in stack.client("lab-user").jobs(member=["corp"])["items"]] == []
    assert {j["id"] for j in stack.client("viewer").jobs()["items"]} == {"a1", "b1"}
    assert [q["id"] for q in stack.client("corp-user").queue()] == ["b1"]
    assert [d["id"] for d in stack.client("startup-user").datasets()] == ["lab-data"]
    assert [d["id"] for d in stack.client("corp-user").datasets()] == ["corp-data"]
    assert stack.client("viewer").datasets() == []


def test_queue_positions_reasons_and_the_job_lifecycle(stack: Stack) -> None:
    lab = stack.client("lab-user")
    lab.submit({"jobs": [job(f"lab-q{i}", "lab", "H800:8") for i in range(3)]})
    queue = lab.queue()
    assert [(q["id"], q["position"]) for q in queue] == [(f"lab-q{i}", i) for i in range(3)]
    assert queue[0]["reason"] == "would start at the next pass"
    stack.controller.step()
    assert lab.job("lab-q0")["phase"] in ("ADMITTED", "RUNNING")
    assert "lab-q1" in [q["id"] for q in lab.queue()]
    deadline = time.time() + 30
    while lab.job("lab-q2")["phase"] != "SUCCEEDED" and time.time() < deadline:
        stack.controller.step()
        time.sleep(0.05)
    whole = b"".join(lab.follow_logs("lab-q2", poll_s=0.01))
    assert b"hi" in whole
    # bounded reads: a chunk at a time, or the end; done only once the end is read
    assert lab.logs("lab-q2", 0, limit=1) == (whole[:1], 1, False)
    assert lab.logs("lab-q2", 0, tail=2) == (whole[-2:], len(whole), True)
    assert b"".join(lab.read_logs("lab-q2")) == whole
    with pytest.raises(ApiError) as err:
        lab.logs("lab-q2", 0, limit=1 << 30)
    assert err.value.status == 422 and err.value.problems[0]["field"] == "query.limit"
    page = lab.jobs(limit=2)
    assert len(page["items"]) == 2 and page["total"] == 3
    rest = lab.jobs(limit=2, after=page["next_after"])
    assert [j["id"] for j in rest["items"]] == ["lab-q2"] and rest["next_after"] is None


@pytest.mark.parametrize(
    ("body", "ctype", "status_code", "field"),
    [
        ("accelerators: [unclosed", "application/yaml", 422, ""),
        (
            '{"member": "lab", "accelerators": "H800:100000000"}',
            "application/json",
            422,
            "accelerators",
        ),
        (
            '{"member": "lab", "accelerators": "H800:1", "colour": "red"}',
            "application/json",
            422,
            "colour",
        ),
        (
            '{"member": "lab; DROP TABLE jobs", "accelerators": "H800:1"}',
            "application/json",
            422,
            "member",
        ),
        (
            '{"id": "../../etc/passwd", "member": "lab", "accelerators": "H800:1"}',
            "application/json",
            422,
            "id",
        ),
        ("[1, 2", "application/json", 422, "body"),
        (
            '{"kind": "federated", "member": "lab", "app": "a", "rounds": 1, "participants": []}',
            "application/json",
            422,
            "participants",
        ),
        ("x" * (1 << 21), "application/json", 413, None),
    ],
)
def test_hostile_input_gets_a_4xx_that_names_the_problem(
    stack: Stack, body: str, ctype: str, status_code: int, field: str | None
) -> None:
    r = httpx.post(
        f"{stack.url}/api/v1/jobs",
        content=body.encode(),
        headers={"Content-Type": ctype, "Authorization": f"Bearer {stack.tokens['admin']}"},
    )
    assert r.status_code == status_code, r.text
    if field is not None:
        fields = [p["field"] for p in r.json()["problems"]]
        assert any(f.startswith(field) for f in fields), fields
    assert stack.client("admin").jobs()["total"] == 0


def test_nodes_register_drain_and_remove(stack: Stack) -> None:
    admin = stack.client("lab-admin")
    new = admin.register_node(
        {
            "id": "lab-2",
            "site": "lab-site",
            "model": "H800",
            "devices": 8,
            "cpu": 64,
            "memory_gb": 512,
        }
    )
    assert new["state"] == "active" and new["member"] == "lab"
    with pytest.raises(ApiError) as err:
        admin.register_node(
            {
                "id": "lab-3",
                "site": "lab-site",
                "model": "NoSuchChip",
                "devices": 8,
                "cpu": 64,
                "memory_gb": 512,
            }
        )
    assert err.value.status == 422 and "model" in err.value.problems[0]["field"]
    admin.submit(job("lab-busy", "lab", "H800:8"))
    stack.controller.step()
    busy_node = stack.client("admin").job("lab-busy")["placement"]["assignments"][0][0]
    with pytest.raises(ApiError) as err:
        admin.remove_node(busy_node)
    assert err.value.status == 409 and "drain it first" in err.value.message
    assert admin.drain(busy_node)["state"] == "draining"
    admin.remove_node("lab-2" if busy_node != "lab-2" else "lab-h800")
    assert len(admin.nodes()) == 2


def test_pool_drain_by_vendor_is_for_alliance_admins(stack: Stack) -> None:
    assert status(lambda: stack.client("lab-admin").drain_pool(vendor="NVIDIA")) == 403
    assert status(lambda: stack.client("admin").drain_pool(vendor="NVIDIA", model="H800")) == 422
    assert status(lambda: stack.client("admin").drain_pool(vendor="Nobody")) == 404
    r = stack.client("admin").drain_pool(model="Ascend910B")
    assert r == {"nodes": ["corp-910b"], "moving": [], "staying": []}
    states = {n["id"]: n["state"] for n in stack.client("viewer").nodes()}
    assert states == {"corp-910b": "draining", "lab-h800": "active"}
