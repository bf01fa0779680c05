"""``PUT /api/v1/content``: upload a file body as a stream, then name it in a plan's ``write`` by
its SHA-256 and size. The body is never whole in memory: it goes in chunks from the socket into
the content store (:meth:`airlock.workspace.Workspace.upload`), hashed as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from airlock.content import SHA256_PATTERN
from airlock.service.deps import ACTION_ERRORS, CallerDep, WorkspaceDep

CONTENT_PATH = "/api/v1/content"

router = APIRouter(tags=["native"])


class ContentOut(BaseModel):
    """The stored body: name it in a plan as ``{"op": "write", "path": ..., "sha256": ...,
    "size": ...}`` (only a plan submitted with the same token may)."""

    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)


@router.put(
    CONTENT_PATH,
    status_code=201,
    summary="Upload a file body (streamed; any size up to the policy's write limit)",
    responses=ACTION_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_content(ws: WorkspaceDep, who: CallerDep, request: Request) -> ContentOut:
    body: AsyncIterator[bytes] = request.stream().__aiter__()

    async def next_chunk() -> bytes | None:
        try:
            return await body.__anext__()
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:  # runs in a worker thread; each chunk read on the loop
        while True:
            chunk = anyio.from_thread.run(next_chunk)
            if chunk is None:
                return
            if chunk:
                yield chunk

    blob = await anyio.to_thread.run_sync(lambda: ws.upload(chunks(), by=who))
    return ContentOut(sha256=blob.sha256, size=blob.size)
