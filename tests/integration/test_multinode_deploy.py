"""`serve deploy serve_config.yaml` (the production profile) on a real two-node Ray cluster.

The head starts with no GPU (`ray start --head --num-gpus=0`); a second node joins it as its own
raylet and process group (`ray start --address=HEAD --num-gpus=1`, a logical GPU). The production
placement must hold: the ZMQ ingress on the head (its `node:__internal_head__` resource: the gateway
is configured with the head's address), the four model deployments on the GPU node, where their
fractional GPUs fit. Then one text request through each door.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.gateway_client import connected_client, new_id
from tests.fixtures.ports import free_ports
from tests.fixtures.ray_cluster import ROOT, RayCluster, wait_http_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

MODEL_DEPLOYMENTS = {"Transcriber", "Translator", "Synthesizer", "VoiceCloner"}
SERVICE_KEY = "it-multinode-key"


async def zmq_translation(pull_port: int, pub_port: int) -> dict:
    client = await connected_client(pull_port, pub_port, timeout_s=120)
    try:
        task = new_id()
        await client.send({"type": "translation", "taskId": task, "messageId": new_id("m"),
                           "text": "Merci beaucoup, à demain !", "sourceLanguage": "fr", "targetLanguages": ["en"],
                           "conversationId": "c-multinode", "modelType": "basic",
                           "timestamp": int(time.time() * 1000)})
        return (await client.wait_for(lambda e: e.get("taskId") == task, 180)).body
    finally:
        client.close()


def test_production_config_on_two_nodes(
    replaced_cluster: Callable[[RayCluster], RayCluster], tmp_path: Path
) -> None:
    cluster = replaced_cluster(RayCluster(num_cpus=1, num_gpus=0))
    cluster.add_worker_node(num_cpus=4, num_gpus=1)
    nodes = cluster.node_ids()
    assert sorted(nodes.values()) == [False, True], nodes
    head = next(node for node, is_head in nodes.items() if is_head)

    pull, pub = free_ports(2)
    # As in the GPU-placement test: the NLLB folder of the production profile is not on this machine,
    # so the embedded translator stands in; keys come through the settings as an operator's secret
    # store would put them; the ZMQ door stays on loopback (one machine) with loopback as its allow-list.
    port = cluster.deploy(
        ROOT / "serve_config.yaml", tmp_path,
        settings={"translator_backend": "gemma", "translator_model": None, "api_keys": [SERVICE_KEY],
                  "zmq_host": "127.0.0.1", "zmq_allowed_peers": ["127.0.0.1/32"],
                  "zmq_pull_port": pull, "zmq_pub_port": pub},
    )
    try:
        status = cluster.wait_running(timeout_s=600)
        app = status["applications"]["translator"]
        assert app["status"] == "RUNNING"
        for name, info in app["deployments"].items():
            assert info["status"] == "HEALTHY" and set(info["replica_states"]) == {"RUNNING"}, (name, info)

        replicas = cluster.replicas()
        placed = {name: {r["node_id"] for r in items if r["state"] == "RUNNING"} for name, items in replicas.items()}
        assert placed["ZmqIngress"] == {head}, yaml.safe_dump(placed)
        for name in MODEL_DEPLOYMENTS:
            assert placed[name] and head not in placed[name], (name, placed)  # the GPU node only

        base = f"http://127.0.0.1:{port}"
        wait_http_ready(base)
        r = httpx.post(f"{base}/translate", headers={"X-API-Key": SERVICE_KEY}, timeout=180,
                       json={"text": "Bonjour, comment allez-vous ?", "source_language": "fr", "target_language": "en"})
        assert r.status_code == 200, r.text
        assert r.json()["translated_text"].strip()
        assert httpx.post(f"{base}/translate", json={"text": "Bonjour", "target_language": "en"},
                          timeout=60).status_code == 401  # the production profile requires a key

        event = asyncio.run(zmq_translation(pull, pub))
        assert event["type"] == "translation_completed", event
        assert event["result"]["translatedText"].strip()
    finally:
        cluster.shutdown_apps()
