"""A small OpenAI-compatible HTTP server on 127.0.0.1, slow, rate-limited and flaky on purpose. See bench/README.md.

It answers POST ``/v1/chat/completions`` in the real response shape, so a client goes through the real SDK,
its connection pool and its retries. Three knobs make it behave like a busy provider:

* ``latency_s``: every accepted request is answered after this long (one thread per connection, so requests
  wait side by side, not in line);
* ``rpm``: requests per minute over a sliding 60 s window, and, as OpenAI documents ("60,000 requests/minute
  may be enforced as 1,000 requests/second"), quantized: at most ``rpm / 60 × burst_window_s`` requests in any
  ``burst_window_s`` seconds (``burst_window_s=None`` checks the minute only). A request over either gets 429
  at once, with ``retry-after`` (whole seconds, rounded up), ``retry-after-ms`` and an OpenAI-shaped error body;
  rejected requests do not count against the window;
* ``fail_share``: that share of accepted requests answers 500 or 503 instead (after the latency), drawn from a
  seeded random generator, so a run's failures are the same each time for the same order of arrival.

It also serves a Batch API in OpenAI's shape (``batch_api=True``, the default): ``POST /v1/files`` (multipart,
purpose ``batch``), ``GET /v1/files/{id}`` and ``/v1/files/{id}/content``, ``POST /v1/batches`` (with
``metadata`` stored as given), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel`` and
``GET /v1/batches?limit=&after=`` (newest first, cursor paging, as OpenAI lists them). ``create`` answers
``batch_answer_s`` after the batch exists (the window where a kill leaves a batch the client never heard of).
A batch completes ``batch_delay_s`` after it was created, whether or not anyone polls it, as a real one
does; only then are its requests answered and billed. A batch cancelled before that bills nothing.

Every billed model call (a chat completion answered 200, a request of a completed batch) is counted under a
``tag``: the first match of ``tag_pattern`` in its user messages (``stats().calls_by_tag``), so a fault-injection
benchmark can count calls per row at the server (bench/faults.py).

Stdlib only. It counts what it saw and keeps one record per request, and it shuts itself down after
``max_duration_s`` should the benchmark that started it crash::

    with LLMServer(latency_s=0.5, rpm=1200, fail_share=0.1) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-anything")
        ...
        print(server.stats().rate_limited)

``LLMServerProcess`` runs the same server in a child process, for measurements: in one process the server's
threads and the client's event loop take turns on the GIL.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import itertools
import json
import math
import multiprocessing
import random
import re
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
MINUTE_S = 60.0


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server handled it; times are ``time.monotonic()`` seconds."""

    arrived_s: float
    answered_s: float
    status: int
    #: The first match of the server's ``tag_pattern`` in the user messages ("" without one).
    tag: str = ""


@dataclass(frozen=True)
class BatchRecord:
    """One batch as the server holds it; ``created_s`` is ``time.monotonic()``."""

    batch_id: str
    created_s: float
    status: str  # in_progress, completed or cancelled
    tags: tuple[str, ...]  # one per request line, in the file's order
    metadata: dict[str, str] | None


@dataclass
class ServerStats:
    """What the server saw. ``records`` holds every chat-completion request, 429s included."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    bad_requests: int = 0
    max_in_flight: int = 0
    records: list[RequestRecord] = field(default_factory=list)
    #: Billed model calls per tag: chat completions answered 200, and the requests of completed batches.
    calls_by_tag: Counter[str] = field(default_factory=Counter)
    batches: list[BatchRecord] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Requests that counted against the rate limit: answered 200 or 5xx."""
        return self.ok + self.server_errors

    @property
    def completions_s(self) -> list[float]:
        """When each successful answer was sent, in order."""
        return sorted(r.answered_s for r in self.records if r.status == 200)


class SlidingWindow:
    """At most ``limit`` admissions in any ``length_s`` seconds."""

    def __init__(self, limit: int, length_s: float) -> None:
        self.limit = limit
        self.length_s = length_s
        self._times: deque[float] = deque()

    def wait_s(self, now: float) -> float:
        """0 if one more request fits now, else the seconds until the oldest one leaves the window."""
        while self._times and self._times[0] <= now - self.length_s:
            self._times.popleft()
        if len(self._times) < self.limit:
            return 0.0
        return self._times[0] + self.length_s - now

    def add(self, now: float) -> None:
        self._times.append(now)


class RateLimit:
    """The rpm limit: a sliding minute, and optionally the same rate over a shorter burst window."""

    def __init__(self, rpm: int, burst_window_s: float | None) -> None:
        self.rpm = rpm
        self.windows = [SlidingWindow(rpm, MINUTE_S)]
        if burst_window_s:
            self.windows.append(SlidingWindow(max(1, math.floor(rpm * burst_window_s / MINUTE_S)), burst_window_s))
        self._lock = threading.Lock()

    def admit(self, now: float) -> tuple[float, SlidingWindow | None]:
        """(0.0, None) when admitted, else (seconds to wait, the full window); a refusal is not counted."""
        with self._lock:
            wait_s, full = max(((w.wait_s(now), w) for w in self.windows), key=lambda pair: pair[0])
            if wait_s <= 0:
                for window in self.windows:
                    window.add(now)
                return 0.0, None
            return wait_s, full


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK's connection pool reuses connections
    timeout = 30  # an idle keep-alive connection frees its thread after this long
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the bench prints its own figures

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if self.server.owner.batches is not None and path.startswith(("/v1/files/", "/v1/batches")):
            self.server.owner.batches.get(self, path, parse_qs(urlsplit(self.path).query))
            return
        self._send_json(404, _error_body(f"no endpoint GET {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/chat/completions":
            self.server.owner._chat(self)
            return
        if self.server.owner.batches is not None and path.startswith(("/v1/files", "/v1/batches")):
            self.server.owner.batches.post(self, path, self._drain())
            return
        self._drain()
        self._send_json(404, _error_body(f"no endpoint POST {self.path}", "invalid_request_error"))

    def _drain(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck connection never keeps the process alive
    request_queue_size = 256  # the default backlog of 5 drops connections when a pool of 32 opens at once
    owner: LLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a cancelled call) is normal here; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LLMServer:
    """Start with ``with LLMServer(...) as server`` (or ``start()``/``stop()``); clients use ``base_url``."""

    def __init__(
        self,
        *,
        latency_s: float = 0.5,
        rpm: int | None = None,
        fail_share: float = 0.0,
        burst_window_s: float | None = 1.0,
        seed: int = 7,
        max_duration_s: float = 900.0,
        batch_api: bool = True,
        batch_delay_s: float = 1.0,
        batch_answer_s: float = 0.0,
        tag_pattern: str | None = None,
    ) -> None:
        if not 0.0 <= fail_share <= 1.0:
            raise ValueError(f"fail_share must be between 0 and 1, not {fail_share}")
        self.latency_s = latency_s
        self.fail_share = fail_share
        self.max_duration_s = max_duration_s
        self.limit = RateLimit(rpm, burst_window_s) if rpm else None
        self.expired = False
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stats = ServerStats()
        self._in_flight = 0
        self._tag = re.compile(tag_pattern) if tag_pattern else None
        self._first_seen: dict[str, float] = {}  # tag -> when a request (or an uploaded batch line) first had it
        self.batches = _Batches(self, batch_delay_s, batch_answer_s) if batch_api else None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> LLMServer:
        httpd = _HTTPServer((HOST, 0), _Handler)  # port 0: the OS picks a free one
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="llm-server", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.max_duration_s, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _expire(self) -> None:
        self.expired = True
        httpd = self._httpd
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()  # refuse new connections rather than leave them hanging

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running: call start() or use it in a with block")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return f"http://{HOST}:{self.port}/v1"

    def stats(self) -> ServerStats:
        """A copy of the counters and records so far (batches due by now are completed and billed first)."""
        if self.batches is not None:
            self.batches.settle()
        with self._lock:
            s = self._stats
            return ServerStats(
                requests=s.requests,
                ok=s.ok,
                rate_limited=s.rate_limited,
                server_errors=s.server_errors,
                bad_requests=s.bad_requests,
                max_in_flight=s.max_in_flight,
                records=list(s.records),
                calls_by_tag=Counter(s.calls_by_tag),
                batches=self.batches.records() if self.batches is not None else [],
            )

    def first_seen(self, prefix: str) -> float | None:
        """When a request whose tag starts with ``prefix`` first arrived (a chat call or a batch file's line)."""
        with self._lock:
            seen = [at for tag, at in self._first_seen.items() if tag.startswith(prefix)]
        return min(seen) if seen else None

    def _saw(self, tags: list[str], at: float) -> None:
        with self._lock:
            for tag in tags:
                if tag:
                    self._first_seen.setdefault(tag, at)

    def tag_of(self, body: dict[str, Any]) -> str:
        """The first match of ``tag_pattern`` in a chat body's user messages ("" without one)."""
        if self._tag is None:
            return ""
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        text = " ".join(_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user")
        found = self._tag.search(text)
        return found.group(0) if found else ""

    # -- one request -------------------------------------------------------------------
    def _chat(self, handler: _Handler) -> None:
        arrived = time.monotonic()
        raw = handler._drain()
        with self._lock:
            self._stats.requests += 1
            number = self._stats.requests
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("the body needs a `messages` list")
            if body.get("stream"):
                raise ValueError("this bench server does not stream: leave `stream` unset")
        except ValueError as exc:
            self._answer(handler, arrived, 400, _error_body(str(exc), "invalid_request_error"))
            return

        self._saw([self.tag_of(body)], arrived)
        wait_s, full = self.limit.admit(arrived) if self.limit else (0.0, None)
        if full is not None:
            self._answer(handler, arrived, 429, *self._rate_limited(wait_s, full))
            return

        with self._lock:
            fails = self._rng.random() < self.fail_share
            status = self._rng.choice((500, 503)) if fails else 200
            self._in_flight += 1
            self._stats.max_in_flight = max(self._stats.max_in_flight, self._in_flight)
        try:
            time.sleep(self.latency_s)  # this connection's thread only: others are answered meanwhile
        finally:
            with self._lock:
                self._in_flight -= 1
        if status == 200:
            self._answer(handler, arrived, 200, _completion(body, number), tag=self.tag_of(body))
        else:
            kind = "server_error" if status == 500 else "service_unavailable"
            self._answer(handler, arrived, status, _error_body(f"the bench server failed on purpose ({kind})", kind))

    def _rate_limited(self, wait_s: float, full: SlidingWindow) -> tuple[dict[str, Any], dict[str, str]]:
        assert self.limit is not None
        rpm = self.limit.rpm
        quantum = "" if full.length_s == MINUTE_S else f", enforced as {full.limit} per {full.length_s:g} s"
        message = (
            f"Rate limit reached for requests per min (RPM): Limit {rpm}{quantum}, Used {full.limit}, "
            f"Requested 1. Please try again in {wait_s * 1000:.0f}ms."
        )
        headers = {
            "retry-after": str(max(1, math.ceil(wait_s))),
            "retry-after-ms": str(max(1, math.ceil(wait_s * 1000))),
            "x-ratelimit-limit-requests": str(rpm),
            "x-ratelimit-remaining-requests": "0",
        }
        return _error_body(message, "requests", code="rate_limit_exceeded"), headers

    def _answer(
        self,
        handler: _Handler,
        arrived: float,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        tag: str = "",
    ) -> None:
        with self._lock:  # counted before it is sent: a client holding its answer finds it in stats()
            s = self._stats
            s.records.append(RequestRecord(arrived, time.monotonic(), status, tag))
            if status == 200:
                s.ok += 1
                s.calls_by_tag[tag] += 1
            elif status == 429:
                s.rate_limited += 1
            elif status >= 500:
                s.server_errors += 1
            else:
                s.bad_requests += 1
        handler._send_json(status, body, headers)


@dataclass
class _Batch:
    batch_id: str
    created_s: float
    created_at: int
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    lines: list[dict[str, Any]]
    status: str = "in_progress"
    output_file_id: str | None = None
    ended_at: int | None = None


class _Batches:
    """OpenAI's Files and Batches endpoints, in memory. A batch completes ``delay_s`` after its creation."""

    def __init__(self, server: LLMServer, delay_s: float, answer_s: float) -> None:
        #: answer_s: how long `create` takes to answer after the batch exists (a kill or a dropped
        #: connection in between leaves a batch the client never heard of).
        self.server, self.delay_s, self.answer_s = server, delay_s, answer_s
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (filename, content)
        self.batches: dict[str, _Batch] = {}  # in creation order
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    # -- what the bench reads ----------------------------------------------------------------------
    def settle(self) -> None:
        """Complete (and bill) every batch whose time has come, whether or not anyone polls it."""
        now = time.monotonic()
        with self.lock:
            due = [b for b in self.batches.values() if b.status == "in_progress" and now >= b.created_s + self.delay_s]
            for batch in due:
                self._complete(batch)

    def records(self) -> list[BatchRecord]:
        with self.lock:
            return [
                BatchRecord(b.batch_id, b.created_s, b.status, tuple(self._tag(x) for x in b.lines), b.metadata)
                for b in self.batches.values()
            ]

    def _tag(self, line: dict[str, Any]) -> str:
        body = line.get("body")
        return self.server.tag_of(body) if isinstance(body, dict) else ""

    def _complete(self, batch: _Batch) -> None:
        out = []
        for line in batch.lines:
            number = next(self.ids)
            body = line.get("body") if isinstance(line.get("body"), dict) else {}
            answer = _completion(body, number) if isinstance(body.get("messages"), list) else None
            response = {"status_code": 200, "request_id": f"req_{number}", "body": answer}
            if answer is None:
                error = _error_body("the body needs a `messages` list", "invalid_request_error")
                response = {"status_code": 400, "request_id": f"req_{number}", "body": error}
            out.append({"id": f"batch_req_{number}", "custom_id": line.get("custom_id"), "response": response})
            with self.server._lock:
                self.server._stats.calls_by_tag[self._tag(line)] += 1
        file_id = f"file-out-{next(self.ids)}"
        self.files[file_id] = ("output.jsonl", "".join(json.dumps(o) + "\n" for o in out).encode())
        batch.status, batch.output_file_id, batch.ended_at = "completed", file_id, int(time.time())

    # -- the endpoints ---------------------------------------------------------------------------------------
    def post(self, handler: _Handler, path: str, raw: bytes) -> None:
        self.settle()
        if path == "/v1/files":
            self._upload(handler, raw)
            return
        if path == "/v1/batches":
            self._create(handler, raw)
            return
        parts = path.split("/")  # ['', 'v1', 'batches', id, 'cancel']
        if len(parts) == 5 and parts[2] == "batches" and parts[4] == "cancel":
            with self.lock:
                batch = self.batches.get(parts[3])
                if batch is not None and batch.status == "in_progress":
                    batch.status, batch.ended_at = "cancelled", int(time.time())
                shown = self._shape(batch) if batch is not None else None
            self._reply(handler, shown, parts[3])
            return
        handler._send_json(404, _error_body(f"no endpoint POST {path}", "invalid_request_error"))

    def get(self, handler: _Handler, path: str, query: dict[str, list[str]]) -> None:
        self.settle()
        parts = path.split("/")
        if path == "/v1/batches":
            self._list(handler, query)
        elif len(parts) == 4 and parts[2] == "batches":
            with self.lock:
                batch = self.batches.get(parts[3])
                shown = self._shape(batch) if batch is not None else None
            self._reply(handler, shown, parts[3])
        elif len(parts) == 5 and parts[2] == "files" and parts[4] == "content" and parts[3] in self.files:
            data = self.files[parts[3]][1]
            handler.send_response(200)
            handler.send_header("content-type", "application/octet-stream")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        elif len(parts) == 4 and parts[2] == "files" and parts[3] in self.files:
            handler._send_json(200, self._file(parts[3]))
        else:
            handler._send_json(404, _error_body(f"No such object: {path}", "invalid_request_error"))

    def _upload(self, handler: _Handler, raw: bytes) -> None:
        head = f"content-type: {handler.headers.get('content-type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts() if message.is_multipart() else []:
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (str(part.get_filename() or ""), part.get_payload(decode=True) or b"")
        if "file" not in fields:
            handler._send_json(
                400, _error_body("a multipart upload with a `file` part is needed", "invalid_request_error")
            )
            return
        file_id = f"file-{next(self.ids)}"
        with self.lock:
            self.files[file_id] = fields["file"]
        with contextlib.suppress(ValueError):
            lines = [json.loads(line) for line in fields["file"][1].decode().splitlines() if line.strip()]
            self.server._saw([self._tag(line) for line in lines if isinstance(line, dict)], time.monotonic())
        handler._send_json(200, self._file(file_id))

    def _file(self, file_id: str) -> dict[str, Any]:
        name, data = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": "batch",
            "status": "processed",
        }

    def _create(self, handler: _Handler, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            data = self.files[body["input_file_id"]][1]
            lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError) as exc:
            handler._send_json(400, _error_body(f"bad batch request: {exc}", "invalid_request_error"))
            return
        metadata = body.get("metadata")
        batch = _Batch(
            batch_id=f"batch_{next(self.ids):06d}",
            created_s=time.monotonic(),
            created_at=int(time.time()),
            input_file_id=body["input_file_id"],
            endpoint=str(body.get("endpoint", "/v1/chat/completions")),
            completion_window=str(body.get("completion_window", "24h")),
            metadata=dict(metadata) if isinstance(metadata, dict) else None,
            lines=lines,
        )
        with self.lock:
            self.batches[batch.batch_id] = batch
            shown = self._shape(batch)
        time.sleep(self.answer_s)
        handler._send_json(200, shown)

    def _list(self, handler: _Handler, query: dict[str, list[str]]) -> None:
        limit = max(1, min(100, int((query.get("limit") or ["20"])[0])))
        after = (query.get("after") or [""])[0]
        with self.lock:
            newest_first = list(reversed(self.batches.values()))
            ids = [b.batch_id for b in newest_first]
            start = ids.index(after) + 1 if after in ids else 0
            page = newest_first[start : start + limit]
            data = [self._shape(b) for b in page]
            more = start + limit < len(newest_first)
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        handler._send_json(200, {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more})

    def _reply(self, handler: _Handler, shown: dict[str, Any] | None, batch_id: str) -> None:
        if shown is None:
            handler._send_json(404, _error_body(f"No batch found with id '{batch_id}'.", "invalid_request_error"))
        else:
            handler._send_json(200, shown)

    def _shape(self, batch: _Batch) -> dict[str, Any]:
        """The batch as OpenAI returns it."""
        done = batch.status == "completed"
        total = len(batch.lines)
        return {
            "id": batch.batch_id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": None,
            "created_at": batch.created_at,
            "in_progress_at": batch.created_at,
            "expires_at": batch.created_at + 86_400,
            "completed_at": batch.ended_at if done else None,
            "cancelled_at": batch.ended_at if batch.status == "cancelled" else None,
            "request_counts": {"total": total, "completed": total if done else 0, "failed": 0},
            "metadata": batch.metadata,
        }


class LLMServerProcess:
    """The same server in a child process, so its threads never compete with the client for the GIL.

    In one process the server's handler threads and the client's event loop share the GIL, and a loop that
    wakes up to send its next paced request could wait for it (at 20 requests a second no difference was
    measured; at higher rates there may be). Same arguments and interface as LLMServer (``base_url``,
    ``stats()``, ``start()``/``stop()``, a with block); the child stops when the parent goes away.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.base_url = ""

    def start(self) -> LLMServerProcess:
        context = multiprocessing.get_context("spawn")  # no fork of a parent that may already run threads
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self.options), name="llm-server", daemon=True)
        self._process.start()
        child.close()
        if not parent.poll(30):
            self.stop()
            raise RuntimeError("the LLM server process did not start within 30 s")
        self._conn = parent
        try:
            self.base_url = parent.recv()
        except EOFError:
            self.stop()
            raise RuntimeError(
                "the LLM server process exited before it started: see its traceback above (a script that starts "
                "it must keep its own code under `if __name__ == '__main__':`, which the child re-imports)"
            ) from None
        return self

    def stats(self) -> ServerStats:
        if self._conn is None:
            raise RuntimeError("the server is not running: call start() or use it in a with block")
        with self._lock:
            self._conn.send("stats")
            stats: ServerStats = self._conn.recv()
            return stats

    def first_seen(self, prefix: str) -> float | None:
        if self._conn is None:
            raise RuntimeError("the server is not running: call start() or use it in a with block")
        with self._lock:
            self._conn.send(("first_seen", prefix))
            seen: float | None = self._conn.recv()
            return seen

    def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):  # it already stopped: its max duration passed
                self._conn.send("stop")
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
            self._process = None

    def __enter__(self) -> LLMServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(conn: Connection, options: dict[str, Any]) -> None:
    """The child: start the server, send its base_url, then answer "stats" until "stop" or the parent is gone."""
    with LLMServer(**options) as server:
        conn.send(server.base_url)
        while not server.expired:
            if not conn.poll(1.0):
                continue
            try:
                command = conn.recv()
            except EOFError:
                return
            if command == "stop":
                return
            if isinstance(command, tuple) and command[0] == "first_seen":
                conn.send(server.first_seen(command[1]))
                continue
            conn.send(server.stats())


def _error_body(message: str, kind: str, *, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _text(content: Any) -> str:
    """A message's content as text, whether a string or a list of parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _completion(body: dict[str, Any], number: int) -> dict[str, Any]:
    """A chat completion: "OUTPUT for: " and the start of the last user message; tokens ≈ characters / 4."""
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    prompt = "".join(_text(m.get("content")) for m in messages)
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    text = "OUTPUT for: " + " ".join((users[-1] if users else "").split())[:60]
    n_in, n_out = math.ceil(len(prompt) / 4), math.ceil(len(text) / 4)
    return {
        "id": f"chatcmpl-bench-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "bench-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
    }
