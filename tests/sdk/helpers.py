"""Small typed helpers shared by the SDK tests."""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from contextlib import contextmanager
from typing import Any, Iterator

import openai
import pytest
from openai import OpenAI

TERMINAL_RUN_STATUSES = {"completed", "failed", "cancelled", "expired", "incomplete", "requires_action"}


@contextmanager
def api_error(exc_type: type[openai.APIStatusError], status: int, *, param: str | None = None,
              error_type: str | None = None, message: str | None = None,
              message_contains: str | None = None, code: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    """Expects the block to raise `exc_type` with an OpenAI-shaped error body matching the given fields."""
    with pytest.raises(exc_type) as info:
        yield info
    err = info.value
    assert err.status_code == status, f"expected HTTP {status}, got {err.status_code}: {err.body}"
    body = err.body
    assert isinstance(body, dict), f"error body is not the OpenAI error object: {body!r}"
    assert {"message", "type", "param", "code"} <= set(body), f"error object lacks fields: {body}"
    assert isinstance(body["message"], str) and body["message"], body
    if error_type is not None:
        assert body["type"] == error_type, body
    if param is not None:
        # A nested param ("metadata.key", "tools[3].type") counts as naming its top-level field.
        got = body["param"] or ""
        assert got == param or got.startswith((param + ".", param + "[")), body
    if message is not None:
        assert body["message"] == message, body
    if message_contains is not None:
        assert message_contains in body["message"], body
    if code is not None:
        assert body["code"] == code, body


def bad_request(param: str | None = None, **kw):
    return api_error(openai.BadRequestError, 400, param=param, error_type="invalid_request_error", **kw)


def not_found(**kw):
    return api_error(openai.NotFoundError, 404, error_type="invalid_request_error", **kw)


def list_all(page_fn, **params) -> list[Any]:
    """Walks a cursor-paginated list by hand (after=last_id) and returns every item."""
    items: list[Any] = []
    after = None
    for _ in range(1000):
        kw = dict(params)
        if after:
            kw["after"] = after
        page = page_fn(**kw)
        items.extend(page.data)
        if not page.has_more:
            return items
        after = page.data[-1].id
    raise AssertionError("pagination never ended")


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG, made without Pillow."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pdf_bytes() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def text_pdf_bytes(*lines: str) -> bytes:
    """A one-page PDF showing `lines` in Helvetica, with a correct cross-reference table."""
    ops = ["BT /F1 12 Tf 72 720 Td 14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>",
        b"<</Length %d>>stream\n" % len(stream) + stream + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def docx_bytes(*paragraphs: str) -> bytes:
    """A minimal Word document with `paragraphs`, made with the standard library."""
    from xml.sax.saxutils import escape
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
            '</Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>'),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{w}"><w:body>{body}</w:body></w:document>'),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, xml in parts.items():
            z.writestr(name, xml)
    return buf.getvalue()


def upload(client: OpenAI, name: str, data: bytes, purpose: str = "assistants"):
    return client.files.create(file=(name, io.BytesIO(data)), purpose=purpose)


def wait_for_run(client: OpenAI, thread_id: str, run_id: str, *, timeout: float = 60,
                 statuses: set[str] = TERMINAL_RUN_STATUSES):
    """Polls a run until its status is in `statuses` (terminal or requires_action by default)."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status!r} after {timeout} s")
        time.sleep(0.1)


def message_texts(client: OpenAI, thread_id: str, **params) -> list[str]:
    """Text of every text part of every message in a thread, oldest first."""
    msgs = client.beta.threads.messages.list(thread_id=thread_id, order="asc", limit=100, **params)
    return ["".join(p.text.value for p in m.content if p.type == "text") for m in msgs.data]


def last_assistant_message(client: OpenAI, thread_id: str):
    msgs = client.beta.threads.messages.list(thread_id=thread_id, order="desc", limit=100)
    for m in msgs.data:
        if m.role == "assistant":
            return m
    raise AssertionError(f"no assistant message in {thread_id}")


def text_of(message) -> str:
    return "".join(p.text.value for p in message.content if p.type == "text")
