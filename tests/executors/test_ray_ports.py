"""The ports a local Ray cluster hands its components are distinct (Ray refuses to start a node
whose two components share one: seen when the kernel offered a just-probed port again)."""

import shutil

from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec


def test_no_two_components_of_a_cluster_get_one_port() -> None:
    cluster = LocalRayCluster([RayNodeSpec({"CPU": 1})])
    try:
        ports = [cluster.gcs_port, cluster.dashboard_port, *cluster.metrics_ports]
        ports += [cluster._port() for _ in range(500)]
        assert len(set(ports)) == len(ports)
    finally:
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
