"""What routes depend on: the replica's door (pipeline, settings, ZMQ door).

Routes are plain functions on one APIRouter per area (`*_routes.py`); they reach the pipeline, the
settings and the ZMQ door through these dependencies, which read the `HttpDoor` the app was built
for (`app.state.door`, set by `ingress.http.app.create_app`). A unit test builds the app over a door
holding a plain `VoicePipeline` and runs the routes without Ray. Who the caller is and what it may do
is `ingress.http.access`.
"""

from typing import Annotated

from fastapi import Depends, Request
from ray.serve.handle import DeploymentHandle

from ingress.http.door import HttpDoor
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings


def get_door(request: Request) -> HttpDoor:
    """The `HttpDoor` serving this request (in Serve: the `HttpIngress` replica itself)."""
    return request.app.state.door


def get_pipeline(door: Annotated[HttpDoor, Depends(get_door)]) -> VoicePipeline:
    return door.pipeline


def get_settings(door: Annotated[HttpDoor, Depends(get_door)]) -> Settings:
    return door.settings


def get_gateway(door: Annotated[HttpDoor, Depends(get_door)]) -> DeploymentHandle | None:
    return door.gateway


DoorDep = Annotated[HttpDoor, Depends(get_door)]
PipelineDep = Annotated[VoicePipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[DeploymentHandle | None, Depends(get_gateway)]
