# -*- test-case-name: tests.test_cli -*-
"""The proxy as a Twisted service: listen, run the addons' lifecycle hooks, stop cleanly.

This is the only module that is handed the real reactor (by L{twisted_mitm.tap}); it
passes it on to everything below.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from twisted_mitm.certs import CertStore
from twisted_mitm.hooks import DoneHook, RunningHook
from twisted_mitm.master import Master
from twisted_mitm.mode_specs import ProxyMode
from twisted_mitm.proxy.context import ProxyContext
from twisted_mitm.proxy.modes import ProxyFactory


class MitmService(Service):
    """Listens for each proxy mode (on C{listen_host:listen_port} unless the mode says
    C{@[host:]port}) and serves proxy clients.

    @ivar ports: the listening ports once running, one per mode, in the order of C{mode}.
    @ivar port: the first of them (tests read the bound port from it).
    """

    _log = Logger()

    def __init__(self, master: Master, certstore: CertStore, reactor: Any) -> None:
        self.master = master
        self.reactor = reactor
        self.context = ProxyContext(master, reactor, certstore)
        self.ports: list[Any] = []

    @property
    def port(self) -> Any:
        return self.ports[0] if self.ports else None

    def startService(self) -> None:
        super().startService()
        options = self.master.options
        for mode in (ProxyMode.parse(spec) for spec in options.mode):
            host = options.listen_host if mode.listen_host is None else mode.listen_host
            port = options.listen_port if mode.listen_port is None else mode.listen_port
            try:
                listening = self.reactor.listenTCP(port, ProxyFactory(self.context, mode), interface=host)
            except CannotListenError as error:
                self._cannot_listen(error, mode)
            self.ports.append(listening)
            address = listening.getHost()
            self._log.info("twisted_mitm: {mode} proxy listening on {host}:{port}", mode=mode.type_name, host=address.host, port=address.port)
        self._log.info("CA certificate for clients to trust: {ca}", ca=self.context.certstore.ca_cert_path if self.context.certstore else "-")
        self.master.addons.trigger(RunningHook())

    def _cannot_listen(self, error: CannotListenError, mode: ProxyMode) -> NoReturn:
        """Stop start-up with one line (on the real stderr and in the log), no traceback.

        twistd has redirected C{sys.stderr} into the log by now, hence C{sys.__stderr__}.
        """
        reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
        message = f"cannot listen on {error.interface or '*'}:{error.port} ({mode}): {reason}"
        self._log.critical("{message}", message=message)
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"twisted_mitm: error: {message}\n")
            sys.__stderr__.flush()
        raise SystemExit(1)

    def stopService(self) -> Deferred[None]:
        """Stop listening, then run the addons' C{done} hooks (once)."""
        super().stopService()
        ports, self.ports = self.ports, []
        if not ports:
            return succeed(None)
        stopped: Deferred[None] = gatherResults([maybeDeferred(port.stopListening) for port in ports])
        stopped.addCallback(lambda _: self.master.addons.trigger(DoneHook()))
        return stopped
