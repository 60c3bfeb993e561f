# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons every proxy runs before user scripts, in order."""

from __future__ import annotations

from twisted_mitm.addons.block import Block
from twisted_mitm.addons.flowlog import FlowLog
from twisted_mitm.addons.har import HarDump
from twisted_mitm.addons.proxyauth import ProxyAuth


def default_addons() -> list[object]:
    """Fresh instances of the built-in addons: who may connect, authentication, then logging and recording."""
    return [Block(), ProxyAuth(), FlowLog(), HarDump()]
