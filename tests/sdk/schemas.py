"""Every Responses / Conversations object the SDK tests receive, checked against the published schemas.

`ValidatingTransport` (the SDK clients' httpx transport, see conftest.py) reads each 2xx body of
/v1/responses... and /v1/conversations... as it passes — a JSON object or an SSE stream — and checks it:
  - a response object against OpenAI's `Response` and Open Responses' `ResponseResource` (top-level fields:
    presence and types; its item unions are narrower than OpenAI's),
  - its output items against `OutputItem`, input/conversation items against `ItemResource`/`ConversationItem`,
  - each stream event against `ResponseStreamEvent`.
The schemas: schemas/openai-responses.openapi.yaml (OpenAI's spec subset, as in the shared reference, with the
changes in schemas/extensions.yaml) and schemas/openresponses-response.json (Open Responses' ResponseResource, references to its other files left
open). Problems are collected in `PROBLEMS`; conftest.py fails the test that received them.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import httpx
import yaml

HERE = Path(__file__).resolve().parent / "schemas"
PROBLEMS: list[str] = []

try:  # jsonschema is pinned in both requirements files; without it nothing is checked.
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
except ImportError:  # pragma: no cover
    jsonschema = None


@lru_cache(maxsize=1)
def _openai() -> tuple[Any, Any]:
    spec = yaml.safe_load((HERE / "openai-responses.openapi.yaml").read_text())
    for change in yaml.safe_load((HERE / "extensions.yaml").read_text()):
        *parents, last = change["pointer"].strip("/").split("/")
        node = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if "append" in change:
            node[last].append(change["append"])
        else:
            node[last] = change["value"]
    root = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openai", root)
    return spec, registry


def _validator(name: str):
    spec, registry = _openai()
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


@lru_cache(maxsize=None)
def validator(name: str):
    return _validator(name)


@lru_cache(maxsize=1)
def open_responses():
    schema = json.loads((HERE / "openresponses-response.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _check(v, obj: Any, what: str) -> None:
    errors = sorted(v.iter_errors(obj), key=lambda e: list(e.path))
    for e in errors[:3]:
        path = "/".join(str(p) for p in e.path)
        PROBLEMS.append(f"{what} at '{path}': {e.message[:300]}")


def check_response(obj: dict, where: str) -> None:
    _check(validator("Response"), obj, f"{where}: Response")
    _check(open_responses(), obj, f"{where}: Open Responses ResponseResource")
    for i, item in enumerate(obj.get("output") or []):
        _check(validator("OutputItem"), item, f"{where}: output[{i}] ({item.get('type')})")


def check_body(method: str, path: str, body: bytes, content_type: str) -> None:
    where = f"{method} {path}"
    if "text/event-stream" in content_type:
        for event in _sse(body):
            if not isinstance(event, dict) or "type" not in event:
                continue
            _check(validator("ResponseStreamEvent"), event, f"{where}: event {event['type']}")
            if isinstance(event.get("response"), dict):
                check_response(event["response"], f"{where} ({event['type']})")
        return
    try:
        obj = json.loads(body)
    except ValueError:
        return
    if not isinstance(obj, dict):
        return
    if obj.get("object") == "response":
        check_response(obj, where)
    elif obj.get("object") == "list" and "/items" in path or path.endswith("input_items"):
        name = "ConversationItem" if path.startswith("/v1/conversations") else "ItemResource"
        for i, item in enumerate(obj.get("data") or []):
            _check(validator(name), item, f"{where}: data[{i}] ({item.get('type')})")
    elif re.match(r"^/v1/conversations/[^/]+/items/[^/]+$", path) and method == "GET":
        _check(validator("ConversationItem"), obj, f"{where}: item ({obj.get('type')})")


def _sse(body: bytes) -> Iterator[Any]:
    for frame in body.decode("utf-8", "replace").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in frame.splitlines() if line.startswith("data:"))
        if data and data != "[DONE]":
            try:
                yield json.loads(data)
            except ValueError:
                continue


CHECKED = re.compile(r"^/v1/(responses|conversations)(/|$)")


class _Tee(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, done) -> None:
        self.inner = inner
        self.done = done
        self.chunks: list[bytes] = []

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.chunks.append(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()
        self.done(b"".join(self.chunks))


class ValidatingTransport(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        path = request.url.path
        if jsonschema is None or not CHECKED.match(path) or not 200 <= response.status_code < 300:
            return response
        if request.method == "DELETE":
            return response
        content_type = response.headers.get("content-type", "")

        def done(body: bytes) -> None:
            try:
                check_body(request.method, path, body, content_type)
            except Exception as e:  # a broken check is a problem too, not a crash in the client
                PROBLEMS.append(f"{request.method} {path}: the check failed: {e!r}")

        response.stream = _Tee(response.stream, done)
        return response
