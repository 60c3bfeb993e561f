"""Medians, ratios and targets; the JSON result, the markdown table and C{docs/benchmarks.md}."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from benchmarks.cases import MiB, Bench, Series
from benchmarks.tools import ROOT

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SUBJECT = "twisted_mitm"


def _version(argv: list[str], pattern: str = r"[\d][\w.\-+~]*") -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "-"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(0) if found else "-"


def machine(mitmdump: Path | None) -> dict[str, str]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    venv_python = str(ROOT / ".venv" / "bin" / "python")
    return {
        "cpu": f"{os.cpu_count()} × {model.group(1) if model else platform.processor()}",
        "memory": f"{int(memory.group(1)) // (1024 * 1024)} GiB" if memory else "-",
        "kernel": platform.release(),
        "python (twisted_mitm)": _version([venv_python, "--version"]),
        "twisted": _version([venv_python, "-c", "import twisted; print(twisted.__version__)"]),
        "nginx": _version(["nginx", "-v"]),
        "curl": _version(["curl", "--version"]),
        "socat": _version(["socat", "-V"], r"socat version ([\d.]+)").replace("socat version ", ""),
        "wrk": _version(["wrk", "-v"]),
        "mitmdump": _version([str(mitmdump), "--version"], r"Mitmproxy: ([\d.]+)").replace("Mitmproxy: ", "")
        if mitmdump else "not installed",
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(series: Series, contender: str, other: str) -> str:
    mine, theirs = series.median(contender), series.median(other)
    if mine is None or theirs is None or contender == other or theirs == 0:
        return ""
    return f"{mine / theirs:.2f}×"


def table(bench: Bench) -> str:
    """The markdown table: one row per case and contender, medians and ratios in the same run."""
    lines = ["| case | contender | median | runs | × direct | × raw relay | × mitmdump |",
             "|---|---|---|---|---|---|---|"]
    for series in bench.series.values():
        names = [n for n in bench.contenders if n in series.values or n in series.errors]
        for name in names:
            values = series.values.get(name, [])
            median = f"{_fmt(series.median(name))} {series.unit}" if values else f"failed: {series.errors.get(name, '')[:80]}"
            lines.append(f"| {series.title} | {name} | {median} | {len(values)} | {_ratio(series, name, 'direct')} "
                         f"| {_ratio(series, name, 'raw relay')} | {_ratio(series, name, 'mitmdump')} |")
    return "\n".join(lines)


def _get(bench: Bench, key: str, contender: str) -> float | None:
    series = bench.series.get(key)
    return series.median(contender) if series else None


def _over(bench: Bench, key: str, contender: str, other: str) -> float | None:
    mine, theirs = _get(bench, key, contender), _get(bench, key, other)
    return mine / theirs if mine is not None and theirs else None


def _rss_flat(bench: Bench, contender: str) -> tuple[float, float] | None:
    peaks = [s.median(contender) for k, s in bench.series.items() if k.startswith("h-rss-")]
    peaks = [p for p in peaks if p is not None]
    return (max(peaks), max(peaks) - min(peaks)) if len(peaks) >= 2 else None


def targets(bench: Bench) -> list[dict[str, str]]:
    """Issue 7's targets for twisted_mitm, with mitmdump's figure from the same run beside it."""
    body_mib = bench.sizes.buffered / MiB
    rows: list[tuple[str, Callable[[str], float | None], str, Callable[[float], bool]]] = [
        ("(a) download × raw relay ≥ 0.80", lambda c: _over(bench, "a", c, "raw relay"), "{:.2f}×", lambda v: v >= 0.80),
        ("(b) TLS download × raw relay ≥ 0.60", lambda c: _over(bench, "b", c, "raw relay"), "{:.2f}×",
         lambda v: v >= 0.60),
        ("(c) upload × raw relay ≥ 0.80", lambda c: _over(bench, "c", c, "raw relay"), "{:.2f}×", lambda v: v >= 0.80),
        (f"(d) buffered peak RSS ≤ 1.2 × body + 40 MiB ({1.2 * body_mib + 40:.0f} MiB), plain",
         lambda c: _get(bench, "d-http-rss", c), "{:.0f} MiB", lambda v: v <= 1.2 * body_mib + 40),
        (f"(d) the same with TLS ({1.2 * body_mib + 40:.0f} MiB)", lambda c: _get(bench, "d-https-rss", c),
         "{:.0f} MiB", lambda v: v <= 1.2 * body_mib + 40),
        ("(e) 1 KiB keep-alive × raw relay ≥ 0.10", lambda c: _over(bench, "e-plain-keepalive", c, "raw relay"),
         "{:.3f}×", lambda v: v >= 0.10),
        ("(e) 1 KiB new connection × raw relay ≥ 0.10", lambda c: _over(bench, "e-plain-close", c, "raw relay"),
         "{:.3f}×", lambda v: v >= 0.10),
        ("(f) WebSocket message mode × mitmdump ≥ 5", lambda c: _over(bench, "f-message", c, "mitmdump"), "{:.2f}×",
         lambda v: v >= 5),
        ("(g) time to first byte over raw relay ≤ +1 ms", lambda c: _added(bench, c), "{:+.2f} ms", lambda v: v <= 1),
        ("(h) streamed peak RSS ≤ 40 MiB", lambda c: (_rss_flat(bench, c) or (None,))[0], "{:.1f} MiB",
         lambda v: v <= 40),
        ("(h) peak RSS flat across sizes (within 2 MiB)", lambda c: (_rss_flat(bench, c) or (None, None))[1],
         "{:.1f} MiB spread", lambda v: v <= 2),
        ("(h) CPU seconds per GiB, plain ≤ 1.5", lambda c: _get(bench, "a-cpu", c), "{:.2f} s", lambda v: v <= 1.5),
    ]
    result = []
    for label, value_of, fmt, met in rows:
        mine, theirs = value_of(SUBJECT), value_of("mitmdump")
        result.append({
            "target": label,
            SUBJECT: fmt.format(mine) if mine is not None else "not measured",
            "mitmdump": fmt.format(theirs) if theirs is not None else "–",
            "met": ("yes" if met(mine) else "**no**") if mine is not None else "–",
        })
    return result


def _added(bench: Bench, contender: str) -> float | None:
    mine, relay = _get(bench, "g", contender), _get(bench, "g", "raw relay")
    return mine - relay if mine is not None and relay is not None else None


def markdown(bench: Bench, info: dict[str, str], command: str, when: str, profiles: str) -> str:
    rows = ["| target | twisted_mitm | mitmdump | met |", "|---|---|---|---|"]
    rows += [f"| {t['target']} | {t[SUBJECT]} | {t['mitmdump']} | {t['met']} |" for t in targets(bench)]
    machine_lines = "\n".join(f"- {key}: {value}" for key, value in info.items())
    notes = "\n".join(f"- {note}" for note in bench.notes)
    return (
        f"Measured {when} with `{command}`.\n\n{machine_lines}\n\n"
        f"### Targets (issue 7)\n\n" + "\n".join(rows) + "\n\n"
        f"### All cases (medians; ratios are median / median in the same run)\n\n{table(bench)}\n"
        + (f"\n{notes}\n" if notes else "")
        + (f"\n{profiles}\n" if profiles else "")
    )


def write_json(bench: Bench, info: dict[str, str], command: str, when: str, profiles: dict[str, object]) -> Path:
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{when.replace(':', '').replace(' ', 'T')}.json"
    path.write_text(json.dumps({
        "when": when,
        "command": command,
        "machine": info,
        "sizes": asdict(bench.sizes),
        "series": {key: {**asdict(series), "medians": {n: series.median(n) for n in series.values}}
                   for key, series in bench.series.items()},
        "targets": targets(bench),
        "notes": bench.notes,
        "profiles": profiles,
    }, indent=2))
    return path


def write_docs(section: str, path: Path = ROOT / "docs" / "benchmarks.md", begin: str = BEGIN, end: str = END) -> Path:
    """Put C{section} between the C{begin} and C{end} markers of C{path}, by default the
    result markers of C{docs/benchmarks.md}; the prose around them stays."""
    text = path.read_text() if path.exists() else ""
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{section}\n{end}{tail}")
    return path
