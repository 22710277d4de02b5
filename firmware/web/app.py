"""The web application: the route table served as JSON endpoints, the pages and their assets, and the checks
every request goes through.

Every API request: a rate limit per client address (429), the session cookie for anything but login (401), the
endpoint's privilege asked of the security core (403), the session's CSRF token on every request that changes
something, and an Origin that is this meter's when the browser sends one (403), parameters checked against the
table (400), a JSON body of at most ``[web] max_body`` bytes checked against its schema (413/415/400), or an
upload streamed to disk under ``[web] max_upload``. Every answer carries the security headers (a strict
Content-Security-Policy: the pages load nothing from anywhere else). The plain-HTTP app only redirects.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from firmware import __version__
from firmware.web.api import LOGGED_IN, ApiError, Call, Endpoint, check_json, openapi
from firmware.web.assets import Assets
from firmware.web.auth import COOKIE, CSRF_HEADER
from firmware.web.context import WebContext
from firmware.web.limits import TooLarge, TooSlow, read_body, stream_body
from firmware.web.readings import harmonic_channels
from firmware.web.routes import endpoints
from hal.errors import AccessDenied, ConfigError, IPCError, MeterError

log = logging.getLogger("web")

STATIC_DIR = Path(__file__).parent / "static"
API_TITLE = "OpenMeter web API"
# A body before login (the login's user and password) is small and sent at once: these bounds, not [web]
# max_body and body_timeout, so a host trickling login bodies holds no connection for long.
UNAUTHENTICATED_BODY_BYTES = 1024
UNAUTHENTICATED_BODY_S = 5.0
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:[0-9]{1,5})?")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"cache-control": "no-store"}
    if "retry_after" in extra:
        headers["retry-after"] = str(max(1, int(extra.pop("retry_after") + 0.999)))
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _same_origin(request: Request) -> bool:
    """A browser's Origin, when it sends one, must be this meter (host and port as the browser addressed it)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"https://{request.headers.get('host', '')}"


class EndpointHandler:
    def __init__(self, ctx: WebContext, ep: Endpoint) -> None:
        self.ctx = ctx
        self.ep = ep

    async def handle(self, request: Request) -> Response:
        response = await self._answer(request)
        if (self.ep.body is not None or self.ep.upload) and not getattr(request.state, "body_read", False):
            # answered before the body was read (refused, too large, too slow): close rather than wait for the
            # rest of a body that may be trickled in forever
            response.headers["connection"] = "close"
        return response

    async def _answer(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except ApiError as exc:
            return _error(exc.status, str(exc), **exc.extra)
        except TooLarge as exc:
            return _error(413, f"{self.ep.method} {self.ep.path}: the request body is larger than the {exc.limit} "
                               "bytes allowed ([web] max_body, max_upload for images, 1024 before login)")
        except TooSlow as exc:
            return _error(408, f"the request body did not arrive within {exc.deadline_s:g} s ([web] body_timeout; "
                               f"{UNAUTHENTICATED_BODY_S:g} s before login)")
        except ConnectionResetError:
            return Response(status_code=400)
        except AccessDenied as exc:
            return _error(403, str(exc))
        except ConfigError as exc:
            return _error(400, str(exc))
        except IPCError as exc:
            return _error(503, str(exc))
        except MeterError as exc:
            return _error(409, str(exc))
        except Exception as exc:  # the fault boundary of one request: log it, answer 500, keep serving
            self.ctx.counters["errors_500"] += 1
            log.exception("%s %s failed", self.ep.method, self.ep.path)
            return _error(500, f"internal error in {self.ep.method} {self.ep.path}: {type(exc).__name__}; "
                               "the meter's log has the details")

    async def _handle(self, request: Request) -> Response:
        ep, ctx = self.ep, self.ctx
        address = request.client.host if request.client else "?"
        identity = None
        if ep.operation is not None:
            token = request.cookies.get(COOKIE, "")
            identity = ctx.auth.session(token)
            if identity is None:
                raise ApiError(401, "not logged in, or the session ended (logged out, no request for [security] "
                                    "session_timeout, older than session_max_age, or the user was removed or "
                                    "changed); log in again")
            request.state.token = token
            if ep.changes_state and not ctx.auth.csrf_ok(token, request.headers.get(CSRF_HEADER)):
                raise ApiError(403, "missing or wrong CSRF token: send the session's token (from the login "
                                    "answer or GET /api/session) in the X-CSRF-Token header")
            if ep.operation != LOGGED_IN:
                ctx.authorize(identity, ep.operation)
        if ep.changes_state and not _same_origin(request):
            raise ApiError(403, f"request from another site ({request.headers.get('origin', '')[:80]}) refused")
        params = {p.name: p.parse(request.path_params.get(p.name) if p.where == "path"
                                  else request.query_params.get(p.name)) for p in ep.params}
        if ep.operation is None and ep.body is not None:
            # a body from someone not logged in (the login): its rate limit before a byte of it is read
            wait = ctx.login_limiter.allow(address)
            if wait:
                raise ApiError(429, f"too many login attempts from {address}; try again in {wait:.0f} s",
                               retry_after=wait)
        body = await self._body(request)
        result = await ep.handler(ctx, Call(identity, address, params, body, request))
        if isinstance(result, Response):
            return result
        return JSONResponse(result, headers={"cache-control": "no-store"})

    async def _body(self, request: Request) -> Any:
        ep, web = self.ep, self.ctx.web
        declared = request.headers.get("content-length")
        size = int(declared) if declared and declared.isdigit() else None
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ep.body is not None:
            if ctype != "application/json":
                raise ApiError(415, f"{ep.method} {ep.path} takes a JSON body (Content-Type: application/json)")
            # without a session, a body is a login: small, and sent at once by anyone who means it
            limit, deadline = ((web.max_body, web.body_timeout) if ep.operation is not None
                               else (UNAUTHENTICATED_BODY_BYTES, UNAUTHENTICATED_BODY_S))
            raw = await read_body(request.receive, limit, deadline, size)
            request.state.body_read = True
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                raise ApiError(400, "the body is not valid JSON") from None
            check_json(ep.body, body)
            return body
        if ep.upload:
            if ctype != "application/octet-stream":
                raise ApiError(415, f"{ep.method} {ep.path} takes the raw file (Content-Type: "
                                    "application/octet-stream)")
            from firmware.web.actions import upload_path

            path = upload_path(self.ctx)
            try:
                await stream_body(request.receive, path, web.max_upload, web.body_timeout, size)
            except BaseException:
                self.ctx.uploads.discard(path)
                raise
            request.state.body_read = True
            return path
        return None


class Guard:
    """ASGI middleware: the per-address rate limit, the request count and the security headers on every answer."""

    def __init__(self, app: Callable[..., Awaitable[None]], ctx: WebContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.ctx.counters["requests"] += 1
        client = scope.get("client")
        address = client[0] if client else "?"
        wait = self.ctx.limiter.allow(address)
        if wait:
            self.ctx.counters["refused_429"] += 1
            response = _error(429, f"too many requests from {address}; at most [web] rate per second "
                                   f"({self.ctx.web.rate}); try again in {wait:.1f} s", retry_after=wait)
            await self._with_headers(response, scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _with_headers(self, response: Response, scope: Any, receive: Any, send: Any) -> None:
        response.raw_headers.extend(SECURITY_HEADERS)
        await response(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, f"nothing at {request.url.path[:100]}; the API is listed at /api/openapi.json")


async def _wrong_method(request: Request, exc: Exception) -> Response:
    return _error(405, f"{request.method} is not served at {request.url.path[:100]}; /api/openapi.json lists the "
                       "methods of every path")


def route_table(services: list[str]) -> tuple[list[Endpoint], dict[str, Any]]:
    """The endpoints of a meter with these services, and their OpenAPI document."""
    eps = endpoints(harmonic_channels(), services)
    return eps, openapi(eps, API_TITLE, __version__)


def build_app(ctx: WebContext, services: list[str]) -> Guard:
    eps, ctx.document = route_table(services)
    routes: list[Any] = [Route(ep.path, EndpointHandler(ctx, ep).handle, methods=[ep.method]) for ep in eps]
    assets = Assets(STATIC_DIR)

    async def index(request: Request) -> Response:
        return assets.response(request, "index.html") or await _not_found(request, KeyError())

    async def static(request: Request) -> Response:
        return assets.response(request, request.path_params["name"]) or await _not_found(request, KeyError())

    routes += [Route("/", index, methods=["GET", "HEAD"]),
               Route("/static/{name:path}", static, methods=["GET", "HEAD"])]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _wrong_method})
    return Guard(app, ctx)


def redirect_app(https_port: int) -> Callable[..., Awaitable[None]]:
    """The plain-HTTP port's whole application: a permanent redirect of every request to HTTPS."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        m = _HOST_RE.fullmatch(host)
        if not m:
            response: Response = Response("a Host header is needed to redirect to HTTPS\n", 400,
                                          media_type="text/plain")
        else:
            port = "" if https_port == 443 else f":{https_port}"
            path = scope.get("raw_path") or scope["path"].encode()
            target = f"https://{m.group(1)}{port}{path.decode('latin-1')}"
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            response = Response(status_code=308, headers={"location": target})
        await response(scope, receive, send)

    return app
