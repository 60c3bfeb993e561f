# -*- test-case-name: tests.test_soak -*-
"""The shape of one soak run: how much load, which faults how often, where everything
listens. The driver writes it as JSON; each worker reads it and seeds its randomness
from C{seed} and its own name, so a run can be repeated with the same choices.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

MiB = 1 << 20

#: The proxy's timeouts during the soak (seconds), short so that the faults that wait
#: for them (a silent origin, a slow head) resolve within a run.
IDLE_TIMEOUT = 10
READ_TIMEOUT = 10


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to know; ports are on 127.0.0.1."""

    seed: int
    seconds: float
    small_clients: int
    small_tls_clients: int
    think_seconds: float
    transfer_lanes: int
    transfer_min: int
    transfer_max: int
    slow_rate: int
    websocket_sessions: int
    fault_interval: float
    faults_in_flight: int
    idle_timeout: int = IDLE_TIMEOUT
    read_timeout: int = READ_TIMEOUT
    proxy_port: int = 0
    proxy_ca: str = ""
    http_port: int = 0
    https_port: int = 0
    ws_port: int = 0
    wss_port: int = 0

    @classmethod
    def for_mode(cls, quick: bool, seconds: float | None, seed: int) -> Plan:
        """The default run (about 3 minutes in all) or the quick one (about 40 s)."""
        if quick:
            return cls(seed, seconds or 20, small_clients=6, small_tls_clients=2, think_seconds=0.01,
                       transfer_lanes=2, transfer_min=8 * MiB, transfer_max=24 * MiB, slow_rate=16 * MiB,
                       websocket_sessions=2, fault_interval=0.6, faults_in_flight=8)
        return cls(seed, seconds or 150, small_clients=12, small_tls_clients=4, think_seconds=0.01,
                   transfer_lanes=3, transfer_min=8 * MiB, transfer_max=64 * MiB, slow_rate=16 * MiB,
                   websocket_sessions=4, fault_interval=0.8, faults_in_flight=10)

    def rng(self, name: str) -> random.Random:
        """The random choices of the part called C{name}: the same for the same seed."""
        return random.Random(f"{self.seed}:{name}")

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls(**json.loads(path.read_text()))
