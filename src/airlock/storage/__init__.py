"""Storage backends, registered by name the way a third-party backend would register itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from airlock.errors import InputError
from airlock.storage.base import Entry, Kind, Storage

BackendFactory = Callable[[Path], Storage]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    _BACKENDS[name] = factory


def open_storage(name: str, root: Path) -> Storage:
    try:
        factory = _BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(_BACKENDS))
        raise InputError(f"unknown storage backend {name!r}", hint=f"use one of: {known}") from None
    return factory(root)


def _local(root: Path) -> Storage:
    from airlock.storage.local import LocalStorage

    return LocalStorage(root)


def _memory(root: Path) -> Storage:
    from airlock.storage.memory import MemoryStorage

    return MemoryStorage()


register_backend("local", _local)
register_backend("memory", _memory)

__all__ = ["Entry", "Kind", "Storage", "open_storage", "register_backend"]
