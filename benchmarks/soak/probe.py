# -*- test-case-name: tests.test_soak -*-
"""What the proxy process holds, read from C{/proc}: resident memory, open file
descriptors, and its TCP sockets in CLOSE_WAIT (the peer closed, the proxy never did).

L{Monitor} samples in a thread while the load runs and keeps the peaks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: The C{st} column of C{/proc/net/tcp} for CLOSE_WAIT.
CLOSE_WAIT_STATE = "08"


@dataclass(frozen=True)
class Sample:
    """Resident memory (MiB) and open file descriptors of a process at one moment."""

    rss_mib: float
    fds: int


def sample(pid: int) -> Sample:
    """Read C{VmRSS} from C{/proc/PID/status} and count C{/proc/PID/fd}."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return Sample(round(rss_kib / 1024, 1), len(os.listdir(f"/proc/{pid}/fd")))


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets among C{pid}'s file descriptors."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def close_wait_count(tables: Iterable[str], inodes: set[int]) -> int:
    """How many rows of C{/proc/net/tcp}-style C{tables} are in CLOSE_WAIT with one of C{inodes}."""
    count = 0
    for table in tables:
        for row in table.splitlines()[1:]:
            columns = row.split()
            if len(columns) > 9 and columns[3] == CLOSE_WAIT_STATE and int(columns[9]) in inodes:
                count += 1
    return count


def close_wait_sockets(pid: int) -> int:
    """The sockets of C{pid} in CLOSE_WAIT now (IPv4 and IPv6)."""
    tables = [Path(path).read_text() for path in ("/proc/net/tcp", "/proc/net/tcp6") if Path(path).exists()]
    return close_wait_count(tables, socket_inodes(pid))


class Monitor:
    """Samples a process every C{interval} seconds in a thread; L{stop} returns the peaks."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.peak = sample(pid)
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                now = sample(self.pid)
            except OSError:  # the process is gone; the driver will say so
                return
            self.peak = Sample(max(self.peak.rss_mib, now.rss_mib), max(self.peak.fds, now.fds))

    def stop(self) -> Sample:
        self._stopped.set()
        self._thread.join(5)
        return self.peak
