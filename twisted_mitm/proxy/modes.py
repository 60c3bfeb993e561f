# -*- test-case-name: tests.test_modes -*-
"""Which protocol a connection to each kind of listener starts with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.protocol import Factory, Protocol

from twisted_mitm.mode_specs import ProxyMode, RegularMode, ReverseMode, Socks5Mode, TransparentMode, UpstreamMode
from twisted_mitm.proxy.clientside import ClientSideProtocol
from twisted_mitm.proxy.entry import ReverseEntry, TransparentEntry
from twisted_mitm.proxy.socks5 import Socks5Entry

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext


class ProxyFactory(Factory):
    """Builds the first protocol of every connection accepted by one mode's listener."""

    noisy = False

    def __init__(self, context: ProxyContext, mode: ProxyMode) -> None:
        self.context = context
        self.mode = mode

    def buildProtocol(self, addr: object) -> Protocol:
        mode = self.mode
        if isinstance(mode, (RegularMode, UpstreamMode)):
            return ClientSideProtocol(self.context, mode=mode)
        if isinstance(mode, ReverseMode):
            return ReverseEntry(self.context, mode)
        if isinstance(mode, TransparentMode):
            return TransparentEntry(self.context, mode)
        assert isinstance(mode, Socks5Mode)
        return Socks5Entry(self.context, mode)
