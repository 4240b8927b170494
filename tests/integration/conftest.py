from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.settings import Settings
from tests.fixtures.gateway_client import GatewayClient, connected_client
from tests.fixtures.ports import free_ports
from tests.fixtures.ray_cluster import RayCluster
from tests.fixtures.servers import ServerProcess, start_server
from tests.fixtures.speech import FRENCH_5S, espeak_wav
from tests.integration.local_graph import LocalGraph


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


@pytest.fixture(scope="module")
def sender_wav(speech_dir: Path) -> Path:
    """A French voice message (espeak-ng, about 5 s), the sender every voice test translates."""
    return espeak_wav(FRENCH_5S, speech_dir / "sender_fr.wav")


@pytest.fixture(scope="module")
def whisper() -> Any:
    """A real Whisper (beam 5) that checks what the service said."""
    from deployments.transcription.transcriber import Transcriber

    return Transcriber(cache_dir=Settings().cache_dir, beam_size=5)


@pytest.fixture(scope="module")
def encoder() -> Any:
    """The real GE2E speaker encoder, to measure how close a voice is to the sender's."""
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device="cpu", verbose=False)


@pytest.fixture(scope="session")
def graph_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real Redis the shared graph caches in; a test may kill and restart it on the same port."""
    server = start_server("redis", tmp_path_factory.mktemp("graph-redis"))
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def graph_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real MongoDB-wire server (secantusdb) the shared graph keeps voice profiles in."""
    server = start_server("mongo", tmp_path_factory.mktemp("graph-mongo"), durable=True)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def graph_extra_settings(graph_redis: ServerProcess, graph_mongo: ServerProcess) -> dict[str, Any]:
    """The shared graph runs with its real stores, as production does (URLs by the usual names)."""
    return {"REDIS_URL": graph_redis.url, "MONGODB_URL": graph_mongo.url}


@pytest.fixture(scope="session")
def _local_graph_state() -> dict[str, LocalGraph]:
    """Holds the local graph once deployed, so a test that deploys another app can put it back."""
    return {}


@pytest.fixture(scope="session")
def local_graph(
    ray_cluster: RayCluster,
    tmp_path_factory: pytest.TempPathFactory,
    graph_extra_settings: dict[str, Any],
    _local_graph_state: dict[str, LocalGraph],
) -> LocalGraph:
    """The full graph, deployed once per session (~1-2 min) and shared by every module that serves requests.

    Deliberately not shut down per module: the HTTP and ZMQ suites reuse it. A test that deploys a
    different config replaces the whole Serve application set (`serve deploy` is declarative), so such
    tests take `exclusive_cluster`, which re-deploys this graph afterwards if it had been deployed.
    """
    pull, pub = free_ports(2)
    graph = LocalGraph(
        http_url=f"http://127.0.0.1:{ray_cluster.http_port}",
        zmq_pull_port=pull,
        zmq_pub_port=pub,
        cluster=ray_cluster,
        settings={"zmq_host": "127.0.0.1", "zmq_pull_port": pull, "zmq_pub_port": pub, **graph_extra_settings},
        config_dir=tmp_path_factory.mktemp("local-graph"),
    )
    graph.deploy()
    _local_graph_state["graph"] = graph
    return graph


@pytest.fixture
def exclusive_cluster(ray_cluster: RayCluster, _local_graph_state: dict[str, LocalGraph]) -> Iterator[RayCluster]:
    """For a test that deploys its own app (and shuts it down): the shared local graph comes back after it."""
    yield ray_cluster
    graph = _local_graph_state.get("graph")
    if graph is not None:
        graph.deploy()


@pytest.fixture
def replaced_cluster(
    ray_cluster: RayCluster, _local_graph_state: dict[str, LocalGraph]
) -> Iterator[Callable[[RayCluster], RayCluster]]:
    """For a test that needs a cluster of another shape (e.g. two nodes): only one Ray cluster may run
    on this machine, so the session's head is stopped while the test's own runs, then started again
    (and the shared local graph re-deployed on it if it had been)."""
    own: list[RayCluster] = []

    def start(cluster: RayCluster) -> RayCluster:
        ray_cluster.stop()
        own.append(cluster)
        return cluster.start()

    yield start
    for cluster in own:
        cluster.stop()
    if own:
        ray_cluster.start()
        graph = _local_graph_state.get("graph")
        if graph is not None:
            graph.deploy()


@pytest.fixture
async def gateway(local_graph: LocalGraph) -> AsyncIterator[GatewayClient]:
    """A ZMQ client of the shared local graph's gateway, connected (ping answered)."""
    client = await connected_client(local_graph.zmq_pull_port, local_graph.zmq_pub_port, timeout_s=120)
    try:
        yield client
    finally:
        client.close()
