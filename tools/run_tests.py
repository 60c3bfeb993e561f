"""Run the trial suite on the asyncio reactor and end with one plain summary line.

Usage: python tools/run_tests.py [trial arguments...]   (default: tests)

Trial's own last line reads like ``FAILED (failures=1, successes=40)``; CI counts
runs by a line ``N passed, N failed, N skipped``, which this prints after it. The exit
status is trial's.
"""

import re
import subprocess
import sys

_SUMMARY = re.compile(r"^(PASSED|FAILED) \((?P<counts>[^)]*)\)\s*$")


def summarize(lines: list[str]) -> str:
    """Turn trial's closing PASSED/FAILED line into ``N passed, N failed, N skipped``."""
    counts: dict[str, int] = {}
    for line in reversed(lines):
        match = _SUMMARY.match(line)
        if match:
            for item in match.group("counts").split(","):
                name, _, value = item.strip().partition("=")
                counts[name] = int(value)
            break
    passed = counts.get("successes", 0)
    failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpectedSuccesses", 0)
    skipped = counts.get("skips", 0) + counts.get("expectedFailures", 0)
    return f"{passed} passed, {failed} failed, {skipped} skipped"


def main(argv: list[str]) -> int:
    command = [sys.executable, "-m", "twisted.trial", "--reactor=asyncio", *(argv or ["tests"])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    status = process.wait()
    print(summarize(lines))
    if status == 0 and not any(_SUMMARY.match(line) for line in lines):
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
