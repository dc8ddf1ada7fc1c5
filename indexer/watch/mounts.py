"""Which roots live on filesystems whose changes inotify cannot see (network shares, FUSE).

inotify reports changes made through this machine's kernel only: a photo copied onto an SMB/NFS share
from another computer raises no event here, so such roots are polled instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Filesystem types (as /proc/mounts names them) where another machine may change the files.
NETWORK_FS_TYPES = {
    "cifs", "smb3", "smbfs", "nfs", "nfs4", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs",
    "beegfs", "davfs", "ncpfs", "vboxsf", "virtiofs", "fuse", "fuseblk",
}  # fmt: skip
NETWORK_FS_PREFIXES = ("fuse.",)  # fuse.sshfs, fuse.rclone, fuse.gvfsd-fuse, ... (all FUSE)

PROC_MOUNTS = Path("/proc/mounts")


@dataclass(frozen=True)
class Mount:
    point: str
    fs_type: str


def _unescape(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes (\040 ...).
    return field.encode().decode("unicode_escape") if "\\" in field else field


def read_mounts(text: str | None = None) -> list[Mount]:
    if text is None:
        try:
            text = PROC_MOUNTS.read_text()
        except OSError:
            return []  # not Linux: no way to tell; native observers everywhere
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(_unescape(fields[1]), fields[2]))
    return mounts


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that holds `path`: the longest mount point that is a prefix of it (the last one
    mounted wins when two share a point, as in the kernel)."""
    path = os.path.realpath(path)
    best: Mount | None = None
    for m in mounts:
        point = m.point.rstrip("/") or "/"
        inside = path == point or path.startswith(point if point == "/" else point + "/")
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = m
    return best


def is_network_fs(fs_type: str) -> bool:
    return fs_type in NETWORK_FS_TYPES or fs_type.startswith(NETWORK_FS_PREFIXES)


def needs_polling(path: str, mounts: list[Mount] | None = None) -> str | None:
    """Why `path` must be polled (e.g. "on a cifs mount at /mnt/photos"), or None."""
    m = mount_of(path, read_mounts() if mounts is None else mounts)
    if m is not None and is_network_fs(m.fs_type):
        return f"on a {m.fs_type} mount at {m.point}"
    return None
