# -*- test-case-name: tests.test_soak -*-
"""What the proxy process holds, read from C{/proc}: resident memory, open file
descriptors (and of what kind), and the states of its TCP sockets, CLOSE_WAIT above all
(the peer closed, the proxy never did).

L{Monitor} samples in a thread while the load runs and keeps the peaks.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: The C{st} column of C{/proc/net/tcp}, by value (include/net/tcp_states.h).
TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}


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


def _fd_targets(pid: int) -> list[str]:
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            continue
    return targets


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets among C{pid}'s file descriptors."""
    return {int(target[8:-1]) for target in _fd_targets(pid) if target.startswith("socket:[")}


def fd_kinds(pid: int) -> dict[str, int]:
    """C{pid}'s descriptors by kind: C{socket}, C{pipe}, C{anon_inode:[eventpoll]}, or the file's path."""
    return dict(Counter(re.sub(r":\[\d+\]$", "", target) for target in _fd_targets(pid)))


def _port(address: str) -> int:
    """The port of a C{/proc/net/tcp} address, C{0100007F:1F90} -> 8080."""
    return int(address.rsplit(":", 1)[1], 16)


def socket_states(tables: Iterable[str], inodes: set[int], listen_port: int, peers: Mapping[int, str]) -> dict[str, int]:
    """The sockets among the rows of C{/proc/net/tcp}-style C{tables} whose inode is in
    C{inodes}, counted by state and peer: C{"CLOSE_WAIT from a client"}, C{"ESTABLISHED to
    origin https"} (C{peers} names remote ports), C{"LISTEN"}."""
    states: Counter[str] = Counter()
    for table in tables:
        for row in table.splitlines()[1:]:
            columns = row.split()
            if len(columns) <= 9 or int(columns[9]) not in inodes:
                continue
            state, local, remote = TCP_STATES.get(columns[3], columns[3]), _port(columns[1]), _port(columns[2])
            if state == "LISTEN":
                states[state] += 1
            elif local == listen_port:
                states[f"{state} from a client"] += 1
            else:
                states[f"{state} to {peers.get(remote, f'port {remote}')}"] += 1
    return dict(states)


def tcp_states(pid: int, listen_port: int, peers: Mapping[int, str]) -> dict[str, int]:
    """The TCP sockets of C{pid} now (IPv4 and IPv6), by state and peer (see L{socket_states})."""
    tables = [Path(path).read_text() for path in ("/proc/net/tcp", "/proc/net/tcp6") if Path(path).exists()]
    return socket_states(tables, socket_inodes(pid), listen_port, peers)


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
