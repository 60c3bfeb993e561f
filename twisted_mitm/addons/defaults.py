# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons every proxy runs before user scripts, in order."""

from __future__ import annotations

from twisted_mitm.addons.disable_h2c import DisableH2C
from twisted_mitm.addons.flowlog import FlowLog
from twisted_mitm.addons.har import HarDump
from twisted_mitm.addons.proxyauth import ProxyAuth


def default_addons() -> list[object]:
    """Fresh instances of the built-in addons: authentication first, then protocol fixes,
    then logging and recording."""
    return [ProxyAuth(), DisableH2C(), FlowLog(), HarDump()]
