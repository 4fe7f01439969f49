"""How many malloc arenas the process may keep, when it works many boards in threads.

glibc gives a thread that allocates while another holds the main arena an arena of its own, up to eight per
core, and memory freed in one arena is not reused by the others. One thread per board makes a process that
works 100 boards keep many half-empty arenas: bench/scale.py measured 451 MB of peak memory for 100 Google
boards with glibc's default (16 arenas on 2 cores), and 391 MB with two arenas, the same work no slower
(Python's GIL lets one thread run Python at a time, so the threads hardly ever wait on an arena's lock); 20
boards, 204 MB and 156 MB. An admin's own
``MALLOC_ARENA_MAX`` (read by glibc when the process starts) wins; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

#: mallopt's parameter number for the arena limit (glibc's malloc.h).
M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap the arenas glibc makes from now on at ``arenas``; True when the cap was set here. Call it before
    the boards' threads start: an arena once made stays for the life of the process."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the admin chose; glibc has already applied it
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        done = int(libc.mallopt(M_ARENA_MAX, max(1, arenas)))
    except (OSError, AttributeError) as exc:  # a static or unusual build: memory as glibc's default keeps it
        log.debug("cannot limit malloc arenas: %s", exc)
        return False
    return done == 1
