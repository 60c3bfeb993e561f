# -*- test-case-name: tests.test_memory -*-
"""The process's memory over a long run: giving freed memory back, and seeing what is held.

Python hands every object larger than 512 bytes (payloads, socket reads) to the C
allocator. glibc's keeps what is freed for reuse and only returns memory at the top of
its heap, so after a burst of large objects the resident size stays at its peak: freed
chunks sit between live ones. L{release_free_memory} (C{malloc_trim(0)}) gives every
free page back to the system; the service calls it every few seconds
(docs/design.md, "Memory over long runs", has the figures).

A developer's tool as well: with C{TWISTED_MITM_TRACEMALLOC=N} in the environment the
service traces allocations (C{N} frames each) from start-up, and C{SIGUSR1} logs
L{memory_report}: the resident and anonymous sizes, the garbage collector's counts and,
when tracing, the allocation sites holding the most memory. Pure standard library;
L{twisted_mitm.service} schedules the trimming and installs the signal.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import tracemalloc
from collections.abc import Mapping
from pathlib import Path

TRACEMALLOC_ENV = "TWISTED_MITM_TRACEMALLOC"

#: allocation sites listed by a report
TOP_SITES = 15


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library of this process if it is glibc (which has C{malloc_trim}), else C{None}."""
    try:
        library = ctypes.CDLL(None)
        library.gnu_get_libc_version
        library.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return library


def can_release_free_memory() -> bool:
    """Whether L{release_free_memory} does anything here (glibc only)."""
    return _glibc() is not None


def release_free_memory() -> None:
    """Give the pages glibc's allocator holds free back to the system (C{malloc_trim(0)}).

    It walks the free lists of every arena: a few milliseconds when there is little to
    give back, tens of milliseconds right after a burst of hundreds of MiB.
    """
    library = _glibc()
    if library is not None:
        library.malloc_trim(0)


def tracing_frames(environ: Mapping[str, str]) -> int:
    """How many frames C{TWISTED_MITM_TRACEMALLOC} asks tracemalloc to keep; 0: no tracing.

    Unset, empty or a number below 1: no tracing; any other text: one frame.
    """
    text = environ.get(TRACEMALLOC_ENV, "").strip()
    if not text:
        return 0
    try:
        return max(int(text), 0)
    except ValueError:
        return 1


def resident_mib(status_path: str = "/proc/self/smaps_rollup") -> dict[str, float]:
    """The C{Rss} and C{Anonymous} figures of this process in MiB (empty off Linux)."""
    try:
        lines = Path(status_path).read_text().splitlines()[1:]
    except OSError:
        return {}
    figures = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("Rss", "Anonymous"):
            figures[name] = int(value.split()[0]) / 1024
    return figures


def memory_report() -> list[str]:
    """Lines describing what this process holds now, most telling first."""
    figures = resident_mib()
    lines = [
        "memory: RSS {:.1f} MiB, anonymous {:.1f} MiB; gc counts {} (collections per generation {})".format(
            figures.get("Rss", 0.0),
            figures.get("Anonymous", 0.0),
            gc.get_count(),
            [generation["collections"] for generation in gc.get_stats()],
        )
    ]
    if not tracemalloc.is_tracing():
        lines.append(f"memory: allocations are not traced (set {TRACEMALLOC_ENV}=N before start-up)")
        return lines
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    traced, peak = tracemalloc.get_traced_memory()
    lines.append(f"memory: traced {traced / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB); top sites:")
    for statistic in snapshot.statistics("traceback")[:TOP_SITES]:
        frames = " <- ".join(f"{os.path.basename(frame.filename)}:{frame.lineno}" for frame in statistic.traceback)
        lines.append(f"  {statistic.size / 2**20:8.1f} MiB in {statistic.count:7d} blocks: {frames}")
    return lines
