"""The API's documentation page, Swagger UI at ``/docs``: off unless the ``docs`` setting is on.

Why off, rather than Swagger UI served from local files: the page runs a large third-party
bundle on the origin where an approver's review session lives, so any flaw in it acts as the
approver. The Python packages that ship its files lag far behind it (``swagger-ui-bundle``'s last
release is from 2023), so "local" would mean old. Agents and developers read the document
itself, ``/openapi.json``, which is always served and runs no code. With ``docs = true`` (for a
developer's machine) ``/docs`` loads one pinned Swagger UI release from a CDN with Subresource
Integrity, so a changed file is refused, under a policy that allows that CDN and nothing else;
it cannot be framed. ReDoc is not offered.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"
"""One release of swagger-ui-dist on npm; the hashes below are of its files."""
SWAGGER_UI_JS = (
    "swagger-ui-bundle.js",
    "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9",
)
SWAGGER_UI_CSS = (
    "swagger-ui.css",
    "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
)
CDN_ORIGIN = "https://cdn.jsdelivr.net"

DOCS_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; script-src 'self' {CDN_ORIGIN}; "
    f"style-src 'self' {CDN_ORIGIN}; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Airlock API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/{SWAGGER_UI_CSS[0]}" integrity="{SWAGGER_UI_CSS[1]}" crossorigin="anonymous" referrerpolicy="no-referrer">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/{SWAGGER_UI_JS[0]}" integrity="{SWAGGER_UI_JS[1]}" crossorigin="anonymous" referrerpolicy="no-referrer"></script>
<script src="docs.js"></script>
</body>
</html>
"""

_SCRIPT = """"use strict";
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  queryConfigEnabled: false,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (and its start-up script ``/docs.js``) on ``app``."""

    @app.get("/docs", include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return HTMLResponse(_PAGE, headers=DOCS_HEADERS)

    @app.get("/docs.js", include_in_schema=False)
    async def _docs_script() -> Response:
        return Response(_SCRIPT, media_type="text/javascript", headers=DOCS_HEADERS)
