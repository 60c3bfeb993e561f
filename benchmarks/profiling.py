"""Where the proxy's time goes: py-spy samples the running proxy during a workload."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import clients
from benchmarks.cases import RESPONSE_HOOK, Bench
from benchmarks.contenders import STREAM, Proxy, Route
from benchmarks.tools import log, py_spy

TOP = 15


def _short(frame: str) -> str:
    """C{'relay (/x/site-packages/twisted/internet/tcp.py)'} -> C{'relay (twisted/internet/tcp.py)'}."""
    name, _, where = frame.partition(" (")
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            if marker == "lib/python3":
                where = "stdlib " + where.split("/", 1)[1]
    return f"{name} ({where}" if where else name


def summarize(raw: str) -> dict[str, object]:
    """Self sample shares per function and per file, and inclusive shares of twisted_mitm's own functions."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        files[frames[-1].partition(" (")[2].rstrip(")")] += count
        for frame in set(frames):
            if "(twisted_mitm/" in frame and "__main__" not in frame:
                inclusive[frame] += count

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(TOP)] if total else []

    return {"samples": total, "self": top(own), "inclusive": top(inclusive), "files": top(files)}


def profile(proxy: Proxy, workdir: Path, label: str, workload: Callable[[], None]) -> dict[str, object]:
    """Sample C{proxy} (without stopping it: C{--nonblocking}) while C{workload} runs."""
    output = workdir / f"profile-{label.replace(' ', '_').replace('/', '-')}.txt"
    assert proxy.child is not None
    sampler = subprocess.Popen([py_spy(), "record", "--pid", str(proxy.child.pid), "--rate", "200", "--nonblocking",
                                "--nolineno", "--format", "raw", "--output", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    try:
        workload()
    finally:
        sampler.send_signal(signal.SIGINT)
        _, errors = sampler.communicate(timeout=60)
    if not output.exists():
        raise RuntimeError(f"py-spy wrote no profile: {errors.decode()[-500:]}")
    return {"label": label, **summarize(output.read_text())}


def run_profiles(bench: Bench) -> list[dict[str, object]]:
    """Profile twisted_mitm on (a) (both reactors), (b), (d) and (e) keep-alive."""
    origin, size = bench.origin, bench.sizes.bulk
    path, small, buffered = origin.add_file(size), origin.add_file(1024), origin.add_file(bench.sizes.buffered)
    script = bench.workdir / "response_hook.py"
    script.write_text(RESPONSE_HOOK)

    def download(scheme: str, port: int, path: str, size: int, times: int) -> Callable[[Route], None]:
        def workload(route: Route) -> None:
            for _ in range(times):
                clients.curl_download(route, scheme, port, path, size, timeout=600)
        return workload

    jobs: list[tuple[str, str, Sequence[str], int, Callable[[Route], None]]] = [
        ("twisted_mitm", "(a) streamed download", STREAM, origin.http_port,
         download("http", origin.http_port, path, size, 2)),
        ("twisted_mitm/epoll", "(a) streamed download", STREAM, origin.http_port,
         download("http", origin.http_port, path, size, 2)),
        ("twisted_mitm", "(b) streamed download, TLS", STREAM, origin.https_port,
         download("https", origin.https_port, path, size, 1)),
        ("twisted_mitm", "(d) buffered download + response hook", ("-s", str(script)), origin.http_port,
         download("http", origin.http_port, buffered, bench.sizes.buffered, 5)),
        ("twisted_mitm", "(e) 1 KiB keep-alive", STREAM, origin.http_port,
         lambda route: clients.wrk(route, origin.http_port, small, True, bench.sizes.load_seconds, 16, bench.workdir)),
    ]
    found = []
    for name, case, options, port, workload in jobs:
        proxy = bench.contenders.get(name)
        if not isinstance(proxy, Proxy):
            continue
        label = f"{name}, {case}"
        log(f"profiling {label}")
        proxy.ensure(options)
        route = proxy.route(port)
        try:
            found.append(profile(proxy, bench.workdir, label, lambda: workload(route)))
        except Exception as error:  # noqa: BLE001 - a missing profile is reported, not fatal
            log(f"  profile failed: {error}")
            bench.notes.append(f"profile {label} failed: {error}")
    bench.streaming()
    return found


def markdown(profiles: list[dict[str, object]]) -> str:
    parts = []
    for found in profiles:
        parts.append(f"#### Profile: {found['label']} ({found['samples']} samples, py-spy, on-CPU only)\n")
        parts.append("| self % | function (self) | incl. % | twisted_mitm function (inclusive) |\n|---|---|---|---|")
        own, inclusive = found["self"], found["inclusive"]
        for i in range(max(len(own), len(inclusive))):  # type: ignore[arg-type]
            left = own[i] if i < len(own) else ("", "")  # type: ignore[index, arg-type]
            right = inclusive[i] if i < len(inclusive) else ("", "")  # type: ignore[index, arg-type]
            parts.append(f"| {left[1]} | `{left[0]}` | {right[1]} | `{right[0]}` |")
        files = ", ".join(f"`{name}` {share}%" for name, share in found["files"][:8])  # type: ignore[index]
        parts.append(f"\nSelf time by file: {files}\n")
    return "\n".join(parts)
