"""Files under /mnt/data: what a cell wrote, changed and removed."""

import os

DATA_DIR = os.environ.get("ASSISTD_DATA_DIR", "/mnt/data")


def snapshot_files(root):
    """{path: (mtime_ns, size)} for every regular file below root (symbolic links are neither
    followed nor listed). Plain scandir: os.walk's generators cost several times more for the
    handful of files a session usually has, twice per execution."""
    found = {}
    pending = [root]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found[entry.path] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    continue
    return found


def changed_files(before, after):
    return [{"path": path, "size": meta[1]}
            for path, meta in sorted(after.items()) if before.get(path) != meta]


def removed_files(before, after):
    """Files there before the cell and gone after it (deleted or renamed by the code)."""
    return sorted(path for path in before if path not in after)


class DataFiles:
    """The snapshot a cell's changes are measured against. Taken between cells (remember())
    and used as it is while the directory itself is unchanged: whatever the host puts into
    /mnt/data between cells (an uploaded file, a restored checkpoint) adds entries to it,
    which changes its mtime and ctime, and then the cell lists the files afresh."""

    def __init__(self, root):
        self.root = root
        self.remembered = None  # (the directory's identity, snapshot)

    def _identity(self):
        try:
            st = os.stat(self.root)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns

    def remember(self):
        # The identity first: a change during the walk then makes it stale.
        identity = self._identity()
        self.remembered = (identity, snapshot_files(self.root))

    def before(self):
        remembered, self.remembered = self.remembered, None
        if remembered is not None and remembered[0] is not None \
                and remembered[0] == self._identity():
            return remembered[1]
        return snapshot_files(self.root)
