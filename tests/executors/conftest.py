"""A real Ray cluster on this machine, shared by every test of the executors that needs one
(starting one takes a while): four Ray nodes declaring four suanli nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from suanli.executors.ray import node_resource
from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec

from ..slurm import LocalSlurm, missing


def labels(node: str, model: str, member: str) -> dict[str, str]:
    return {"suanli.io/node": node, "suanli.io/model": model, "suanli.io/member": member}


#: the index of each suanli node's Ray node in the cluster
RAY_INDEX = {"hx-1": 0, "pc-1": 1, "as-1": 2, "as-2": 3}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster(
        [
            RayNodeSpec({"GPU": 8, node_resource("hx-1"): 8}, labels("hx-1", "H800-80GB", "hx")),
            RayNodeSpec({"MLU": 8, node_resource("pc-1"): 8}, labels("pc-1", "MLU370-X8", "pc")),
            RayNodeSpec({"NPU": 4, node_resource("as-1"): 4}, labels("as-1", "Ascend910B", "as")),
            RayNodeSpec({"NPU": 4, node_resource("as-2"): 4}, labels("as-2", "Ascend910B", "as")),
        ],
        stop_grace_s=10,
    )
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def slurm() -> Iterator[LocalSlurm]:
    """A real two-node Slurm cluster (``sl-1`` and ``sl-2``, each with 8 Ascend 910B and 4
    MLU370 as count-only generic resources). Where it cannot start, the tests that need it
    fail in CI (``SUANLI_REQUIRE_SLURM=1``: it installs Slurm) and are skipped elsewhere, with
    the reason."""
    why = missing()
    if why:
        if os.environ.get("SUANLI_REQUIRE_SLURM"):
            pytest.fail(f"Slurm cannot start: {why}")
        pytest.skip(why)
    with LocalSlurm(("sl-1", "sl-2")) as cluster:
        yield cluster
