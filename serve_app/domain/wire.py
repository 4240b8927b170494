"""The base of door-neutral results: snake_case fields, camelCase by alias, optional fields omitted.

The HTTP routes and the gateway's voice-profile family speak snake_case, the ZMQ voice API camelCase
(PROTOCOL.md §2); each door picks with `to_wire(camel=...)`, the pipeline never decides. A field
named in `omit_if_none` is left out when it is None (an optional field of the gateway's types is
absent, not null), at every level of nesting.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializationInfo, SerializerFunctionWrapHandler, model_serializer
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    omit_if_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        for name in self.omit_if_none:
            if getattr(self, name) is None:
                data.pop((fields[name].alias or name) if info.by_alias else name, None)
        return data

    def to_wire(self, camel: bool = False) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=camel)
