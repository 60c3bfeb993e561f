"""Pure wire-format helpers under mitmproxy's module names (C{mitmproxy.net})."""
