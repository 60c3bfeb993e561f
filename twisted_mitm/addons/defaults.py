# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons every proxy runs before user scripts, in order."""

from __future__ import annotations

from twisted_mitm.addons.core import Core
from twisted_mitm.addons.disable_h2c import DisableH2C
from twisted_mitm.addons.flowlog import FlowLog
from twisted_mitm.addons.har import HarDump
from twisted_mitm.addons.intercept import Intercept
from twisted_mitm.addons.liveflows import LiveFlows
from twisted_mitm.addons.proxyauth import ProxyAuth
from twisted_mitm.addons.script import ScriptLoader


def default_addons() -> list[object]:
    """Fresh instances of the built-in addons: the core commands and the flows they act on,
    authentication, protocol fixes, logging and recording, interception, then the loader
    of the C{scripts} option (so scripts come after every built-in addon)."""
    return [Core(), LiveFlows(), ProxyAuth(), DisableH2C(), FlowLog(), HarDump(), Intercept(), ScriptLoader()]
