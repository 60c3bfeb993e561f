# -*- test-case-name: tests.test_soak -*-
"""The soak's figures: what the workers counted, what the origin saw, what C{/proc}
said about the proxy; the verdict, the markdown table and the JSON file.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.soak.faults import FAULTS
from benchmarks.soak.plan import MiB, Plan
from benchmarks.soak.probe import Sample
from benchmarks.soak.tally import EXAMPLES_KEPT, Tally, Verdict
from benchmarks.tools import ROOT

#: Open descriptors the proxy may keep above its idle count once the load is over.
FD_SLACK = 10


@dataclass
class Figures:
    """Everything one run measured."""

    when: str
    command: str
    commit: str
    plan: Plan
    proxy_options: list[str]
    tally: Tally
    before: Sample
    peak: Sample
    after: Sample
    #: the states of the proxy's TCP sockets, and its descriptors by kind, 10 s after the load
    sockets_after: dict[str, int]
    fds_after: dict[str, int]
    log_tracebacks: int
    #: aborted uploads that reached the sink whole (found from the origin's side)
    origin_findings: list[str] = field(default_factory=list)
    #: smuggling attempts whose requests reached the origin
    smuggled: int = 0
    #: the last request line of each origin connection still open at the "after" moment
    origin_open_after: list[str] = field(default_factory=list)
    #: workers that had to be killed: the soak did not end by itself
    hung_workers: list[str] = field(default_factory=list)

    @property
    def bodies_lost_or_corrupted(self) -> int:
        return self.tally.total(Verdict.LOST, Verdict.CORRUPTED) + len(self.origin_findings)

    @property
    def close_wait(self) -> int:
        return sum(count for state, count in self.sockets_after.items() if state.startswith("CLOSE_WAIT"))

    @property
    def fd_limit(self) -> int:
        return self.before.fds + FD_SLACK

    def failures(self) -> list[str]:
        """Why the run fails (non-zero exit), if it does."""
        reasons = []
        if self.bodies_lost_or_corrupted:
            reasons.append(f"{self.bodies_lost_or_corrupted} bodies lost or corrupted")
        if self.smuggled:
            reasons.append(f"{self.smuggled} smuggled requests reached the origin")
        if self.after.fds > self.fd_limit:
            reasons.append(f"{self.after.fds} open descriptors 10 s after the load (baseline {self.before.fds} + {FD_SLACK})")
        if self.hung_workers:
            reasons.append(f"workers that did not end by themselves: {', '.join(self.hung_workers)}")
        return reasons


def _kinds(tally: Tally, *prefixes: str) -> dict[str, int]:
    """Totals by verdict of the kinds starting with one of C{prefixes}."""
    totals: dict[str, int] = {}
    for kind, verdicts in tally.counts.items():
        if kind.startswith(prefixes):
            for verdict, count in verdicts.items():
                totals[verdict] = totals.get(verdict, 0) + count
    return totals


def percentiles(latencies: list[float]) -> tuple[float | None, float | None]:
    """p50 and p99 of C{latencies} (None when there are too few)."""
    if len(latencies) < 2:
        return None, None
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return round(cuts[49], 2), round(cuts[98], 2)


def _fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def _failed(totals: dict[str, int]) -> int:
    return sum(count for verdict, count in totals.items() if verdict != Verdict.OK.value)


def headline(figures: Figures) -> list[tuple[str, str]]:
    """The rows of the main table: what was run and what came of it."""
    plan, tally = figures.plan, figures.tally
    small = _kinds(tally, "small request")
    p50, p99 = percentiles(tally.latencies_ms)
    rate = small.get(Verdict.OK.value, 0) / plan.seconds
    transfers = _kinds(tally, "download", "upload")
    sessions, messages = _kinds(tally, "websocket session"), _kinds(tally, "websocket message")
    faults = {name: tally.counts.get(name, {}) for name in FAULTS}
    injected = sum(sum(verdicts.values()) for verdicts in faults.values())
    as_expected = sum(verdicts.get(Verdict.EXPECTED.value, 0) for verdicts in faults.values())
    before, peak, after = figures.before, figures.peak, figures.after
    return [
        (f"small requests ({plan.small_clients} plain + {plan.small_tls_clients} TLS keep-alive clients)",
         f"{small.get(Verdict.OK.value, 0):,} ok, {rate:,.0f} req/s, p50 {_fmt_ms(p50)}, p99 {_fmt_ms(p99)}; "
         f"{_failed(small)} failed"),
        (f"large transfers ({plan.transfer_lanes} lanes, {plan.transfer_min // MiB}–{plan.transfer_max // MiB} MiB, "
         "plain and TLS)",
         f"{transfers.get(Verdict.OK.value, 0)} ok, {_failed(transfers)} failed"),
        (f"WebSocket ({plan.websocket_sessions} sessions at a time, ws and wss)",
         f"{sessions.get(Verdict.OK.value, 0)} sessions and {messages.get(Verdict.OK.value, 0):,} messages ok; "
         f"{_failed(sessions)} sessions failed"),
        ("bytes moved and checked", f"{tally.bytes_moved / MiB:,.0f} MiB"),
        (f"faults injected (one per {plan.fault_interval:g} s on average)",
         f"{injected}: {as_expected} failed as expected, {injected - as_expected} otherwise"),
        ("**bodies lost or corrupted** (must be 0)", f"**{figures.bodies_lost_or_corrupted}**"),
        ("smuggled requests that reached the origin (must be 0)", str(figures.smuggled)),
        ("proxy RSS before / peak / after", f"{before.rss_mib:.1f} / {peak.rss_mib:.1f} / {after.rss_mib:.1f} MiB"),
        (f"proxy fds before / peak / after (after must be ≤ {figures.fd_limit})", f"{before.fds} / {peak.fds} / {after.fds}"),
        ("proxy sockets in CLOSE_WAIT at the end", f"{figures.close_wait} (all its TCP sockets: "
         + ", ".join(f"{count} {state}" for state, count in sorted(figures.sockets_after.items())) + ")"),
        ("tracebacks in the proxy's log", str(figures.log_tracebacks)),
    ]


COLUMNS = (Verdict.OK, Verdict.EXPECTED, Verdict.UNEXPECTED, Verdict.LOST, Verdict.CORRUPTED)


def markdown(figures: Figures) -> str:
    """The section written to stdout and to docs/reliability.md."""
    lines = [f"Measured {figures.when} with `{figures.command}` on commit {figures.commit}, seed {figures.plan.seed}, "
             f"{figures.plan.seconds:g} s of load. Proxy options: `{' '.join(figures.proxy_options)}`.", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in headline(figures)]
    failures = figures.failures()
    lines += ["", f"Verdict: **{'FAIL: ' + '; '.join(failures) if failures else 'pass'}**.", "",
              "| operation | " + " | ".join(verdict.value for verdict in COLUMNS) + " |",
              "|---|" + "---|" * len(COLUMNS)]
    for kind in sorted(figures.tally.counts):
        counts = figures.tally.counts[kind]
        lines.append(f"| {kind} | " + " | ".join(str(counts.get(verdict.value, 0)) for verdict in COLUMNS) + " |")
    examples = [(key, details) for key, details in sorted(figures.tally.examples.items())
                if details and not key.endswith(Verdict.EXPECTED.value)]
    if examples or figures.origin_findings or figures.origin_open_after:
        lines += ["", "Unexpected outcomes and integrity failures (first few of each):", ""]
        lines += [f"- {key}: " + "; ".join(details) for key, details in examples]
        lines += [f"- {finding}" for finding in figures.origin_findings]
        if figures.origin_open_after:
            lines.append(f"- origin connections still open 10 s after the load: {len(figures.origin_open_after)}, "
                         "last requests: " + "; ".join(f"`{line}`" for line in figures.origin_open_after[:EXAMPLES_KEPT]))
    return "\n".join(lines)


def as_json(figures: Figures) -> dict[str, Any]:
    p50, p99 = percentiles(figures.tally.latencies_ms)
    tally = figures.tally.as_json()
    del tally["latencies_ms"]
    return {
        "when": figures.when,
        "command": figures.command,
        "commit": figures.commit,
        "plan": asdict(figures.plan),
        "proxy_options": figures.proxy_options,
        "small_requests": {"count": len(figures.tally.latencies_ms), "p50_ms": p50, "p99_ms": p99},
        "tally": tally,
        "bodies_lost_or_corrupted": figures.bodies_lost_or_corrupted,
        "smuggled": figures.smuggled,
        "origin_findings": figures.origin_findings,
        "origin_open_after": figures.origin_open_after,
        "proxy": {
            "before": asdict(figures.before),
            "peak": asdict(figures.peak),
            "after": asdict(figures.after),
            "fd_limit": figures.fd_limit,
            "close_wait": figures.close_wait,
            "sockets_after": figures.sockets_after,
            "fds_after": figures.fds_after,
            "log_tracebacks": figures.log_tracebacks,
        },
        "hung_workers": figures.hung_workers,
        "failures": figures.failures(),
    }


def write_json(figures: Figures) -> Path:
    """C{benchmarks/results/soak-<when>.json} (git-ignored)."""
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    path = results / f"soak-{figures.when.replace(':', '').replace(' ', 'T')}.json"
    path.write_text(json.dumps(as_json(figures), indent=2))
    return path
