# -*- test-case-name: tests.test_cli -*-
"""C{python -m twisted_mitm [options]}: the same as C{twistd -n mitm [options]}."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run the proxy in the foreground with twistd."""
    from twisted.scripts.twistd import run

    arguments = sys.argv[1:] if argv is None else argv
    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "mitm", *arguments]
    run()


if __name__ == "__main__":
    main()
