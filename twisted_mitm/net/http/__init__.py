"""HTTP wire formats under mitmproxy's module names (C{mitmproxy.net.http})."""
