"""`serve`'s HTTP port on uvicorn, in a thread beside the loop, bounded against slow and greedy clients.

The port may be reachable by anyone, so every way a client can hold on to it is bounded:

- ``limit_concurrency``: past this many connections (or requests in flight) uvicorn answers 503 at once;
- ``request_deadline_s``: a connection must deliver a whole request (headers and body) within this many
  seconds of opening, or of the previous answer; one that sends nothing, or one byte at a time (slowloris),
  is closed. uvicorn times out only an idle kept-alive connection, so :class:`DeadlineH11Protocol` adds this;
- ``keep_alive_s``: an idle kept-alive connection is closed after this long (uvicorn's own timeout);
- ``max_header_bytes``: h11's cap on a request's head (431 beyond) and ``max_body_bytes``: the app's cap on
  its body (413 beyond, :class:`BodyLimit`), so no request grows the process's memory without bound.

The server binds its socket before the thread starts, so port 0 is known at once and the first connections
wait in the backlog until the loop runs. Access logs are off (a URL or a header may carry a token); the app
logs what it must itself.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Connections served at once; a health check needs one, an intake burst a few more.
LIMIT_CONCURRENCY = 32
#: Longest time a whole request may take to arrive, however it trickles in.
REQUEST_DEADLINE_S = 10.0
#: How long an idle kept-alive connection stays open.
KEEP_ALIVE_S = 5
#: A request's head (request line and headers) at most.
MAX_HEADER_BYTES = 16 * 1024
#: A request's body at most (the intake API's `api.max_body_bytes` overrides it).
MAX_BODY_BYTES = 64 * 1024
#: What a body past the cap gets.
TOO_LARGE_BODY = {"detail": "the request body is too large"}


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for the whole request from the connection's start (and again
    after each answer): a socket timeout alone restarts on every byte, so a slowloris would hold on forever."""

    request_deadline_s = REQUEST_DEADLINE_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
        self._deadline = self.loop.call_later(self.request_deadline_s, self._deadline_passed)

    def _deadline_passed(self) -> None:
        """Close the connection unless its request has fully arrived and the app is answering it."""
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering and self.conn.their_state is h11.DONE:
            return
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
        super().connection_lost(exc)


class BodyLimit:
    """ASGI middleware: a body longer than ``max_bytes`` gets 413, whether its Content-Length says so up front
    or it is sent in chunks; nothing past the cap is read."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_413(send)
            return
        seen = 0
        started = refused = False

        async def limited() -> Any:
            """The body's chunks until the cap; past it the 413 goes out and the app hears a disconnect."""
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not refused:
                    refused = True
                    if not started:
                        await _send_413(send)
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Any) -> None:
            nonlocal started
            if refused:  # the app's answer to the disconnect: the client has its 413 already
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited, watched)


async def _send_413(send: Any) -> None:
    body = json.dumps(TOO_LARGE_BODY).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class RunningServer:
    """The uvicorn server in its thread; ``server_address`` is (host, port) as bound."""

    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket
    server_address: tuple[str, int]

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, finish the requests in flight (uvicorn's graceful exit), join the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout_s)

    def server_close(self) -> None:
        self.sock.close()


def run_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limit_concurrency: int = LIMIT_CONCURRENCY,
    request_deadline_s: float = REQUEST_DEADLINE_S,
    keep_alive_s: int = KEEP_ALIVE_S,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0: a free port) in a daemon thread until ``shutdown()``."""
    protocol = type("BoundedH11Protocol", (DeadlineH11Protocol,), {"request_deadline_s": request_deadline_s})
    config = uvicorn.Config(
        app,
        http=protocol,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=keep_alive_s,
        h11_max_incomplete_event_size=max_header_bytes,
        timeout_graceful_shutdown=5,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sheetbot-http", daemon=True)
    thread.start()
    bound = sock.getsockname()
    return RunningServer(server=server, thread=thread, sock=sock, server_address=(str(bound[0]), int(bound[1])))
