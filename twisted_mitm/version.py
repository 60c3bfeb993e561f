"""Version numbers beside the package's own C{__version__} (mitmproxy's C{version} module)."""

FLOW_FORMAT_VERSION = 21
"""The flow file format version written: the one mitmproxy 12 writes and reads."""
