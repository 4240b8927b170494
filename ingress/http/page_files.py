"""Which paths the page is served at: the middleware lets them through without a key (they hold no
data), so this list is the whole public surface of the page; `page_routes` serves exactly these."""

STATIC_PREFIX = "/static/"
PAGE_FILES = {  # file in ingress/http/static -> media type
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE_PATHS = frozenset({"/"} | {STATIC_PREFIX + name for name in PAGE_FILES if name != "index.html"})
