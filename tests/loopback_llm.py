"""FakeLLM behind a real HTTP server on 127.0.0.1, for code that builds its own SDK clients.

`serve_forever` wires its providers from the YAML, as in production, so its model is faked where the
network starts: the YAML's ``base_url`` points at this server (plain http is allowed to loopback), and
every request is answered by FakeLLM's transport. ``hold`` lets a test keep an answer back, as a slow
model would, and release it when it wants; ``arrived`` shows what reached the server, in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
from fakellm import FakeLLM, split_prompt


def answer(handler: BaseHTTPRequestHandler, response: httpx2.Response) -> None:
    """Send a fake's answer back over the socket; a caller that went away (killed, or gave up on the call)
    is nobody's error."""
    try:
        handler.send_response(response.status_code)
        handler.send_header("content-type", response.headers.get("content-type", "application/json"))
        handler.send_header("content-length", str(len(response.content)))
        handler.end_headers()
        handler.wfile.write(response.content)
    except OSError:
        pass


class LoopbackLLM:
    def __init__(self) -> None:
        self.fake = FakeLLM()
        #: The gate an answer waits for, given the request body; None: answered at once.
        self.hold: Callable[[dict[str, Any]], threading.Event | None] = lambda body: None
        #: The row of every model request (the last line of its prompt: the row's input), as it arrived.
        self.arrived: list[str] = []
        self._gates: list[threading.Event] = []
        self._changed = threading.Condition()
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("content-length") or 0)))

            def _answer(self, content: bytes) -> None:
                body = json.loads(content) if content else {}
                if self.command == "POST":
                    gate = llm.hold(body)
                    with llm._changed:
                        llm.arrived.append(split_prompt(body)[1].rsplit("\n", 1)[-1])
                        if gate is not None:
                            llm._gates.append(gate)
                        llm._changed.notify_all()
                    if gate is not None:
                        gate.wait(timeout=30)
                url = f"http://127.0.0.1{self.path}"
                request = httpx2.Request(self.command, url, headers=dict(self.headers), content=content)
                response = llm.fake._handle(request)
                answer(self, response)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The OpenAI base_url of this server."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def wait_until(self, ready: Callable[[], bool], *, timeout_s: float = 20.0) -> bool:
        """Block until ``ready()`` (checked at every arrival, and every 50 ms); False if it never was."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(timeout=min(left, 0.05))
        return True

    def close(self) -> None:
        for gate in self._gates:
            gate.set()
        self.server.shutdown()
        self.server.server_close()
