from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ray_cluster import RayCluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One real Ray head for the session, with logical GPUs so fractional-GPU placement is real."""
    cluster = RayCluster(num_cpus=4, num_gpus=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")
