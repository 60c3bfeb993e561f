"""Version numbers and strings beside the package's own C{__version__} (mitmproxy's C{version} module)."""

from twisted_mitm import __version__

VERSION = __version__
#: What the proxy's own responses (C{block_list}, C{map_local}) give as their Server header.
TWISTED_MITM = f"twisted_mitm {VERSION}"

FLOW_FORMAT_VERSION = 21
"""The flow file format version written: the one mitmproxy 12 writes and reads."""
