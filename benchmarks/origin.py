"""The origin side: nginx (plain and TLS, sendfile) serving generated files, an upload
sink and a WebSocket echo server, all on 127.0.0.1 high ports under one temp dir."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.tools import Child, free_port

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{http_port} backlog=4096;
        root {dir}/www;
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl backlog=4096;
        ssl_certificate {dir}/origin-cert.pem;
        ssl_certificate_key {dir}/origin-key.pem;
        ssl_session_cache shared:tls:10m;
        root {dir}/www;
    }}
}}
"""


def size_name(size: int) -> str:
    """C{1024 -> '1k'}, C{64 MiB -> '64m'}, C{1 GiB -> '1g'}: the served file's name."""
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(directory: Path) -> Path:
    """A test CA and an origin certificate for 127.0.0.1 signed by it; returns the CA path."""
    ca_key, ca_cert = directory / "origin-ca-key.pem", directory / "origin-ca.pem"
    key, csr, cert = directory / "origin-key.pem", directory / "origin.csr", directory / "origin-cert.pem"
    ext = directory / "origin.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(ca_key), "-out", str(ca_cert), "-subj", "/CN=twisted_mitm bench CA", "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "30", "-extfile", str(ext))
    return ca_cert


@dataclass
class Origin:
    """The running origin servers; C{stop()} ends them all."""

    directory: Path
    http_port: int
    https_port: int
    sink_port: int
    ws_port: int
    ca_path: Path
    children: list[Child] = field(default_factory=list)

    def add_file(self, size: int) -> str:
        """Serve a C{size}-byte file (sparse, read once so it sits in the page cache); returns its path."""
        name = size_name(size)
        path = self.directory / "www" / name
        if not path.exists():
            with open(path, "wb") as out:
                out.truncate(size)
            path.chmod(0o644)
            with open(path, "rb", buffering=0) as warm:  # into the page cache before any timing
                buffer = memoryview(bytearray(1 << 22))
                while warm.readinto(buffer):
                    pass
        return f"/{name}"

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


def start_origin(directory: Path) -> Origin:
    """Start nginx, the upload sink and the WebSocket echo server under C{directory}."""
    (directory / "www").mkdir(parents=True)
    (directory / "tmp").mkdir()
    # nginx started as root serves as 'nobody': everything it reads must be world-readable.
    for path in (directory, directory / "www"):
        path.chmod(0o755)
    ca_path = make_certificates(directory)
    for path in directory.glob("origin*.pem"):
        path.chmod(0o644)
    origin = Origin(directory, free_port(), free_port(), free_port(), free_port(), ca_path)
    origin.add_file(1024)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, http_port=origin.http_port, https_port=origin.https_port))
    try:
        origin.children.append(
            Child(["nginx", "-c", str(conf), "-p", str(directory)], directory / "nginx.log", port=origin.http_port)
        )
        python = sys.executable
        origin.children.append(
            Child([python, "-m", "benchmarks.sink", str(origin.sink_port)], directory / "sink.log",
                  cwd=Path(__file__).resolve().parent.parent, port=origin.sink_port)
        )
        origin.children.append(
            Child([python, "-m", "benchmarks.wsecho", str(origin.ws_port)], directory / "wsecho.log",
                  cwd=Path(__file__).resolve().parent.parent, port=origin.ws_port)
        )
    except BaseException:
        origin.stop()
        raise
    return origin
