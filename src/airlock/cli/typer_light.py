"""Typer, kept light at start-up: an ``--help`` that never loads pydantic.

Typer 0.29 coerces every parameter's value through a pydantic ``TypeAdapter``, except a bool
flag whose value is already a bool. Its ``--help`` flag has no default, so each group a command
line passes through (``airlock`` in ``airlock plan --help``) builds an adapter for it, and that
imports pydantic: about 0.1-0.2 s here, more than the rest of ``--help``. Giving the flag the
default it means (False) lets Typer skip that; nothing else changes.

:class:`App` is a ``typer.Typer`` whose groups and commands use these classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType


def _help_off_by_default(option: TyperOption | None) -> TyperOption | None:
    if option is not None and option.default is None:
        option.default = False
    return option


class LightGroup(TyperGroup):
    def get_help_option(self, ctx: Any) -> TyperOption | None:
        return _help_off_by_default(super().get_help_option(ctx))


class LightCommand(TyperCommand):
    def get_help_option(self, ctx: Any) -> TyperOption | None:
        return _help_off_by_default(super().get_help_option(ctx))


class App(typer.Typer):
    """``typer.Typer`` with :class:`LightGroup` and :class:`LightCommand`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=LightGroup, **kwargs)

    def command(
        self, *args: Any, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", LightCommand)
        return super().command(*args, **kwargs)
