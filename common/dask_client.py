"""A Dask client for either stage (extraction shards, ablation runs): one helper, no stage's module."""
from __future__ import annotations

import logging
from typing import Any


def connect(scheduler: str | None, workers: int) -> Any:
    """A Dask client: an existing scheduler at ADDRESS, or a LocalCluster of worker processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler and scheduler != "local":
        return Client(scheduler)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.WARNING)  # any free port
    return Client(cluster)


def gpu_resources(client: Any) -> dict[str, int]:
    """`{'GPU': 1}` when the cluster's workers declare GPUs, else no resource restriction."""
    workers = client.scheduler_info().get("workers", {}).values()
    return {"GPU": 1} if any(w.get("resources", {}).get("GPU") for w in workers) else {}
