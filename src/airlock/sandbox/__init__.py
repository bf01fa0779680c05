"""Sandbox backends, registered by name the way a third-party backend would register itself."""

from __future__ import annotations

from collections.abc import Callable

from airlock.errors import InputError, SandboxUnavailableError
from airlock.sandbox.base import Limits, Request, Sandbox

__all__ = ["Limits", "Request", "Sandbox", "backend_names", "get_sandbox", "register_sandbox"]

_BACKENDS: dict[str, Callable[[], Sandbox]] = {}


def register_sandbox(name: str, factory: Callable[[], Sandbox]) -> None:
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_sandbox(name: str) -> Sandbox:
    """The backend called ``name``, ready to run here, or an error that says what to install."""
    try:
        backend = _BACKENDS[name]()
    except KeyError:
        raise InputError(
            f"unknown sandbox {name!r}", hint=f"use one of: {', '.join(backend_names())}"
        ) from None
    problem = backend.problem()
    if problem is not None:
        raise SandboxUnavailableError(f"the {name} sandbox cannot run here: {problem}")
    return backend


def _bwrap() -> Sandbox:
    from airlock.sandbox.bwrap import Bwrap

    return Bwrap()


def _gvisor() -> Sandbox:
    from airlock.sandbox.gvisor import Gvisor

    return Gvisor()


register_sandbox("bwrap", _bwrap)
register_sandbox("gvisor", _gvisor)
