"""One lazy registry for every model family's backends (translation, synthesis, voice cloning).

A registry maps a backend name to a ``"package.module:attr"`` path that is imported with importlib
only when that backend is looked up, so importing a family costs nothing (no torch, onnxruntime or
ctranslate2 until a backend is chosen). Factories may also be registered directly (tests register
fakes). An unknown name is a PrerequisiteError that lists the known ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from serve_app.errors import PrerequisiteError

Factory = Callable[..., Any]


class BackendRegistry(MutableMapping[str, Factory]):
    """Backend name -> factory; entries are lazy ``"module:attr"`` paths or ready factories.

    ``registry[name]`` imports the module of a path entry and returns its attribute, passed through
    ``adapt`` when the family's factory signature differs from what the attribute is (a class, say).
    Registered factories are returned as they are. ``resolve(name)`` is the same lookup, but an
    unknown name raises PrerequisiteError instead of KeyError.
    """

    def __init__(self, kind: str, targets: Mapping[str, str], *, adapt: Callable[[Any], Factory] | None = None) -> None:
        self.kind = kind
        self._adapt = adapt
        self._entries: dict[str, str | Factory] = dict(targets)

    def register(self, name: str, target: str | Factory) -> None:
        """Add (or replace) ``name``: a ``"package.module:attr"`` path or a ready factory."""
        self._entries[name] = target

    def names(self) -> list[str]:
        """The known backend names, sorted."""
        return sorted(self._entries)

    def resolve(self, name: str) -> Factory:
        """The factory registered as ``name``; PrerequisiteError naming the known ones if none is."""
        if name not in self._entries:
            raise PrerequisiteError(f"unknown {self.kind} backend {name!r}; choose one of {self.names()}")
        return self[name]

    def __getitem__(self, name: str) -> Factory:
        entry = self._entries[name]
        if not isinstance(entry, str):
            return entry
        module, _, attr = entry.partition(":")
        found = getattr(importlib.import_module(module), attr)
        return self._adapt(found) if self._adapt is not None else found

    def __setitem__(self, name: str, factory: str | Factory) -> None:
        self.register(name, factory)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries  # never imports a backend

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"BackendRegistry({self.kind!r}, {self.names()})"
