"""C{python -m benchmarks [--quick] [--with-mitmproxy] [--cases a,b] [--runs N]} (C{make bench ARGS=...})."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import profiling, report
from benchmarks.cases import CASES, Bench, Sizes
from benchmarks.contenders import Contender, Direct, SocatRelay, mitmdump, twisted_mitm, twisted_mitm_epoll
from benchmarks.origin import start_origin
from benchmarks.tools import ensure_apt_packages, ensure_mitmproxy, log, snapshot_source, source_revision


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a couple of minutes")
    parser.add_argument("--with-mitmproxy", action="store_true",
                        help="build .venv-bench-mitmproxy (mitmproxy from PyPI on Python 3.12) and include mitmdump")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases to run (default all): {', '.join(CASES)}")
    parser.add_argument("--runs", type=int, help="runs per contender (default 3, 1 with --quick)")
    parser.add_argument("--no-epoll", action="store_true", help="leave out twisted_mitm on the epoll reactor")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="py-spy profiles of twisted_mitm on (a) and (e) (default: on for a full run)")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                        help="write the table into docs/benchmarks.md (default: on for a full run)")
    options = parser.parse_args(argv)
    options.cases = [name.strip() for name in options.cases.split(",") if name.strip()]
    unknown = set(options.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    full = not options.quick and options.cases == list(CASES)
    options.profile = full if options.profile is None else options.profile
    options.docs = full if options.docs is None else options.docs
    return options


def main(argv: list[str]) -> None:
    options = parse(argv)
    ensure_apt_packages()
    mitmdump_binary = ensure_mitmproxy() if options.with_mitmproxy else None
    workdir = Path(tempfile.mkdtemp(prefix="twisted_mitm_bench_"))
    workdir.chmod(0o755)  # nginx's workers ('nobody' when started as root) read below it
    sizes = Sizes.for_mode(options.quick, options.runs)
    source = snapshot_source(workdir)
    revision = source_revision()
    contenders: list[Contender] = [Direct(), SocatRelay(workdir), twisted_mitm(workdir, source)]
    if not options.no_epoll:
        contenders.append(twisted_mitm_epoll(workdir, source))
    if mitmdump_binary is not None:
        contenders.append(mitmdump(workdir, mitmdump_binary))
    origin = start_origin(workdir / "origin")
    started: list[Contender] = []
    try:
        origin_ports = (origin.http_port, origin.https_port, origin.sink_port, origin.ws_port)
        for contender in contenders:
            log(f"starting {contender.name}")
            contender.start(origin.ca_path, origin_ports)
            started.append(contender)
        bench = Bench(origin, {c.name: c for c in contenders}, sizes, workdir)
        began = time.monotonic()
        for name in options.cases:
            log(f"case {name}")
            CASES[name](bench)
        profiles = profiling.run_profiles(bench) if options.profile else []
        log(f"measured in {time.monotonic() - began:.0f} s")
    finally:
        for contender in reversed(started):
            contender.stop()
        origin.stop()
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    command = "make bench" + (f" ARGS='{shlex.join(argv)}'" if argv else "")
    info = {"twisted_mitm code": revision, **report.machine(mitmdump_binary)}
    section = report.markdown(bench, info, command, when, profiling.markdown(profiles))
    print(section)
    log(f"JSON: {report.write_json(bench, info, command, when, {'profiles': profiles})}")
    if options.docs:
        log(f"table written to {report.write_docs(section)}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
