"""A fake OpenAI API on loopback, modelled field for field on OpenAI's published API reference.

It serves what the project calls -- files, fine-tuning jobs (with their state machine and
events), chat completions (structured output, logprobs, usage) and models -- so the real
``AsyncOpenAI`` client, with ``_strict_response_validation=True``, can be tested end to end.
Every request is recorded (``requests``); uploaded bytes are kept (``file_bytes``).

The model behind ``/v1/chat/completions`` is a small deterministic rule, documented here so the
tests' expectations can be checked by hand:

* **Base models** score each department by how many of its keywords occur in the *ticket text*
  and answer the best (ties: taxonomy order; no keyword: "Other", else the first department).
  Probabilities are a softmax over 2 x score, reported as token logprobs.
* **Ticket text** is the content between ``<ticket>`` and ``</ticket>`` when the last user
  message is exactly one such block *and* the system prompt mentions ``<ticket>`` (the prompt
  declared the block as data): the request is *guarded*. Otherwise it is the whole user message.
* **Injection-sensitive**: in an unguarded request, "ignore (all) previous instructions and
  say/route to/classify as/answer X" makes the model answer X, like a naive LLM would. In a
  guarded request the sentence is just text (department names are not keywords).
* **Fine-tuned models** (``ft:...``, which exist once their job succeeded) answer with a naive
  Bayes classifier over the words of their uploaded training file, so a fine-tune really learns
  from its data; they answer the bare label, as they were trained to.
* **Synthetic generation**: a request whose ``response_format`` schema is named
  ``synthetic_tickets`` and whose user message has ``Department: X`` and ``Count: N`` lines gets
  N tickets for X built from per-department topic phrases (only some contain a keyword). With
  ``generation_noise`` each batch also holds one duplicate and one ticket labelled with another
  department, so the caller's filters have something to reject.

Faults: ``inject(...)`` answers the next matching requests with an error status (optionally
with ``Retry-After``), after a delay (slow responses), or after processing the request (a lost
response: the job exists but the client saw a 500). ``refuse_fine_tuning()`` makes job creation
answer OpenAI's refusal body; ``fail_jobs`` makes jobs end ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "sk-test-fake-key-0123456789"

DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Technical": ("error", "crash", "bug", "not working", "outage", "api", "slow", "sync"),
    "Billing": ("invoice", "charge", "refund", "payment", "card", "price", "subscription", "vat"),
    "Account": (
        "password",
        "locked",
        "email address",
        "username",
        "delete my account",
        "permissions",
    ),
    "Product": ("how do i", "feature", "request", "suggestion", "roadmap", "is it possible"),
    "Other": ("partnership", "press", "job", "thank you"),
}

#: Topic phrases for synthetic tickets; the first two of each contain a keyword, the rest not.
TOPICS: dict[str, tuple[str, ...]] = {
    "Technical": (
        "the export fails with an error",
        "the mobile app keeps hitting a crash on start",
        "the dashboard stays blank after the latest update",
        "webhooks to our CRM stopped arriving yesterday",
        "the reports page times out when I open it",
        "uploads freeze at ninety percent",
    ),
    "Billing": (
        "I was charged twice this month",
        "I need a copy of the invoice for March",
        "money was taken from my account two times",
        "our company needs the tax number on the receipt",
        "the annual plan cost more than the pricing page said",
        "I want my money back for the unused months",
    ),
    "Account": (
        "I forgot my password and the reset link expired",
        "my account is locked after too many attempts",
        "I need to transfer ownership of the workspace to a colleague",
        "please remove a former employee from our team",
        "I would like all my personal data erased",
        "I cannot sign in since I changed my phone",
    ),
    "Product": (
        "how do i share a dashboard with a client",
        "a feature to schedule exports would help us",
        "does the team plan include audit logs",
        "it would be great to have a dark mode",
        "where can I find documentation on custom fields",
        "can the calendar view show weekends",
    ),
    "Other": (
        "we would like to discuss a partnership",
        "I am a journalist writing about your company for the press",
        "do you ship the hardware kit to Canada",
        "just wanted to say your support team is wonderful",
        "are you hiring designers in Berlin",
        "where is your head office located",
    ),
}

_OPENERS = ("Hi,", "Hello team,", "Good morning,", "Hey there,", "Dear support,", "Hi folks,")
_PEOPLE = ("Ana", "Ben", "Chloé", "Dev", "Emeka", "Fatima", "Goran", "Hiro", "Ines", "Jonas")
_CLOSERS = (
    "Thanks!",
    "Any help appreciated.",
    "Please advise.",
    "Cheers.",
    "Waiting for your reply.",
    "Thank you in advance.",
)
_DETAILS = (
    "This started on {day}.",
    "We are a team of {n} people.",
    "I have been a customer for {n} months.",
    "Order reference {ref}.",
    "It affects {n} of our users.",
    "Our workspace is called {name}-{ref}.",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend")

_INJECTION = re.compile(
    r"ignore\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above)\s+instructions"
    r"[^.\n]*?\b(?:say|answer|respond with|reply with|route (?:it |this )?to|"
    r"classify (?:it |this )?as)\s*:?\s*\"?([A-Za-z]+)",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\w+|[^\w\s]")

FINE_TUNABLE = {
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo",
}
BASE_MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-3.5-turbo", *sorted(FINE_TUNABLE))
TERMINAL = {"succeeded", "failed", "cancelled"}
STATES = ("validating_files", "queued", "running")


def approx_tokens(text: str) -> int:
    """The fake's token count: words and punctuation marks (close to BPE for English)."""
    return len(_WORDS.findall(text))


def chat_jsonl_problems(data: bytes) -> list[str]:
    """Why ``data`` is not a valid chat fine-tuning file per OpenAI's documented format."""
    problems: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ["not UTF-8"]
    if not text.endswith("\n"):
        problems.append("file does not end with a newline")
    lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    if not lines:
        problems.append("no examples")
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"line {number}: not JSON")
            continue
        if not isinstance(record, dict) or set(record) != {"messages"}:
            problems.append(f"line {number}: a record must be exactly {{'messages': [...]}}")
            continue
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            problems.append(f"line {number}: messages must be a non-empty list")
            continue
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in {
                "system",
                "user",
                "assistant",
            }:
                problems.append(f"line {number}: bad role")
            elif not isinstance(message.get("content"), str) or set(message) - {
                "role",
                "content",
                "weight",
            }:
                problems.append(f"line {number}: bad message fields")
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            problems.append(f"line {number}: no assistant message")
    return problems


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None


@dataclass
class Fault:
    """An injected failure for the next ``times`` requests matching ``method`` and ``path``."""

    method: str
    path: str
    status: int | None = 500
    times: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    after: bool = False
    body: dict[str, Any] | None = None


@dataclass
class FakeOpenAI:
    """The fake API's state and server. Start with ``await start()`` or ``serve_in_thread()``."""

    keywords: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_KEYWORDS))
    api_key: str = API_KEY
    polls_per_state: int = 1
    seconds_per_state: float | None = None
    #: Where ``seconds_per_state`` reads the time (tests give a clock they move).
    clock: Callable[[], float] = time.monotonic
    logprobs: bool = True
    generation_noise: bool = True
    fail_jobs: bool = False
    refusal: dict[str, Any] | None = None
    #: Replace the chat rule: a function of the request body returning the content to answer.
    chat_override: Callable[[dict[str, Any]], str] | None = None

    requests: list[RecordedRequest] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_bytes: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What each job trains on, copied when it is created (as the real service does): the file
    #: can be deleted afterwards and the job and its model carry on.
    trained_on: dict[str, bytes] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    #: Requests being handled now (a request the client gave up on still finishes here).
    in_flight: int = 0

    _counter: int = 0
    _polls: dict[str, int] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    #: ``settled`` callers: each one's loop and the event its loop sets when nothing is in flight.
    _idle_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(
        default_factory=list
    )
    port: int = 0

    def __post_init__(self) -> None:
        now = int(time.time())
        for name in BASE_MODELS:
            self.models[name] = {
                "id": name,
                "object": "model",
                "created": now - 86400,
                "owned_by": "system",
            }

    # ----------------------------------------------------------------- control from tests

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, method: str, path: str, **kwargs: Any) -> Fault:
        """Fail the next matching request(s); see ``Fault``."""
        fault = Fault(method=method.upper(), path=path, **kwargs)
        self.faults.append(fault)
        return fault

    def refuse_fine_tuning(self, reason: str = "not_eligible") -> None:
        """Make job creation answer the refusal OpenAI sends for ``reason``."""
        messages = {
            "not_eligible": (
                403,
                "Your organization is not eligible to create fine-tuning jobs. Self-serve "
                "fine-tuning is only available to organizations that have fine-tuned before.",
                "fine_tuning_not_available",
            ),
            "ended": (
                403,
                "Self-serve fine-tuning is no longer available. Existing fine-tuned models "
                "continue to be served until their base model is retired.",
                "fine_tuning_not_available",
            ),
            "model_retired": (
                400,
                "Model gpt-4o-mini-2024-07-18 is not available for fine-tuning or does not exist.",
                "model_not_available",
            ),
        }
        status, message, code = messages[reason]
        self.refusal = {"status": status, "message": message, "code": code}

    async def settled(self, within: float = 10.0) -> None:
        """Wait (bounded, in real time) until no request is being handled: what a client timed
        out on still reaches its end on the server, as on the real API, and may create things.

        Woken by the end of the last request in flight, through the caller's own loop: the
        fake may serve from another thread's loop (``serve_in_thread``).
        """
        idle = asyncio.Event()
        waiter = (asyncio.get_running_loop(), idle)
        self._idle_waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                while True:
                    idle.clear()
                    if not self.in_flight:
                        return
                    await idle.wait()
        finally:
            self._idle_waiters.remove(waiter)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests with this method and exact path."""
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    # ----------------------------------------------------------------- server lifecycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/files", self._create_file)
        app.router.add_get("/v1/files", self._list_files)
        app.router.add_get("/v1/files/{id}", self._get_file)
        app.router.add_delete("/v1/files/{id}", self._delete_file)
        app.router.add_post("/v1/fine_tuning/jobs", self._create_job)
        app.router.add_get("/v1/fine_tuning/jobs", self._list_jobs)
        app.router.add_get("/v1/fine_tuning/jobs/{id}", self._get_job)
        app.router.add_get("/v1/fine_tuning/jobs/{id}/events", self._list_events)
        app.router.add_post("/v1/fine_tuning/jobs/{id}/cancel", self._cancel_job)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{id:.+}", self._get_model)
        return app

    async def start(self) -> str:
        """Listen on 127.0.0.1 on a port the OS picks; returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def serve_in_thread(self) -> Iterator[FakeOpenAI]:
        """Run the server on its own event loop in a thread (for synchronous CLI tests)."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    # ----------------------------------------------------------------- plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await self._handle(request, handler)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                for loop, idle in list(self._idle_waiters):
                    loop.call_soon_threadsafe(idle.set)

    async def _handle(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read()
        parsed: Any = None
        if request.content_type == "application/json" and body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                parsed,
            )
        )
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            shown = request.headers.get("Authorization", "")[7:]
            return _error(
                401,
                f"Incorrect API key provided: {shown[:5]}***{shown[-4:]}. You can find your API "
                "key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        fault = next(
            (
                f
                for f in self.faults
                if f.times > 0 and f.method == request.method and request.path.startswith(f.path)
            ),
            None,
        )
        if fault is not None:
            fault.times -= 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None and not fault.after:
                return self._fault_response(fault)
        started = time.perf_counter()
        response = await handler(request)
        self.server_ms.append((time.perf_counter() - started) * 1000.0)
        response.headers["x-request-id"] = f"req_{self._next_id()}"
        if fault is not None and fault.status is not None and fault.after:
            return self._fault_response(fault)
        return response

    def _fault_response(self, fault: Fault) -> web.Response:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status or 500, headers=headers)
        if fault.status == 429:
            return _error(
                429,
                "Rate limit reached for requests. Please try again shortly.",
                "requests",
                "rate_limit_exceeded",
                headers=headers,
            )
        return _error(
            fault.status or 500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            headers=headers,
        )

    def _next_id(self) -> str:
        self._counter += 1
        return hashlib.sha256(f"fake-{self._counter}".encode()).hexdigest()[:24]

    # ----------------------------------------------------------------- files

    async def _create_file(self, request: web.Request) -> web.Response:
        # The middleware consumed the stream to record it, so parse the recorded bytes.
        body = await request.read()
        head = f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n".encode()
        parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        if parsed.is_multipart():
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(name, str) and isinstance(payload, bytes):
                    fields[name] = (part.get_filename(), payload)
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if "file" not in fields:
            return _error(
                400, "'file' is a required property", "invalid_request_error", None, "file"
            )
        if purpose not in {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}:
            return _error(
                400,
                f"'{purpose}' is not one of the supported purposes.",
                "invalid_request_error",
                None,
                "purpose",
            )
        filename, data = fields["file"]
        if purpose == "fine-tune" and chat_jsonl_problems(data):
            return _error(
                400,
                "Invalid file format for Fine-Tuning API. Must be .jsonl",
                "invalid_request_error",
                None,
                "file",
            )
        file_id = f"file-{self._next_id()}"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename or "upload",
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.file_bytes[file_id] = data
        return web.json_response(self.files[file_id])

    async def _list_files(self, request: web.Request) -> web.Response:
        data = list(reversed(self.files.values()))
        purpose = request.query.get("purpose")
        if purpose:
            data = [f for f in data if f["purpose"] == purpose]
        after = request.query.get("after")
        if after:
            ids = [f["id"] for f in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.query.get("limit", "10000"))
        page = data[:limit]
        return web.json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(data) > limit,
            }
        )

    async def _get_file(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["id"])
        if file is None:
            return _error(
                404,
                f"No such File object: {request.match_info['id']}",
                "invalid_request_error",
                None,
                "id",
            )
        return web.json_response(file)

    async def _delete_file(self, request: web.Request) -> web.Response:
        """DELETE /v1/files/{id}: ``{"id", "object": "file", "deleted": true}``, else 404."""
        file_id = request.match_info["id"]
        if self.files.pop(file_id, None) is None:
            return _error(
                404, f"No such File object: {file_id}", "invalid_request_error", None, "id"
            )
        self.file_bytes.pop(file_id, None)
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    # ----------------------------------------------------------------- fine-tuning jobs

    async def _create_job(self, request: web.Request) -> web.Response:
        if self.refusal is not None:
            return _error(
                self.refusal["status"],
                self.refusal["message"],
                "invalid_request_error",
                self.refusal["code"],
            )
        body = json.loads(await request.read())
        model, training_file = body.get("model"), body.get("training_file")
        if model not in FINE_TUNABLE:
            return _error(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                "invalid_request_error",
                "model_not_available",
                "model",
            )
        file = self.files.get(training_file or "")
        if file is None or file["purpose"] != "fine-tune":
            return _error(
                400,
                f"invalid training_file: {training_file}",
                "invalid_request_error",
                None,
                "training_file",
            )
        suffix = body.get("suffix")
        if suffix is not None and len(suffix) > 64:
            return _error(
                400, "suffix must be at most 64 characters", "invalid_request_error", None, "suffix"
            )
        metadata = body.get("metadata")
        if metadata is not None and (
            len(metadata) > 16
            or any(
                len(k) > 64 or not isinstance(v, str) or len(v) > 512 for k, v in metadata.items()
            )
        ):
            return _error(400, "Invalid metadata", "invalid_request_error", None, "metadata")
        job_id = f"ftjob-{self._next_id()}"
        seed = body.get("seed")
        auto = {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"}
        self.jobs[job_id] = {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": model,
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-fake",
            "result_files": [],
            "status": "validating_files",
            "validation_file": None,
            "training_file": training_file,
            "hyperparameters": dict(auto),
            "method": {"type": "supervised", "supervised": {"hyperparameters": dict(auto)}},
            "trained_tokens": None,
            "error": None,
            "integrations": [],
            "seed": seed if isinstance(seed, int) else 42,
            "estimated_finish": None,
            "metadata": metadata,
            "suffix": suffix,
        }
        self.trained_on[job_id] = self.file_bytes[training_file]
        self._polls[job_id] = 0
        self._started[job_id] = self.clock()
        self.events[job_id] = []
        self._event(job_id, f"Validating training file: {training_file}")
        return web.json_response(self._public(job_id))

    def _public(self, job_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.jobs[job_id].items() if k != "suffix"}

    def _event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        data: dict[str, Any] | None = None,
        type_: str = "message",
    ) -> None:
        self.events[job_id].append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{self._next_id()}",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": type_,
            }
        )

    def _advance(self, job_id: str) -> None:
        job = self.jobs[job_id]
        if job["status"] in TERMINAL:
            return
        if self.seconds_per_state is not None:
            step = int((self.clock() - self._started[job_id]) / self.seconds_per_state)
        else:
            # The first poll still sees the state the job was created in, as on OpenAI.
            step = self._polls[job_id] // self.polls_per_state
            self._polls[job_id] += 1
        target = min(step, len(STATES))
        while job["status"] not in TERMINAL and STATES.index(job["status"]) < target:
            self._enter(job_id, STATES.index(job["status"]) + 1)

    def _enter(self, job_id: str, index: int) -> None:
        job = self.jobs[job_id]
        if index < len(STATES):
            job["status"] = STATES[index]
            if job["status"] == "queued":
                self._event(job_id, "Files validated, moving job to queued state")
            else:
                epochs = 3
                for key in ("hyperparameters",):
                    job[key] = {
                        "batch_size": 1,
                        "learning_rate_multiplier": 2.0,
                        "n_epochs": epochs,
                    }
                job["method"]["supervised"]["hyperparameters"] = dict(job["hyperparameters"])
                job["estimated_finish"] = int(time.time()) + 60
                self._event(job_id, "Fine-tuning job started")
            return
        data = self.trained_on[job_id]
        total = data.count(b"\n") * 3
        for step in (1, total // 2, total):
            self._event(
                job_id,
                f"Step {step}/{total}: training loss={1.5 / step:.4f}",
                data={
                    "step": step,
                    "train_loss": 1.5 / step,
                    "total_steps": total,
                    "train_mean_token_accuracy": min(1.0, 0.5 + step / total / 2),
                },
                type_="metrics",
            )
        job["finished_at"] = int(time.time())
        job["estimated_finish"] = None
        if self.fail_jobs:
            job["status"] = "failed"
            job["error"] = {
                "code": "invalid_training_file",
                "param": "training_file",
                "message": "The job failed due to an invalid training file.",
            }
            self._event(job_id, "The job failed due to an invalid training file.", level="error")
            return
        suffix = job.get("suffix") or "model"
        model_id = f"ft:{job['model']}:fake-org:{suffix}:{job_id[-8:]}"
        job["status"] = "succeeded"
        job["fine_tuned_model"] = model_id
        job["trained_tokens"] = approx_tokens(data.decode("utf-8")) * 3
        result_id = f"file-{self._next_id()}"
        self.files[result_id] = {
            "id": result_id,
            "object": "file",
            "bytes": 0,
            "created_at": int(time.time()),
            "filename": "step_metrics.csv",
            "purpose": "fine-tune-results",
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        job["result_files"] = [result_id]
        self.models[model_id] = {
            "id": model_id,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "org-fake",
        }
        self._event(job_id, f"New fine-tuned model created: {model_id}")
        self._event(job_id, "The job has successfully completed")

    async def _list_jobs(self, request: web.Request) -> web.Response:
        jobs = [self._public(j) for j in reversed(list(self.jobs))]
        wanted = {
            k[9:-1]: v
            for k, v in request.query.items()
            if k.startswith("metadata[") and k.endswith("]")
        }
        if wanted:
            jobs = [
                j for j in jobs if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())
            ]
        return self._page(jobs, request)

    def _page(self, items: list[dict[str, Any]], request: web.Request) -> web.Response:
        after = request.query.get("after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.query.get("limit", "20"))
        page = items[:limit]
        return web.json_response({"object": "list", "data": page, "has_more": len(items) > limit})

    async def _get_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        if job_id not in self.jobs:
            return _error(
                404,
                f"Could not find fine tune: {job_id}",
                "invalid_request_error",
                "fine_tune_not_found",
                "id",
            )
        self._advance(job_id)
        return web.json_response(self._public(job_id))

    async def _list_events(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        if job_id not in self.jobs:
            return _error(
                404,
                f"Could not find fine tune: {job_id}",
                "invalid_request_error",
                "fine_tune_not_found",
                "id",
            )
        return self._page(list(reversed(self.events[job_id])), request)

    async def _cancel_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        job = self.jobs.get(job_id)
        if job is None:
            return _error(
                404,
                f"Could not find fine tune: {job_id}",
                "invalid_request_error",
                "fine_tune_not_found",
                "id",
            )
        if job["status"] in TERMINAL:
            return _error(
                400, f"Job has already completed: {job_id}", "invalid_request_error", None
            )
        job["status"] = "cancelled"
        job["finished_at"] = int(time.time())
        self._event(job_id, "Fine-tuning job cancelled")
        return web.json_response(self._public(job_id))

    # ----------------------------------------------------------------- models

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": list(self.models.values())})

    async def _get_model(self, request: web.Request) -> web.Response:
        model = self.models.get(request.match_info["id"])
        if model is None:
            return _error(
                404,
                f"The model '{request.match_info['id']}' does not exist",
                "invalid_request_error",
                "model_not_found",
                "model",
            )
        return web.json_response(model)

    # ----------------------------------------------------------------- chat

    async def _chat(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        model = body.get("model")
        if model not in self.models:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        messages = body.get("messages") or []
        schema = (body.get("response_format") or {}).get("json_schema") or {}
        if schema.get("name") == "synthetic_tickets":
            content = self._generate(messages, schema)
            return self._completion(body, content, None, messages)
        if self.chat_override is not None:
            return self._completion(body, self.chat_override(body), None, messages)
        enum = schema.get("schema", {}).get("properties", {}).get("department", {}).get("enum")
        label, probs = self._classify(model, messages, enum)
        if enum is not None:
            content = json.dumps({"department": label}, separators=(",", ":"))
            return self._completion(
                body,
                content,
                (label, probs),
                messages,
                pieces=['{"', "department", '":"', label, '"}'],
            )
        return self._completion(body, label, (label, probs), messages, pieces=[label])

    def _classify(
        self, model: str, messages: list[dict[str, Any]], enum: list[str] | None
    ) -> tuple[str, dict[str, float]]:
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        labels = list(enum) if enum else list(self.keywords)
        if model.startswith("ft:"):
            return self._nearest(model, user)
        inner = re.fullmatch(r"<ticket>\n?(.*?)\n?</ticket>", user, re.DOTALL)
        guarded = (
            inner is not None
            and "<ticket>" in system
            and "<ticket>" not in inner.group(1)
            and "</ticket>" not in inner.group(1)
        )
        text = inner.group(1) if (inner is not None and guarded) else user
        if not guarded:
            hit = _INJECTION.search(user)
            if hit and (enum is None or hit.group(1) in enum):
                return hit.group(1), {hit.group(1): 0.99}
        low = text.casefold()
        scores = {lab: sum(low.count(k) for k in self.keywords.get(lab, ())) for lab in labels}
        best = max(labels, key=lambda lab: scores[lab])
        if scores[best] == 0:
            best = next((lab for lab in labels if lab.casefold() == "other"), labels[0])
            scores[best] = 1
        weights = {lab: math.exp(2 * s) for lab, s in scores.items()}
        total = sum(weights.values())
        return best, {lab: w / total for lab, w in weights.items()}

    def _nearest(self, model: str, text: str) -> tuple[str, dict[str, float]]:
        """A multinomial naive Bayes over the words of the job's training file."""
        job = next(j for j in self.jobs.values() if j["fine_tuned_model"] == model)
        counts: dict[str, dict[str, int]] = {}
        docs: dict[str, int] = {}
        for line in self.trained_on[job["id"]].decode("utf-8").splitlines():
            msgs = json.loads(line)["messages"]
            label = msgs[-1]["content"]
            docs[label] = docs.get(label, 0) + 1
            bag = counts.setdefault(label, {})
            for word in re.findall(r"\w+", msgs[-2]["content"].casefold()):
                bag[word] = bag.get(word, 0) + 1
        vocab = {w for bag in counts.values() for w in bag}
        words = re.findall(r"\w+", text.casefold())
        logp: dict[str, float] = {}
        for label, bag in counts.items():
            total = sum(bag.values()) + len(vocab) + 1
            logp[label] = math.log(docs[label]) + sum(
                math.log((bag.get(w, 0) + 1) / total) for w in words if w in vocab
            )
        top = max(logp.values())
        weights = {lab: math.exp(v - top) for lab, v in logp.items()}
        total_w = sum(weights.values())
        best = max(logp, key=lambda lab: logp[lab])
        return best, {lab: w / total_w for lab, w in weights.items()}

    def _completion(
        self,
        body: dict[str, Any],
        content: str,
        scored: tuple[str, dict[str, float]] | None,
        messages: list[dict[str, Any]],
        pieces: list[str] | None = None,
    ) -> web.Response:
        prompt_tokens = sum(approx_tokens(str(m.get("content", ""))) + 4 for m in messages) + 3
        completion_tokens = len(pieces) if pieces else approx_tokens(content)
        pieces = pieces or [content]
        logprobs = None
        if body.get("logprobs") and self.logprobs:
            top_n = int(body.get("top_logprobs") or 0)
            entries = []
            for piece in pieces:
                if scored is not None and piece == scored[0]:
                    label, probs = scored
                    ranked = sorted(probs.items(), key=lambda kv: -kv[1])[:top_n]
                    entries.append(
                        self._token(
                            piece,
                            math.log(probs.get(label, 0.99)),
                            [(t, math.log(p)) for t, p in ranked],
                        )
                    )
                else:
                    entries.append(self._token(piece, -1e-6, [(piece, -1e-6)][:top_n]))
            logprobs = {"content": entries, "refusal": None}
        completion_tokens = len(pieces)
        return web.json_response(
            {
                "id": f"chatcmpl-{self._next_id()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": content,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": logprobs,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
        )

    @staticmethod
    def _token(token: str, logprob: float, top: list[tuple[str, float]]) -> dict[str, Any]:
        return {
            "token": token,
            "logprob": logprob,
            "bytes": list(token.encode("utf-8")),
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in top
            ],
        }

    def _generate(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content", "")) for m in messages)
        dept_match = re.search(r"^Department: (.+)$", prompt, re.MULTILINE)
        count_match = re.search(r"^Count: (\d+)$", prompt, re.MULTILINE)
        department = dept_match.group(1).strip() if dept_match else "Other"
        count = int(count_match.group(1)) if count_match else 5
        rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
        topics = TOPICS.get(department) or tuple(
            f"a question about {department.lower()} number {i}" for i in range(6)
        )
        tickets = []
        for _ in range(count):
            text = " ".join(
                [
                    rng.choice(_OPENERS),
                    rng.choice(topics).capitalize() + ".",
                    rng.choice(_DETAILS).format(
                        day=rng.choice(_DAYS),
                        n=rng.randint(2, 900),
                        ref=rng.randint(10000, 99999),
                        name=rng.choice(_PEOPLE).lower(),
                    ),
                    rng.choice(_CLOSERS),
                    f"-- {rng.choice(_PEOPLE)}",
                ]
            )
            tickets.append({"text": text, "department": department})
        if self.generation_noise and tickets:
            tickets.append(dict(tickets[0]))
            other = next((d for d in TOPICS if d != department), department)
            tickets.append(
                {
                    "text": f"Hello, {TOPICS[other][0]}. Ref {rng.randint(1, 999)}.",
                    "department": other,
                }
            )
        return json.dumps({"tickets": tickets})
