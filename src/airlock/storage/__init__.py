"""Storage backends, registered by name the way a third-party backend would register itself.

A workspace's files live at a *location*: a folder path (the ``local`` backend) or an address
``SCHEME://...`` whose scheme names the backend that reads it (``gs://BUCKET[/prefix]`` for
``gcs``, ``memory://`` for ``memory``).
"""

from __future__ import annotations

from collections.abc import Callable

from airlock.errors import InputError
from airlock.storage.base import Entry, Kind, Storage

BackendFactory = Callable[[str], Storage]
"""Opens a location (the whole string, scheme included) as a :class:`Storage`."""

_BACKENDS: dict[str, BackendFactory] = {}
_SCHEMES: dict[str, str] = {}


def register_backend(name: str, factory: BackendFactory, *, scheme: str | None = None) -> None:
    """Make ``name`` a backend; locations ``SCHEME://...`` (``scheme`` or ``name``) open with it."""
    _BACKENDS[name] = factory
    _SCHEMES[scheme or name] = name


def backend_of(location: str) -> str:
    """The name of the backend that opens ``location``."""
    scheme, sep, _rest = location.partition("://")
    if not sep:
        return "local"
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise InputError(
            f"no storage backend reads {scheme}:// addresses ({location!r})",
            hint=f"use a folder path or one of: {known}",
        )
    return _SCHEMES[scheme]


def open_storage(location: str) -> Storage:
    return _BACKENDS[backend_of(location)](location)


def _local(location: str) -> Storage:
    from pathlib import Path

    from airlock.storage.local import LocalStorage

    return LocalStorage(Path(location.removeprefix("file://")))


def _memory(_location: str) -> Storage:
    from airlock.storage.memory import MemoryStorage

    return MemoryStorage()


def _gcs(location: str) -> Storage:
    from airlock.storage.gcs import GcsStorage

    try:
        return GcsStorage(location)
    except ImportError as exc:
        raise InputError(
            f"{location!r} is in Google Cloud Storage, and the GCS client is not installed ({exc})",
            hint="pip install 'airlock[gcs]'",
        ) from None


register_backend("local", _local, scheme="file")
register_backend("memory", _memory)
register_backend("gcs", _gcs, scheme="gs")

__all__ = ["Entry", "Kind", "Storage", "backend_of", "open_storage", "register_backend"]
