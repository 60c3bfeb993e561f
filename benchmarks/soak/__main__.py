"""C{python -m benchmarks.soak [--quick] [--seconds N] [--seed N] [--[no-]docs]} (C{make soak ARGS=...}).

Starts the origin and the proxy (this work tree's code, as a subprocess), runs the four
workers (small requests, large transfers, WebSocket sessions, faults) for the plan's
duration, reads the proxy's memory, descriptors and CLOSE_WAIT sockets before, during
and 10 s after the load, checks the origin's records, prints the table and writes
C{benchmarks/results/soak-<when>.json}. Exits 1 when a body was lost or corrupted, a
smuggled request reached the origin, the descriptors did not come back to the idle
count + 10, or a worker had to be killed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import report
from benchmarks.contenders import STREAM, twisted_mitm
from benchmarks.origin import make_certificates
from benchmarks.soak import probe
from benchmarks.soak.plan import Plan
from benchmarks.soak.summary import Figures, markdown, write_json
from benchmarks.soak.tally import Tally
from benchmarks.soak.worker import ROLES
from benchmarks.tools import ROOT, Child, ensure_apt_packages, free_port, log, snapshot_source, source_revision

#: Seconds between the end of the load and the "after" readings.
SETTLE = 10.0
#: Seconds a worker may take past the load to finish what it started (every operation is bounded well below).
DRAIN = 120.0
DOCS = ROOT / "docs" / "reliability.md"
DOCS_MARKERS = ("<!-- soak:begin -->", "<!-- soak:end -->")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a lighter load for 20 s (about 40 s in all)")
    parser.add_argument("--seconds", type=float, help="seconds of load (default 150, or 20 with --quick)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                        help="write the table into docs/reliability.md (default: on for a default run)")
    options = parser.parse_args(argv)
    if options.seconds is not None and options.seconds <= 0:
        parser.error("--seconds must be positive")
    if options.docs is None:
        options.docs = not options.quick and options.seconds is None
    return options


def proxy_options(plan: Plan) -> tuple[str, ...]:
    """The options the soak adds to the benchmark's shared flags: short timeouts, so that
    the faults that wait for them resolve within the run."""
    return (*STREAM, "--set", f"connection_idle_timeout={plan.idle_timeout}",
            "--set", f"upstream_read_timeout={plan.read_timeout}")


def start_origin(directory: Path) -> tuple[Child, dict[str, int]]:
    """The origin process on four fresh ports, with a certificate for 127.0.0.1."""
    directory.mkdir()
    make_certificates(directory)
    ports = {name: free_port() for name in ("http", "https", "ws", "wss")}
    argv = [sys.executable, "-m", "benchmarks.soak.origin", "--cert", str(directory / "origin-cert.pem"),
            "--key", str(directory / "origin-key.pem")]
    for name, port in ports.items():
        argv += [f"--{name}", str(port)]
    return Child(argv, directory / "origin.log", cwd=ROOT, port=ports["http"]), ports


def run_workers(plan: Plan, directory: Path) -> tuple[Tally, list[str]]:
    """Run every role in its own process; their merged tally, and the roles that had to be killed."""
    plan_path = directory / "plan.json"
    plan.write(plan_path)
    workers = {}
    for role in ROLES:
        output = directory / f"{role}.json"
        workers[role] = (output, Child([sys.executable, "-m", "benchmarks.soak.worker", role, str(plan_path), str(output)],
                                       directory / f"{role}.log", cwd=ROOT))
    deadline = time.monotonic() + plan.seconds + DRAIN
    tally, hung = Tally(), []
    for role, (output, child) in workers.items():
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung.append(role)
        child.stop()
        if output.exists():
            tally.merge(Tally.from_json(json.loads(output.read_text())))
        elif role not in hung:
            raise RuntimeError(f"the {role} worker failed: {child.log_path.read_text()[-2000:]}")
    return tally, hung


def origin_state(port: int) -> dict[str, object]:
    """What the origin saw (asked directly, not through the proxy)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/__soak/state")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def origin_findings(tally: Tally, seen: dict[str, object]) -> tuple[list[str], int]:
    """Aborted uploads that the sink got whole (bodies lost), and smuggled requests that got through."""
    uploads = seen["uploads"]
    assert isinstance(uploads, dict)
    lost = [f"an aborted upload (seed {seed}) reached the sink as a complete body of {uploads[str(seed)][0]} bytes"
            for seed in tally.seeds.get("aborted uploads", []) if str(seed) in uploads]
    smuggled = set(tally.seeds.get("smuggled", [])) & set(seen["smuggled"])  # type: ignore[arg-type]
    return lost, len(smuggled)


def count_tracebacks(log_path: Path) -> int:
    return log_path.read_text(errors="replace").count("Traceback (most recent call last)")


def main(argv: list[str]) -> int:
    options = parse(argv)
    ensure_apt_packages(["openssl"])
    workdir = Path(tempfile.mkdtemp(prefix="twisted_mitm_soak_"))
    plan = Plan.for_mode(options.quick, options.seconds, options.seed)
    commit = source_revision()
    proxy = twisted_mitm(workdir, snapshot_source(workdir))
    origin, ports = start_origin(workdir / "origin")
    try:
        proxy.ensure(proxy_options(plan))
        assert proxy.child is not None
        pid = proxy.child.pid
        plan = replace(plan, proxy_port=proxy.port, proxy_ca=str(proxy.ca_path), http_port=ports["http"],
                       https_port=ports["https"], ws_port=ports["ws"], wss_port=ports["wss"])
        time.sleep(1)
        before = probe.sample(pid)
        monitor = probe.Monitor(pid)
        log(f"soak: {plan.seconds:g} s of load, seed {plan.seed}, proxy pid {pid} ({before.rss_mib} MiB, {before.fds} fds)")
        started = time.monotonic()
        tally, hung = run_workers(plan, workdir)
        lost, smuggled = origin_findings(tally, origin_state(plan.http_port))
        log(f"load over after {time.monotonic() - started:.0f} s; reading the proxy again in {SETTLE:g} s")
        time.sleep(SETTLE)
        peers = {port: f"origin {name}" for name, port in ports.items()}
        after, sockets_after, fds_after = probe.sample(pid), probe.tcp_states(pid, plan.proxy_port, peers), probe.fd_kinds(pid)
        peak = monitor.stop()
        left_open = [line for line in origin_state(plan.http_port)["open_connections"]  # type: ignore[union-attr]
                     if "/__soak/state" not in line]
    finally:
        proxy.stop()
        origin.stop()
    figures = Figures(
        when=time.strftime("%Y-%m-%d %H:%M:%S"),
        command="make soak" + (f" ARGS='{shlex.join(argv)}'" if argv else ""),
        commit=commit, plan=plan, proxy_options=list(proxy_options(plan)), tally=tally,
        before=before, peak=peak, after=after, sockets_after=sockets_after, fds_after=fds_after,
        log_tracebacks=count_tracebacks(proxy.directory / "proxy.log"), origin_findings=lost, smuggled=smuggled,
        origin_open_after=left_open,
        hung_workers=hung,
    )
    section = markdown(figures)
    print(section)
    result = write_json(figures)
    kept_log = result.with_suffix(".proxy.log")
    shutil.copy(proxy.directory / "proxy.log", kept_log)
    log(f"JSON: {result}; the proxy's log: {kept_log}")
    if options.docs:
        log(f"table written to {report.write_docs(section, DOCS, *DOCS_MARKERS)}")
    shutil.rmtree(workdir, ignore_errors=True)
    failures = figures.failures()
    for failure in failures:
        log(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
