"""The review page's file previews: open any file a plan's change touches, before or after it.

``GET /ui/plans/{id}/files/{n}/{side}`` is the preview of change ``n``'s file (``before`` or
``after``, :mod:`airlock.plan_files` finds its bytes), with its PDF pages (``…/pages/{p}``) and
picture (``…/picture``) drawn by :mod:`airlock.previews`, and ``…/download`` for the file itself.
Signed-in reviewers only, like every page. Every answer carries the page's security headers; a
picture or a download also carries ``sandbox`` in its CSP, a download is ``attachment`` as
``application/octet-stream`` (never shown by the browser as what it claims to be). A file that
cannot be previewed is said so on the page (``PreviewError``), with the download link.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from airlock import previews
from airlock.errors import AirlockError, NotFoundError, PreviewError
from airlock.plan_files import FileSide, file_side, sides_of
from airlock.service.deps import workspace as _ws
from airlock.service.web import SECURITY_HEADERS, _error_page, _page, _to_sign_in, _who

router = APIRouter(prefix="/ui", include_in_schema=False)

BINARY_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
}
PAGES_LISTED = 300
"""The most PDF pages a preview lists (each drawn when scrolled to)."""


def _side(request: Request, plan_id: str, number: int, side: str) -> FileSide | Response:
    who = _who(request)
    if who is None:
        return _to_sign_in(request)
    ws = _ws(request)
    try:
        return file_side(ws, ws.get(plan_id, by=who), number, side)
    except AirlockError as exc:
        return _error_page(request, who, exc)


def _size(found: FileSide) -> int:
    size = found.size()
    if size is None:
        raise NotFoundError(
            f"{found.path!r} is not there any more ({found.where})",
            hint="it was moved or removed since; check the plan again to see it as it is",
        )
    return size


@router.get("/plans/{plan_id}/files/{number}/{side}")
def preview(request: Request, plan_id: str, number: int, side: str, pages: str = "") -> Response:
    found = _side(request, plan_id, number, side)
    if isinstance(found, Response):
        return found
    who = _who(request)
    try:
        size = _size(found)
        shown, data = previews.of_file(found.name, found.read, size)
    except AirlockError as exc:
        return _error_page(request, who, exc)
    whole = len(data) == size
    url = request.url.path
    count = shown.pages or 0
    listed = count if pages == "all" else min(count, previews.PAGES_AT_ONCE)
    return _page(
        request,
        "preview.html",
        who,
        file=found,
        sides=sides_of(found.change),
        preview=shown,
        unchanged=found.unchanged(data) if whole else None,
        plan_url=f"{request.scope.get('root_path', '')}/ui/plans/{quote(plan_id, safe='')}",
        url=url,
        page_numbers=range(1, min(listed, PAGES_LISTED) + 1),
        unlisted_pages=count - min(listed, PAGES_LISTED),
    )


def _drawn(request: Request, plan_id: str, number: int, side: str, page: int) -> Response:
    found = _side(request, plan_id, number, side)
    if isinstance(found, Response):
        return found
    try:
        size = _size(found)
        if size > previews.MAX_BYTES:
            raise PreviewError("it is too large to preview", hint="download it instead")
        data = found.read(size)
        kind, _mime = previews.sniff(found.name, data[:64])
        body, mime = previews.render(kind, data, page)
    except AirlockError as exc:
        return Response(
            exc.message, exc.http_status, headers=BINARY_HEADERS, media_type="text/plain"
        )
    return Response(body, media_type=mime, headers=BINARY_HEADERS)


@router.get("/plans/{plan_id}/files/{number}/{side}/pages/{page}")
def pdf_page(request: Request, plan_id: str, number: int, side: str, page: int) -> Response:
    return _drawn(request, plan_id, number, side, page)


@router.get("/plans/{plan_id}/files/{number}/{side}/picture")
def picture(request: Request, plan_id: str, number: int, side: str) -> Response:
    return _drawn(request, plan_id, number, side, 1)


@router.get("/plans/{plan_id}/files/{number}/{side}/download")
def download(request: Request, plan_id: str, number: int, side: str) -> Response:
    found = _side(request, plan_id, number, side)
    if isinstance(found, Response):
        return found
    try:
        size = _size(found)
    except AirlockError as exc:
        return _error_page(request, _who(request), exc)
    name = quote(found.name, safe="")
    return StreamingResponse(
        found.chunks(),
        media_type="application/octet-stream",
        headers={
            **BINARY_HEADERS,
            "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
        },
    )
