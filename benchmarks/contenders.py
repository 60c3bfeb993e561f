"""The contenders: direct, a raw TCP relay (socat), twisted_mitm (asyncio and epoll
reactors) and mitmdump, each able to say how a client reaches an origin port through it."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.tools import ROOT, Child, free_port

STREAM = ("--set", "stream_large_bodies=1m")


@dataclass(frozen=True)
class Route:
    """How a client reaches one origin port: connect here, as a proxy client or not."""

    connect_port: int
    proxy: bool
    ca_path: Path
    pid: int | None

    def curl_args(self, scheme: str, origin_port: int, path: str) -> list[str]:
        """curl's arguments for C{scheme://127.0.0.1:origin_port/path} over this route."""
        args = ["--noproxy", ""]
        if scheme == "https":
            args += ["--cacert", str(self.ca_path)]
        if self.proxy:
            return [*args, "-x", f"http://127.0.0.1:{self.connect_port}", f"{scheme}://127.0.0.1:{origin_port}{path}"]
        return [*args, f"{scheme}://127.0.0.1:{self.connect_port}{path}"]


class Contender:
    """Something between the client and the origin (or nothing, for C{direct})."""

    name: str
    kind: str  # "direct", "relay" or "proxy"

    def start(self, origin_ca: Path, origin_ports: Sequence[int]) -> None:
        """Start for the given origin; the default has nothing to start."""

    def route(self, origin_port: int) -> Route:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop whatever was started."""


class Direct(Contender):
    name, kind = "direct", "direct"

    def start(self, origin_ca: Path, origin_ports: Sequence[int]) -> None:
        self.origin_ca = origin_ca

    def route(self, origin_port: int) -> Route:
        return Route(origin_port, False, self.origin_ca, None)


class SocatRelay(Contender):
    """One C{socat} per origin port, forking per connection, with 256 KiB buffers."""

    name, kind = "raw relay", "relay"

    def __init__(self, directory: Path):
        self.directory = directory
        self.relays: dict[int, tuple[int, Child]] = {}

    def start(self, origin_ca: Path, origin_ports: Sequence[int]) -> None:
        self.origin_ca = origin_ca
        for origin_port in origin_ports:
            port = free_port()
            argv = ["socat", "-b", "262144", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay",
                    f"TCP:127.0.0.1:{origin_port},nodelay"]
            self.relays[origin_port] = (port, Child(argv, self.directory / f"socat-{origin_port}.log", port=port))

    def route(self, origin_port: int) -> Route:
        port, child = self.relays[origin_port]
        return Route(port, False, self.origin_ca, child.pid)

    def stop(self) -> None:
        for _, child in self.relays.values():
            child.stop()
        self.relays.clear()


class Proxy(Contender):
    """An HTTP proxy run as a child process, restartable with other options."""

    kind = "proxy"

    def __init__(self, name: str, command: Sequence[str], directory: Path, env: dict[str, str] | None = None):
        self.name = name
        self.command = list(command)
        self.env = env
        self.directory = Path(tempfile.mkdtemp(prefix=name.replace("/", "-") + "-", dir=directory))
        self.confdir = self.directory / "confdir"
        self.child: Child | None = None
        self.options: tuple[str, ...] = ()

    @property
    def ca_path(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def start(self, origin_ca: Path, origin_ports: Sequence[int]) -> None:
        self.ensure(STREAM)

    def ensure(self, options: Sequence[str] = STREAM, fresh: bool = False) -> None:
        """Be running with the shared flags plus C{options} (C{--set ...}, C{-s script});
        C{fresh} restarts anyway (for a clean peak RSS)."""
        if not fresh and self.child is not None and self.options == tuple(options):
            return
        self.stop()
        self.options = tuple(options)
        self.port = free_port()
        argv = [*self.command, "--listen-host", "127.0.0.1", "-p", str(self.port), "-q",
                "--set", f"confdir={self.confdir}", "--set", "ssl_insecure=true", *self.options]
        self.child = Child(argv, self.directory / "proxy.log", cwd=self.directory, port=self.port, env=self.env)

    def route(self, origin_port: int) -> Route:
        assert self.child is not None, f"{self.name} is not running"
        return Route(self.port, True, self.ca_path, self.child.pid)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


def twisted_mitm(directory: Path, source: Path) -> Proxy:
    """twisted_mitm as users start it, C{python -m twisted_mitm} (asyncio reactor), from C{source}."""
    python = str(ROOT / ".venv" / "bin" / "python")
    return Proxy("twisted_mitm", [python, "-m", "twisted_mitm"], directory, {"PYTHONPATH": str(source)})


def twisted_mitm_epoll(directory: Path, source: Path) -> Proxy:
    """twisted_mitm on the epoll reactor, C{twistd -r epoll -n mitm}, from C{source}."""
    twistd = str(ROOT / ".venv" / "bin" / "twistd")
    return Proxy("twisted_mitm/epoll", [twistd, "-r", "epoll", "-n", "mitm"], directory, {"PYTHONPATH": str(source)})


def mitmdump(directory: Path, binary: Path) -> Proxy:
    return Proxy("mitmdump", [str(binary)], directory)
