"""Child processes that die with their parent, however the parent dies.

A decoding worker outliving a SIGKILLed indexer (the OOM killer on a NAS, a kill -9) would hold its
memory forever, and a restarted indexer would add more. Linux's parent-death signal ends a child the
moment the thread that started it ends; the check against the parent's pid closes the window before
prctl runs. This module imports nothing heavy: every spawned worker imports it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, nice: int = 0) -> None:
    """A process pool's initializer: SIGKILL this process when its parent goes; lower its priority."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before prctl: nobody is left to serve
        os._exit(1)
    if nice:
        os.nice(nice)
