"""``talksearch serve``: the HTTP API and web page under uvicorn.

Without an API key anyone who can reach the port could change the library, so the server then
listens on the loopback interface only, whatever host was asked for, and says so.
"""
from __future__ import annotations

import sys

import uvicorn

from .access import is_loopback
from .app import create_app
from .config import Settings

LOCAL_HOST = "127.0.0.1"


def serve(settings: Settings) -> int:
    if settings.http.api_key is None:
        if not is_loopback(settings.http.host):
            print(f"talksearch: no TALKSEARCH_API_KEY set, so listening on {LOCAL_HOST} only, not {settings.http.host}; "
                  f"set a key to serve other machines", file=sys.stderr)
            settings = settings.changed(host=LOCAL_HOST)
        else:
            print("talksearch: no TALKSEARCH_API_KEY set: listening on this machine only; uploads and deletes "
                  "are open to local clients", file=sys.stderr)
    host = f"[{settings.http.host}]" if ":" in settings.http.host else settings.http.host
    print(f"talksearch: web page at http://{host}:{settings.http.port}/ , API docs at /docs", file=sys.stderr)
    uvicorn.run(create_app(settings), host=settings.http.host, port=settings.http.port, log_level="info")
    return 0
