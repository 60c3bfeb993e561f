"""Installing the suite's tools, child processes, ports and /proc readings."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APT_PACKAGES = {"nginx": "nginx", "curl": "curl", "socat": "socat", "wrk": "wrk", "openssl": "openssl"}
MITMPROXY_VENV = ROOT / ".venv-bench-mitmproxy"
MITMPROXY_REQUIREMENT = "mitmproxy==12.3.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """One progress line on stderr (stdout carries the table)."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def clean_env() -> dict[str, str]:
    """The environment for clients: no proxy variables, so only C{-x} decides."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def ensure_apt_packages(commands: Sequence[str] = tuple(APT_PACKAGES)) -> None:
    """Install the Debian packages of the missing C{commands}, after checking that apt knows them."""
    missing = [APT_PACKAGES[command] for command in commands if shutil.which(command) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"benchmarks: need the Debian packages {missing}; run as root or install them")
    log(f"installing {' '.join(missing)} from Debian")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    for package in missing:
        policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
        if "Candidate: (none)" in policy or "Candidate:" not in policy:
            raise SystemExit(f"benchmarks: Debian has no package {package!r}")
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.DEVNULL,
    )


def ensure_mitmproxy() -> Path:
    """C{mitmdump} in its own virtualenv on Python 3.12 from pyenv; returns its path."""
    mitmdump = MITMPROXY_VENV / "bin" / "mitmdump"
    if mitmdump.exists():
        return mitmdump
    pythons = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python")))
    if not pythons:
        raise SystemExit("benchmarks: --with-mitmproxy needs Python >= 3.12 (pyenv has none)")
    log(f"building {MITMPROXY_VENV.name} with {pythons[0]} and {MITMPROXY_REQUIREMENT}")
    subprocess.run([pythons[0], "-m", "venv", str(MITMPROXY_VENV)], check=True)
    pip = [str(MITMPROXY_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, MITMPROXY_REQUIREMENT], check=True)
    return mitmdump


def py_spy() -> str:
    """The py-spy binary, installed into the project venv when missing."""
    binary = ROOT / ".venv" / "bin" / "py-spy"
    if not binary.exists():
        log("installing py-spy into .venv")
        subprocess.run([str(ROOT / ".venv" / "bin" / "pip"), "install", "--quiet", "py-spy"], check=True)
    return str(binary)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    """Poll until something accepts on 127.0.0.1:C{port}; fail if C{process} exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Child:
    """A child process in its own session, with its output in a log file; stop() ends it."""

    def __init__(self, argv: Sequence[str], log_path: Path, cwd: Path | None = None, port: int | None = None,
                 env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = log_path
        self._log_file = open(log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=cwd, env={**clean_env(), **(env or {})},
            start_new_session=True,
        )
        if port is not None:
            try:
                wait_for_port(port, self.process)
            except RuntimeError:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} did not start; log: {log_path.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; the process's own group only."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of C{pid} and its reaped children (socat forks one per connection)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of C{pid} in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def run(argv: Sequence[str], timeout: float) -> str:
    """Run a client to completion and return its stdout; a failure raises with its stderr."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=clean_env())
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def snapshot_source(directory: Path) -> Path:
    """Copy the C{twisted_mitm} package as it is now, so edits made during a long run
    do not change the code measured; returns the folder to put on C{PYTHONPATH}."""
    target = directory / "src"
    shutil.copytree(ROOT / "twisted_mitm", target / "twisted_mitm", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def source_revision() -> str:
    """The commit measured, marked when the work tree had uncommitted changes to the package."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "twisted_mitm")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")
