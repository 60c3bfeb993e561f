"""One part of the soak's traffic in a process of its own:
C{python -m benchmarks.soak.worker ROLE PLAN.json OUT.json}, which writes its L{Tally}
as JSON to C{OUT.json}.

Each role runs until C{plan.seconds} have passed, then finishes what it started (every
operation is bounded). Separate processes keep the clients of one role from slowing
down the others, and the small requests' latencies from waiting behind hashing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.soak import faults, loads, wire
from benchmarks.soak.plan import Plan
from benchmarks.soak.tally import Tally

Role = Callable[[Plan, wire.Proxy, Tally, float], Awaitable[None]]

ROLES: dict[str, Role] = {
    "small": loads.small_requests,
    "transfers": loads.transfers,
    "websocket": loads.websocket_sessions,
    "faults": faults.run,
}


async def run(role: str, plan: Plan) -> Tally:
    """Run C{role} for the plan's duration and return what it counted."""
    proxy = wire.Proxy(plan.proxy_port, wire.client_tls(plan.proxy_ca))
    tally = Tally()
    await ROLES[role](plan, proxy, tally, time.monotonic() + plan.seconds)
    return tally


def main(argv: list[str]) -> None:
    role, plan_path, output = argv
    tally = asyncio.run(run(role, Plan.read(Path(plan_path))))
    Path(output).write_text(json.dumps(tally.as_json()))


if __name__ == "__main__":
    main(sys.argv[1:])
