"""The Skills API (`client.skills`, `.versions`, `.content`) through the newest openai-python, and skills
attached to containers (`POST /v1/containers` and code_interpreter's `auto` container): readable at
/mnt/skills/<name> from code, read-only, and named to the model."""

from __future__ import annotations

import base64
import io
import os
import zipfile
from pathlib import Path

import httpx
import pytest

from helpers import bad_request, not_found
from upstream import prompt_text, tool_outputs

pytestmark = pytest.mark.skipif(not hasattr(__import__("openai").OpenAI, "skills"),
                                reason="this openai release has no client.skills")

MANIFEST = "---\nname: {name}\ndescription: {description}\n---\n# How to use\nRun scripts/hello.py.\n"


def manifest(name: str = "csv-insights", description: str = "Summarize CSV files.") -> bytes:
    return MANIFEST.format(name=name, description=description).encode()


def folder_files(folder: str = "csv_insights", name: str = "csv-insights", description: str = "Summarize CSV files.",
                 extra: dict[str, bytes] | None = None):
    """A directory upload: one part per file, the path in the filename."""
    files = {"SKILL.md": manifest(name, description), "scripts/hello.py": b"print('hello from the skill')\n"}
    files.update(extra or {})
    return [(f"{folder}/{path}", data, "application/octet-stream") for path, data in files.items()]


def zip_of(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for path, data in entries.items():
            z.writestr(path, data)
    return buf.getvalue()


def skill_zip(folder: str = "csv-insights", name: str = "csv-insights", description: str = "Summarize CSV files.",
              extra: dict[str, bytes] | None = None) -> bytes:
    entries = {f"{folder}/SKILL.md": manifest(name, description),
               f"{folder}/scripts/hello.py": b"print('hello from the skill')\n"}
    entries.update({f"{folder}/{k}": v for k, v in (extra or {}).items()})
    return zip_of(entries)


def stored_bundles(data_dir: Path) -> set[str]:
    root = data_dir / "skills"
    return {p.name for p in root.iterdir()} if root.exists() else set()


# ------------------------------------------------------------------------------------------------ the API


def test_a_skill_made_from_a_directory_and_one_from_a_zip_are_listed_and_retrieved(isolated_client):
    client = isolated_client
    from_dir = client.skills.create(files=folder_files())
    assert from_dir.id.startswith("skill_") and from_dir.object == "skill"
    assert (from_dir.name, from_dir.description) == ("csv-insights", "Summarize CSV files.")
    assert (from_dir.default_version, from_dir.latest_version) == ("1", "1")

    from_zip = client.skills.create(files=("report.zip", skill_zip("report", "report-writer", "Write reports."),
                                           "application/zip"))
    assert (from_zip.name, from_zip.description) == ("report-writer", "Write reports.")
    assert client.skills.retrieve(from_zip.id).model_dump() == from_zip.model_dump()

    listed = client.skills.list()
    assert [s.id for s in listed.data] == [from_zip.id, from_dir.id]
    assert [s.id for s in client.skills.list(order="asc", limit=1).data] == [from_dir.id]
    assert [s.id for s in client.skills.list(order="asc", after=from_dir.id).data] == [from_zip.id]

    body = client.skills.content.retrieve(from_dir.id).read()
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        assert sorted(z.namelist()) == ["csv_insights/SKILL.md", "csv_insights/scripts/hello.py"]
        assert z.read("csv_insights/SKILL.md") == manifest()


def test_versions_move_latest_and_default_and_deleting_follows_openais_rules(isolated_client):
    client = isolated_client
    skill = client.skills.create(files=folder_files())
    v2 = client.skills.versions.create(skill.id, files=folder_files(description="Version two."))
    assert (v2.object, v2.skill_id, v2.version, v2.description) == ("skill.version", skill.id, "2", "Version two.")
    after = client.skills.retrieve(skill.id)
    # The skill shows its default version's front matter.
    assert (after.default_version, after.latest_version, after.description) == ("1", "2", "Summarize CSV files.")

    v3 = client.skills.versions.create(skill.id, files=("v3.zip", skill_zip(description="Version three."),
                                                        "application/zip"), default=True)
    assert v3.version == "3"
    after = client.skills.retrieve(skill.id)
    assert (after.default_version, after.latest_version, after.description) == ("3", "3", "Version three.")

    assert [v.version for v in client.skills.versions.list(skill.id).data] == ["3", "2", "1"]
    page = client.skills.versions.list(skill.id, order="asc", limit=2)
    assert [v.version for v in page.data] == ["1", "2"] and page.has_more
    assert [v.version for v in client.skills.versions.list(skill.id, order="asc", after=page.data[-1].id).data] == ["3"]
    assert client.skills.versions.retrieve("latest", skill_id=skill.id).id == v3.id
    assert client.skills.versions.retrieve("2", skill_id=skill.id).description == "Version two."

    with zipfile.ZipFile(io.BytesIO(client.skills.versions.content.retrieve("2", skill_id=skill.id).read())) as z:
        assert b"Version two." in z.read("csv_insights/SKILL.md")

    # The default is moved by number, given as a string or (as the guide's curl does) an integer.
    assert client.skills.update(skill.id, default_version="2").default_version == "2"
    raw = httpx.post(f"{client.base_url}skills/{skill.id}", json={"default_version": 1},
                     headers={"Authorization": f"Bearer {client.api_key}"})
    assert raw.status_code == 200 and raw.json()["default_version"] == "1"
    with not_found():
        client.skills.update(skill.id, default_version="9")

    # The default version stays until another one is the default.
    with bad_request(param="version", message_contains="default version"):
        client.skills.versions.delete("1", skill_id=skill.id)
    deleted = client.skills.versions.delete("3", skill_id=skill.id)
    assert (deleted.object, deleted.deleted, deleted.version, deleted.id) == ("skill.version.deleted", True, "3", v3.id)
    assert client.skills.retrieve(skill.id).latest_version == "2"
    with not_found():
        client.skills.versions.retrieve("3", skill_id=skill.id)
    # A new version never reuses a deleted number.
    assert client.skills.versions.create(skill.id, files=folder_files()).version == "4"
    client.skills.versions.delete("4", skill_id=skill.id)
    client.skills.versions.delete("2", skill_id=skill.id)
    # Deleting the last version deletes the skill.
    client.skills.versions.delete("1", skill_id=skill.id)
    with not_found():
        client.skills.retrieve(skill.id)

    other = client.skills.create(files=folder_files())
    client.skills.versions.create(other.id, files=folder_files())
    gone = client.skills.delete(other.id)
    assert (gone.id, gone.object, gone.deleted) == (other.id, "skill.deleted", True)
    with not_found():
        client.skills.versions.retrieve("2", skill_id=other.id)
    assert client.skills.list().data == []


def bomb() -> bytes:
    return zip_of({"bomb/SKILL.md": manifest("bomb"), "bomb/zeros.bin": b"\0" * (20 * 1024 * 1024)})


@pytest.mark.parametrize("files, message", [
    (lambda: folder_files(extra={}) [1:], "no SKILL.md"),
    (lambda: folder_files(extra={"docs/skill.md": manifest()}), "2 SKILL.md files"),
    (lambda: [("x/SKILL.md", b"# no front matter\n", "text/markdown")], "front matter"),
    (lambda: [("x/SKILL.md", manifest(name="Not A Name"), "text/markdown")], "Invalid skill name"),
    (lambda: [("x/SKILL.md", b"---\nname: x\n---\n", "text/markdown")], "description"),
    (lambda: [("x/SKILL.md", manifest(), "text/markdown"), ("x/../../etc/passwd", b"x", "text/plain")],
     "Unsafe path"),
    (lambda: [("x/SKILL.md", manifest(), "text/markdown"), ("y/other.txt", b"x", "text/plain")],
     "more than one top-level folder"),
    (lambda: ("evil.zip", zip_of({"x/SKILL.md": manifest(), "x/../../escape.txt": b"x"}), "application/zip"),
     "Unsafe path"),
    (lambda: ("flat.zip", zip_of({"SKILL.md": manifest()}), "application/zip"), "not inside a folder"),
    (lambda: ("big.zip", zip_of({"x/SKILL.md": manifest(), "x/big.bin": os.urandom(26 * 1024 * 1024)},
                                zipfile.ZIP_STORED), "application/zip"), "uncompressed"),
    (lambda: ("bomb.zip", bomb(), "application/zip"), "zip bomb"),
    (lambda: ("broken.zip", b"PK\x03\x04 this is not a zip", "application/zip"), "not a readable zip"),
], ids=["no-manifest", "two-manifests", "no-front-matter", "bad-name", "no-description", "dotdot-part",
        "two-folders", "dotdot-zip", "no-folder", "oversized", "zip-bomb", "broken-zip"])
def test_a_bad_skill_is_refused_clearly_and_nothing_is_stored(isolated_client, data_dir, files, message):
    client = isolated_client
    before = stored_bundles(data_dir)
    with bad_request(param="files", message_contains=message):
        client.skills.create(files=files())
    keep = client.skills.create(files=folder_files())
    with bad_request(param="files", message_contains=message):
        client.skills.versions.create(keep.id, files=files())
    assert [s.id for s in client.skills.list().data] == [keep.id]
    assert [v.version for v in client.skills.versions.list(keep.id).data] == ["1"]
    assert stored_bundles(data_dir) - before == {client.skills.versions.retrieve("1", skill_id=keep.id).id}


def test_another_projects_skill_is_not_found_anywhere(client, other_client, script):
    theirs = other_client.skills.create(files=folder_files())
    with not_found():
        client.skills.retrieve(theirs.id)
    with not_found():
        client.skills.content.retrieve(theirs.id)
    with not_found():
        client.skills.versions.create(theirs.id, files=folder_files())
    with not_found():
        client.skills.versions.list(theirs.id)
    with not_found():
        client.skills.delete(theirs.id)
    with not_found():
        client.containers.create(name="x", skills=[{"type": "skill_reference", "skill_id": theirs.id}])
    before = len(script.requests)
    with not_found():
        client.responses.create(model=script.model, input="x", tools=[{
            "type": "code_interpreter",
            "container": {"type": "auto", "skills": [{"type": "skill_reference", "skill_id": theirs.id}]}}])
    assert len(script.requests) == before
    assert theirs.id not in [s.id for s in client.skills.list(limit=100).data]
    assert other_client.skills.retrieve(theirs.id).latest_version == "1"


def test_bad_attachments_are_refused_before_a_container_exists(isolated_client):
    client = isolated_client
    skill = client.skills.create(files=folder_files())
    inline = {"type": "inline", "name": "csv-insights", "description": "d",
              "source": {"type": "base64", "media_type": "application/zip", "data": base64.b64encode(skill_zip()).decode()}}
    for skills, param in [
        ([{"type": "skill_reference", "skill_id": skill.id, "version": "7"}], None),
        ([{"type": "skill_reference", "skill_id": skill.id, "version": "two"}], "skills"),
        ([{"type": "skill_reference", "skill_id": skill.id}, inline], "skills"),
        ([{**inline, "source": {**inline["source"], "data": "%%%"}}], "skills"),
        ([{**inline, "source": {**inline["source"], "data": base64.b64encode(bomb()).decode()}}], "skills"),
        ([{"type": "file", "name": "x"}], "skills"),
    ]:
        try:
            client.containers.create(name="bad", skills=skills)
        except Exception as e:  # noqa: BLE001 - the status and shape are checked below
            assert getattr(e, "status_code", None) in (400, 404), e
            if param:
                assert e.body["param"].startswith(param), e.body
        else:
            pytest.fail(f"accepted {skills}")
    assert client.containers.list().data == []


# ------------------------------------------------------------------------------------------ attached skills

READ_SKILLS = """
import os, subprocess
for name in sorted(os.listdir('/mnt/skills')):
    print(name, open(f'/mnt/skills/{name}/SKILL.md').read().split('description: ')[1].splitlines()[0])
print(subprocess.run(['python3', '/mnt/skills/csv-insights/scripts/hello.py'], capture_output=True, text=True).stdout.strip())
try:
    open('/mnt/skills/csv-insights/SKILL.md', 'a').write('x')
    print('writable')
except OSError:
    print('read-only')
print(sorted(os.listdir('/mnt/data')))
"""


def check_skills_in(client, script, tools, expect_container=None, **params):
    script.push_tool_call("code_interpreter", {"code": READ_SKILLS})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    start = len(script.requests)
    r = client.responses.create(model=script.model, input="use the skills", tools=tools, **params)
    call = [i for i in r.output if i.type == "code_interpreter_call"][0]
    if expect_container:
        assert call.container_id == expect_container
    lines = r.output_text.splitlines()
    assert lines[:2] == ["csv-insights Version two.", "report-writer Write reports."], r.output_text
    assert lines[2:4] == ["hello from the skill", "read-only"], r.output_text
    # Skills live outside /mnt/data: not container files.
    assert lines[4] == "[]", r.output_text
    assert [f.path for f in client.containers.files.list(call.container_id).data] == []
    # The model was told each skill's name, description and path.
    prompt = prompt_text(script.requests[start])
    assert "csv-insights: Version two. (file: /mnt/skills/csv-insights/SKILL.md)" in prompt
    assert "report-writer: Write reports. (file: /mnt/skills/report-writer/SKILL.md)" in prompt
    return r, call.container_id


def attached(client):
    skill = client.skills.create(files=folder_files())
    client.skills.versions.create(skill.id, files=folder_files(description="Version two."))
    inline = {"type": "inline", "name": "report-writer", "description": "Write reports.",
              "source": {"type": "base64", "media_type": "application/zip",
                         "data": base64.b64encode(skill_zip("report", "report-writer", "Write reports.")).decode()}}
    return [{"type": "skill_reference", "skill_id": skill.id, "version": "latest"}, inline]


def test_skills_attached_to_a_new_container_are_read_only_files_the_code_reads_and_the_model_is_told(
        isolated_client, script, data_dir):
    client = isolated_client
    container = client.containers.create(name="with skills", skills=attached(client))
    assert not hasattr(container, "skills") or container.skills is None
    check_skills_in(client, script, [{"type": "code_interpreter", "container": container.id}], container.id)
    # An inline skill's bundle is kept with its container, and goes with it.
    inline_dir = data_dir / "container_skills" / container.id
    assert inline_dir.exists() and len(list(inline_dir.iterdir())) == 1
    client.containers.delete(container.id)
    assert not inline_dir.exists() or not list(inline_dir.iterdir())


def test_skills_on_a_code_interpreter_auto_container_are_mounted_and_the_container_reused(isolated_client, script):
    client = isolated_client
    skills = attached(client)
    tools = [{"type": "code_interpreter", "container": {"type": "auto", "skills": skills}}]
    first, container_id = check_skills_in(client, script, tools)
    # The next turn with the same skills keeps the container.
    check_skills_in(client, script, tools, container_id, previous_response_id=first.id)
    # A plain auto container in a fresh response has no skills, and the model hears of none.
    script.push_tool_call("code_interpreter", {"code": "import os; print(os.listdir('/mnt/skills'))"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    start = len(script.requests)
    plain = client.responses.create(model=script.model, input="x",
                                    tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
    assert plain.output_text == "[]"
    assert "Available skills" not in prompt_text(script.requests[start])
    assert [i for i in plain.output if i.type == "code_interpreter_call"][0].container_id != container_id
