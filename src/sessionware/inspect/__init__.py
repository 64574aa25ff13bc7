"""A local web inspector for sessions: ``sessionware inspect --store URL``.

Server-rendered pages (no front-end build): the list of every session with
filters and cursor pagination, a bot session's JSON, an agent session's
transcript with its tool calls and their timeline. Every request needs the
random access token the command prints; the inspector is read-only unless
started with ``write=True`` (``--write``), which allows deleting sessions and
editing a bot session's JSON under the session's isolation.

Needs the ``inspect`` extra: ``pip install 'sessionware[inspect]'``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import TextIO

from ..errors import MissingExtraError

try:
    import starlette  # noqa: F401
    import uvicorn
except ImportError as e:  # pragma: no cover - exercised by a test that hides the packages
    raise MissingExtraError("web inspector", "inspect", e.name or "starlette") from e

from ..urls import redact_url
from .app import create_app, new_token

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def address(host: str, port: int) -> str:
    """``http://host:port`` (IPv6 hosts in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    write: bool = False,
    namespace: str = "agent",
    token: str | None = None,
    out: TextIO | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the inspector of the store at ``url`` until cancelled; print the URL to open (with its token).

    The store is opened without creating anything (a missing SQLite file is an error naming it).
    """
    from ..cli import open_reading

    out = out or sys.stdout
    store = open_reading(url)
    try:
        token = token or new_token()
        sock = bind(host, port)
        bound = sock.getsockname()[1]
        app = create_app(store, token=token, write=write, namespace=namespace, store_name=redact_url(url))
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        mode = "read-write" if write else "read-only (start with --write to delete and edit)"
        print(f"sessionware inspector of {redact_url(url)}, {mode}", file=out)
        if host not in LOOPBACK:
            print(f"warning: listening on {host}, not loopback: anyone with the URL can read the sessions", file=out)
        print(f"open {address(host, bound)}/?token={token}", file=out, flush=True)
        if ready is not None:
            ready.set()
        await server.serve(sockets=[sock])
    finally:
        await store.close()


__all__ = ["create_app", "new_token", "serve"]
