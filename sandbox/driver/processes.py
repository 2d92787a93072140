"""The processes a cell leaves behind: counting, reaping, and the driver as their subreaper."""

import ctypes
import os
import re


STATUS_FIELDS = re.compile(rb"^State:\s*(\S).*?^Uid:\s*(\d+)", re.MULTILINE | re.DOTALL)
PARENT_FIELD = re.compile(rb"^PPid:\s*(\d+)", re.MULTILINE)


def process_status(pid):
    """The start of /proc/PID/status (its State, PPid and Uid lines), None if it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None


def container_processes():
    """Pids of root's processes whose parent is init (the container's guardian): they live as
    long as the container (init exits with its child), so their pids are never reused and
    count_other_processes need not read their status after every cell."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != "1":
            status = process_status(entry)
            parent = status and PARENT_FIELD.search(status)
            fields = status and STATUS_FIELDS.search(status)
            if parent and fields and parent[1] == b"1" and fields[2] == b"0":
                found.add(entry)
    return found


def count_other_processes(skip=()):
    """Live processes of our user besides this driver and init: what the cell left running.
    None when the driver, a subreaper, has no children (all a cell starts descends from it).
    Otherwise by the real uid in /proc/PID/status (a process that made itself undumpable has
    its /proc directory owned by root, so the directory's owner would not do)."""
    me, uid, count = str(os.getpid()), os.getuid(), 0
    if SUBREAPER and not has_children():
        return 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry in (me, "1") or entry in skip:
            continue
        status = process_status(entry)
        fields = status and STATUS_FIELDS.search(status)
        if fields and fields[1] != b"Z" and int(fields[2]) == uid:
            count += 1
    return count


PR_SET_CHILD_SUBREAPER = 36
SUBREAPER = False  # set by main()


def become_subreaper():
    """Orphaned descendants (`!cmd &`, double forks) become the driver's children instead of
    init's, so that no children at all means no process left behind: count_other_processes can
    tell that with one waitid() instead of reading /proc. True when the kernel agreed."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def has_children():
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def reap_children():
    """Collect children that earlier cells started and never waited for (the sandbox kills
    what a cell leaves running, but its zombies stay ours and would use up the pids limit)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
