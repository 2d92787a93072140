"""Blobs on S3-compatible storage, through the official SDK: uploads, downloads, deletes and the files a
code_interpreter run writes, on a server with ASSISTD_BLOB_URL=s3://… against the test S3 server (s3s-fs, a
real S3 server over a directory, so a test also sees what it stored), and all of it still there after a restart.
"""

from __future__ import annotations

import pytest

from helpers import last_assistant_message, not_found, upload
from upstream import tool_outputs

POLL_MS = 100

WRITE_FILES = """
import matplotlib.pyplot as plt
with open('/mnt/data/report.txt', 'w') as f:
    f.write('rows: 3\\n')
plt.plot([1, 2, 3], [1, 4, 9])
plt.show()
"""


def pattern(n: int) -> bytes:
    return bytes((i * 31 + 7) % 251 for i in range(n))


def test_an_upload_is_stored_in_s3_downloads_byte_for_byte_and_delete_removes_it(s3_server):
    client = s3_server.client()
    data = pattern(6 * 1024 * 1024 + 99)  # past one part: a multipart upload
    f = upload(client, "sample.bin", data)
    assert f.bytes == len(data)
    stored = s3_server.object_path(f"files/{f.id}")
    assert stored.read_bytes() == data

    assert f.id in [x.id for x in client.files.list().data]
    assert client.files.retrieve(f.id).filename == "sample.bin"
    assert client.files.content(f.id).content == data

    assert client.files.delete(f.id).deleted
    assert not stored.exists()
    with not_found():
        client.files.content(f.id)


@pytest.mark.runs
def test_files_a_run_writes_are_stored_in_s3_and_survive_a_restart(s3_server, script):
    client = s3_server.client()
    reply = "See [report.txt](sandbox:/mnt/data/report.txt)."
    script.push_tool_call("code_interpreter", {"code": WRITE_FILES})
    script.push_text(reply)
    kept = upload(client, "kept.csv", b"a,b\n1,2\n")
    assistant = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Write a report."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    (image,) = [o.image.file_id for s in steps if s.type == "tool_calls" for tc in s.step_details.tool_calls
                for o in tc.code_interpreter.outputs if o.type == "image"]
    (part,) = [p for p in last_assistant_message(client, thread.id).content if p.type == "text"]
    (annotation,) = part.text.annotations
    report = annotation.file_path.file_id
    for file_id in (image, report):
        assert client.files.retrieve(file_id).purpose == "assistants_output"
        assert s3_server.object_path(f"files/{file_id}").exists()

    s3_server.restart()
    client = s3_server.client()
    assert client.files.content(report).content == b"rows: 3\n"
    assert client.files.content(image).content.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.files.content(kept.id).content == b"a,b\n1,2\n"
    # The shutdown checkpointed the thread's session to S3; the next run restores it from there.
    assert s3_server.object_path(f"checkpoints/{thread.id}").exists()
    script.push_tool_call("code_interpreter",
                          {"code": "print(open('/mnt/data/report.txt').read().strip(), plt.__name__)"})
    script.push_text("restored")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error
    assert tool_outputs(script.requests[-1])[-1].strip().endswith("rows: 3 matplotlib.pyplot")


@pytest.mark.runs
def test_a_checkpoint_past_one_part_goes_to_s3_in_parts_and_comes_back(s3_server, script):
    client = s3_server.client()
    make = ("import hashlib, os\n"
            "data = os.urandom(7 * 1024 * 1024)\n"
            "open('/mnt/data/big.bin', 'wb').write(data)\n"
            "digest = hashlib.sha256(data).hexdigest()\n"
            "del data\n"
            "print(digest)")
    script.push_tool_call("code_interpreter", {"code": make})
    script.push_text("made")
    assistant = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error
    digest = tool_outputs(script.requests[-1])[-1].split()[0]

    s3_server.restart()  # the shutdown checkpoints the session: more than one 5 MiB part
    stored = s3_server.object_path(f"checkpoints/{thread.id}")
    assert stored.stat().st_size > 7 * 1024 * 1024
    client = s3_server.client()
    script.push_tool_call("code_interpreter",
                          {"code": "print(digest == hashlib.sha256(open('/mnt/data/big.bin', 'rb').read()).hexdigest(), "
                                   "sorted(os.listdir('/mnt/data')))"})
    script.push_text("restored")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error
    assert len(digest) == 64
    assert tool_outputs(script.requests[-1])[-1].strip().endswith("True ['big.bin']")
