"""FakeBatch: a stateful stand-in for Anthropic's Message Batches and OpenAI's Batch and Files APIs.

It sits at the SDKs' HTTP transport (``httpx2.MockTransport``), like FakeLLM, and answers with FakeLLM's
deterministic texts. Time comes from the test's clock: a batch ends ``duration_s`` after it was created.

* ``script_next("errored" | "expired", times=n)``: the next n requests submitted get that result.
* ``finish_before_cancel = k``: a batch cancelled while running keeps its first k answers; the rest are
  canceled (Anthropic) or ``batch_cancelled`` in the error file (OpenAI).
* ``unsupported = True``: OpenAI's ``/files`` and ``/batches`` answer 404, as a local server would.
* Anthropic requests whose system block carries ``cache_control`` report a cache write the first time
  that system text is seen and a cache read afterwards.
* ``fault(op, how)``: the next call of ``op`` (upload, create, list, poll, results, cancel) goes wrong:
  ``kill`` (the process dies as it sends: the server never sees it), ``kill_after`` (the server acts, then
  the process dies before the answer arrives), ``502`` / ``502_after`` (a gateway error before or after
  the server acted), ``drop_after`` (the server acted, the connection dropped), ``hang`` (no answer, ever).
* ``refuse(op, message)``: the next call of ``op`` is refused with HTTP 400 and that message.
* Anthropic checks every ``custom_id`` against ``^[a-zA-Z0-9_-]{1,64}$`` and refuses the whole batch,
  as the real API does. Both vendors list batches newest first (OpenAI with their ``metadata``).
Results come back in reverse order (``result_order`` sets another), so callers must match on ``custom_id``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx2
from fakellm import FakeLLM, default_answer, requested_schema

ANTHROPIC = "/v1/messages/batches"
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class Killed(BaseException):
    """The process died here (kill -9): raised through the SDK and the night, as no ``except`` would stop."""


class FakeBatch:
    def __init__(self, now: Callable[[], float], *, duration_s: float = 300.0) -> None:
        self.now = now
        self.duration_s = duration_s
        self.llm = FakeLLM()
        self.batches: dict[str, dict[str, Any]] = {}
        self.files: dict[str, str] = {}
        self.creates: list[str] = []
        self.cancels: list[str] = []
        self.lines: list[dict[str, Any]] = []  # every request line ever submitted
        self.finish_before_cancel = 0
        self.unsupported = False
        self.calls: list[str] = []  # every call by operation, as the server received it
        self.uploads: list[str] = []
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._script: deque[str] = deque()
        self._cached: set[str] = set()
        #: How the server orders a batch's results, given them in the order the requests were submitted.
        self.result_order: Callable[[list[Any]], list[Any]] = lambda items: items[::-1]
        self.transport = httpx2.MockTransport(self._handle)

    def async_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=self.transport)

    def script_next(self, kind: str, *, times: int = 1) -> None:
        self._script.extend([kind] * times)

    def fault(self, op: str, how: str, *, times: int = 1) -> None:
        self._faults[op].extend([how] * times)

    def heal(self) -> None:
        """Every fault still scripted is dropped: the key fixed, the network back."""
        self._faults.clear()

    def refuse(self, op: str, message: str) -> None:
        self._faults[op].append(f"400:{message}")

    def created(self, kind: str) -> list[str]:
        """The batches of one vendor the server really created (what would be billed)."""
        return [b for b in self.creates if self.batches[b]["kind"] == kind]

    # -- the transport ---------------------------------------------------------------
    async def _handle(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        op = _operation(request)
        self.calls.append(op)
        how = self._faults[op].popleft() if self._faults[op] else ""
        if how == "kill":
            raise Killed(op)
        if how == "502":
            return httpx2.Response(502, text="<html>502 Bad Gateway</html>")
        if how == "hang":
            await asyncio.Event().wait()
        if how.startswith("400:"):
            return _refusal(request, how.removeprefix("400:"))
        if how in ("401", "403"):  # the key was revoked, or lost its permission, after the batch was sent
            return _key_refused(request, int(how))
        response = self._serve(request)
        if how == "kill_after":
            raise Killed(op)
        if how == "502_after":
            return httpx2.Response(502, text="<html>502 Bad Gateway</html>")
        if how == "drop_after":
            raise httpx2.ReadError("Connection reset by peer", request=request)
        return response

    def _serve(self, request: httpx2.Request) -> httpx2.Response:
        path, method = request.url.path, request.method
        if path.startswith(ANTHROPIC):
            return self._anthropic(method, path.removeprefix(ANTHROPIC).strip("/"), request)
        if self.unsupported:
            return httpx2.Response(404, json={"error": {"message": "Not Found", "type": "invalid_request_error"}})
        if path.endswith("/files") and method == "POST":
            lines = [ln for ln in request.content.decode().splitlines() if ln.startswith('{"custom_id"')]
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = "\n".join(lines)
            self.uploads.append(file_id)
            return httpx2.Response(200, json=_file(file_id, len(request.content)))
        if "/files/" in path and path.endswith("/content"):
            return httpx2.Response(200, content=self.files[path.split("/")[-2]].encode())
        if path.endswith("/batches") and method == "POST":
            body = json.loads(request.content)
            submitted = [json.loads(ln) for ln in self.files[body["input_file_id"]].splitlines()]
            batch = self._create(submitted, kind="openai")
            batch["input_file_id"] = body["input_file_id"]
            batch["metadata"] = body.get("metadata")
            return httpx2.Response(200, json=self._openai_view(batch))
        if path.endswith("/batches") and method == "GET":
            return self._list("openai", request, self._openai_view, cursor="after")
        if "/batches/" in path:
            batch_id = path.split("/batches/")[1].split("/")[0]
            if path.endswith("/cancel"):
                self._cancel(batch_id)
            return httpx2.Response(200, json=self._openai_view(self.batches[batch_id]))
        return httpx2.Response(404, json={"error": {"message": f"no {method} {path}"}})

    def _anthropic(self, method: str, rest: str, request: httpx2.Request) -> httpx2.Response:
        if not rest and method == "POST":
            body = json.loads(request.content)
            seen: set[str] = set()
            for i, line in enumerate(body["requests"]):
                if not ANTHROPIC_ID.fullmatch(line["custom_id"]):
                    message = f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                    return _refusal(request, message)
                if line["custom_id"] in seen:
                    return _refusal(request, f"requests.{i}.custom_id: Duplicate custom_id")
                seen.add(line["custom_id"])
            return httpx2.Response(200, json=self._anthropic_view(self._create(body["requests"], kind="anthropic")))
        if not rest and method == "GET":
            return self._list("anthropic", request, self._anthropic_view, cursor="after_id")
        batch_id, _, action = rest.partition("/")
        if action == "cancel":
            self._cancel(batch_id)
        batch = self.batches[batch_id]
        if action == "results":
            results = [{"custom_id": cid, "result": r} for cid, r in self._results(batch)]
            return httpx2.Response(200, content="\n".join(json.dumps(r) for r in results).encode())
        return httpx2.Response(200, json=self._anthropic_view(batch))

    def _list(
        self, kind: str, request: httpx2.Request, view: Callable[[dict[str, Any]], dict[str, Any]], *, cursor: str
    ) -> httpx2.Response:
        """Newest first, ``limit`` a page, the next page after the ``cursor`` id."""
        newest_first = [b for b in reversed(list(self.batches.values())) if b["kind"] == kind]
        after = request.url.params.get(cursor)
        if after:
            ids = [b["id"] for b in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :]
        limit = int(request.url.params.get("limit", 20))
        page = newest_first[:limit]
        body: dict[str, Any] = {"data": [view(b) for b in page], "has_more": len(newest_first) > limit}
        body["first_id"] = page[0]["id"] if page else None
        body["last_id"] = page[-1]["id"] if page else None
        if kind == "openai":
            body["object"] = "list"
        return httpx2.Response(200, json=body)

    # -- batches -------------------------------------------------------------------------
    def _create(self, lines: list[dict[str, Any]], *, kind: str) -> dict[str, Any]:
        prefix = "msgbatch_" if kind == "anthropic" else "batch_"
        batch_id = f"{prefix}{len(self.batches) + 1}"
        self.creates.append(batch_id)
        self.lines += lines
        fates = [self._script.popleft() if self._script else "succeeded" for _ in lines]
        batch = {
            "id": batch_id,
            "kind": kind,
            "lines": lines,
            "fates": fates,
            "created": self.now(),
            "cancelled": False,
            "input_file_id": "",
            "metadata": None,
        }
        self.batches[batch_id] = batch
        return batch

    def _cancel(self, batch_id: str) -> None:
        self.cancels.append(batch_id)
        batch = self.batches[batch_id]
        if not self._ended(batch):
            batch["cancelled"] = True
            batch["fates"] = [f if i < self.finish_before_cancel else "canceled" for i, f in enumerate(batch["fates"])]

    def _ended(self, batch: dict[str, Any]) -> bool:
        return bool(batch["cancelled"]) or self.now() >= batch["created"] + self.duration_s

    def _results(self, batch: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for line, fate in zip(batch["lines"], batch["fates"], strict=True):
            if fate == "succeeded":
                out.append((line["custom_id"], {"type": "succeeded", "message": self._answer(line["params"], False)}))
            elif fate == "errored":
                error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad request"}}
                out.append((line["custom_id"], {"type": "errored", "error": error}))
            else:
                out.append((line["custom_id"], {"type": fate}))
        return self.result_order(out)

    def _answer(self, body: dict[str, Any], is_openai: bool) -> dict[str, Any]:
        schema = requested_schema(body)
        obj: Any = (
            self.llm._reply(body)
            if schema is None
            else (self.llm._structured or default_answer)(body if self.llm._structured else schema)
        )
        answer = self.llm._answer(
            body, obj if isinstance(obj, str) else json.dumps(obj), truncated=False, is_openai=is_openai
        )
        if not is_openai and schema is not None and not isinstance(obj, str):
            answer["content"] = [
                {"type": "tool_use", "id": "toolu_fake", "name": body["tool_choice"]["name"], "input": obj}
            ]
            answer["stop_reason"] = "tool_use"
        system = body.get("system")
        if not is_openai and isinstance(system, list) and any("cache_control" in b for b in system):
            text = "".join(b["text"] for b in system)
            tokens = math.ceil(len(text) / 4)
            usage = answer["usage"]
            usage["input_tokens"] = max(usage["input_tokens"] - tokens, 0)
            usage["cache_read_input_tokens" if text in self._cached else "cache_creation_input_tokens"] = tokens
            self._cached.add(text)
        return answer

    # -- views ---------------------------------------------------------------------------
    def _counts(self, batch: dict[str, Any]) -> dict[str, int]:
        fates = batch["fates"] if self._ended(batch) else ["processing"] * len(batch["fates"])
        return {k: fates.count(k) for k in ("processing", "succeeded", "errored", "canceled", "expired")}

    def _anthropic_view(self, batch: dict[str, Any]) -> dict[str, Any]:
        ended = self._ended(batch)
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": self._counts(batch),
            "created_at": _iso(batch["created"]),
            "expires_at": _iso(batch["created"] + 24 * 3600),
            "ended_at": "2026-11-24T01:00:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"https://api.anthropic.com{ANTHROPIC}/{batch['id']}/results" if ended else None,
        }

    def _openai_view(self, batch: dict[str, Any]) -> dict[str, Any]:
        ended = self._ended(batch)
        view: dict[str, Any] = {
            "id": batch["id"],
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch["input_file_id"],
            "completion_window": "24h",
            "created_at": int(batch["created"]),
            "metadata": batch["metadata"],
            "status": ("cancelled" if batch["cancelled"] else "completed") if ended else "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "request_counts": {"total": len(batch["lines"]), "completed": 0, "failed": 0},
        }
        if ended:
            good, bad = [], []
            for line, fate in self.result_order(list(zip(batch["lines"], batch["fates"], strict=True))):
                if fate == "succeeded":
                    response = {"status_code": 200, "body": self._answer(line["body"], True)}
                    good.append({"id": "r", "custom_id": line["custom_id"], "response": response, "error": None})
                elif fate == "errored":
                    body = {"error": {"message": "bad request", "type": "invalid_request_error"}}
                    response = {"status_code": 400, "body": body}
                    bad.append({"id": "r", "custom_id": line["custom_id"], "response": response, "error": None})
                else:
                    code = "batch_expired" if fate == "expired" else "batch_cancelled"
                    bad.append(
                        {
                            "id": "r",
                            "custom_id": line["custom_id"],
                            "response": None,
                            "error": {"code": code, "message": f"the request was {fate}"},
                        }
                    )
            for key, items in (("output_file_id", good), ("error_file_id", bad)):
                if items:
                    file_id = f"{batch['id']}-{key}"
                    self.files[file_id] = "\n".join(json.dumps(i) for i in items)
                    view[key] = file_id
            view["request_counts"] = {"total": len(batch["lines"]), "completed": len(good), "failed": len(bad)}
        return view


def _file(file_id: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 0,
        "filename": "batch.jsonl",
        "purpose": "batch",
        "status": "processed",
    }


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat().replace("+00:00", "Z")


def _operation(request: httpx2.Request) -> str:
    """Which batch call this is, for either vendor: upload, create, list, poll, results or cancel."""
    path, method = request.url.path.rstrip("/"), request.method
    if path.endswith("/files"):
        return "upload"
    if path.endswith("/content") or path.endswith("/results"):
        return "results"
    if path.endswith("/cancel"):
        return "cancel"
    if path.endswith("/batches"):
        return "create" if method == "POST" else "list"
    return "poll"


def _refusal(request: httpx2.Request, message: str) -> httpx2.Response:
    """A 400 in the vendor's own error shape."""
    error = {"type": "invalid_request_error", "message": message}
    if request.url.path.startswith(ANTHROPIC):
        return httpx2.Response(400, json={"type": "error", "error": error})
    return httpx2.Response(400, json={"error": {**error, "param": None, "code": None}})


def _key_refused(request: httpx2.Request, status: int) -> httpx2.Response:
    """A refused key (401) or a key without permission (403), in the vendor's own error shape."""
    if request.url.path.startswith(ANTHROPIC):
        kind = "authentication_error" if status == 401 else "permission_error"
        return httpx2.Response(status, json={"type": "error", "error": {"type": kind, "message": "invalid x-api-key"}})
    message = "Incorrect API key provided" if status == 401 else "You are not allowed to use this model"
    code = "invalid_api_key" if status == 401 else "insufficient_permissions"
    return httpx2.Response(status, json={"error": {"message": message, "type": "invalid_request_error", "code": code}})
