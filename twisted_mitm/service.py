# -*- test-case-name: tests.test_cli -*-
"""The proxy as a Twisted service: listen, run the addons' lifecycle hooks, stop cleanly.

This is the only module that is handed the real reactor (by L{twisted_mitm.tap}); it
passes it on to everything below.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from typing import Any, NoReturn

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_mitm.addons.block import open_proxy_warning
from twisted_mitm.certs import CertStore
from twisted_mitm.hooks import DoneHook, RunningHook
from twisted_mitm.master import Master
from twisted_mitm.memory import can_release_free_memory, memory_report, release_free_memory, tracing_frames
from twisted_mitm.proxy.clientside import ClientSideFactory
from twisted_mitm.proxy.context import ProxyContext


class MitmService(Service):
    """Listens on C{listen_host:listen_port} and serves proxy clients.

    While running it gives the memory freed by ended flows back to the system every
    L{free_memory_interval} seconds (L{twisted_mitm.memory}).

    @ivar port: the listening port once running (tests read the bound port from it).
    """

    _log = Logger()

    #: seconds between two L{release_free_memory} calls
    free_memory_interval = 5.0

    def __init__(self, master: Master, certstore: CertStore, reactor: Any) -> None:
        self.master = master
        self.reactor = reactor
        self.context = ProxyContext(master, reactor, certstore)
        self.port: Any = None
        self._free_memory = LoopingCall(release_free_memory)
        self._free_memory.clock = reactor

    def startService(self) -> None:
        super().startService()
        self._trace_memory_if_asked()
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
        warning = open_proxy_warning(address.host, bool(options.proxyauth), options.block_global)
        if warning is not None:
            self._log.warn("{warning}", warning=warning)
        if can_release_free_memory():
            self._free_memory.start(self.free_memory_interval, now=False)
        self.master.addons.trigger(RunningHook())

    def _trace_memory_if_asked(self) -> None:
        """With C{TWISTED_MITM_TRACEMALLOC=N}: trace allocations, and log a memory report on C{SIGUSR1}."""
        frames = tracing_frames(os.environ)
        if not frames:
            return
        tracemalloc.start(frames)
        signal.signal(signal.SIGUSR1, lambda number, frame: self.reactor.callFromThread(self._log_memory))

    def _log_memory(self) -> None:
        for line in memory_report():
            self._log.info("{line}", line=line)

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
        if self._free_memory.running:
            self._free_memory.stop()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        stopped: Deferred[None] = maybeDeferred(port.stopListening)
        stopped.addCallback(lambda _: self.master.addons.trigger(DoneHook()))
        return stopped
