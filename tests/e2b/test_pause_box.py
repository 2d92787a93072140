"""Pause and resume keep the whole box through E2B's own SDK: what root writes anywhere in the root filesystem
(a new tree under /opt, a file under /etc, an image file changed) comes back with its owner and mode, and image
files root deleted stay deleted; a snapshot carries the same into a new sandbox."""

from __future__ import annotations

import uuid

from e2b_code_interpreter import Sandbox

WRITE_AS_ROOT = (
    "set -e; mkdir -p /opt/tool/bin /usr/local/share/kept && printf '{m}' > /opt/tool/bin/run && chmod 750 /opt/tool/bin/run"
    " && printf '{m}' > /etc/assistd-kept.conf && chmod 600 /etc/assistd-kept.conf"
    " && echo '{m}' >> /etc/issue && ln -s /opt/tool/bin/run /usr/local/share/kept/link"
    " && rm /etc/issue.net && rm -r /usr/share/doc/bash"
)
READ_BACK = (
    "cat /opt/tool/bin/run; echo; stat -c '%U %a' /opt/tool/bin/run /etc/assistd-kept.conf; cat /etc/assistd-kept.conf;"
    " echo; tail -n 1 /etc/issue; readlink /usr/local/share/kept/link;"
    " test -e /etc/issue.net && echo issue.net-back; test -e /usr/share/doc/bash && echo doc-back; echo done"
)


def expected(marker: str) -> str:
    return (
        f"{marker}\nroot 750\nroot 600\n{marker}\n{marker}\n/opt/tool/bin/run\ndone\n"
    )


def fill_as_root(sbx: Sandbox, marker: str) -> None:
    # The image holds both files that are removed (else the test could not tell).
    assert sbx.commands.run("test -e /etc/issue.net && test -d /usr/share/doc/bash").exit_code == 0
    sbx.commands.run(WRITE_AS_ROOT.format(m=marker), user="root")
    assert sbx.commands.run(READ_BACK, user="root").stdout == expected(marker)


def test_pause_keeps_what_root_wrote_and_removed_anywhere_in_the_box(server):
    sbx = Sandbox.create(timeout=120)
    try:
        marker = uuid.uuid4().hex
        fill_as_root(sbx, marker)
        assert sbx.pause() is True
        resumed = Sandbox.connect(sbx.sandbox_id)
        assert resumed.commands.run(READ_BACK, user="root").stdout == expected(marker)
        # Still the sandbox user's box otherwise: it cannot read root's 0600 file.
        denied = resumed.commands.run("cat /etc/assistd-kept.conf 2>&1 || true").stdout
        assert "Permission denied" in denied
        # A second pause of the resumed box keeps the same (its layer now holds them again).
        assert resumed.pause() is True
        again = Sandbox.connect(sbx.sandbox_id)
        assert again.commands.run(READ_BACK, user="root").stdout == expected(marker)
    finally:
        sbx.kill()


def test_a_snapshot_carries_root_writes_and_removals_into_a_new_sandbox(server):
    sbx = Sandbox.create(timeout=120)
    copy = None
    try:
        marker = uuid.uuid4().hex
        fill_as_root(sbx, marker)
        snapshot = sbx.create_snapshot()
        copy = Sandbox.create(snapshot.snapshot_id, timeout=120)
        assert copy.sandbox_id != sbx.sandbox_id
        assert copy.commands.run(READ_BACK, user="root").stdout == expected(marker)
        Sandbox.delete_snapshot(snapshot.snapshot_id)
    finally:
        if copy is not None:
            copy.kill()
        sbx.kill()
