"""The benchmark suite of issue 7: C{python -m benchmarks} (C{make bench}).

It installs what it needs (nginx, curl, socat, wrk from Debian; mitmproxy into
C{.venv-bench-mitmproxy} when asked), starts an origin on 127.0.0.1, runs every
contender (direct, a raw TCP relay, twisted_mitm, mitmdump) through the same cases
interleaved, and writes C{benchmarks/results/<timestamp>.json} and a markdown table
(into C{docs/benchmarks.md} on a full run). Everything talks to 127.0.0.1 only.
"""
