"""glibc malloc arenas of a process serving the API: capped (``PIXSEARCH_API_MALLOC_ARENAS``).

By default glibc gives each of up to 8 threads per core an arena of its own,
and each arena keeps the free space its thread's peaks left behind; with 16 busy
workers, freed memory kept in their arenas grew the process under load
(bench/load.py, "Search under load" in bench/RESULTS.md). The workers spend most
of their time holding the GIL, so two arenas cost no measurable throughput there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter, glibc's malloc.h


def limit_malloc_arenas(count: int) -> bool:
    """Cap this process's glibc malloc arenas at ``count`` (0 leaves glibc's default).

    glibc fixes its limit once a process has more than 8 arenas, so this is called
    before the process starts its threads (:mod:`pixsearch.search.startup`, ``pixsearch
    up``). True where it took effect (glibc), False elsewhere (musl, macOS)."""
    if count <= 0:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None or not mallopt(M_ARENA_MAX, count):
        log.info("malloc arenas not capped (no glibc mallopt here)")
        return False
    return True
