"""The pages' files (``firmware/web/static``), read once when the web service starts and sent from memory:
gzip-compressed to a client that accepts it, each encoding with its own strong ETag, revalidated on every use.

Their names carry no version, so a browser may keep a copy but must ask before using it (``Cache-Control:
no-cache``); an unchanged file is answered ``304 Not Modified`` without a body. ``Vary: Accept-Encoding`` tells
caches the two encodings apart. The files change only with the firmware, which restarts the service.
"""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

GZIP_LEVEL = 9
MIN_GZIP_BYTES = 256         # smaller files are sent as they are: the header would eat the gain
CACHE_CONTROL = "no-cache"   # keep, but revalidate before each use (the names carry no version)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}


@dataclass(frozen=True)
class Asset:
    content_type: str
    identity: bytes
    etag: str
    gzipped: bytes | None       # None: not worth compressing
    gzip_etag: str


def _asset(path: Path) -> Asset:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:32]
    packed = gzip.compress(data, GZIP_LEVEL, mtime=0) if len(data) >= MIN_GZIP_BYTES else None
    ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Asset(ctype, data, f'"{digest}"', packed if packed and len(packed) < len(data) else None,
                 f'"{digest}-gzip"')


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (``gzip;q=0`` refuses it; ``*`` allows it)."""
    allowed: dict[str, float] = {}
    for part in header.lower().split(","):
        coding, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding:
            allowed[coding.strip()] = q
    q = allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", 0.0)))
    return q > 0


def _matches(if_none_match: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class Assets:
    """Every file under ``directory``, by the name it is asked for (``app.js``, ``index.html``)."""

    def __init__(self, directory: Path) -> None:
        self.files = {p.relative_to(directory).as_posix(): _asset(p)
                      for p in sorted(directory.rglob("*")) if p.is_file()}

    def response(self, request: Request, name: str) -> Response | None:
        """The file's answer to this request, or None when there is no such file."""
        asset = self.files.get(name)
        if asset is None:
            return None
        packed = asset.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = asset.gzip_etag if packed else asset.etag
        headers = {"etag": etag, "cache-control": CACHE_CONTROL, "vary": "Accept-Encoding"}
        if _matches(request.headers.get("if-none-match", ""), etag):
            return Response(status_code=304, headers=headers)
        if packed:
            headers["content-encoding"] = "gzip"
        body = asset.gzipped if packed and asset.gzipped is not None else asset.identity
        if request.method == "HEAD":
            headers["content-length"] = str(len(body))
            return Response(status_code=200, headers=headers, media_type=asset.content_type)
        return Response(body, headers=headers, media_type=asset.content_type)
