# -*- test-case-name: tests.test_cli -*-
"""The proxy as a Twisted service: listen, run the addons' lifecycle hooks, stop cleanly.

This is the only module that is handed the real reactor (by L{twisted_mitm.tap}); it
passes it on to everything below.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from twisted_mitm.certs import CertStore
from twisted_mitm.hooks import DoneHook, RunningHook
from twisted_mitm.master import Master
from twisted_mitm.proxy.clientside import ClientSideFactory
from twisted_mitm.proxy.context import ProxyContext


class MitmService(Service):
    """Listens on C{listen_host:listen_port} and serves proxy clients.

    @ivar port: the listening port once running (tests read the bound port from it).
    """

    _log = Logger()

    def __init__(self, master: Master, certstore: CertStore, reactor: Any) -> None:
        self.master = master
        self.reactor = reactor
        self.context = ProxyContext(master, reactor, certstore)
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        options = self.master.options
        factory = ClientSideFactory(self.context)
        try:
            self.port = self.reactor.listenTCP(options.listen_port, factory, interface=options.listen_host)
        except CannotListenError as error:
            self._cannot_listen(error)
        address = self.port.getHost()
        self._log.info(
            "twisted_mitm listening on {host}:{port}; CA certificate for clients to trust: {ca}",
            host=address.host,
            port=address.port,
            ca=self.context.certstore.ca_cert_path if self.context.certstore else "-",
        )
        self.master.addons.trigger(RunningHook())

    def _cannot_listen(self, error: CannotListenError) -> NoReturn:
        """Stop start-up with one line (on the real stderr and in the log), no traceback.

        twistd has redirected C{sys.stderr} into the log by now, hence C{sys.__stderr__}.
        """
        reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
        message = f"cannot listen on {error.interface or '*'}:{error.port}: {reason}"
        self._log.critical("{message}", message=message)
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"twisted_mitm: error: {message}\n")
            sys.__stderr__.flush()
        raise SystemExit(1)

    def stopService(self) -> Deferred[None]:
        """Stop listening, then run the addons' C{done} hooks (once)."""
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        stopped: Deferred[None] = maybeDeferred(port.stopListening)
        stopped.addCallback(lambda _: self.master.addons.trigger(DoneHook()))
        return stopped
