# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons every proxy runs: most before user scripts, in mitmproxy's order;
the flow file writer after them."""

from __future__ import annotations

from twisted_mitm.addons.anticache import AntiCache
from twisted_mitm.addons.anticomp import AntiComp
from twisted_mitm.addons.block import Block
from twisted_mitm.addons.blocklist import BlockList
from twisted_mitm.addons.core import Core
from twisted_mitm.addons.disable_h2c import DisableH2C
from twisted_mitm.addons.flowlog import FlowLog
from twisted_mitm.addons.har import HarDump
from twisted_mitm.addons.intercept import Intercept
from twisted_mitm.addons.liveflows import LiveFlows
from twisted_mitm.addons.maplocal import MapLocal
from twisted_mitm.addons.mapremote import MapRemote
from twisted_mitm.addons.modifybody import ModifyBody
from twisted_mitm.addons.modifyheaders import ModifyHeaders
from twisted_mitm.addons.proxyauth import ProxyAuth
from twisted_mitm.addons.readfile import ReadFile
from twisted_mitm.addons.save import Save
from twisted_mitm.addons.script import ScriptLoader
from twisted_mitm.addons.serverplayback import ServerPlayback
from twisted_mitm.addons.stickyauth import StickyAuth
from twisted_mitm.addons.stickycookie import StickyCookie


def default_addons() -> list[object]:
    """Fresh instances of the built-in addons that go before the scripts: the core commands
    and the flows they act on, then mitmproxy's C{default_addons()} order (who may connect
    first), logging and recording (mitmdump adds its dumper last), the flow file reader,
    interception, and last the loader of the C{scripts} option."""
    return [
        Core(),
        LiveFlows(),
        Block(),
        BlockList(),
        AntiCache(),
        AntiComp(),
        DisableH2C(),
        ProxyAuth(),
        ServerPlayback(),
        MapRemote(),
        MapLocal(),
        ModifyBody(),
        ModifyHeaders(),
        StickyAuth(),
        StickyCookie(),
        FlowLog(),
        HarDump(),
        ReadFile(),
        Intercept(),
        ScriptLoader(),
    ]


def addons_after_scripts() -> list[object]:
    """Fresh instances of the built-in addons that go after the scripts, so that they see
    each flow as the scripts left it: the flow file writer (in mitmproxy too, the save
    addon comes after the scripts)."""
    return [Save()]
