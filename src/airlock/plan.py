"""The plan format: an ordered list of file operations inside one scope.

A plan is plain, immutable data. Its JSON Schema is published as ``schema/plan.schema.json``
(regenerate with ``airlock schema``). Its digest is the SHA-256 of its canonical JSON, so an
approval can be bound to the exact content that was reviewed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from typing import Annotated, Any, Literal

import pydantic
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from airlock import paths
from airlock.content import SHA256_PATTERN, Blob, ContentStore
from airlock.errors import PlanFormatError, UnsafePathError


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(
        "",
        max_length=2000,
        description="Why this operation is there, in a sentence for the person who reviews it "
        "(shown beside it); the plan's description stays the summary.",
    )

    @model_serializer(mode="wrap")
    def _without_unused_fields(
        self, handler: pydantic.SerializerFunctionWrapHandler
    ) -> dict[str, Any]:
        # A plan that does not use a field added later dumps (and so digests) exactly as it
        # did before that field existed: "parents" when false, a write's store fields when unset,
        # "reason" when empty.
        data: dict[str, Any] = handler(self)
        if data.get("parents") is False:
            del data["parents"]
        if data.get("reason") == "":
            del data["reason"]
        if "sha256" in data and data["sha256"] is None:
            data.pop("sha256")
            data.pop("size", None)
        return data


def _parents_field(what: str) -> Any:
    return Field(
        False,
        description=f"Create every missing folder between the scope and {what} first, as "
        "mkdir changes of the plan (checked, reported and rolled back like any other).",
    )


def _check_path(value: str, info: pydantic.ValidationInfo) -> str:
    try:
        paths.parse(value, stored=bool(info.context and info.context.get("stored")))
    except UnsafePathError as exc:
        raise ValueError(f"{exc.message} ({exc.hint})") from None
    return value


SafePath = Annotated[
    str,
    Field(
        min_length=1,
        description="Relative to the plan's scope, '/'-separated; no '..', no leading '/'.",
        examples=["Medical Records/2024-07-13 ER visit.pdf"],
    ),
    pydantic.AfterValidator(_check_path),
]


class Mkdir(_Op):
    """Create a folder (its parent must exist, be made earlier in the plan, or ``parents``)."""

    op: Literal["mkdir"]
    path: SafePath
    parents: bool = Field(
        False,
        description="Like `mkdir -p`: create every missing folder between the scope and it too "
        "(as mkdir changes of the plan, checked, reported and rolled back like any other), and "
        "take a folder that exists already as nothing to do (without this, that is a warning; "
        "either way the folder is left as it is).",
    )


class Write(_Op):
    """Write a whole file from UTF-8 ``text``, ``base64`` bytes, or a body in Airlock's content
    store named by ``sha256`` with its ``size`` (exactly one of the three)."""

    op: Literal["write"]
    path: SafePath
    text: str | None = None
    base64: str | None = None
    sha256: str | None = Field(
        None,
        pattern=SHA256_PATTERN,
        description="A body in Airlock's content store (with 'size'): one the submitter uploaded "
        "(PUT /api/v1/content) or a sandboxed run staged. Inline 'text' and 'base64' bodies are "
        "moved into the store at submit, and the stored plan names them this way.",
    )
    size: int | None = Field(None, ge=0, description="The size of the stored body, in bytes.")
    overwrite: bool = Field(False, description="Allow replacing an existing file (kept aside).")
    parents: bool = _parents_field("the file")

    @model_validator(mode="after")
    def _one_body(self) -> Write:
        if [self.text, self.base64, self.sha256].count(None) != 2:
            raise ValueError(
                "give exactly one of 'text' or 'base64' "
                "(or, for a body a sandboxed run stored, 'sha256' with 'size')"
            )
        if (self.size is None) != (self.sha256 is None):
            raise ValueError("'size' goes with 'sha256', and only with it")
        if self.text is not None:
            try:
                self.text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: cannot be written, hashed or stored
                raise ValueError(
                    "'text' is not valid Unicode (it holds a lone surrogate); "
                    "send such content as 'base64'"
                ) from None
        if self.base64 is not None:
            try:
                base64.b64decode(self.base64, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"'base64' is not valid base64: {exc}") from None
        return self

    @property
    def stored(self) -> Blob | None:
        """The content-store blob this write names, or None for an inline body."""
        if self.sha256 is None or self.size is None:
            return None
        return Blob(self.sha256, self.size)

    def content(self) -> bytes:
        """The inline body's bytes (a stored body is read from the store: see :meth:`head`)."""
        if self.text is not None:
            return self.text.encode("utf-8")
        if self.base64 is None:
            raise ValueError("this write's body is in the content store; read it from there")
        return base64.b64decode(self.base64, validate=True)

    def head(self, store: ContentStore | None, limit: int) -> bytes:
        """At most the first ``limit`` bytes of the body (b"" if it is stored and no store is
        given), for previews."""
        blob = self.stored
        if blob is None:
            return self.content()[:limit]
        return b"" if store is None else store.head(blob.sha256, limit)


class Copy(_Op):
    """Copy a file or folder to a new path."""

    op: Literal["copy"]
    source: SafePath
    destination: SafePath
    overwrite: bool = Field(False, description="Allow replacing an existing file (kept aside).")
    parents: bool = _parents_field("the destination")


class Move(_Op):
    """Move or rename a file, folder or symlink (a symlink is moved as an entry)."""

    op: Literal["move"]
    source: SafePath
    destination: SafePath
    overwrite: bool = Field(False, description="Allow replacing an existing file (kept aside).")
    parents: bool = _parents_field("the destination")


class Delete(_Op):
    """Delete a file, symlink or whole folder. It is kept aside until `airlock gc` purges it."""

    op: Literal["delete"]
    path: SafePath


Operation = Annotated[Mkdir | Write | Copy | Move | Delete, Field(discriminator="op")]


class Plan(BaseModel):
    """An ordered list of operations inside one scope, with who wants it and why."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Airlock plan")

    scope: SafePath = Field(
        description="Workspace-relative folder the plan may touch, e.g. 'projects/Case-A'.",
        examples=["projects/Abby-Sitgraves-MVA-7-13-2024"],
    )
    description: str = Field("", max_length=10_000)
    author: str = Field("unknown", min_length=1, max_length=200)
    operations: list[Operation] = Field(min_length=1)
    require_approval: bool = Field(
        False,
        description="Ask for a person's approval even where policy would not need one. "
        "(False never bypasses the policy.)",
    )

    @field_validator("scope")
    @classmethod
    def _scope_is_a_path(cls, value: str, info: pydantic.ValidationInfo) -> str:
        # Refuses '.airlock' at any depth, like every other path (but see stored_plan).
        paths.parse(value, "scope", stored=bool(info.context and info.context.get("stored")))
        return value

    @property
    def scope_path(self) -> paths.RelPath:
        return paths.parse(self.scope, "scope", stored=True)  # checked when it was made

    def canonical_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_plan(data: object) -> Plan:
    """Validate untrusted data (a dict or JSON text) into a Plan, with errors a person can fix."""
    try:
        if isinstance(data, str | bytes):
            return Plan.model_validate_json(data)
        return Plan.model_validate(data)
    except pydantic.ValidationError as exc:
        details = [f"{_where(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)]
        raise PlanFormatError(
            f"the plan is not valid ({exc.error_count()} problem(s))",
            hint="fix the fields listed; the format is in schema/plan.schema.json",
            details=details,
        ) from None
    except UnsafePathError:
        raise


def _where(loc: tuple[int | str, ...]) -> str:
    """Where in a plan a problem is, for a person: operations count from 1, as everywhere."""
    if len(loc) >= 2 and loc[0] == "operations" and isinstance(loc[1], int):
        where = f"operation {loc[1] + 1}" + (f" ({loc[2]})" if len(loc) > 2 else "")
        rest = ".".join(str(part) for part in loc[3:])
        return f"{where}, {rest}" if rest else where
    return ".".join(str(part) for part in loc) or "plan"


def new_plan_id() -> str:
    return "pl_" + secrets.token_hex(8)


PLAN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""What :func:`check_plan_id` accepts, as a regular expression (for the OpenAPI document)."""


def check_plan_id(plan_id: str) -> str:
    # ASCII only (no look-alike ids), and starting with a letter or digit: an id of dots
    # ('..') would vanish from a URL path, which clients normalise.
    if (
        not (1 <= len(plan_id) <= 100)
        or not plan_id.isascii()
        or not plan_id[0].isalnum()
        or not all(c.isalnum() or c in "-_." for c in plan_id)
    ):
        raise PlanFormatError(
            f"plan id {plan_id!r} is not allowed",
            hint="use 1-100 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit",
        )
    return plan_id


def json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://airlock.invalid/schema/plan.schema.json"
    return schema


def touched_paths(op: Mkdir | Write | Copy | Move | Delete) -> list[str]:
    if isinstance(op, Copy | Move):
        return [op.source, op.destination]
    return [op.path]


def stored_plan(body: str) -> Plan:
    """A plan as recorded (its canonical JSON): read with the rules it was accepted under, so a
    plan stored before a path rule was tightened still lists and shows (validation refuses it)."""
    return Plan.model_validate_json(body, context={"stored": True})
