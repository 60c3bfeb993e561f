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
from typing import Any, NoReturn, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_mitm.addons.block import open_proxy_warning
from twisted_mitm.certs import CertStore
from twisted_mitm.hooks import DoneHook, RunningHook
from twisted_mitm.master import Master
from twisted_mitm.memory import can_release_free_memory, memory_report, release_free_memory, tracing_frames
from twisted_mitm.mode_specs import ProxyMode
from twisted_mitm.proxy.context import ProxyContext
from twisted_mitm.proxy.modes import ProxyFactory
from twisted_mitm.proxy.replay import ClientPlayback

T = TypeVar("T")


class MitmService(Service):
    """Listens for each proxy mode (on C{listen_host:listen_port} unless the mode says
    C{@[host:]port}) and serves proxy clients.

    While running it gives the memory freed by ended flows back to the system every
    L{free_memory_interval} seconds (L{twisted_mitm.memory}).

    @ivar ports: the listening ports once running, one per mode, in the order of C{mode}.
    @ivar port: the first of them (tests read the bound port from it).
    """

    _log = Logger()

    #: seconds between two L{release_free_memory} calls
    free_memory_interval = 5.0

    def __init__(self, master: Master, certstore: CertStore, reactor: Any) -> None:
        self.master = master
        self.reactor = reactor
        self.context = ProxyContext(master, reactor, certstore)
        master.addons.add(ClientPlayback(self.context))
        self.ports: list[Any] = []
        self._free_memory = LoopingCall(release_free_memory)
        self._free_memory.clock = reactor

    @property
    def port(self) -> Any:
        return self.ports[0] if self.ports else None

    def startService(self) -> None:
        super().startService()
        self._trace_memory_if_asked()
        options = self.master.options
        for mode in (ProxyMode.parse(spec) for spec in options.mode):
            self._listen(mode)
        self._log.info("CA certificate for clients to trust: {ca}", ca=self.context.certstore.ca_cert_path if self.context.certstore else "-")
        if can_release_free_memory():
            self._free_memory.start(self.free_memory_interval, now=False)
        self.master.addons.trigger(RunningHook())

    def _listen(self, mode: ProxyMode) -> None:
        """Listen for C{mode}'s clients (on C{listen_host:listen_port} unless it says C{@[host:]port})."""
        options = self.master.options
        host = options.listen_host if mode.listen_host is None else mode.listen_host
        port = options.listen_port if mode.listen_port is None else mode.listen_port
        try:
            listening = self.reactor.listenTCP(port, ProxyFactory(self.context, mode), interface=host)
        except CannotListenError as error:
            self._cannot_listen(error, mode)
        self.ports.append(listening)
        address = listening.getHost()
        self._log.info("twisted_mitm: {mode} proxy listening on {host}:{port}", mode=mode.type_name, host=address.host, port=address.port)
        warning = open_proxy_warning(address.host, bool(options.proxyauth), options.block_global)
        if warning is not None:
            self._log.warn("{warning}", warning=warning)

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
        if self._free_memory.running:
            self._free_memory.stop()
        ports, self.ports = self.ports, []
        if not ports:
            return succeed(None)
        stopped: Deferred[None] = gatherResults([maybeDeferred(port.stopListening) for port in ports])
        stopped.addCallback(lambda _: self.master.addons.trigger(DoneHook()))
        stopped.addBoth(self._remove_spools)
        return stopped

    def _remove_spools(self, result: T) -> T:
        """Delete the kept streamed bodies, once the C{done} hooks (HAR) are through with them."""
        self.context.spools.remove()
        return result
