"""Version strings, as mitmproxy's C{version} module has them."""

from twisted_mitm import __version__

VERSION = __version__
#: What the proxy's own responses (C{block_list}, C{map_local}) give as their Server header.
TWISTED_MITM = f"twisted_mitm {VERSION}"
