# -*- test-case-name: tests.test_builtin_addons -*-
"""C{block_global} and C{block_private}: refuse clients by the network they connect from.

mitmproxy's options and rule: loopback clients are always served; C{block_private}
(default off) refuses clients from private networks; C{block_global} (default on)
refuses clients from globally routable addresses, so that a proxy listening on a
public address is not an open relay by accident. Unlike mitmproxy, C{block_global}
stands aside when C{proxyauth} is set: the credentials already keep strangers out.
The addon refuses a client as mitmproxy's does, by setting C{client.error} in
C{client_connected}; the proxy then closes the connection before reading from it.
"""

from __future__ import annotations

import ipaddress

from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.connection import Client

log = Logger()

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    """The address in C{text} (an IPv6 scope and the IPv4-mapped form removed), or C{None}."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def refusing_option(address: IPAddress, block_global: bool, block_private: bool, authenticated: bool) -> str | None:
    """The option that refuses a client at C{address}, or C{None} if it is served."""
    if address.is_loopback:
        return None
    if block_private and address.is_private:
        return "block_private"
    if block_global and address.is_global and not authenticated:
        return "block_global"
    return None


def open_proxy_warning(listen_host: str, proxyauth: bool, block_global: bool) -> str | None:
    """What to tell a user who listens beyond loopback without C{proxyauth}; C{None} if nothing."""
    address = parse_ip(listen_host)
    if proxyauth or (address is not None and address.is_loopback):
        return None
    who = "from private networks" if block_global else "from anywhere, public addresses included (block_global is off)"
    return (
        f"listening on {listen_host} without proxyauth: clients {who} can use this proxy to reach any host "
        "and port; set proxyauth=user:pass, or listen on 127.0.0.1"
    )


class Block:
    """Sets C{client.error} on clients that C{block_global} or C{block_private} refuse."""

    def client_connected(self, client: Client) -> None:
        host = client.peername[0]
        address = parse_ip(host)
        if address is None:
            return
        option = refusing_option(address, ctx.options.block_global, ctx.options.block_private, bool(ctx.options.proxyauth))
        if option is not None:
            log.warn("Client connection from {host} refused by {option} (set {option}=false to serve it)", host=host, option=option)
            client.error = f"Connection killed by {option}."
