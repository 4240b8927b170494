"""The page at `/`: static HTML, JS and CSS from the package, to try the service in a browser.

The files hold no data, so they load without a key (`PAGE_PATHS` are public in the middleware); every
call the page makes goes to the API with the key the user entered. The page is same-origin only and
runs under a strict Content-Security-Policy: no inline script or style, no third-party host, audio
from `blob:` URLs the page makes itself.
"""

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from ingress.http.page_files import PAGE_FILES, STATIC_PREFIX

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_STATIC = files("ingress.http") / "static"

router = APIRouter(include_in_schema=False)


def _file_response(name: str) -> Response:
    return Response((_STATIC / name).read_bytes(), media_type=PAGE_FILES[name], headers=PAGE_HEADERS)


@router.get("/")
async def page() -> Response:
    return _file_response("index.html")


@router.get(STATIC_PREFIX + "app.js")
async def page_script() -> Response:
    return _file_response("app.js")


@router.get(STATIC_PREFIX + "style.css")
async def page_style() -> Response:
    return _file_response("style.css")
