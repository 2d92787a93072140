"""A scripted OpenAI-compatible chat-completions server: the one test double of the SDK suite.

assistd calls a model through `POST {ASSISTD_UPSTREAM_BASE_URL}/chat/completions`. This module plays that
model. Each test gets its own `Script` (keyed by a unique model name the test gives its assistant), pushes the
turns the model should answer with, and afterwards reads back every request body the server sent.

    script = upstream.script()                       # script.model == "scripted-<hex>"
    script.push_tool_call("code_interpreter", {"code": "print(6*7)"})
    script.push_text(lambda req: f"The answer is {tool_outputs(req)[-1].strip()}.")
    ... run an assistant created with model=script.model ...
    script.requests[-1]["messages"]                   # what the model was shown

`AzureUpstream` plays an Azure OpenAI deployment instead: it serves only
`POST /openai/deployments/{deployment}/chat/completions?api-version=V` with an `api-key` header (and
`GET /openai/models?api-version=V`), refusing any other path, version or auth.

`POST /embeddings` answers deterministic vectors: each word (lower-cased letters and digits) adds a signed unit
to one hashed dimension, so texts sharing words point the same way and texts sharing none are (nearly) orthogonal.
Tests steer it per word, so they do not disturb each other: `upstream.same_meaning("car", "automobile")` embeds
both words as one, on a dimension of its own that no unsteered word hashes to (a passage can then be found by
meaning without sharing a word, and never by a chance collision), `upstream.no_meaning("xk4471")`
leaves a word out of the vector (only the keyword leg can find it), and `upstream.refuse_embedding("marker")`
answers 400 to any request with an input containing it. `upstream.embedding_requests` records each body.

`POST /rerank` (Cohere's shape, as TEI, vLLM, Jina and Infinity serve it) scores each document by the share of
the query's words it holds, unless a test steers queries holding a marker of its own:
`upstream.rerank_by(marker, "w1", "w2")` scores a document holding w1 highest, then w2, and one holding none 0;
`status=503` fails instead; `tei=True` answers TEI's bare list with raw logits rather than 0..1 scores.
`upstream.rerank_requests` records each body.

Requests for a model nobody scripted, or after a script ran dry, get DEFAULT_TEXT.
Both `stream: false` (one chat.completion) and `stream: true` (SSE chat.completion.chunk deltas, tool-call
arguments split across chunks as OpenAI does, a usage chunk when `stream_options.include_usage`, then
`data: [DONE]`) are served.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union
from urllib.parse import parse_qs, urlsplit

DEFAULT_TEXT = "This is the scripted upstream's default answer."
STEERED = 64  # dimensions kept for meanings tests steer (`same_meaning`)
DEFAULT_USAGE = (11, 7)  # (prompt_tokens, completion_tokens) of every turn unless a test says otherwise

Request = dict[str, Any]
TextSource = Union[str, Callable[[Request], str]]


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] | str
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Turn:
    """One model answer: text, tool calls, or an HTTP error."""

    text: TextSource | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    error_status: int | None = None
    error_body: dict[str, Any] | None = None
    sticky: bool = False  # an error turn that answers every later request too
    delay: float = 0.0  # seconds to wait before answering
    chunk_delay: float = 0.0  # seconds between streamed chunks
    usage: tuple[int, int] = DEFAULT_USAGE
    arg_chunk: int = 7  # characters of tool-call arguments per streamed chunk
    args_with_name: bool = False  # stream each call's whole arguments in the chunk that names it


class Script:
    """The turns one test scripted for its model, and the requests that model received."""

    def __init__(self, model: str):
        self.model = model
        self.turns: deque[Turn] = deque()
        self.requests: list[Request] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    # -- scripting ---------------------------------------------------------------------------------------
    def push(self, turn: Turn) -> "Script":
        with self._lock:
            self.turns.append(turn)
        return self

    def push_text(self, text: TextSource, *, delay: float = 0.0, chunk_delay: float = 0.0,
                  usage: tuple[int, int] = DEFAULT_USAGE) -> "Script":
        """The model answers with `text` (or `text(request)` if callable, to react to what it was sent)."""
        return self.push(Turn(text=text, delay=delay, chunk_delay=chunk_delay, usage=usage))

    def push_tool_call(self, name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None,
                       delay: float = 0.0, usage: tuple[int, int] = DEFAULT_USAGE, arg_chunk: int = 7,
                       args_with_name: bool = False, text: str | None = None,
                       chunk_delay: float = 0.0) -> "Script":
        """The model calls one function. `code_interpreter` is how assistd offers code execution.
        A string `arguments` is sent as is (raw code, broken JSON); `text` is said before the call."""
        call = ToolCall(name, arguments) if call_id is None else ToolCall(name, arguments, call_id)
        return self.push(Turn(text=text, tool_calls=[call], delay=delay, usage=usage, arg_chunk=arg_chunk,
                              args_with_name=args_with_name, chunk_delay=chunk_delay))

    push_function_call = push_tool_call

    def push_tool_calls(self, calls: list[tuple[str, dict[str, Any] | str]], *, delay: float = 0.0,
                        usage: tuple[int, int] = DEFAULT_USAGE, arg_chunk: int = 7) -> "Script":
        """The model calls several functions in one turn (parallel tool calls)."""
        return self.push(Turn(tool_calls=[ToolCall(n, a) for n, a in calls], delay=delay, usage=usage,
                              arg_chunk=arg_chunk))

    def push_error(self, status: int, *, message: str | None = None, code: str | None = None,
                   sticky: bool = False, delay: float = 0.0) -> "Script":
        """The model endpoint fails with `status` and an OpenAI-shaped error body (`code` overrides its code)."""
        body = _error_body(status, message)
        if code is not None:
            body["error"]["code"] = code
        return self.push(Turn(error_status=status, error_body=body, sticky=sticky, delay=delay))

    # -- reading back ----------------------------------------------------------------------------------------
    def next_turn(self) -> Turn:
        with self._lock:
            if not self.turns:
                return Turn(text=DEFAULT_TEXT)
            turn = self.turns[0]
            if not turn.sticky:
                self.turns.popleft()
            return turn

    def record(self, body: Request, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self.turns)


def _error_body(status: int, message: str | None) -> dict[str, Any]:
    if status == 429:
        return {"error": {"message": message or "Rate limit reached for requests. Please try again later.",
                          "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    if status >= 500:
        return {"error": {"message": message or "The server had an error while processing your request.",
                          "type": "server_error", "param": None, "code": None}}
    return {"error": {"message": message or f"Scripted error {status}.", "type": "invalid_request_error",
                      "param": None, "code": None}}


# -- helpers for reading a recorded request -----------------------------------------------------------------

def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def tool_outputs(request: Request) -> list[str]:
    """Contents of the `tool` role messages in a chat request, in order."""
    return [message_text(m) for m in request.get("messages", []) if m.get("role") == "tool"]


def prompt_text(request: Request) -> str:
    """Everything the model was shown, as one string (for `in` assertions)."""
    return "\n".join(message_text(m) for m in request.get("messages", []))


# -- the HTTP server --------------------------------------------------------------------------------------------

class Upstream:
    """Runs the scripted model on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}
        self._default = Script("default")
        self._lock = threading.Lock()
        self.all_requests: list[Request] = []
        # The path (with query) of every chat completions request, in order.
        self.paths: list[str] = []
        # What `GET .../models` lists.
        self.listed_models: list[str] = []
        # When set, requests without this key are refused with 401.
        self.required_key: str | None = None
        # Embeddings: word -> the word it is embedded as (None: left out); markers refused.
        self.meanings: dict[str, str | None] = {}
        self.steered: dict[str, int] = {}  # a steered meaning -> its own dimension, below STEERED
        self.refused_markers: dict[str, int] = {}  # marker -> the status answered
        self.embedding_requests: list[Request] = []
        # Reranking: query marker -> (words in order, status to fail with, TEI's shape).
        self.rerank_rules: dict[str, tuple[tuple[str, ...], int | None, bool]] = {}
        self.rerank_requests: list[Request] = []
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, name="upstream", daemon=True)

    def start(self) -> "Upstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, model: str | None = None) -> Script:
        """A fresh script for a model name (unique by default)."""
        model = model or f"scripted-{uuid.uuid4().hex[:12]}"
        with self._lock:
            script = Script(model)
            self._scripts[model] = script
            return script

    def script_for(self, model: str | None) -> Script:
        with self._lock:
            return self._scripts.get(model or "", self._default)

    # -- embeddings -----------------------------------------------------------------------------------------
    def same_meaning(self, *words: str) -> None:
        """Embeds every word as the first one."""
        with self._lock:
            for w in words:
                self.meanings[w.lower()] = words[0].lower()
            self.steered.setdefault(words[0].lower(), len(self.steered) % STEERED)

    def no_meaning(self, *words: str) -> None:
        """Leaves the words out of embeddings."""
        with self._lock:
            for w in words:
                self.meanings[w.lower()] = None

    def refuse_embedding(self, marker: str, status: int = 400) -> None:
        """Answers `status` (400, or 404 as for a model this upstream does not serve) to embedding requests
        with an input containing `marker`."""
        with self._lock:
            self.refused_markers[marker.lower()] = status

    def embed(self, text: str, dimensions: int) -> list[float]:
        vector = [0.0] * dimensions
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            word = self.meanings.get(word, word)
            if word is None:
                continue
            if word in self.steered:
                vector[self.steered[word]] += 1.0
                continue
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            dimension = STEERED + int.from_bytes(digest[:4], "little") % (dimensions - STEERED)
            vector[dimension] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def embeddings(self, body: Request) -> tuple[int, Any]:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            return 400, _error_body(400, "'input' must be a string or a non-empty array of strings.")
        with self._lock:
            self.embedding_requests.append(body)
            markers = dict(self.refused_markers)
        for marker, status in markers.items():
            if any(marker in i.lower() for i in inputs):
                if status == 404:
                    return 404, _error_body(404, f"The model `{body.get('model')}` does not exist.")
                return status, _error_body(status, "This embedding request was refused by the test.")
        dimensions = body.get("dimensions") or 384
        data = [{"object": "embedding", "index": n, "embedding": self.embed(text, dimensions)}
                for n, text in enumerate(inputs)]
        tokens = sum(len(i.split()) for i in inputs)
        return 200, {"object": "list", "data": data, "model": body.get("model"),
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def is_embeddings_path(self, path: str) -> bool:
        return urlsplit(path).path.rstrip("/").endswith("/embeddings")

    # -- reranking ------------------------------------------------------------------------------------------
    def rerank_by(self, marker: str, *words: str, status: int | None = None, tei: bool = False) -> None:
        """Queries holding `marker` rank documents by the first of `words` they hold (earlier is better)."""
        with self._lock:
            self.rerank_rules[marker.lower()] = (tuple(w.lower() for w in words), status, tei)

    def rerank(self, body: Request) -> tuple[int, Any]:
        query, documents = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not isinstance(documents, list) or \
                not all(isinstance(d, str) for d in documents):
            return 400, _error_body(400, "'query' must be a string and 'documents' an array of strings.")
        with self._lock:
            self.rerank_requests.append(body)
            rule = next((r for m, r in self.rerank_rules.items() if m in query.lower()), None)
        if rule and rule[1] is not None:
            return rule[1], _error_body(rule[1], "This rerank request was refused by the test.")

        def score(document: str) -> float:
            held = set(re.findall(r"[a-z0-9]+", document.lower()))
            if rule is None:
                asked = set(re.findall(r"[a-z0-9]+", query.lower()))
                return len(asked & held) / max(len(asked), 1)
            words = rule[0]
            for n, w in enumerate(words):
                if w in held:
                    return (len(words) - n) / (len(words) + 1)
            return 0.0

        scored = sorted(((n, score(d)) for n, d in enumerate(documents)), key=lambda p: -p[1])
        top_n = body.get("top_n") or len(scored)
        if rule and rule[2]:  # TEI: a bare list, raw logits
            return 200, [{"index": n, "score": 8 * s - 4} for n, s in scored[:top_n]]
        return 200, {"id": uuid.uuid4().hex, "model": body.get("model"),
                     "results": [{"index": n, "relevance_score": s} for n, s in scored[:top_n]]}

    def is_rerank_path(self, path: str) -> bool:
        return urlsplit(path).path.rstrip("/").endswith("/rerank")

    # -- what this upstream accepts (AzureUpstream changes it) ----------------------------------------------
    def refusal(self, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, message) if the request is refused, else None."""
        if self.required_key is not None and headers.get("authorization") != f"Bearer {self.required_key}":
            return 401, "Incorrect API key provided."
        return None

    def is_chat_path(self, path: str) -> bool:
        return urlsplit(path).path.rstrip("/").endswith("/chat/completions")

    def is_models_path(self, path: str) -> bool:
        return urlsplit(path).path.rstrip("/").endswith("/models")


class AzureUpstream(Upstream):
    """An Azure OpenAI resource: deployment paths, `api-version` and the `api-key` header, nothing else."""

    CHAT = re.compile(r"^/openai/deployments/([A-Za-z0-9._%-]+)/chat/completions$")

    def __init__(self, *, api_key: str, api_version: str, deployments: set[str] | None = None) -> None:
        super().__init__()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.api_version = api_version
        # When set, only these deployment names exist.
        self.deployments = deployments

    def refusal(self, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        parts = urlsplit(path)
        if "authorization" in headers:
            return 401, "Azure takes its key in an api-key header, not Authorization."
        if headers.get("api-key") != self.api_key:
            return 401, "Access denied due to invalid subscription key or wrong API endpoint."
        if parse_qs(parts.query).get("api-version") != [self.api_version]:
            return 404, f"Resource not found (api-version {parse_qs(parts.query).get('api-version')})"
        match = self.CHAT.match(parts.path)
        if match and self.deployments is not None and match.group(1) not in self.deployments:
            return 404, f"The API deployment {match.group(1)} does not exist."
        return None

    def is_chat_path(self, path: str) -> bool:
        return bool(self.CHAT.match(urlsplit(path).path))

    def is_models_path(self, path: str) -> bool:
        return urlsplit(path).path == "/openai/models"


def _make_handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A streamed answer is many small writes: with Nagle's algorithm each waited for the
        # client's delayed ACK, up to 40 ms a turn, in a double meant to answer at once.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _refused(self) -> bool:
            refusal = upstream.refusal(self.path, {k.lower(): v for k, v in self.headers.items()})
            if refusal is not None:
                self._json(refusal[0], _error_body(refusal[0], refusal[1]))
            return refusal is not None

        def do_GET(self) -> None:
            if self._refused():
                return
            if upstream.is_models_path(self.path):
                data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "scripted"}
                        for m in upstream.listed_models]
                self._json(200, {"object": "list", "data": data})
            else:
                self._json(404, _error_body(404, f"Unknown path {self.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self._refused():
                return
            if upstream.is_embeddings_path(self.path):
                try:
                    status, payload = upstream.embeddings(json.loads(raw or b"{}"))
                except json.JSONDecodeError:
                    status, payload = 400, _error_body(400, "We could not parse the JSON body of your request.")
                self._json(status, payload)
                return
            if upstream.is_rerank_path(self.path):
                try:
                    status, payload = upstream.rerank(json.loads(raw or b"{}"))
                except json.JSONDecodeError:
                    status, payload = 400, _error_body(400, "We could not parse the JSON body of your request.")
                self._json(status, payload)
                return
            if not upstream.is_chat_path(self.path):
                self._json(404, _error_body(404, f"Unknown path {self.path}"))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._json(400, _error_body(400, "We could not parse the JSON body of your request."))
                return
            with upstream._lock:
                upstream.all_requests.append(body)
                upstream.paths.append(self.path)
            script = upstream.script_for(body.get("model"))
            script.record(body, {k.lower(): v for k, v in self.headers.items()})
            turn = script.next_turn()
            if turn.delay:
                time.sleep(turn.delay)
            if turn.error_status is not None:
                self._json(turn.error_status, turn.error_body or _error_body(turn.error_status, None))
                return
            try:
                text = turn.text(body) if callable(turn.text) else turn.text
            except Exception as exc:  # a test's reaction failed: say so in the answer, don't drop the request
                text = f"SCRIPT ERROR: {exc!r}"
            if body.get("stream"):
                self._stream(body, turn, text)
            else:
                self._json(200, _completion(body, turn, text))

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, body: Request, turn: Turn, text: str | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in _chunks(body, turn, text):
                    self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    if turn.chunk_delay:
                        time.sleep(turn.chunk_delay)
                self._write_chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server hung up (e.g. a cancelled run); nothing to do

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _usage(turn: Turn) -> dict[str, int]:
    prompt, completion = turn.usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(body: Request, turn: Turn, text: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if turn.tool_calls:
        message["content"] = text  # usually None when the model calls tools
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json()}}
            for c in turn.tool_calls
        ]
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "system_fingerprint": "fp_scripted",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if turn.tool_calls else "stop"}],
        "usage": _usage(turn),
    }


def _split(s: str, size: int) -> list[str]:
    return [s[i:i + size] for i in range(0, len(s), size)] or [""]


def _chunks(body: Request, turn: Turn, text: str | None) -> list[dict[str, Any]]:
    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    model = body.get("model", "unknown")
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                             "system_fingerprint": "fp_scripted",
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            c["usage"] = None
        return c

    out = [chunk({"role": "assistant", "content": "" if not turn.tool_calls else None, "refusal": None})]
    if text:
        for piece in _split(text, 4):
            out.append(chunk({"content": piece}))
    for index, call in enumerate(turn.tool_calls):
        # OpenAI sends id/type/name once with empty arguments, then the arguments in fragments.
        arguments = call.arguments_json()
        out.append(chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                          "function": {"name": call.name,
                                                       "arguments": arguments if turn.args_with_name else ""}}]}))
        if not turn.args_with_name:
            for piece in _split(arguments, turn.arg_chunk):
                out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls" if turn.tool_calls else "stop"))
    if include_usage:
        out.append({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_scripted", "choices": [], "usage": _usage(turn)})
    return out
