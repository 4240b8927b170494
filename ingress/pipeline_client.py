"""How both doors reach the deployed pipeline: `VoicePipeline`'s own methods over a Serve handle.

The Pipeline deployment is a `VoicePipeline`, so its API is written once, there. This client only
turns `client.method(...)` into `handle.method.remote(...)` (awaitable), and streams the async
generator methods (`process_voice`) through a streaming handle. In unit tests the doors are given
a plain `VoicePipeline` over fake stages instead: the same methods, no Ray.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

from ray.serve.handle import DeploymentHandle

from serve_app.pipeline.voice_pipeline import VoicePipeline


class PipelineClient:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)

    def __getattr__(self, name: str) -> Any:
        method = getattr(VoicePipeline, name, None)
        if name.startswith("_") or not inspect.iscoroutinefunction(method) and not inspect.isasyncgenfunction(method):
            raise AttributeError(f"the pipeline has no remote method {name!r}")
        handle = self._stream if inspect.isasyncgenfunction(method) else self._handle
        return getattr(handle, name).remote


def pipeline_client(handle: DeploymentHandle) -> VoicePipeline:
    """Typed as the class it forwards to, so the doors are written (and checked) against one API."""
    return cast(VoicePipeline, PipelineClient(handle))
