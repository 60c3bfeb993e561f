# -*- test-case-name: tests.test_cli -*-
"""C{twistd mitm}: command-line flags to options, scripts loaded, the service made.

Everything a user can get wrong on the command line is checked here, before the
reactor runs: flags and C{--set} values, C{config.yaml} in the confdir, scripts
(imported, then their options declared), the CA in C{confdir}. A mistake prints one
line to stderr and exits with status 2; twistd by itself would print its whole help
and exit 0.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any, NoReturn

from twisted.python import usage

from twisted_mitm import configfile
from twisted_mitm.addons.defaults import addons_after_scripts, default_addons
from twisted_mitm.certs import CertStore
from twisted_mitm.exceptions import AddonError, OptionsError
from twisted_mitm.log import install_logging_bridge
from twisted_mitm.master import Master
from twisted_mitm.options import Options as OptionRegistry, default_options
from twisted_mitm.proxy.tls import upstream_creator
from twisted_mitm.service import MitmService


def install_asyncio_reactor() -> None:
    """Run Twisted on asyncio (scripts' coroutines need it) unless a reactor was chosen."""
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        asyncioreactor.install()


def fail(message: str) -> NoReturn:
    """Stop start-up with one line on stderr and exit status 2."""
    sys.stderr.write(f"twisted_mitm: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def _describe_options() -> str:
    registry = default_options()
    lines = ["Options (set with --set NAME=VALUE; SIZE is like 512k, 3m, 1g):"]
    for name in sorted(registry.keys()):
        lines.append(f"  {name} ({registry.typespec_name(name)}, default: {registry.default(name)!r})")
        lines.append(textwrap.fill(registry.help(name), 79, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


class Options(usage.Options):
    """The flags of SPEC §2; each one is a shorthand for a C{--set}."""

    synopsis = "[options] [filter expression]"
    longdesc = (
        "An intercepting HTTP/HTTPS/WebSocket proxy that streams bodies of any size. "
        "Point clients at http://LISTEN_HOST:LISTEN_PORT as their HTTP and HTTPS proxy. "
        "A filter expression after the options, as mitmdump takes one, logs only the flows "
        "that match it, and saves only those (dumper_filter and save_stream_filter)."
    )

    optParameters = [
        ["listen-host", None, None, "Address to listen on (default 127.0.0.1; not an open proxy)."],
        ["listen-port", "p", None, "Port to listen on (default 8080)."],
        ["flow-detail", None, None, "Flow log detail, 0 to 4: 0 no flow lines, 1 one line per flow (default), 2 headers, 3 bodies cut short, 4 whole bodies."],
        ["save-stream-file", "w", None, "Write flows to this mitmproxy flow file as they end (+PATH appends)."],
        ["rfile", "r", None, "Read flows from this mitmproxy flow file and run them through the addons."],
    ]
    optFlags = [
        ["ssl-insecure", "k", "Do not verify upstream servers' TLS certificates."],
        ["quiet", "q", "No flow lines (errors are still logged); same as --flow-detail 0."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["scripts"] = []
        self["set"] = []
        self["ignore_hosts"] = []
        self["allow_hosts"] = []
        self["mode"] = []
        self["server_replay"] = []
        self["client_replay"] = []
        self["filter"] = None

    def opt_scripts(self, path: str) -> None:
        """Load an addon script (repeatable)."""
        self["scripts"].append(path)

    opt_s = opt_scripts

    def opt_set(self, spec: str) -> None:
        """Set an option: NAME=VALUE (repeatable; see the list below)."""
        if "=" not in spec:
            raise usage.UsageError(f"--set takes NAME=VALUE, not {spec!r}")
        self["set"].append(spec)

    def opt_mode(self, spec: str) -> None:
        """Proxy mode (repeatable): regular, reverse:URL, upstream:URL, socks5 or transparent,
        each with an optional @[host:]port (default: regular)."""
        self["mode"].append(spec)

    opt_m = opt_mode

    def opt_server_replay(self, path: str) -> None:
        """Answer matching requests with the responses of this flow file (repeatable)."""
        self["server_replay"].append(path)

    opt_S = opt_server_replay

    def opt_client_replay(self, path: str) -> None:
        """Replay the requests of this flow file, then stop unless keepserving (repeatable)."""
        self["client_replay"].append(path)

    opt_C = opt_client_replay

    def opt_ignore_hosts(self, regex: str) -> None:
        """Relay CONNECTs whose host:port matches REGEX untouched (repeatable)."""
        self["ignore_hosts"].append(regex)

    def opt_allow_hosts(self, regex: str) -> None:
        """Intercept only CONNECTs whose host:port matches REGEX (repeatable)."""
        self["allow_hosts"].append(regex)

    def parseArgs(self, *filter_words: str) -> None:
        """Words after the options form one filter expression, joined with spaces (mitmdump's)."""
        if filter_words:
            self["filter"] = " ".join(filter_words)

    def getUsage(self, width: int | None = None) -> str:
        """Twisted's flag list, then every option (not re-wrapped, so it stays a list)."""
        return super().getUsage(width) + "\n" + _describe_options() + "\n"

    def parseOptions(self, options: list[str] | None = None) -> None:
        """Parse, turning any mistake into one line and exit status 2."""
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            fail(f"{error} (see twistd mitm --help)")

    def postOptions(self) -> None:
        install_asyncio_reactor()
        install_logging_bridge()
        try:
            self.registry = self._registry()
            self.master = self._master()
            self.certstore = CertStore.from_confdir(self.registry.confdir)
            self._check_upstream_trust()
        except (OptionsError, AddonError) as error:
            fail(str(error))

    def _flag_specs(self) -> list[str]:
        specs = [f"scripts={path}" for path in self["scripts"]]
        specs += [f"ignore_hosts={regex}" for regex in self["ignore_hosts"]]
        specs += [f"allow_hosts={regex}" for regex in self["allow_hosts"]]
        specs += [f"mode={spec}" for spec in self["mode"]]
        specs += [f"server_replay={path}" for path in self["server_replay"]]
        specs += [f"client_replay={path}" for path in self["client_replay"]]
        for flag in ("listen-host", "listen-port", "flow-detail", "save-stream-file", "rfile"):
            if self[flag] is not None:
                specs.append(f"{flag.replace('-', '_')}={self[flag]}")
        if self["ssl-insecure"]:
            specs.append("ssl_insecure=true")
        if self["quiet"]:
            specs.append("flow_detail=0")
        return specs

    def _registry(self) -> OptionRegistry:
        """The options: defaults, then C{config.yaml} in the confdir, then the command line.

        C{--set} is applied once before the file too, so that it can name the confdir.
        """
        registry = default_options()
        registry.set(*self["set"], defer=True)
        configfile.load(registry, registry.confdir)
        registry.set(*self._flag_specs())
        registry.set(*self["set"], defer=True)
        if self["filter"] is not None:
            # As mitmdump: the expression limits both what is shown and what -w saves.
            registry.set(f"dumper_filter={self['filter']}", f"save_stream_filter={self['filter']}")
        return registry

    def _master(self) -> Master:
        from twisted.internet import reactor

        master = Master(self.registry, shutdown=lambda: reactor.callLater(0, reactor.stop))
        master.addons.add(*default_addons())
        master.addons.add(*addons_after_scripts())
        self.registry.process_deferred()
        unknown = self.registry.deferred_names()
        if unknown:
            raise OptionsError(f"unknown option: {', '.join(unknown)}")
        return master

    def _check_upstream_trust(self) -> None:
        path = self.registry.ssl_verify_upstream_trusted_ca
        if path:
            upstream_creator("localhost", trusted_ca_path=path)


def makeService(config: Options) -> MitmService:
    """The proxy service for parsed options (twistd calls this)."""
    from twisted.internet import reactor

    service: Any = MitmService(config.master, config.certstore, reactor)
    return service
