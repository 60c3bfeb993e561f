# -*- test-case-name: tests.test_soak -*-
"""Outcomes: what each operation's result is called, how a body is judged, and the
counts a worker reports to the driver (as JSON on its stdout).

Only two verdicts are integrity failures, L{Verdict.LOST} and L{Verdict.CORRUPTED}: a
body that looked complete to its receiver but was short, or had other bytes. A transfer
that fails visibly (an error status, a reset, a truncated body) is never one of them.
"""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak import content
from benchmarks.soak.wire import Ending, Reply

EXAMPLES_KEPT = 5


class Verdict(enum.Enum):
    """What became of one operation."""

    #: a normal operation that completed and checked out
    OK = "ok"
    #: a faulted operation that failed the way it should (error status, reset, truncation)
    EXPECTED = "failed as expected"
    #: anything else that is not an integrity failure (a normal transfer that failed
    #: visibly, a fault answered otherwise than the threat model says)
    UNEXPECTED = "unexpected"
    #: a body that looked complete but was short: data lost silently
    LOST = "lost"
    #: a body that looked complete but had other bytes
    CORRUPTED = "corrupted"


INTEGRITY_FAILURES = (Verdict.LOST, Verdict.CORRUPTED)


def judge_body(reply: Reply, seed: int, size: int) -> tuple[Verdict, str]:
    """Judge a response that should carry the whole body for C{(seed, size)} with a 200."""
    if reply.status != 200:
        return Verdict.UNEXPECTED, f"status {reply.status}"
    if reply.ending in (Ending.TRUNCATED, Ending.RESET):
        return Verdict.UNEXPECTED, f"{reply.ending.value} after {reply.size} of {size} bytes"
    if reply.size < size:
        return Verdict.LOST, f"{reply.ending.value} ending after {reply.size} of {size} bytes"
    if reply.size != size or reply.sha256 != content.digest(seed, size):
        return Verdict.CORRUPTED, f"{reply.ending.value} ending with {reply.size} bytes of other content (expected {size})"
    if reply.ending is Ending.UNTIL_CLOSE:
        return Verdict.UNEXPECTED, "the body was delimited by the close only"
    return Verdict.OK, ""


def judge_cut_body(reply: Reply, seed: int, size: int, may_complete: bool) -> tuple[Verdict, str]:
    """Judge a response whose origin died or dropped the connection mid-body.

    An error status or a body that visibly ends early is expected. A body that ends as
    complete is lost (or corrupted) unless it is the whole body and C{may_complete}
    (the origin may have sent everything before it was killed).
    """
    if reply.status != 200:
        return (Verdict.EXPECTED, f"status {reply.status}") if reply.status in (502, 504) else (
            Verdict.UNEXPECTED, f"status {reply.status}")
    if reply.ending in (Ending.TRUNCATED, Ending.RESET):
        return Verdict.EXPECTED, f"{reply.ending.value} after {reply.size} of {size} bytes"
    verdict, detail = judge_body(reply, seed, size)
    if verdict is Verdict.OK:
        return (Verdict.EXPECTED, "the whole body left the origin before the fault") if may_complete else (
            Verdict.LOST, "a complete body that the origin never finished sending")
    return verdict, detail


def judge_upload(reply: Reply, seed: int, size: int) -> tuple[Verdict, str]:
    """Judge the sink's answer (C{{"size": N, "sha256": HEX}}) to an upload of C{(seed, size)}."""
    if reply.status != 200 or reply.ending is not Ending.COMPLETE:
        return Verdict.UNEXPECTED, f"status {reply.status}, {reply.ending.value}"
    answer = json.loads(reply.body)
    if answer["size"] < size:
        return Verdict.LOST, f"the sink got {answer['size']} of {size} bytes as a complete body"
    if answer["size"] != size or answer["sha256"] != content.digest(seed, size):
        return Verdict.CORRUPTED, f"the sink got {answer['size']} bytes of other content (expected {size})"
    return Verdict.OK, ""


@dataclass
class Tally:
    """Counts by kind and verdict, a few example details, and the figures of the load.

    @ivar seeds: seeds the driver checks against the origin's records at the end
        (C{"aborted uploads"}: must never have reached the sink whole;
        C{"smuggled"}: must never have reached the origin at all).
    """

    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    latencies_ms: list[float] = field(default_factory=list)
    bytes_moved: int = 0
    seeds: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, verdict: Verdict, detail: str = "") -> None:
        """Count one operation of C{kind}; keep its detail if it is among the first few."""
        self.counts[kind][verdict.value] += 1
        examples = self.examples[f"{kind}: {verdict.value}"]
        if detail and verdict is not Verdict.OK and len(examples) < EXAMPLES_KEPT:
            examples.append(detail)

    def merge(self, other: Tally) -> None:
        for kind, verdicts in other.counts.items():
            for verdict, count in verdicts.items():
                self.counts[kind][verdict] += count
        for key, details in other.examples.items():
            self.examples[key] = (self.examples[key] + details)[:EXAMPLES_KEPT]
        self.latencies_ms += other.latencies_ms
        self.bytes_moved += other.bytes_moved
        for key, seeds in other.seeds.items():
            self.seeds[key] += seeds

    def total(self, *verdicts: Verdict) -> int:
        """Operations of any kind that got one of C{verdicts}."""
        return sum(counts.get(verdict.value, 0) for counts in self.counts.values() for verdict in verdicts)

    def as_json(self) -> dict[str, Any]:
        return {
            "counts": {kind: dict(verdicts) for kind, verdicts in self.counts.items()},
            "examples": {key: details for key, details in self.examples.items() if details},
            "latencies_ms": self.latencies_ms,
            "bytes_moved": self.bytes_moved,
            "seeds": dict(self.seeds),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        tally = cls()
        for kind, verdicts in data["counts"].items():
            tally.counts[kind].update(verdicts)
        tally.examples.update(data["examples"])
        tally.latencies_ms = list(data["latencies_ms"])
        tally.bytes_moved = data["bytes_moved"]
        tally.seeds.update(data["seeds"])
        return tally
