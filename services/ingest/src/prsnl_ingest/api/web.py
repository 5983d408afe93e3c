"""The web page: static files of ``prsnl_ingest/web`` at ``/`` (the page) and ``/web/`` (its
assets), with a strict Content-Security-Policy and the other security headers.

The page is a plain client of the public API: it holds the API key in the
browser's storage and sends it as a Bearer header; media elements use the
signed links of the item answers. Nothing here is part of the API, so none of
it is in the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from litestar import Request, Response, Router, route
from litestar.datastructures import State
from litestar.enums import HttpMethod
from litestar.response import File
from litestar.static_files import create_static_files_router

from prsnl_ingest.api.problems import ApiError
from prsnl_ingest.settings import IngestSettings

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


def content_security_policy(public_url: str = "") -> str:
    """Only the page's own scripts, styles and API; media also from the public URL's origin.

    No inline script or style, no plugins, no framing, no form posts elsewhere.
    """
    media = "'self'"
    parts = urlsplit(public_url) if public_url else None
    if parts and parts.scheme in ("http", "https") and parts.netloc:
        media = f"'self' {parts.scheme}://{parts.netloc}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media}",
            f"media-src {media}",
            f"connect-src {media}",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def security_headers(public_url: str = "") -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(public_url),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        # The page's address carries no secret, but signed media links must not leak on.
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    }


def refuse_nul(request: Request[object, object, State]) -> None:
    """No file name holds NUL; the file system would raise on one (a 500) instead of a 404."""
    if "\x00" in request.scope["path"]:
        raise ApiError("not_found", "No such file.")


def web_router(settings: IngestSettings) -> Router:
    """``GET /`` (the page) and ``GET /web/<asset>``, both also answering ``HEAD``."""
    # Revalidated on every load (ETag), so a new release is picked up at once.
    headers = {**security_headers(settings.public_url), "Cache-Control": "no-cache"}

    def add_security_headers(response: Response[object]) -> Response[object]:
        response.headers.update(headers)
        return response

    @route(
        "/",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],
        name="web-page",
        include_in_schema=False,
    )
    async def page() -> File:
        return File(
            WEB_ROOT / "index.html",
            content_disposition_type="inline",
            media_type="text/html",
        )

    assets = create_static_files_router(
        path="/web",
        directories=[WEB_ROOT],
        name="web-assets",
        before_request=refuse_nul,
        include_in_schema=False,
    )
    return Router(
        path="/",
        route_handlers=[page, assets],
        after_request=add_security_headers,
        include_in_schema=False,
    )
