"""Who may do what. With TALKSEARCH_API_KEY set, the key protects changes (and reads too, with
TALKSEARCH_PROTECT_READS). It travels in a header that a page from another site cannot make a browser
send, and the cookie <audio> uses is SameSite, so such a server answers to any Host name; listing the
names it is reached by in TALKSEARCH_ALLOWED_HOSTS turns the Host check on as well, which is worth it
when reads are open: a page that points its own DNS name at this server (DNS rebinding) then cannot
read the library through a visitor's browser.
Without a key the server listens on loopback only and lets clients on this machine change the
library, and any web page a local browser opens is such a client. So it answers only requests
addressed to this machine by name (Host localhost, 127.0.0.1 or [::1] on any port, or a name in
TALKSEARCH_ALLOWED_HOSTS), since a rebinding page still sends its own name, and refuses changes a
browser sends on behalf of another origin (an Origin header naming another host than Host, or
Sec-Fetch-Site: cross-site). The page served here and clients that send no Origin (curl, the CLI) pass.

Bodies. A JSON body is refused with 413 beyond TALKSEARCH_MAX_JSON_KB as it arrives (a declared
length at once, a chunked one when the count passes the limit), before anything parses it; uploads
stream to disk under their own limit (api/uploads.py). A 422 names the fields at fault and why, but
never echoes the values sent.

/openapi.json states the access rules of the running configuration: an operation lists the key as a
security requirement only where this server enforces it.
"""
from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings

KEY_COOKIE = "talksearch_key"
"""Read endpoints also take the key from this cookie, so <audio> elements can fetch protected media."""
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's TALKSEARCH_API_KEY")
_bearer = HTTPBearer(auto_error=False, description="the server's TALKSEARCH_API_KEY as a bearer token")
_key_cookie = APIKeyCookie(name=KEY_COOKIE, auto_error=False, description="the key, for <audio> elements (reads only)")


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or "localhost"."""
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_key(request: Request, presented: str | None, action: str) -> None:
    expected = request.app.state.backend.settings.http.api_key
    if expected is None:
        if not is_loopback(request.client.host if request.client else None):
            raise HTTPException(403, f"no API key is configured on this server, so only clients on the same machine may {action}")
        return
    if not presented:
        raise HTTPException(401, f"an API key is needed to {action}: send it as X-API-Key or Authorization: Bearer",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise HTTPException(403, "wrong API key")


def writer(request: Request, key: Annotated[str | None, Security(_key_header)] = None,
           bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None) -> None:
    """Upload, import and delete always need the key (or a loopback client when none is set)."""
    _check_key(request, key or (bearer.credentials if bearer else None), "change the library")


def reader(request: Request, key: Annotated[str | None, Security(_key_header)] = None,
           bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
           cookie: Annotated[str | None, Security(_key_cookie)] = None) -> None:
    """Reads are open unless the server is configured to protect them."""
    if request.app.state.backend.settings.http.protect_reads:
        _check_key(request, key or (bearer.credentials if bearer else None) or cookie, "read")


def _host_name(host: str) -> str:
    """The name in a Host header, without its port or IPv6 brackets, in lower case."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return host.rpartition(":")[0].lower() if ":" in host else host.lower()


def _cross_site(headers: Headers) -> bool:
    """Whether a browser sent this on behalf of a page of another origin (the scheme is not compared:
    a proxy in front may end TLS)."""
    origin = headers.get("origin")
    return headers.get("sec-fetch-site") == "cross-site" or (
        origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower())


def _json_too_big(kb: int) -> HTTPException:
    return HTTPException(413, f"request body larger than the server's limit of {kb} KiB (TALKSEARCH_MAX_JSON_KB)")


def _refusal(settings: Settings, method: str, headers: Headers, json_kb: int | None) -> HTTPException | None:
    """Why a request is answered without being routed (see the module docstring), or None."""
    host = headers.get("host", "")
    name = _host_name(host)
    if (settings.http.api_key is None or settings.http.allowed_hosts) and not (is_loopback(name) or name in settings.http.allowed_hosts):
        return HTTPException(400, f"Host {host!r} is not a name of this server "
                                  f"(localhost, 127.0.0.1, [::1] or one in TALKSEARCH_ALLOWED_HOSTS)")
    if settings.http.api_key is None and method in WRITES and _cross_site(headers):
        return HTTPException(403, "no API key is configured on this server, so it takes no changes from another site's page")
    declared = headers.get("content-length", "")
    if json_kb is not None and declared.isdigit() and int(declared) > json_kb * 1024:
        return _json_too_big(json_kb)
    return None


def _limited(receive: Receive, kb: int) -> Receive:
    """``receive`` that refuses the body with 413 once it passes ``kb`` KiB, however it is sent."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > kb * 1024:
            raise _json_too_big(kb)
        return message
    return limited


def _streams_its_body(scope: Scope) -> bool:
    """Whether the request is for an upload, which reads its own body under TALKSEARCH_MAX_UPLOAD_MB
    (the app lists those routes in ``state.streamed``)."""
    return any(route.matches(scope)[0] is Match.FULL for route in scope["app"].state.streamed)


class Guard:
    """ASGI middleware: the Host and Origin rules and the JSON body limit, applied to every request
    before it is routed (and before its body is read)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            settings = scope["app"].state.backend.settings
            json_kb = None if _streams_its_body(scope) else settings.http.max_json_kb
            refusal = _refusal(settings, scope["method"], Headers(scope=scope), json_kb)
            if refusal is not None:
                await JSONResponse({"detail": refusal.detail}, refusal.status_code)(scope, receive, send)
                return
            if json_kb is not None:
                receive = _limited(receive, json_kb)
        await self.app(scope, receive, send)
