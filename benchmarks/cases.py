"""The cases of issue 7, (a) to (h); every case runs its contenders interleaved, run by run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import clients
from benchmarks.contenders import STREAM, Contender, Proxy
from benchmarks.origin import Origin, size_name
from benchmarks.tools import ROOT, cpu_seconds, log, peak_rss_mib

GiB = 1 << 30
MiB = 1 << 20
RESPONSE_HOOK = """\
def response(flow):
    flow.response.headers["x-bench-body"] = str(len(flow.response.content))
"""


@dataclass(frozen=True)
class Sizes:
    """What a run moves; C{quick} is small enough for a developer's two minutes."""

    runs: int
    bulk: int
    buffered: int
    memory: tuple[int, ...]
    load_seconds: float
    ttfb_samples: int

    @classmethod
    def for_mode(cls, quick: bool, runs: int | None) -> Sizes:
        if quick:
            return cls(runs or 1, 256 * MiB, 64 * MiB, (64 * MiB, 256 * MiB), 2.0, 10)
        return cls(runs or 3, GiB, 64 * MiB, (100 * MiB, GiB, 4 * GiB), 5.0, 31)


@dataclass
class Series:
    """One measured quantity: every contender's values, run by run."""

    key: str
    title: str
    unit: str
    higher_is_better: bool
    values: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def median(self, contender: str) -> float | None:
        values = self.values.get(contender)
        return statistics.median(values) if values else None


@dataclass
class Bench:
    """The running origin and contenders, the sizes, and the series measured so far."""

    origin: Origin
    contenders: dict[str, Contender]
    sizes: Sizes
    workdir: Path
    series: dict[str, Series] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def pick(self, *names: str) -> list[Contender]:
        """The named contenders that exist in this run, in the given order."""
        return [self.contenders[name] for name in names if name in self.contenders]

    def proxies(self) -> list[Proxy]:
        return [c for c in self.contenders.values() if isinstance(c, Proxy)]

    def define(self, key: str, title: str, unit: str, higher_is_better: bool = True) -> None:
        self.series.setdefault(key, Series(key, title, unit, higher_is_better))

    def interleave(self, contenders: Sequence[Contender], measure: Callable[[Contender], dict[str, float]],
                   runs: int | None = None, before: Callable[[Contender], None] | None = None) -> None:
        """Run C{measure} for every contender in turn, C{runs} times; a failure is recorded, not fatal."""
        for run in range(runs or self.sizes.runs):
            for contender in contenders:
                try:
                    if before is not None:
                        before(contender)
                    for key, value in measure(contender).items():
                        self.series[key].values.setdefault(contender.name, []).append(value)
                except Exception as error:  # noqa: BLE001 - any failure is a result to report
                    reason = str(error) or repr(error)
                    log(f"  {contender.name}: FAILED: {reason}")
                    for key in self._keys_of(measure):
                        self.series[key].errors.setdefault(contender.name, reason[:300])
                else:
                    log(f"  run {run + 1} {contender.name}: done")

    def _keys_of(self, measure: Callable[..., object]) -> list[str]:
        return list(getattr(measure, "keys", ()))

    def streaming(self) -> None:
        """All proxies running with the shared streaming options."""
        for proxy in self.proxies():
            proxy.ensure(STREAM)


def keys(*names: str) -> Callable[[Callable[..., dict[str, float]]], Callable[..., dict[str, float]]]:
    """Declare which series a measure function fills (to record a failure against them)."""

    def mark(function: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        function.keys = names  # type: ignore[attr-defined]
        return function

    return mark


def _cpu(pid: int | None) -> float | None:
    return cpu_seconds(pid) if pid is not None else None


def _bulk(bench: Bench, scheme: str, prefix: str) -> None:
    origin, size = bench.origin, bench.sizes.bulk
    path = origin.add_file(size)
    port = origin.http_port if scheme == "http" else origin.https_port

    @keys(prefix, f"{prefix}-cpu")
    def measure(contender: Contender) -> dict[str, float]:
        route = contender.route(port)
        before = _cpu(route.pid)
        rate = clients.curl_download(route, scheme, port, path, size, timeout=600)
        if route.pid is None or before is None:
            return {prefix: rate}
        time.sleep(0.3)  # socat's children are counted once reaped
        return {prefix: rate, f"{prefix}-cpu": (cpu_seconds(route.pid) - before) / (size / GiB)}

    bench.streaming()
    bench.interleave(bench.pick("direct", "raw relay", "twisted_mitm", "twisted_mitm/epoll", "mitmdump"), measure)


def case_download(bench: Bench) -> None:
    """(a) streamed download over plain HTTP; (h) CPU seconds per GiB."""
    name = size_name(bench.sizes.bulk)
    bench.define("a", f"(a) streamed {name} download, plain HTTP", "MB/s")
    bench.define("a-cpu", f"(h) CPU seconds per GiB, streamed {name} download, plain HTTP", "s/GiB", False)
    _bulk(bench, "http", "a")


def case_tls(bench: Bench) -> None:
    """(b) streamed download through TLS interception (the relay carries TLS end to end)."""
    name = size_name(bench.sizes.bulk)
    bench.define("b", f"(b) streamed {name} download, TLS", "MB/s")
    bench.define("b-cpu", f"CPU seconds per GiB, streamed {name} download, TLS", "s/GiB", False)
    _bulk(bench, "https", "b")


def case_upload(bench: Bench) -> None:
    """(c) streamed upload to the sink."""
    origin, size = bench.origin, bench.sizes.bulk
    file = origin.directory / "www" / origin.add_file(size).lstrip("/")
    bench.define("c", f"(c) streamed {size_name(size)} upload, plain HTTP", "MB/s")

    @keys("c")
    def measure(contender: Contender) -> dict[str, float]:
        return {"c": clients.curl_upload(contender.route(origin.sink_port), origin.sink_port, file, timeout=600)}

    bench.streaming()
    bench.interleave(bench.pick("direct", "raw relay", "twisted_mitm", "twisted_mitm/epoll", "mitmdump"), measure)


def case_buffered(bench: Bench) -> None:
    """(d) buffered download with a C{response} hook: speed and the proxy's peak RSS (fresh each run)."""
    origin, size = bench.origin, bench.sizes.buffered
    path = origin.add_file(size)
    script = bench.workdir / "response_hook.py"
    script.write_text(RESPONSE_HOOK)
    options = ("-s", str(script))
    for scheme, port in (("http", origin.http_port), ("https", origin.https_port)):
        label = "plain HTTP" if scheme == "http" else "TLS"
        key = f"d-{scheme}"
        bench.define(key, f"(d) buffered {size_name(size)} download + response hook, {label}", "MB/s")
        bench.define(f"{key}-rss", f"(d) peak RSS, buffered {size_name(size)} + response hook, {label}", "MiB", False)

        @keys(key, f"{key}-rss")
        def measure(contender: Contender, scheme: str = scheme, port: int = port, key: str = key) -> dict[str, float]:
            route = contender.route(port)
            rate = clients.curl_download(route, scheme, port, path, size, timeout=600)
            if not isinstance(contender, Proxy):
                return {key: rate}
            return {key: rate, f"{key}-rss": peak_rss_mib(route.pid)}

        def fresh(contender: Contender) -> None:
            if isinstance(contender, Proxy):
                contender.ensure(options, fresh=True)

        bench.interleave(bench.pick("direct", "raw relay", "twisted_mitm", "mitmdump"), measure, before=fresh)


def case_small(bench: Bench) -> None:
    """(e) 1 KiB requests/s: keep-alive and a new connection each, plain (wrk) and TLS (asyncio client)."""
    origin, seconds = bench.origin, bench.sizes.load_seconds
    path = origin.add_file(1024)
    contenders = bench.pick("direct", "raw relay", "twisted_mitm", "twisted_mitm/epoll", "mitmdump")
    bench.streaming()
    for tls in (False, True):
        for keepalive in (True, False):
            key = f"e-{'tls' if tls else 'plain'}-{'keepalive' if keepalive else 'close'}"
            tool = "asyncio client, 16 conns" if tls else "wrk, 16 conns"
            bench.define(key, f"(e) 1 KiB requests, {'TLS' if tls else 'plain'}, "
                              f"{'keep-alive' if keepalive else 'new connection each'} ({tool})", "req/s")
            port = origin.https_port if tls else origin.http_port

            @keys(key)
            def measure(contender: Contender, tls: bool = tls, keepalive: bool = keepalive, key: str = key,
                        port: int = port) -> dict[str, float]:
                route = contender.route(port)
                if tls:
                    return {key: clients.load(route, port, path, True, keepalive, seconds, 16)}
                return {key: clients.wrk(route, port, path, keepalive, seconds, 16, bench.workdir)}

            bench.interleave([c for c in contenders if not (tls and c.name.endswith("/epoll"))], measure)


def supports_websocket() -> bool:
    """twisted_mitm relays WebSocket once C{proxy/wsrelay.py} exists (SPEC: the WebSocket issue)."""
    return (ROOT / "twisted_mitm" / "proxy" / "wsrelay.py").exists()


def case_websocket(bench: Bench) -> None:
    """(f) WebSocket echo messages/s through a CONNECT tunnel; message mode and C{stream_websockets}."""
    origin, seconds = bench.origin, bench.sizes.load_seconds
    contenders = bench.pick("direct", "raw relay", "twisted_mitm", "mitmdump")
    if not supports_websocket():
        bench.notes.append("(f): twisted_mitm has no WebSocket relay yet (no proxy/wsrelay.py); measured without it.")
        contenders = [c for c in contenders if c.name != "twisted_mitm"]
    for mode, options in (("message", STREAM), ("stream", (*STREAM, "--set", "stream_websockets=true"))):
        key = f"f-{mode}"
        bench.define(key, f"(f) WebSocket echo, 64-byte messages, {mode} mode", "msg/s")

        @keys(key)
        def measure(contender: Contender, key: str = key) -> dict[str, float]:
            return {key: clients.websocket_echo(contender.route(origin.ws_port), origin.ws_port, seconds)}

        def configure(contender: Contender, options: Sequence[str] = options) -> None:
            if contender.name == "twisted_mitm":
                contender.ensure(options)  # type: ignore[attr-defined]
            elif isinstance(contender, Proxy):
                contender.ensure(STREAM)  # mitmdump has no stream_websockets option

        bench.interleave(contenders, measure, before=configure)
    bench.streaming()


def case_ttfb(bench: Bench) -> None:
    """(g) time to first byte of a 1 KiB response on a new connection (curl's time_starttransfer)."""
    origin = bench.origin
    path = origin.add_file(1024)
    bench.define("g", "(g) time to first byte, 1 KiB, new connection", "ms", False)

    @keys("g")
    def measure(contender: Contender) -> dict[str, float]:
        return {"g": clients.curl_ttfb(contender.route(origin.http_port), origin.http_port, path)}

    bench.streaming()
    bench.interleave(bench.pick("direct", "raw relay", "twisted_mitm", "mitmdump"), measure,
                     runs=bench.sizes.ttfb_samples)


def case_memory(bench: Bench) -> None:
    """(h) the proxy's peak RSS streaming downloads of growing size (a fresh process each run)."""
    origin = bench.origin
    bench.define("h-idle", "(h) RSS after start-up (before any flow)", "MiB", False)
    for size in bench.sizes.memory:
        path = origin.add_file(size)
        key = f"h-rss-{size_name(size)}"
        bench.define(key, f"(h) peak RSS, streamed {size_name(size)} download", "MiB", False)
        idle: dict[str, float] = {}

        def fresh(contender: Contender) -> None:
            assert isinstance(contender, Proxy)
            contender.ensure(STREAM, fresh=True)
            time.sleep(0.2)
            idle[contender.name] = peak_rss_mib(contender.route(origin.http_port).pid)  # type: ignore[arg-type]

        @keys(key)
        def measure(contender: Contender, key: str = key, path: str = path, size: int = size) -> dict[str, float]:
            route = contender.route(origin.http_port)
            clients.curl_download(route, "http", origin.http_port, path, size, timeout=900)
            return {key: peak_rss_mib(route.pid), "h-idle": idle[contender.name]}  # type: ignore[arg-type]

        bench.interleave(bench.pick("twisted_mitm", "mitmdump"), measure, before=fresh)
    bench.streaming()


CASES: dict[str, Callable[[Bench], None]] = {
    "download": case_download,
    "tls": case_tls,
    "upload": case_upload,
    "buffered": case_buffered,
    "small": case_small,
    "websocket": case_websocket,
    "ttfb": case_ttfb,
    "memory": case_memory,
}
