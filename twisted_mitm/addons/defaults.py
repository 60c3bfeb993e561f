# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons every proxy runs: some before user scripts, some after them."""

from __future__ import annotations

from twisted_mitm.addons.block import Block
from twisted_mitm.addons.disable_h2c import DisableH2C
from twisted_mitm.addons.flowlog import FlowLog
from twisted_mitm.addons.har import HarDump
from twisted_mitm.addons.proxyauth import ProxyAuth
from twisted_mitm.addons.readfile import ReadFile
from twisted_mitm.addons.save import Save


def default_addons() -> list[object]:
    """Fresh instances of the built-in addons that go before the scripts: who may connect,
    authentication, then protocol fixes, then logging and recording, then the flow file
    reader."""
    return [Block(), ProxyAuth(), DisableH2C(), FlowLog(), HarDump(), ReadFile()]


def addons_after_scripts() -> list[object]:
    """Fresh instances of the built-in addons that go after the scripts, so that they see
    each flow as the scripts left it: the flow file writer (in mitmproxy too, the save
    addon comes after the scripts)."""
    return [Save()]
