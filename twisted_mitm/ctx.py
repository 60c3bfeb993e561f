# -*- test-case-name: tests.test_addonmanager -*-
"""
What scripts reach as C{from twisted_mitm import ctx}: C{ctx.master}, C{ctx.options} and
C{ctx.log}, as in mitmproxy. L{twisted_mitm.master.Master} fills in C{master} and C{options}
when it is created; C{log} works from the start, even while a script is being imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted_mitm.log import Log

if TYPE_CHECKING:
    from twisted_mitm.options import Options

#: The L{twisted_mitm.master.Master} of the running proxy (which sets it when created).
master: Any
options: Options
log: Log = Log()
